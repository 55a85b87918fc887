"""Search designs: a space of continuous, integer and categorical axes sampled by Optuna.

Unlike the enumerable designs (grid, one-at-a-time, ...), a search cannot be expanded into
trials up front: Optuna's TPE sampler proposes each configuration from the results so far.
This module holds the pure description of the space (no Ray, no Optuna import) and turns a
sampled point into a resolved, hashed :class:`PlannedTrial`; ``orchestrator`` maps the space
onto Ray Tune's Optuna searcher.

Seeds: search trials run at the first seed; afterwards the ``repeat_best`` best configurations
are run again at every other seed, so the table reports them as mean +- std like any design.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Dist(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Uniform(_Dist):
    """A float drawn uniformly from [low, high]."""

    type: Literal["uniform"]
    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> "Uniform":
        if not self.low < self.high:
            raise ValueError(f"low < high must hold, got low={self.low}, high={self.high}")
        return self

    def probes(self) -> list[Any]:
        return [self.low, self.high]


class LogUniform(Uniform):
    """A float drawn log-uniformly from [low, high] (e.g. a learning rate)."""

    type: Literal["loguniform"]  # type: ignore[assignment]

    @model_validator(mode="after")
    def _positive(self) -> "LogUniform":
        if self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got low={self.low}")
        return self


class IntRange(_Dist):
    """An integer drawn from [low, high] inclusive, optionally on a log scale."""

    type: Literal["int"]
    low: int
    high: int
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> "IntRange":
        if not self.low < self.high:
            raise ValueError(f"low < high must hold, got low={self.low}, high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got low={self.low}")
        return self

    def probes(self) -> list[Any]:
        return [self.low, self.high]


class Choice(_Dist):
    """One of an explicit list of values."""

    type: Literal["choice"]
    values: list[Any] = Field(min_length=1)

    def probes(self) -> list[Any]:
        return list(self.values)


Distribution = Annotated[Union[LogUniform, Uniform, IntRange, Choice], Field(discriminator="type")]


class AshaSpec(BaseModel):
    """Asynchronous successive halving: stop weak trials early at epoch milestones."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    grace_period: int = Field(2, ge=1, description="Epochs every trial runs before it can be stopped.")
    reduction_factor: float = Field(2.0, gt=1.0)


class SearchSpec(BaseModel):
    """The ``ablation.search`` block of an ``optuna`` design."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    space: dict[str, Distribution] = Field(min_length=1)
    num_samples: int = Field(ge=1, description="Configurations Optuna proposes in total.")
    max_concurrent: int = Field(2, ge=1, description="Trials running at once (TPE learns between them).")
    metric: Literal["mAP", "rank1"] | None = Field(None, description="Default: the study's metric.")
    mode: Literal["max", "min"] = "max"
    asha: AshaSpec | None = None
    repeat_best: int = Field(1, ge=0, description="Best configurations rerun at the remaining seeds.")


def sample_name(sampled: dict[str, Any]) -> str:
    """Variant name of a sampled configuration: its axis values, floats to 4 significant digits."""

    def show(value: Any) -> str:
        if isinstance(value, float) and math.isfinite(value):
            return f"{value:.4g}"
        return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))

    return ", ".join(f"{path}={show(value)}" for path, value in sorted(sampled.items()))


def probe_points(search: SearchSpec) -> list[dict[str, Any]]:
    """Points that exercise every bound and choice, one axis at a time, for validation."""
    points = []
    for path, dist in search.space.items():
        points.extend({path: value} for value in dist.probes())
    return points

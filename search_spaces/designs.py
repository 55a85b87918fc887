"""Ablation designs: how a study's ``ablation:`` block becomes a list of named variants.

A design is a function registered by name. It receives the block's ``axes`` (dotted path ->
values) and ``variants`` (named change sets) and returns :class:`VariantPlan` objects: a name
plus the changes relative to the baseline recipe. Seeds are crossed in afterwards by
:mod:`search_spaces.expand`, so every design repeats over seeds the same way.

Every change remembers where it came from in the spec (``origin``), so a value that fails
validation can be reported at its YAML key and line.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from search_spaces.registry import Registry
from search_spaces.search import SearchSpec

BASELINE = "baseline"


@dataclass(frozen=True)
class Change:
    """Set ``path`` (dotted, into the trial config) to ``value``; ``origin`` is the spec key path."""

    path: str
    value: Any
    origin: tuple[str | int, ...]


@dataclass(frozen=True)
class VariantPlan:
    """One row of the ablation table before seeds: a name and its changes to the baseline."""

    name: str
    changes: tuple[Change, ...] = field(default_factory=tuple)
    # Design-specific facts about the row, e.g. which parts a leave-one-out row turns off;
    # stored with the results so tables can be laid out the way papers print them.
    meta: dict[str, Any] = field(default_factory=dict, compare=False)
    # Named after its changes by the design (not by the user): expansion then names it by the
    # changes that take effect, so a grid row equal to the baseline is called "baseline".
    auto_name: bool = False

    @property
    def changed(self) -> dict[str, Any]:
        return {change.path: change.value for change in self.changes}


class VariantSpec(BaseModel):
    """An explicitly named variant: ``{name: +erasing, set: {augment.random_erasing.p: 0.5}}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    set: dict[str, Any] = Field(default_factory=dict)


class AblationSpec(BaseModel):
    """The spec's ``ablation:`` block."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    design: str = "one_at_a_time"
    axes: dict[str, list[Any]] = Field(default_factory=dict)
    variants: list[VariantSpec] = Field(default_factory=list)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    search: SearchSpec | None = Field(None, description="The space and budget of the 'optuna' design.")

    @model_validator(mode="after")
    def _search_only_for_search_designs(self) -> "AblationSpec":
        if self.design in SEARCH_DESIGNS and self.search is None:
            raise ValueError(f"design '{self.design}' needs a 'search' block: space, num_samples")
        if self.design not in SEARCH_DESIGNS and self.search is not None:
            raise ValueError(f"'search' is for the {', '.join(sorted(SEARCH_DESIGNS))} design, not '{self.design}'")
        if self.design in SEARCH_DESIGNS and (self.axes or self.variants):
            raise ValueError(f"design '{self.design}' samples 'search.space'; remove 'axes' and 'variants'")
        return self

    @field_validator("design")
    @classmethod
    def _design_is_registered(cls, name: str) -> str:
        known = sorted({*DESIGNS, *SEARCH_DESIGNS})
        if name not in known:
            raise ValueError(f"unknown design '{name}'; known designs: {', '.join(known)}")
        return name

    @field_validator("axes")
    @classmethod
    def _axes_have_values(cls, axes: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for path, values in axes.items():
            if not values:
                raise ValueError(f"axis '{path}' has no values; give at least one")
        return axes

    @field_validator("seeds")
    @classmethod
    def _seeds_unique(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be unique, got {seeds}")
        if any(seed < 0 for seed in seeds):
            raise ValueError(f"seeds must be >= 0, got {seeds}")
        return seeds


class DesignError(ValueError):
    """The ablation block does not fit its design (e.g. a grid without axes)."""

    def __init__(self, message: str, origin: tuple[str | int, ...] = ("ablation",)):
        super().__init__(message)
        self.origin = origin


class DesignRegistryError(ValueError):
    """A duplicate or unknown design name."""


DesignFn = Callable[[AblationSpec], list[VariantPlan]]
DESIGNS: Registry[DesignFn] = Registry("design", error=DesignRegistryError)
# Designs whose trials are proposed while the study runs (see search_spaces.search).
SEARCH_DESIGNS = frozenset({"optuna"})


def register_design(name: str) -> Callable[[DesignFn], DesignFn]:
    """Register a design under ``name``; registering a name twice is an error."""
    return DESIGNS.register(name)


def changes_name(changes: tuple[Change, ...] | list[Change]) -> str:
    """``path=value, ...`` of a set of changes; the baseline's name when there are none."""
    return ", ".join(f"{c.path}={format_value(c.value)}" for c in changes) or BASELINE


def format_value(value: Any) -> str:
    """Compact, stable text for a value in a variant name (``0.5``, ``true``, ``[1,2]``)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def axis_changes(spec: AblationSpec) -> list[list[Change]]:
    """Per axis, one change per value, each tagged with its spec location."""
    return [
        [Change(path, value, ("ablation", "axes", path, index)) for index, value in enumerate(values)]
        for path, values in spec.axes.items()
    ]


def named_variants(spec: AblationSpec) -> list[VariantPlan]:
    """The explicit ``variants:`` list as plans."""
    return [
        VariantPlan(
            variant.name,
            tuple(
                Change(path, value, ("ablation", "variants", index, "set", path))
                for path, value in variant.set.items()
            ),
        )
        for index, variant in enumerate(spec.variants)
    ]


def _require(condition: bool, message: str, origin: tuple[str | int, ...]) -> None:
    if not condition:
        raise DesignError(message, origin)


@register_design("grid")
def grid(spec: AblationSpec) -> list[VariantPlan]:
    """Full factorial over ``axes``: every combination of values is a variant."""
    _require(bool(spec.axes), "design 'grid' needs 'axes': {dotted.path: [values]}", ("ablation", "design"))
    _require(not spec.variants, "design 'grid' takes 'axes', not 'variants'", ("ablation", "variants"))
    plans = []
    for combo in itertools.product(*axis_changes(spec)):
        name = changes_name(combo)
        plans.append(VariantPlan(name, tuple(combo), auto_name=True))
    return plans


@register_design("one_at_a_time")
def one_at_a_time(spec: AblationSpec) -> list[VariantPlan]:
    """The baseline, then each axis value alone and each named variant alone."""
    _require(
        bool(spec.axes or spec.variants),
        "design 'one_at_a_time' needs 'axes' or 'variants' to vary",
        ("ablation", "design"),
    )
    plans = [VariantPlan(BASELINE)]
    for changes in axis_changes(spec):
        plans.extend(VariantPlan(f"{c.path}={format_value(c.value)}", (c,), auto_name=True) for c in changes)
    plans.extend(named_variants(spec))
    return plans


@register_design("list")
def explicit_list(spec: AblationSpec) -> list[VariantPlan]:
    """Exactly the named ``variants``; one with an empty ``set`` is the baseline row."""
    _require(bool(spec.variants), "design 'list' needs 'variants': [{name, set}]", ("ablation", "design"))
    _require(not spec.axes, "design 'list' takes 'variants', not 'axes'", ("ablation", "axes"))
    return named_variants(spec)


FULL = "full"


@register_design("leave_one_out")
def leave_one_out(spec: AblationSpec) -> list[VariantPlan]:
    """The full recipe (the baseline), then each named part turned off alone: the layout of
    Robust-ReID Table 2. Each variant's ``set`` says how to switch its part *off*."""
    _require(
        bool(spec.variants),
        "design 'leave_one_out' needs 'variants': one per part, whose 'set' turns that part off",
        ("ablation", "design"),
    )
    _require(not spec.axes, "design 'leave_one_out' takes 'variants', not 'axes'", ("ablation", "axes"))
    parts = [variant.name for variant in spec.variants]
    plans = [VariantPlan(FULL, meta={"design": "leave_one_out", "parts": parts, "off": []})]
    for plan in named_variants(spec):
        plans.append(
            VariantPlan(f"w/o {plan.name}", plan.changes, meta={"design": "leave_one_out", "parts": parts, "off": [plan.name]})
        )
    return plans

"""What a study's report shows, as the spec's ``report:`` block declares it.

The block's schema lives here, on the reading side, so that a study's tables can be drawn from
its stored results and the study folder's copy of the spec without the launch path; the spec
(:mod:`orchestrator.spec`) embeds :class:`Report` as its ``report`` key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from pydantic import BaseModel, ConfigDict, Field, field_validator

from search_spaces.metrics import DEFAULT_TABLE_METRICS, TABLE_METRIC_HEADERS, table_metric_header


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_table_metrics(names: tuple[str, ...] | list[str]) -> None:
    unknown = [name for name in names if table_metric_header(name) is None]
    if unknown:
        raise ValueError(
            f"unknown metric {unknown[0]!r}; a table can show: {', '.join(TABLE_METRIC_HEADERS)}, "
            "each also of an evaluation target as <label>/<metric> (e.g. duke/mAP)"
        )


class PaperRecipe(_Block):
    """``report.reference.recipe:`` — the training recipe the paper reports for its numbers; the
    summary warns on every field where the study's trials differ (:mod:`analysis.reproduction`).
    A field the paper does not state is left out (nothing is compared)."""

    input_size: tuple[int, int] | None = Field(None, description="[height, width] of the input images.")
    epochs: int | None = Field(None, ge=1, description="Training epochs of the main schedule.")
    backbone: str | None = Field(None, description="The backbone, as this project names it (a timm name).")
    pretrained: bool | None = Field(None, description="Whether the backbone starts from ImageNet weights.")
    batch: tuple[int, int] | None = Field(None, description="[identities, images per identity] of a batch.")
    seeds: int | None = Field(None, ge=1, description="Runs each reported number averages (1: a single run).")


class ReferenceNumbers(_Block):
    """``report.reference:`` — a paper's reported numbers for the study's rows (percent, as printed).

    ``rows`` maps a variant name of this study to ``{metric: value}``; ``summarize --reference``
    judges the paper's effects (a row minus its contrast row) against ours and warns where the
    study's dataset or recipe differ from the paper's (``dataset``, ``recipe``).
    """

    source: str = Field(description="Paper and table, e.g. 'APRA (Ang et al.), Table 2'.")
    dataset: str = Field(description="Dataset the numbers were reported on (a dataset.name, e.g. market1501).")
    protocol: str = Field("", description="Evaluation protocol, e.g. 'single query, no re-ranking'.")
    recipe: PaperRecipe | None = Field(None, description="The training recipe the paper reports.")
    rows: dict[str, dict[str, float]] = Field(description="variant name -> {metric: value in percent}.")

    @field_validator("rows")
    @classmethod
    def _known_metrics(cls, rows: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for values in rows.values():
            _check_table_metrics(list(values))
        return rows


class Report(_Block):
    """``report:`` — how the ablation table is drawn: its metric columns and reference numbers."""

    metrics: tuple[str, ...] = Field(DEFAULT_TABLE_METRICS, min_length=1, description="Table columns, in order.")
    reference: ReferenceNumbers | None = None
    deviations: tuple[str, ...] = Field(
        (), description="Where the study departs from the paper it reproduces, one sentence each (the table's footnote shows them)."
    )
    weakest_camera: int | None = Field(
        None, ge=0, description="Declare the weakest camera instead of choosing it from the reference row's seeds."
    )

    @field_validator("metrics")
    @classmethod
    def _known_columns(cls, metrics: tuple[str, ...]) -> tuple[str, ...]:
        _check_table_metrics(metrics)
        return metrics


@dataclass(frozen=True)
class ModelSize:
    """A row's built model at the study's input size: parameters without the identity
    classifier (whose size depends on the dataset), and billions of multiply-adds of one
    forward pass (what papers quote as FLOPs; None where they could not be counted)."""

    params: int
    gmacs: float | None = None


@dataclass(frozen=True)
class ReportSettings:
    """What a summary shows: the table's metric columns, a paper's numbers and the departures
    from it, the study's dataset and metric, and what the plan knows (each row's contrast, each
    row's model size)."""

    metrics: tuple[str, ...] = DEFAULT_TABLE_METRICS
    reference: ReferenceNumbers | None = None
    dataset: str | None = None
    primary_metric: str | None = "mAP"
    deviations: tuple[str, ...] = ()
    weakest_camera: int | None = None
    contrasts: Mapping[str, str | None] | None = None  # variant -> compared row (the plan's); None: stored
    model_sizes: Mapping[str, ModelSize] = field(default_factory=dict)  # variant -> size

    @classmethod
    def from_report(cls, report: Report, dataset: str | None, primary_metric: str | None = "mAP", **known) -> "ReportSettings":
        return cls(
            tuple(report.metrics), report.reference, dataset, primary_metric, tuple(report.deviations), report.weakest_camera, **known
        )

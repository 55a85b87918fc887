"""What a study's report shows, as the spec's ``report:`` block declares it.

The block's schema lives here, on the reading side, so that a study's tables can be drawn from
its stored results and the study folder's copy of the spec without the launch path; the spec
(:mod:`orchestrator.spec`) embeds :class:`Report` as its ``report`` key.
"""

from __future__ import annotations

from dataclasses import dataclass

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


class ReferenceNumbers(_Block):
    """``report.reference:`` — a paper's reported numbers for the study's rows (percent, as printed).

    ``rows`` maps a variant name of this study to ``{metric: value}``; ``summarize --reference``
    prints them beside the measured values and warns when ``dataset`` is not the study's dataset.
    """

    source: str = Field(description="Paper and table, e.g. 'APRA (Ang et al.), Table 2'.")
    dataset: str = Field(description="Dataset the numbers were reported on (a dataset.name, e.g. market1501).")
    protocol: str = Field("", description="Evaluation protocol, e.g. 'single query, no re-ranking'.")
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

    @field_validator("metrics")
    @classmethod
    def _known_columns(cls, metrics: tuple[str, ...]) -> tuple[str, ...]:
        _check_table_metrics(metrics)
        return metrics



@dataclass(frozen=True)
class ReportSettings:
    """What a summary shows: the table's metric columns, a paper's numbers, the study's dataset."""

    metrics: tuple[str, ...] = DEFAULT_TABLE_METRICS
    reference: ReferenceNumbers | None = None
    dataset: str | None = None

    @classmethod
    def from_report(cls, report: Report, dataset: str | None) -> "ReportSettings":
        return cls(tuple(report.metrics), report.reference, dataset)

"""The ablation table: one row per variant, mean and std over seeds, delta vs the baseline.

Reads only the ``trials`` table of the result store. Metrics are shown in percent, as papers
print them: ``rank-1``, ``mAP``, and the weakest and average camera query-mAP and gallery-mAP
(APRA section 4 and its Table 2 layout).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Iterable

from search_spaces import BASELINE, FULL
from storage import latest_per_config

# (column in the trials table, header in the table)
TABLE_METRICS: list[tuple[str, str]] = [
    ("rank1", "rank-1"),
    ("mAP", "mAP"),
    ("weakest_q_mAP", "weakest q-mAP"),
    ("avg_q_mAP", "avg q-mAP"),
    ("weakest_g_mAP", "weakest g-mAP"),
    ("avg_g_mAP", "avg g-mAP"),
]


@dataclass
class MetricStats:
    mean: float
    std: float
    delta: float | None = None  # mean minus the baseline row's mean


@dataclass
class VariantRow:
    variant: str
    seeds: list[int]
    failed: int
    stats: dict[str, MetricStats] = field(default_factory=dict)


@dataclass
class AblationSummary:
    study: str
    baseline: str | None
    rows: list[VariantRow]


def _finite(values: Iterable[Any]) -> list[float]:
    return [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]


def summarize(study: str, trial_rows: list[dict[str, Any]]) -> AblationSummary:
    """Group the latest row of each config by variant; variants keep the study's plan order."""
    rows = latest_per_config(row for row in trial_rows if row.get("study") == study)
    by_variant: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: (r.get("variant_index", 0), r.get("seed", 0))):
        by_variant.setdefault(row["variant"], []).append(row)

    variants: list[VariantRow] = []
    for variant, group in by_variant.items():
        completed = [r for r in group if r.get("status") == "completed"]
        entry = VariantRow(variant, sorted(int(r["seed"]) for r in completed), len(group) - len(completed))
        for column, _ in TABLE_METRICS:
            values = _finite(r.get(column) for r in completed)
            if values:
                std = statistics.stdev(values) if len(values) > 1 else 0.0
                entry.stats[column] = MetricStats(statistics.fmean(values), std)
        variants.append(entry)

    reference = next((name for name in (BASELINE, FULL) if name in by_variant), None)
    baseline_name = reference or (variants[0].variant if variants else None)
    baseline = next((v for v in variants if v.variant == baseline_name), None)
    if baseline is not None:
        for entry in variants:
            if entry is baseline:
                continue
            for column, stats in entry.stats.items():
                if column in baseline.stats:
                    stats.delta = stats.mean - baseline.stats[column].mean
    return AblationSummary(study, baseline_name, variants)


def _cell(stats: MetricStats | None, with_std: bool) -> str:
    if stats is None:
        return "-"
    text = f"{100 * stats.mean:.1f}"
    if with_std:
        text += f" ± {100 * stats.std:.1f}"
    if stats.delta is not None:
        text += f" ({100 * stats.delta:+.1f})"
    return text


def to_markdown(summary: AblationSummary) -> str:
    """A GitHub-flavoured Markdown table; ``(+x.x)`` is the change vs the baseline row."""
    with_std = any(len(row.seeds) > 1 for row in summary.rows)
    headers = ["variant", "seeds", *(header for _, header in TABLE_METRICS)]
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join(["---", "---:", *(["---:"] * len(TABLE_METRICS))]) + "|",
    ]
    for row in summary.rows:
        seeds = str(len(row.seeds)) + (f" ({row.failed} failed)" if row.failed else "")
        name = f"**{row.variant}**" if row.variant == summary.baseline else row.variant
        cells = [_cell(row.stats.get(column), with_std) for column, _ in TABLE_METRICS]
        lines.append("| " + " | ".join([name, seeds, *cells]) + " |")
    spread = "mean ± std over seeds" if with_std else "one seed per variant"
    note = f"Metrics in %, {spread}; (+x) is the difference to **{summary.baseline}**."
    return "\n".join(lines) + "\n\n" + note + "\n"

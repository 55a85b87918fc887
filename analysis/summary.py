"""The ablation table's numbers: per variant and metric, mean and std over seeds and the paired
effect against the reference row, with its interval and Holm-corrected p-value.

Reads the ``trials`` and ``cameras`` tables of the result store. Metrics are in the store's
units (fractions); the formats print percent, as papers do. The columns are the spec's
``report.metrics`` (names from :data:`search_spaces.metrics.TABLE_METRIC_HEADERS`; default APRA
Table 2's: rank-1, mAP, weakest and average camera query-mAP and gallery-mAP).

The reference row is the ``baseline`` variant, ``full`` for leave-one-out designs, else the
first variant. Effects are paired over shared seeds (:mod:`analysis.stats`).

**Weakest camera, one definition everywhere** (the table, the figures, MLflow): the camera with
the lowest query-mAP of the reference row, mean over its seeds (APRA section 4 calls the camera
with the lowest Q-mAP the weakest one and tracks how a module lifts it). The same camera is
reported for every row and for both q-mAP and g-mAP, so a row's "weakest camera" column
compares the same camera across variants. These columns are computed here from the ``cameras``
table, not from the per-trial ``weakest_*`` columns (each trial's own weakest camera).

Layouts and formats live in :mod:`analysis.tables` and :mod:`analysis.formats`.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from analysis.stats import Effect, paired_effect, with_holm
from search_spaces import BASELINE, FULL
from search_spaces.metrics import (
    DEFAULT_TABLE_METRICS,
    G_MAP,
    Q_MAP,
    TABLE_METRIC_HEADERS,
    WEAKEST_G_MAP,
    WEAKEST_Q_MAP,
)
from storage import latest_per_config

LEAVE_ONE_OUT = "leave_one_out"
#: Table columns read from the weakest camera's row of the ``cameras`` table.
WEAKEST_CAMERA_METRICS = {WEAKEST_Q_MAP: Q_MAP, WEAKEST_G_MAP: G_MAP}


@dataclass
class MetricStats:
    """One cell: ``values`` per seed, their mean and std, and the effect vs the reference."""

    mean: float
    std: float
    count: int = 1
    values: dict[int, float] = field(default_factory=dict)
    effect: Effect | None = None

    @property
    def delta(self) -> float | None:
        """Mean paired difference to the reference row (None on the reference row)."""
        return None if self.effect is None else self.effect.mean


@dataclass
class VariantRow:
    variant: str
    seeds: list[int]
    failed: int
    stats: dict[str, MetricStats] = field(default_factory=dict)
    pruned: int = 0
    off: tuple[str, ...] = ()  # leave-one-out: the parts this variant turns off


@dataclass
class AblationSummary:
    study: str
    baseline: str | None
    rows: list[VariantRow]
    design: str | None = None
    parts: list[str] = field(default_factory=list)  # leave-one-out: every part, in spec order
    metrics: tuple[str, ...] = DEFAULT_TABLE_METRICS
    weakest_camera: int | None = None
    cameras: Any = None  # analysis.camera_effects.CameraEffects, or None without camera rows
    bootstrap: bool = False
    reference_numbers: Any = None  # analysis.settings.ReferenceNumbers shown beside (--reference)
    dataset: str | None = None  # the study's dataset, compared with the reference numbers'
    # Per variant: what its trials cost (analysis.compute_cost) and, in an adaptive study, its
    # comparison's decision (analysis.seed_decisions); footnotes for both.
    compute: dict[str, Any] = field(default_factory=dict)
    decisions: dict[str, str] = field(default_factory=dict)
    extra_notes: list[str] = field(default_factory=list)

    @property
    def checkmark_layout(self) -> bool:
        return self.design == LEAVE_ONE_OUT and bool(self.parts)

    @property
    def with_std(self) -> bool:
        return any(len(row.seeds) > 1 for row in self.rows)

    @property
    def reference_row(self) -> VariantRow | None:
        return next((row for row in self.rows if row.variant == self.baseline), None)

    def headers(self) -> list[tuple[str, str]]:
        """(metric, header) of every column; weakest-camera headers name the camera."""
        out = []
        for metric in self.metrics:
            header = TABLE_METRIC_HEADERS[metric]
            if metric in WEAKEST_CAMERA_METRICS and self.weakest_camera is not None:
                header += f" (c{self.weakest_camera})"
            out.append((metric, header))
        return out

    def effects(self, metric: str) -> list[Effect]:
        return [row.stats[metric].effect for row in self.rows if metric in row.stats and row.stats[metric].effect is not None]

    def is_best(self, row: VariantRow, column: str) -> bool:
        """Whether ``row`` shows the highest value of ``column`` (ties at the printed precision
        all count); never when every row shows the same value."""
        shown = [_shown(r.stats[column].mean) for r in self.rows if column in r.stats]
        return column in row.stats and len(set(shown)) > 1 and _shown(row.stats[column].mean) == max(shown)

    def reference_warning(self) -> str | None:
        """A warning when the reference numbers were reported on another dataset."""
        numbers = self.reference_numbers
        if numbers is None or self.dataset is None or numbers.dataset == self.dataset:
            return None
        return (
            f"the reference numbers of {numbers.source} were reported on {numbers.dataset}, "
            f"this study ran on {self.dataset}: differences compare different data"
        )


def _shown(value: float) -> float:
    return round(100 * value, 1)


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _meta(row: dict[str, Any]) -> dict[str, Any]:
    try:
        meta = json.loads(row.get("variant_meta") or "{}")
    except (TypeError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def camera_values(camera_rows: Iterable[Mapping[str, Any]], config_hashes: set[str]) -> dict[str, dict[tuple[int, str], float]]:
    """config_hash -> {(camera, metric): value} for the given configs; a row repeated by a
    forced rerun counts once, the one read last (the store returns rows in write order)."""
    out: dict[str, dict[tuple[int, str], float]] = {}
    for row in camera_rows:
        key = row.get("config_hash")
        value = _finite(row.get("value"))
        if key in config_hashes and value is not None:
            out.setdefault(key, {})[(int(row["camera"]), str(row["metric"]))] = value
    return out


def weakest_camera(reference_trials: Sequence[Mapping[str, Any]], cameras: Mapping[str, Mapping[tuple[int, str], float]]) -> int | None:
    """The camera with the lowest mean q-mAP over the reference row's trials (ties: the lowest
    camera id); None without camera rows."""
    per_camera: dict[int, list[float]] = {}
    for trial in reference_trials:
        for (camera, metric), value in cameras.get(trial["config_hash"], {}).items():
            if metric == Q_MAP:
                per_camera.setdefault(camera, []).append(value)
    if not per_camera:
        return None
    return min(sorted(per_camera), key=lambda c: statistics.fmean(per_camera[c]))


def latest_per_variant_seed(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (variant, seed): the most recently finished. A study relaunched after its
    recipe changed keeps the old trials in the store under other config hashes; the table
    (and the pairing by seed) must count each variant's seed once, as it is now."""
    latest: dict[tuple[Any, Any], dict[str, Any]] = {}
    for row in rows:
        key = (row.get("variant"), row.get("seed"))
        if key not in latest or str(row.get("finished_at", "")) >= str(latest[key].get("finished_at", "")):
            latest[key] = row
    return list(latest.values())


def _reference_variant(by_variant: Mapping[str, list[dict[str, Any]]]) -> str | None:
    """The row differences are taken against: ``baseline`` or ``full`` when a variant has that
    name; in a leave-one-out table the full recipe (the variant that switches nothing off, as
    Robust-ReID's Table 2 compares every column with its last); else the first variant."""
    named = next((name for name in (BASELINE, FULL) if name in by_variant), None)
    if named is not None:
        return named
    full = next(
        (name for name, group in by_variant.items() if group[0].get("design") == LEAVE_ONE_OUT and not _meta(group[0]).get("off")),
        None,
    )
    return full or next(iter(by_variant), None)


def summarize(
    study: str,
    trial_rows: Sequence[dict[str, Any]],
    camera_rows: Sequence[Mapping[str, Any]] = (),
    *,
    metrics: Sequence[str] = DEFAULT_TABLE_METRICS,
    bootstrap: bool = False,
) -> AblationSummary:
    """Group the latest row of each config by variant (the study's plan order), compute each
    metric's mean/std over seeds and the paired effects vs the reference row."""
    study_rows = [row for row in trial_rows if row.get("study") == study]
    rows = latest_per_variant_seed(latest_per_config(study_rows))
    by_variant: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: (r.get("variant_index", 0), r.get("seed", 0))):
        by_variant.setdefault(row["variant"], []).append(row)
    completed = {variant: [r for r in group if r.get("status") == "completed"] for variant, group in by_variant.items()}

    baseline_name = _reference_variant(by_variant)
    kept = {r["config_hash"] for group in completed.values() for r in group}
    cameras = camera_values(camera_rows, kept)
    weakest = weakest_camera(completed.get(baseline_name, []), cameras)

    def value(trial: dict[str, Any], metric: str) -> float | None:
        if metric in WEAKEST_CAMERA_METRICS:
            if weakest is None:
                return None
            return cameras.get(trial["config_hash"], {}).get((weakest, WEAKEST_CAMERA_METRICS[metric]))
        return _finite(trial.get(metric))

    variants: list[VariantRow] = []
    for variant, group in by_variant.items():
        done = completed[variant]
        pruned = sum(r.get("status") == "pruned" for r in group)
        entry = VariantRow(
            variant, sorted(int(r["seed"]) for r in done), len(group) - len(done) - pruned, pruned=pruned, off=tuple(_meta(group[0]).get("off", ()))
        )
        for metric in metrics:
            per_seed = {int(r["seed"]): v for r in done if (v := value(r, metric)) is not None}
            if per_seed:
                numbers = list(per_seed.values())
                std = statistics.stdev(numbers) if len(numbers) > 1 else 0.0
                entry.stats[metric] = MetricStats(statistics.fmean(numbers), std, len(numbers), per_seed)
        variants.append(entry)

    base = next((v for v in variants if v.variant == baseline_name), None)
    if base is not None:
        for metric in metrics:
            others = [v for v in variants if v is not base and metric in v.stats and metric in base.stats]
            effects = with_holm([paired_effect(base.stats[metric].values, v.stats[metric].values, bootstrap=bootstrap) for v in others])
            for v, effect in zip(others, effects):
                v.stats[metric].effect = effect

    designs = {r.get("design") for r in rows if r.get("design")}
    design = designs.pop() if len(designs) == 1 else None
    parts: list[str] = []
    if design == LEAVE_ONE_OUT:
        parts = next((list(_meta(r)["parts"]) for r in rows if _meta(r).get("parts")), [])
    summary = AblationSummary(study, baseline_name, variants, design, parts, tuple(metrics), weakest, bootstrap=bootstrap)
    _add_cost_and_decisions(summary, study_rows)
    if cameras and base is not None:
        from analysis.camera_effects import camera_effects

        seeds = {v.variant: {int(r["seed"]): cameras.get(r["config_hash"], {}) for r in completed[v.variant]} for v in variants}
        summary.cameras = camera_effects(seeds, base.variant, weakest, bootstrap=bootstrap)
    return summary


def _add_cost_and_decisions(summary: AblationSummary, study_rows: list[dict[str, Any]]) -> None:
    """Each row's compute and, for an adaptive study, its decision, with their footnotes."""
    from analysis.compute_cost import compute_by_variant, compute_note
    from analysis.seed_decisions import decision_texts, decisions_note

    by_variant = compute_by_variant(study_rows)
    if any(cost.trials for cost in by_variant.values()):
        summary.compute = by_variant
    summary.decisions = decision_texts(study_rows)
    summary.extra_notes = [note for note in (decisions_note(study_rows), compute_note(study_rows)) if note]

"""The ablation table's numbers: per variant and metric, mean and std over seeds and the paired
effect against the row's *contrast*, with its interval and Holm-corrected p-value.

Reads the ``trials`` and ``cameras`` tables of the result store. Metrics are in the store's
units (fractions); the formats print percent, as papers do. The columns are the spec's
``report.metrics`` (names from :data:`search_spaces.metrics.TABLE_METRIC_HEADERS`; default APRA
Table 2's: rank-1, mAP, weakest and average camera query-mAP and gallery-mAP).

**Contrasts.** Each row is compared with the row the paper compares it with: its
``compare_to`` (:mod:`search_spaces.contrasts`), given by the launch from the plan, else read
from the stored rows (``variant_meta``), else the design's reference row (``baseline``, the
full recipe of a leave-one-out design, else the first variant). Reference rows have no
difference. Effects are paired over shared seeds (:mod:`analysis.stats`).

**Families** (Holm's correction, named in the footnote): the study metric's comparisons are
the confirmatory family (``study.metric``, one test per compared row); the other columns'
comparisons are corrected together as one secondary family. The per-camera tests of a variant
and the weakest-camera advantages are families of their own (:mod:`analysis.camera_effects`).
A difference needs 3 paired seeds and a spread to be tested at all.

**Weakest camera, one definition everywhere** (the table, the figures, MLflow): the camera with
the lowest query-mAP (APRA section 4 calls the camera with the lowest Q-mAP the weakest and
tracks how a module lifts it), chosen on the q-mAP pooled over every row and seed of the table,
which under no effect is independent of the differences tested, or declared in the spec
(:mod:`analysis.weakest`). The same camera is read for every row and seed, for q-mAP and g-mAP.
These columns are computed here from the ``cameras`` table; a trial's own lowest camera is its
``lowest_*`` columns.

Layouts and formats live in :mod:`analysis.tables` and :mod:`analysis.formats`.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from analysis.compute_cost import compute_by_variant, compute_note
from analysis.row_meta import variant_meta
from analysis.seed_decisions import decision_texts, decisions_note
from analysis.stats import Effect, paired_effect, with_holm
from analysis.weakest import POOLED, WeakestCamera, choose_weakest
from search_spaces.contrasts import LEAVE_ONE_OUT, reference_row
from search_spaces.metrics import (
    DEFAULT_TABLE_METRICS,
    G_MAP,
    MAP,
    Q_MAP,
    WEAKEST_G_MAP,
    WEAKEST_Q_MAP,
    split_target_metric,
    table_metric_header,
    target_weakest_metric,
)
from storage import latest_per_config

#: Table columns read from the weakest camera's row of the ``cameras`` table.
WEAKEST_CAMERA_METRICS = {WEAKEST_Q_MAP: Q_MAP, WEAKEST_G_MAP: G_MAP}


@dataclass
class MetricStats:
    """One cell: ``values`` per seed, their mean and std, and the effect vs the row's contrast."""

    mean: float
    std: float
    count: int = 1
    values: dict[int, float] = field(default_factory=dict)
    effect: Effect | None = None

    @property
    def delta(self) -> float | None:
        """Mean paired difference to the contrast row (None on a reference row)."""
        return None if self.effect is None else self.effect.mean


@dataclass
class VariantRow:
    variant: str
    seeds: list[int]
    failed: int
    stats: dict[str, MetricStats] = field(default_factory=dict)
    pruned: int = 0
    off: tuple[str, ...] = ()  # leave-one-out: the parts this variant turns off
    contrast: str | None = None  # the row this one is compared with (None: a reference row)
    unfinished_seeds: tuple[int, ...] = ()  # seeds whose trial failed or was pruned


@dataclass
class AblationSummary:
    study: str
    baseline: str | None  # the design's reference row
    rows: list[VariantRow]
    design: str | None = None
    parts: list[str] = field(default_factory=list)  # leave-one-out: every part, in spec order
    metrics: tuple[str, ...] = DEFAULT_TABLE_METRICS
    weakest: WeakestCamera | None = None
    cameras: Any = None  # analysis.camera_effects.CameraEffects, or None without camera rows
    bootstrap: bool = False
    reference_numbers: Any = None  # analysis.settings.ReferenceNumbers shown beside (--reference)
    dataset: str | None = None  # the study's dataset, compared with the reference numbers'
    primary_metric: str | None = MAP  # the study metric: its comparisons are the confirmatory family
    deviations: tuple[str, ...] = ()  # the spec's report.deviations: where the study departs from the paper
    recipe_values: dict[str, list[Any]] = field(default_factory=dict)  # analysis.reproduction.recipe_values
    model_sizes: dict[str, Any] = field(default_factory=dict)  # variant -> analysis.settings.ModelSize
    target_weakest: dict[str, WeakestCamera] = field(default_factory=dict)  # eval.targets: label -> its weakest camera
    # Per variant: what its trials cost (analysis.compute_cost) and, in an adaptive study, its
    # comparison's decision (analysis.seed_decisions); footnotes for both.
    compute: dict[str, Any] = field(default_factory=dict)
    decisions: dict[str, str] = field(default_factory=dict)
    extra_notes: list[str] = field(default_factory=list)

    @property
    def weakest_camera(self) -> int | None:
        """The study's weakest camera (the header's camera)."""
        return None if self.weakest is None else self.weakest.camera

    @property
    def checkmark_layout(self) -> bool:
        return self.design == LEAVE_ONE_OUT and bool(self.parts)

    @property
    def with_std(self) -> bool:
        return any(len(row.seeds) > 1 for row in self.rows)

    @property
    def reference_row(self) -> VariantRow | None:
        return self.row(self.baseline)

    def row(self, variant: str | None) -> VariantRow | None:
        return next((row for row in self.rows if row.variant == variant), None)

    @property
    def single_contrast(self) -> str | None:
        """The one row every compared row is compared with, if there is one (then the table
        needs no 'vs' column)."""
        contrasts = {row.contrast for row in self.rows if row.contrast is not None}
        if len(contrasts) == 1 and all(row.contrast is not None or row.variant in contrasts for row in self.rows):
            return contrasts.pop()
        return None

    def headers(self) -> list[tuple[str, str]]:
        """(metric, header) of every column; weakest-camera headers name the camera."""
        out = []
        for metric in self.metrics:
            header = table_metric_header(metric) or metric
            if metric in WEAKEST_CAMERA_METRICS and self.weakest is not None:
                header += f" (c{self.weakest.camera})"
            target = target_weakest_metric(metric)
            if target is not None and target[0] in self.target_weakest:
                header += f" (c{self.target_weakest[target[0]].camera})"
            out.append((metric, header))
        return out

    def effects(self, metric: str) -> list[Effect]:
        return [row.stats[metric].effect for row in self.rows if metric in row.stats and row.stats[metric].effect is not None]

    def families(self) -> list[tuple[str, tuple[str, ...]]]:
        """(name, metrics) of the Holm families of the table's columns."""
        return column_families(self.metrics, self.primary_metric)

    def is_best(self, row: VariantRow, column: str) -> bool:
        """Whether ``row``'s value of ``column`` is bold: the single highest value shown (at the
        printed precision) *and* significantly above its contrast row. Being highest by noise
        earns nothing; ties earn nothing."""
        stats = row.stats.get(column)
        if stats is None or stats.effect is None or not stats.effect.significant or stats.effect.mean <= 0:
            return False
        shown = [_shown(r.stats[column].mean) for r in self.rows if column in r.stats]
        mine = _shown(stats.mean)
        return mine == max(shown) and shown.count(mine) == 1


def column_families(metrics: Sequence[str], primary: str | None) -> list[tuple[str, tuple[str, ...]]]:
    """The study metric alone (confirmatory), then every other column together (secondary);
    one family of all columns when the study metric is not a column."""
    if primary in metrics:
        others = tuple(m for m in metrics if m != primary)
        return [("confirmatory", (primary,))] + ([("secondary", others)] if others else [])
    return [("columns", tuple(metrics))]


def _shown(value: float) -> float:
    return round(100 * value, 1)


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def camera_values(camera_rows: Iterable[Mapping[str, Any]], config_hashes: set[str]) -> dict[str, dict[tuple[int, str], float]]:
    """config_hash -> {(camera, metric): value} for the given configs, of the trial's own test
    set (an evaluation target's rows, metric ``<label>/q_mAP``, are :func:`target_camera_values`');
    a row repeated by a forced rerun counts once, the one read last (the store returns rows in
    write order)."""
    return target_camera_values(camera_rows, config_hashes).get(None, {})


def target_camera_values(
    camera_rows: Iterable[Mapping[str, Any]], config_hashes: set[str]
) -> dict[str | None, dict[str, dict[tuple[int, str], float]]]:
    """Per test set -- None for the trial's own, else an evaluation target's label -- the
    :func:`camera_values` of its camera rows, metric names without the label (``duke/q_mAP``
    -> ``q_mAP``), so the weakest-camera rule applies to a target as it does to the own set."""
    out: dict[str | None, dict[str, dict[tuple[int, str], float]]] = {}
    for row in camera_rows:
        key = row.get("config_hash")
        value = _finite(row.get("value"))
        if key in config_hashes and value is not None:
            label, metric = split_target_metric(str(row["metric"]))
            out.setdefault(label, {}).setdefault(key, {})[(int(row["camera"]), metric)] = value
    return out


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


def stored_contrasts(by_variant: Mapping[str, list[dict[str, Any]]]) -> dict[str, str | None] | None:
    """The contrasts the trials were planned with (``variant_meta.compare_to``, the latest row
    of each variant); None when the rows predate contrasts."""
    found: dict[str, str | None] = {}
    for variant, group in by_variant.items():
        meta = variant_meta(max(group, key=lambda r: str(r.get("finished_at", ""))))
        if "compare_to" not in meta:
            return None
        found[variant] = meta["compare_to"]
    return found


def resolve_row_contrasts(
    by_variant: Mapping[str, list[dict[str, Any]]], reference: str | None, planned: Mapping[str, str | None] | None
) -> dict[str, str | None]:
    """Each stored variant's contrast: the plan's, else the stored rows', else the reference row."""
    source = planned if planned is not None else stored_contrasts(by_variant)
    if source is None:
        return {variant: (None if variant == reference else reference) for variant in by_variant}
    return {variant: source.get(variant, None if variant == reference else reference) for variant in by_variant}


def summarize(
    study: str,
    trial_rows: Sequence[dict[str, Any]],
    camera_rows: Sequence[Mapping[str, Any]] = (),
    *,
    metrics: Sequence[str] = DEFAULT_TABLE_METRICS,
    bootstrap: bool = False,
    contrasts: Mapping[str, str | None] | None = None,
    primary_metric: str | None = MAP,
    weakest_camera: int | None = None,
    weakest_rule: str = POOLED,
) -> AblationSummary:
    """Group the latest row of each config by variant (the study's plan order), compute each
    metric's mean/std over seeds and each row's paired effects against its contrast.

    ``contrasts`` (variant -> compared row, None for a reference) come from the plan; without
    them the stored ones apply. ``weakest_camera`` declares the weakest camera instead of
    choosing it; ``weakest_rule="reference"`` chooses it on the reference row (biased; for the
    simulation only)."""
    study_rows = [row for row in trial_rows if row.get("study") == study]
    rows = latest_per_variant_seed(latest_per_config(study_rows))
    by_variant: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: (r.get("variant_index", 0), r.get("seed", 0))):
        by_variant.setdefault(row["variant"], []).append(row)
    completed = {variant: [r for r in group if r.get("status") == "completed"] for variant, group in by_variant.items()}

    designs = {r.get("design") for r in rows if r.get("design")}
    design = designs.pop() if len(designs) == 1 else None
    switched_off = {
        variant: variant_meta(group[0]).get("off", []) for variant, group in by_variant.items() if "off" in variant_meta(group[0])
    }
    reference = reference_row(list(by_variant), design, switched_off)
    row_contrasts = resolve_row_contrasts(by_variant, reference, contrasts)

    kept = {r["config_hash"] for group in completed.values() for r in group}
    by_test_set = target_camera_values(camera_rows, kept)
    cameras = by_test_set.pop(None, {})

    def rows_q(values: Mapping[str, Mapping[tuple[int, str], float]]) -> dict[str, dict[int, dict[int, float]]]:
        return {
            variant: {int(r["seed"]): {c: v for (c, m), v in values.get(r["config_hash"], {}).items() if m == Q_MAP} for r in group}
            for variant, group in completed.items()
        }

    weakest = choose_weakest(rows_q(cameras), reference, weakest_camera, rule=weakest_rule)
    # An evaluation target's weakest camera: the same rule on the target's own cameras.
    target_weakest = {
        label: w for label, values in by_test_set.items() if (w := choose_weakest(rows_q(values), reference, rule=weakest_rule)) is not None
    }

    def value(trial: dict[str, Any], metric: str) -> float | None:
        if metric in WEAKEST_CAMERA_METRICS:
            if weakest is None:
                return None
            return cameras.get(trial["config_hash"], {}).get((weakest.camera_for(int(trial["seed"])), WEAKEST_CAMERA_METRICS[metric]))
        if (target := target_weakest_metric(metric)) is not None:
            label, camera_metric = target
            if label not in target_weakest:
                return None
            return by_test_set[label].get(trial["config_hash"], {}).get((target_weakest[label].camera, camera_metric))
        return _finite(trial.get(metric))

    variants: list[VariantRow] = []
    for variant, group in by_variant.items():
        done = completed[variant]
        pruned = sum(r.get("status") == "pruned" for r in group)
        entry = VariantRow(
            variant,
            sorted(int(r["seed"]) for r in done),
            len(group) - len(done) - pruned,
            pruned=pruned,
            off=tuple(variant_meta(group[0]).get("off", ())),
            contrast=row_contrasts.get(variant),
            unfinished_seeds=tuple(sorted(int(r["seed"]) for r in group if r.get("status") != "completed")),
        )
        for metric in metrics:
            per_seed = {int(r["seed"]): v for r in done if (v := value(r, metric)) is not None}
            if per_seed:
                numbers = list(per_seed.values())
                std = statistics.stdev(numbers) if len(numbers) > 1 else 0.0
                entry.stats[metric] = MetricStats(statistics.fmean(numbers), std, len(numbers), per_seed)
        variants.append(entry)

    by_name = {v.variant: v for v in variants}
    for _, family_metrics in column_families(metrics, primary_metric):
        cells = [
            (v.stats[m], paired_effect(by_name[v.contrast].stats[m].values, v.stats[m].values, bootstrap=bootstrap))
            for m in family_metrics
            for v in variants
            if v.contrast in by_name and m in v.stats and m in by_name[v.contrast].stats
        ]
        for (cell, _), effect in zip(cells, with_holm([effect for _, effect in cells])):
            cell.effect = effect

    parts: list[str] = []
    if design == LEAVE_ONE_OUT:
        parts = next((list(variant_meta(r)["parts"]) for r in rows if variant_meta(r).get("parts")), [])
    summary = AblationSummary(
        study,
        reference,
        variants,
        design,
        parts,
        tuple(metrics),
        weakest,
        bootstrap=bootstrap,
        primary_metric=primary_metric,
        target_weakest=target_weakest,
    )
    _add_cost_and_decisions(summary, study_rows)
    from analysis.reproduction import recipe_values

    summary.recipe_values = recipe_values([r for group in completed.values() for r in group])
    if cameras and reference in by_name:
        from analysis.camera_effects import camera_effects

        seeds = {v.variant: {int(r["seed"]): cameras.get(r["config_hash"], {}) for r in completed[v.variant]} for v in variants}
        summary.cameras = camera_effects(seeds, {v.variant: v.contrast for v in variants}, weakest, bootstrap=bootstrap)
    return summary


def _add_cost_and_decisions(summary: AblationSummary, study_rows: list[dict[str, Any]]) -> None:
    """Each row's compute and, for an adaptive study, its decision, with their footnotes."""
    by_variant = compute_by_variant(study_rows)
    if any(cost.trials for cost in by_variant.values()):
        summary.compute = by_variant
    summary.decisions = decision_texts(study_rows)
    summary.extra_notes = [note for note in (decisions_note(study_rows), compute_note(study_rows)) if note]

"""Format-neutral tables of a summary: what each cell says, before Markdown, LaTeX or HTML.

* :func:`ablation_table` — one row per variant (or, for leave-one-out designs, Robust-ReID
  Table 2's layout: one column per variant, a check-mark row per part); a cell is
  ``mean ± std`` over seeds and, beside it, the paired difference to the reference row with
  its 95% interval, ``(+2.1 [-1.4, +5.5])``, marked ``*`` when its Holm-corrected p < 0.05;
* :func:`camera_table` — per variant and metric, the paired difference per camera and the
  weakest camera's advantage over the best other camera;
* :func:`reference_table` — a paper's reported numbers beside the measured ones;
* :func:`notes` — the footnote: test, seeds, correction, pairs left out, weakest camera.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from analysis.stats import MIN_BOOTSTRAP_PAIRS, WELCH, Effect
from analysis.summary import AblationSummary, MetricStats, VariantRow
from search_spaces.metrics import TABLE_METRIC_HEADERS

CHECK = "✓"
SIGNIFICANT = "*"
METRIC_NAMES = {"q_mAP": "q-mAP", "g_mAP": "g-mAP"}


@dataclass
class Cell:
    text: str
    bold: bool = False
    kind: str = "text"  # text | number | check | effect
    stats: MetricStats | None = None  # number cells: what the text shows
    effect: Effect | None = None  # number and effect cells: the difference shown

    @property
    def significant(self) -> bool:
        return self.effect is not None and self.effect.significant


@dataclass
class Table:
    """Header groups (label, span) above the header; ``blocks`` are row groups split by rules."""

    header: list[str]
    align: str  # one of l, r, c per column
    blocks: list[list[list[Cell]]]
    groups: list[tuple[str, int]] = field(default_factory=list)
    title: str = ""


def pct(value: float, signed: bool = False) -> str:
    """Percent with one decimal; a value that rounds to zero prints as 0.0, never -0.0."""
    shown = 100 * value if abs(100 * value) >= 0.05 else 0.0
    return f"{shown:+.1f}" if signed else f"{shown:.1f}"


def effect_text(effect: Effect | None) -> str:
    """``+2.1 [-1.4, +5.5]*``; ``+2.1`` alone where no interval is possible."""
    if effect is None:
        return ""
    text = pct(effect.mean, True)
    if effect.has_interval:
        text += f" [{pct(effect.low, True)}, {pct(effect.high, True)}]"
    return text + (SIGNIFICANT if effect.significant else "")


def mean_text(stats: MetricStats | None, with_std: bool) -> str:
    if stats is None:
        return "-"
    return pct(stats.mean) + (f" ± {pct(stats.std)}" if with_std else "")


def number_text(stats: MetricStats | None, with_std: bool) -> str:
    text = mean_text(stats, with_std)
    if stats is not None and stats.effect is not None:
        text += f" ({effect_text(stats.effect)})"
    return text


def _seeds(row: VariantRow) -> str:
    notes = [f"{n} {what}" for n, what in ((row.failed, "failed"), (row.pruned, "pruned")) if n]
    return str(len(row.seeds)) + (f" ({', '.join(notes)})" if notes else "")


def _metric_cell(summary: AblationSummary, row: VariantRow, column: str) -> Cell:
    stats = row.stats.get(column)
    return Cell(number_text(stats, summary.with_std), summary.is_best(row, column), "number", stats, stats.effect if stats else None)


def _groups(summary: AblationSummary) -> list[tuple[str, int]]:
    """'weakest camera' / 'average camera' over adjacent weakest_* / avg_* columns."""
    groups: list[tuple[str, int]] = [("", 2)]
    for metric, _ in summary.headers():
        label = "weakest camera" if metric.startswith("weakest_") else "average camera" if metric.startswith("avg_") else ""
        if groups and groups[-1][0] == label:
            groups[-1] = (label, groups[-1][1] + 1)
        else:
            groups.append((label, 1))
    return groups if any(label for label, _ in groups) else []


def _extra_columns(summary: AblationSummary) -> list[tuple[str, list[Cell]]]:
    """(header, cell per row) of the adaptive decision and the compute, where the study has them."""
    out = []
    if summary.decisions:
        out.append(("adaptive seeds", [Cell(summary.decisions.get(row.variant, "-")) for row in summary.rows]))
    if summary.compute:
        out.append(("compute", [Cell(summary.compute[row.variant].text() if row.variant in summary.compute else "-") for row in summary.rows]))
    return out


def _variant_rows_table(summary: AblationSummary) -> Table:
    headers = summary.headers()
    extra = _extra_columns(summary)
    header = ["variant", "seeds", *(h for _, h in headers), *(h for h, _ in extra)]
    body = [
        [Cell(row.variant, row.variant == summary.baseline), Cell(_seeds(row)), *(_metric_cell(summary, row, m) for m, _ in headers), *(cells[i] for _, cells in extra)]
        for i, row in enumerate(summary.rows)
    ]
    groups = _groups(summary)
    if groups and extra:
        groups.append(("", len(extra)))
    return Table(header, "lr" + "r" * (len(headers) + len(extra)), [body], groups)


def _checkmark_table(summary: AblationSummary) -> Table:
    """Robust-ReID Table 2 order: each part off in turn, then the full recipe last."""
    columns = [row for row in summary.rows if row.variant != summary.baseline] + [row for row in summary.rows if row.variant == summary.baseline]
    parts = [[Cell(part), *(Cell("" if part in row.off else CHECK, kind="check") for row in columns)] for part in summary.parts]
    metrics = [[Cell("seeds"), *(Cell(_seeds(row)) for row in columns)]]
    metrics += [[Cell(header), *(_metric_cell(summary, row, m) for row in columns)] for m, header in summary.headers()]
    order = [summary.rows.index(row) for row in columns]
    metrics += [[Cell(header), *(cells[i] for i in order)] for header, cells in _extra_columns(summary)]
    return Table(["", *(row.variant for row in columns)], "l" + "c" * len(columns), [parts, metrics])


def ablation_table(summary: AblationSummary) -> Table:
    return _checkmark_table(summary) if summary.checkmark_layout else _variant_rows_table(summary)


def camera_table(summary: AblationSummary) -> Table | None:
    """Rows (variant, metric); columns: the paired difference per camera, then the weakest
    camera's gain minus the largest gain among the other cameras."""
    effects = summary.cameras
    if effects is None or not effects.variants or not effects.effects:
        return None
    weakest = effects.weakest
    header = ["variant", "metric", *(f"c{c}" + (" (weakest)" if c == weakest else "") for c in effects.cameras)]
    with_advantage = bool(effects.advantage)
    if with_advantage:
        header.append(f"c{weakest} gain − best other")
    body = []
    for variant in effects.variants:
        for metric in ("q_mAP", "g_mAP"):
            per_camera = effects.effects.get((variant, metric))
            if not per_camera:
                continue
            cells = [Cell(variant), Cell(METRIC_NAMES[metric])]
            cells += [Cell(effect_text(per_camera.get(c)) or "-", kind="effect", effect=per_camera.get(c)) for c in effects.cameras]
            if with_advantage:
                adv = effects.advantage.get((variant, metric))
                cells.append(Cell(f"{effect_text(adv.effect)} (vs c{adv.other})" if adv else "-", kind="effect", effect=adv.effect if adv else None))
            body.append(cells)
    title = "Per-camera effects: paired difference to the reference row (percentage points)"
    return Table(header, "ll" + "r" * (len(header) - 2), [body], title=title)


def reference_table(summary: AblationSummary) -> Table | None:
    """Per reference row: ``measured / paper (difference)`` for each metric the paper reports."""
    numbers = summary.reference_numbers
    if numbers is None:
        return None
    ordered = [m for m in summary.metrics if any(m in values for values in numbers.rows.values())]
    ordered += [m for m in TABLE_METRIC_HEADERS if m not in ordered and any(m in values for values in numbers.rows.values())]
    rows = {row.variant: row for row in summary.rows}
    body = []
    for variant, values in numbers.rows.items():
        row = rows.get(variant)
        cells = [Cell(variant)]
        for metric in ordered:
            paper = values.get(metric)
            stats = row.stats.get(metric) if row else None
            if paper is None:
                cells.append(Cell("-" if stats is None else f"{pct(stats.mean)} / -"))
            elif stats is None:
                cells.append(Cell(f"- / {paper:.1f}"))
            else:
                cells.append(Cell(f"{pct(stats.mean)} / {paper:.1f} ({100 * stats.mean - paper:+.1f})"))
        body.append(cells)
    header = ["variant", *(f"{TABLE_METRIC_HEADERS[m]} ours / paper (Δ)" for m in ordered)]
    title = f"Reported in {numbers.source} on {numbers.dataset}" + (f" ({numbers.protocol})" if numbers.protocol else "")
    return Table(header, "l" + "r" * len(ordered), [body], title=title)


def _seed_list(seeds: list[int]) -> str:
    return ", ".join(map(str, seeds))


def notes(summary: AblationSummary, bold: str = "{}") -> list[str]:
    """The table's footnote, sentence by sentence (``bold`` formats the reference's name)."""
    reference = bold.format(summary.baseline)
    out = []
    spread = "mean ± std over seeds" if summary.with_std else "one seed per variant"
    out.append(f"Metrics in %, {spread}; the best value of each metric is bold.")
    effects = [e for m in summary.metrics for e in summary.effects(m)]
    variants = sum(1 for row in summary.rows if row.variant != summary.baseline)
    if not effects:
        pass
    elif not any(e.has_interval for e in effects):
        out.append(f"(+x) is the difference to {reference}; with one seed no interval is possible, so no difference is tested.")
    else:
        interval = "95% interval (Student t on the paired differences)"
        if summary.bootstrap:
            interval = f"95% interval (percentile bootstrap from {MIN_BOOTSTRAP_PAIRS} shared seeds up, Student t below)"
        out.append(
            f"(+x [low, high]) is the mean paired difference to {reference} over the seeds both rows share, with its {interval}; "
            f"{SIGNIFICANT} marks p < 0.05 after Holm's correction across the {variants} variant(s), per metric (two-sided paired t-test)."
        )
        if any(e.test == WELCH for e in effects):
            out.append("Rows that share no seed with the reference are compared by Welch's t-test instead.")
        if any(e.test != WELCH and not e.has_interval for e in effects):
            out.append("Where only one seed is shared no interval is possible.")
    seeds = sorted({s for row in summary.rows for s in row.seeds})
    if seeds:
        out.append(f"Seeds: {_seed_list(seeds)}.")
    left_out = []
    reference_row = summary.reference_row
    for row in summary.rows:
        if row is reference_row or reference_row is None:
            continue
        lone = sorted(set(row.seeds) ^ set(reference_row.seeds))
        if lone and set(row.seeds) & set(reference_row.seeds):
            left_out.append(f"{row.variant}: seed {_seed_list(lone)}")
    if left_out:
        out.append("Left out of the pairs (a seed only one of the two rows completed): " + "; ".join(left_out) + ".")
    if summary.weakest_camera is not None and any(m.startswith("weakest_") for m in summary.metrics):
        out.append(f"Weakest camera: c{summary.weakest_camera}, the lowest q-mAP of {reference} (mean over seeds), used for every row and both metrics.")
    out += summary.extra_notes
    return out


def camera_notes(summary: AblationSummary) -> list[str]:
    if summary.cameras is None or camera_table(summary) is None:
        return []
    out = [
        f"Percentage points, variant minus {summary.baseline}, paired over shared seeds with the 95% Student-t interval; "
        f"{SIGNIFICANT}: p < 0.05 after Holm's correction across the variants, per camera and metric."
    ]
    if summary.cameras.advantage:
        out.append(
            "Last column: the weakest camera's gain minus the gain of the other camera that gained most (named), per seed, "
            "with its interval; above zero means the weakest camera gains most (APRA section 4)."
        )
    return out


def reference_notes(summary: AblationSummary) -> list[str]:
    if summary.reference_numbers is None:
        return []
    out = ["Measured (mean over seeds) / reported, in %; Δ = measured minus reported."]
    warning = summary.reference_warning()
    if warning:
        out.append("Warning: " + warning + ".")
    return out


__all__ = [
    "CHECK", "Cell", "Table", "ablation_table", "camera_table", "reference_table", "notes", "camera_notes",
    "reference_notes", "effect_text", "pct",
]

"""Format-neutral tables of a summary: what each cell says, before Markdown, LaTeX or HTML.

* :func:`ablation_table` — one row per variant (or, for leave-one-out designs, Robust-ReID
  Table 2's layout: one column per variant, a check-mark row per part); a cell is
  ``mean ± std`` over seeds and, beside it, the paired difference to the row's contrast with
  its 95% interval, ``(+2.1 [-1.4, +5.5])``, marked ``*`` when its Holm-corrected p < 0.05
  within its family; a ``vs`` column names each row's contrast where rows have different ones;
  ``params`` gives each row's model size;
* :func:`camera_table` — per variant and metric, the paired difference per camera and the
  weakest camera's advantage over the best other camera;
* :func:`reproduction_table` — a paper's effects (row minus contrast, from its reported
  numbers) beside ours with our interval and a verdict (:mod:`analysis.reproduction`);
* :func:`notes` — the footnote: test, seeds, families, what went untested and why, the weakest
  camera, the departures from the paper.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from analysis.reproduction import TOO_FEW, missing_reference_rows, recipe_warnings, reproduce
from analysis.stats import MIN_BOOTSTRAP_PAIRS, MIN_TEST_PAIRS, WELCH, Effect, family_size
from analysis.summary import AblationSummary, MetricStats, VariantRow
from search_spaces.metrics import table_metric_header

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


def _size_text(summary: AblationSummary, variant: str) -> str:
    size = summary.model_sizes.get(variant)
    return "-" if size is None else f"{size.params / 1e6:.2f}"


def _macs_text(summary: AblationSummary, variant: str) -> str:
    size = summary.model_sizes.get(variant)
    return "-" if size is None or size.gmacs is None else f"{size.gmacs:.2f}"


def _with_macs(summary: AblationSummary) -> bool:
    return any(size.gmacs is not None for size in summary.model_sizes.values())


def _groups(summary: AblationSummary, leading: int) -> list[tuple[str, int]]:
    """'weakest camera' / 'average camera' over adjacent weakest_* / avg_* columns."""
    groups: list[tuple[str, int]] = [("", leading)]
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
        out.append(
            ("compute", [Cell(summary.compute[row.variant].text() if row.variant in summary.compute else "-") for row in summary.rows])
        )
    return out


def _variant_rows_table(summary: AblationSummary) -> Table:
    headers = summary.headers()
    versus = summary.single_contrast is None and any(row.contrast for row in summary.rows)
    lead = ["variant", *(["vs"] if versus else []), "seeds"]
    if summary.model_sizes:
        lead += ["params (M)", *(["GMACs"] if _with_macs(summary) else [])]
    extra = _extra_columns(summary)
    body = []
    for index, row in enumerate(summary.rows):
        cells = [Cell(row.variant)]
        if versus:
            cells.append(Cell(row.contrast or "-"))
        cells.append(Cell(_seeds(row)))
        if summary.model_sizes:
            cells.append(Cell(_size_text(summary, row.variant)))
            if _with_macs(summary):
                cells.append(Cell(_macs_text(summary, row.variant)))
        cells += [_metric_cell(summary, row, m) for m, _ in headers]
        cells += [column[index] for _, column in extra]
        body.append(cells)
    header = [*lead, *(h for _, h in headers), *(h for h, _ in extra)]
    groups = _groups(summary, len(lead))
    if groups and extra:
        groups.append(("", len(extra)))
    return Table(header, "l" * (2 if versus else 1) + "r" * (len(header) - (2 if versus else 1)), [body], groups)


def _checkmark_table(summary: AblationSummary) -> Table:
    """Robust-ReID Table 2 order: each part off in turn, then the full recipe last."""
    columns = [row for row in summary.rows if row.variant != summary.baseline] + [
        row for row in summary.rows if row.variant == summary.baseline
    ]
    parts = [[Cell(part), *(Cell("" if part in row.off else CHECK, kind="check") for row in columns)] for part in summary.parts]
    metrics = []
    if summary.single_contrast is None:
        metrics.append([Cell("vs"), *(Cell(row.contrast or "-") for row in columns)])
    metrics.append([Cell("seeds"), *(Cell(_seeds(row)) for row in columns)])
    if summary.model_sizes:
        metrics.append([Cell("params (M)"), *(Cell(_size_text(summary, row.variant)) for row in columns)])
        if _with_macs(summary):
            metrics.append([Cell("GMACs"), *(Cell(_macs_text(summary, row.variant)) for row in columns)])
    metrics += [[Cell(header), *(_metric_cell(summary, row, m) for row in columns)] for m, header in summary.headers()]
    order = [summary.rows.index(row) for row in columns]
    metrics += [[Cell(header), *(cells[i] for i in order)] for header, cells in _extra_columns(summary)]
    return Table(["", *(row.variant for row in columns)], "l" + "c" * len(columns), [parts, metrics])


def ablation_table(summary: AblationSummary) -> Table:
    return _checkmark_table(summary) if summary.checkmark_layout else _variant_rows_table(summary)


def camera_table(summary: AblationSummary) -> Table | None:
    """Rows (variant, metric); columns: the row's contrast, the paired difference per camera,
    then the weakest camera's gain minus the largest gain among the other cameras."""
    effects = summary.cameras
    if effects is None or not effects.variants or not effects.effects:
        return None
    weakest = effects.weakest_camera
    header = ["variant", "vs", "metric", *(f"c{c}" + (" (weakest)" if c == weakest else "") for c in effects.cameras)]
    with_advantage = bool(effects.advantage)
    if with_advantage:
        header.append(f"c{weakest} gain − best other")
    body = []
    for variant in effects.variants:
        for metric in ("q_mAP", "g_mAP"):
            per_camera = effects.effects.get((variant, metric))
            if not per_camera:
                continue
            cells = [Cell(variant), Cell(effects.contrast_of(variant)), Cell(METRIC_NAMES[metric])]
            cells += [Cell(effect_text(per_camera.get(c)) or "-", kind="effect", effect=per_camera.get(c)) for c in effects.cameras]
            if with_advantage:
                adv = effects.advantage.get((variant, metric))
                cells.append(
                    Cell(f"{effect_text(adv.effect)} (vs c{adv.other})" if adv else "-", kind="effect", effect=adv.effect if adv else None)
                )
            body.append(cells)
    title = "Per-camera effects: paired difference to each row's contrast (percentage points)"
    return Table(header, "lll" + "r" * (len(header) - 3), [body], title=title)


def _verdict_text(cell) -> str:
    """``paper +1.8, ours +0.3 [-2.9, +2.8] (n=3): consistent``."""
    ours = cell.ours
    text = f"paper {cell.paper:+.1f}, ours {effect_text(ours).rstrip(SIGNIFICANT) if ours is not None else '-'}"
    if ours is not None:
        text += f" (n={ours.pairs})"
    verdict = cell.verdict + (", also with 0" if cell.with_zero else "")
    return f"{text}: {verdict}"


def reproduction_table(summary: AblationSummary) -> Table | None:
    """Per row the paper reports: the paper's effect against its contrast row beside ours
    (interval, pairs) and the verdict; a reference row (no contrast) shows ours / paper in
    absolute numbers, not judged."""
    numbers = summary.reference_numbers
    if numbers is None:
        return None
    ordered = [m for m in summary.metrics if any(m in values for values in numbers.rows.values())]
    ordered += [m for m in dict.fromkeys(m for values in numbers.rows.values() for m in values) if m not in ordered]
    body = []
    for reproduced in reproduce(summary):
        cells = [Cell(reproduced.variant), Cell(reproduced.contrast or "-")]
        for metric in ordered:
            if metric in reproduced.verdicts:
                cells.append(Cell(_verdict_text(reproduced.verdicts[metric])))
            elif metric in reproduced.absolute:
                ours, paper = reproduced.absolute[metric]
                cells.append(Cell(f"ours {'-' if ours is None else f'{ours:.1f}'} / paper {paper:.1f} (absolute)"))
            else:
                cells.append(Cell("-"))
        body.append(cells)
    header = ["variant", "vs", *(f"{table_metric_header(m) or m}: effect, paper vs ours" for m in ordered)]
    title = f"Reproduction of {numbers.source} on {numbers.dataset}, judged on effects" + (
        f" ({numbers.protocol})" if numbers.protocol else ""
    )
    return Table(header, "ll" + "l" * len(ordered), [body], title=title)


def _seed_list(seeds: list[int]) -> str:
    return ", ".join(map(str, seeds))


def _family_sentence(summary: AblationSummary) -> str:
    parts = []
    for name, metrics in summary.families():
        effects = [e for m in metrics for e in summary.effects(m)]
        headers = ", ".join(table_metric_header(m) or m for m in metrics)
        size = family_size(effects)
        what = {"confirmatory": "the study metric, confirmatory", "secondary": "the other columns together, secondary"}.get(
            name, "all columns together"
        )
        parts.append(f"{headers} ({what}: {size} test{'s' if size != 1 else ''})")
    return "; ".join(parts)


def _untested(summary: AblationSummary) -> list[str]:
    """``row (reason)`` for every compared row whose difference could not be tested."""
    reasons: dict[str, set[str]] = {}
    for row in summary.rows:
        for stats in row.stats.values():
            effect = stats.effect
            if effect is not None and not effect.tested and effect.untested:
                reasons.setdefault(row.variant, set()).add(effect.untested)
    return [f"{variant} ({', '.join(sorted(why))})" for variant, why in reasons.items()]


def notes(summary: AblationSummary, bold: str = "{}") -> list[str]:
    """The table's footnote, sentence by sentence (``bold`` formats a row's name)."""
    out = []
    spread = "mean ± std over seeds" if summary.with_std else "one seed per variant"
    out.append(f"Metrics in %, {spread}; bold: the single best value of a column, and only where it is significantly above its contrast.")
    if summary.model_sizes:
        macs = "; GMACs: billions of multiply-adds of one forward pass (what papers quote as FLOPs)" if _with_macs(summary) else ""
        out.append(f"params: each row's model at the study's input size, in millions, without its identity classifier{macs}.")
    effects = [e for m in summary.metrics for e in summary.effects(m)]
    single = summary.single_contrast
    compared_with = f"{bold.format(single)}" if single else "the row named under vs (its contrast)"
    if not effects:
        pass
    elif not any(e.has_interval for e in effects):
        out.append(f"(+x) is the difference to {compared_with}; with one seed no interval is possible, so no difference is tested.")
    else:
        interval = "95% interval (Student t on the paired differences)"
        if summary.bootstrap:
            interval = f"95% interval (percentile bootstrap from {MIN_BOOTSTRAP_PAIRS} shared seeds up, Student t below)"
        out.append(
            f"(+x [low, high]) is the mean paired difference to {compared_with} over the seeds both rows share, with its {interval}; "
            f"{SIGNIFICANT} marks p < 0.05 (two-sided paired t-test) after Holm's correction within its family: {_family_sentence(summary)}."
        )
        out.append(f"A difference is tested only from {MIN_TEST_PAIRS} paired seeds up and when the paired differences vary.")
        untested = _untested(summary)
        if untested:
            out.append("Not tested, so never starred: " + "; ".join(untested) + ".")
        if any(e.test == WELCH for e in effects):
            out.append("Rows that share no seed with their contrast are compared by Welch's t-test instead.")
    seeds = sorted({s for row in summary.rows for s in row.seeds})
    if seeds:
        out.append(f"Seeds: {_seed_list(seeds)}.")
    left_out = []
    for row in summary.rows:
        contrast = summary.row(row.contrast)
        if contrast is None:
            continue
        # Seeds one of the two rows failed or was pruned at; not those one row never ran (an
        # adaptive study gives a decided row no further seeds).
        unfinished = set(row.unfinished_seeds) | set(contrast.unfinished_seeds)
        lone = sorted(s for s in set(row.seeds) ^ set(contrast.seeds) if s in unfinished)
        if lone and set(row.seeds) & set(contrast.seeds):
            left_out.append(f"{row.variant}: seed {_seed_list(lone)}")
    if left_out:
        out.append("Left out of the pairs (a seed one of the two rows failed or was pruned at): " + "; ".join(left_out) + ".")
    if summary.weakest is not None and any(m.startswith("weakest_") for m in summary.metrics):
        out.append(f"Weakest camera: {summary.weakest.describe()}; read for every row and both metrics.")
    if summary.deviations:
        out.append("Departures from the paper: " + " ".join(d.rstrip(".") + "." for d in summary.deviations))
    out += summary.extra_notes
    return out


def camera_notes(summary: AblationSummary) -> list[str]:
    if summary.cameras is None or camera_table(summary) is None:
        return []
    out = [
        "Percentage points, variant minus its contrast (vs), paired over shared seeds with the 95% Student-t interval; "
        f"{SIGNIFICANT}: p < 0.05 after Holm's correction within each variant's family (its cameras x q-mAP and g-mAP)."
    ]
    if summary.cameras.advantage:
        out.append(
            "Last column: the weakest camera's gain minus the gain of the other camera that gained most (named), per seed, "
            "with its 95% interval; above zero means the weakest camera gains most (APRA section 4), and * marks a one-sided "
            "test of that claim, Holm-corrected across the variants and both metrics. The weakest camera is chosen on every row's "
            "pooled values, not on the differences it tests (see the table's footnote); the competitor is chosen on the same "
            "seeds, the luckiest one, which makes the test conservative."
        )
    return out


def reproduction_notes(summary: AblationSummary) -> list[str]:
    numbers = summary.reference_numbers
    if numbers is None:
        return []
    out = [
        "Effects in percentage points: the paper's is its row minus its contrast row (vs) from the reported numbers; ours is the "
        "paired difference with its 95% interval and n paired seeds. consistent: the paper's effect lies in our interval "
        "(also with 0: so does no effect); smaller / larger: our interval lies wholly below / above it; "
        f"{TOO_FEW}: no interval (one shared seed, or no spread). A reference row's numbers are shown, not judged: "
        "absolute numbers differ with data and recipe."
    ]
    if numbers.recipe is not None and numbers.recipe.seeds == 1:
        out.append("The paper's numbers are single runs: its effects carry seed noise our intervals do not include.")
    for warning in reproduction_warnings(summary):
        out.append("Warning: " + warning + ".")
    return out


def reproduction_warnings(summary: AblationSummary) -> list[str]:
    """Where the study's data and recipe differ from the paper's, and reported rows with no results."""
    numbers = summary.reference_numbers
    warnings = recipe_warnings(numbers, summary.recipe_values, summary.dataset)
    missing = missing_reference_rows(numbers, [row.variant for row in summary.rows])
    if missing:
        warnings.append(f"the paper's rows {', '.join(repr(m) for m in missing)} match no variant with results in this study")
    return warnings


__all__ = [
    "CHECK",
    "Cell",
    "Table",
    "ablation_table",
    "camera_table",
    "reproduction_table",
    "notes",
    "camera_notes",
    "reproduction_notes",
    "reproduction_warnings",
    "effect_text",
    "pct",
]

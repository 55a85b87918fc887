"""The ablation table: one row per variant, mean and std over seeds, delta vs the baseline.

Reads only the ``trials`` table of the result store. Metrics are shown in percent, as papers
print them: ``rank-1``, ``mAP``, and the weakest and average camera query-mAP and gallery-mAP
(APRA section 4 and its Table 2 layout: weakest camera Q-mAP/G-mAP, average camera Q-mAP/G-mAP).
The best value of each metric is bold; ``(+x.x)`` is the difference to the reference row (the
``baseline`` variant, ``full`` for leave-one-out designs, else the first variant).

Leave-one-out studies are laid out like Robust-ReID Table 2: one column per variant (each part
turned off in turn, the full recipe last), a check-mark row per part, the metrics below.

Formats: :func:`to_markdown`, :func:`to_latex` (booktabs), :func:`to_html` (a standalone page)
and :func:`to_csv` (one row per variant, raw values in the store's units, for spreadsheets).
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import re
import statistics
from dataclasses import dataclass, field
from typing import Any, Iterable

from search_spaces import BASELINE, FULL
from search_spaces.registry import Registry
from storage import latest_per_config

# (column in the trials table, header in the table), in APRA Table 2's order.
TABLE_METRICS: list[tuple[str, str]] = [
    ("rank1", "rank-1"),
    ("mAP", "mAP"),
    ("weakest_q_mAP", "weakest q-mAP"),
    ("weakest_g_mAP", "weakest g-mAP"),
    ("avg_q_mAP", "avg q-mAP"),
    ("avg_g_mAP", "avg g-mAP"),
]
LEAVE_ONE_OUT = "leave_one_out"
CHECK = "✓"


@dataclass
class MetricStats:
    mean: float
    std: float
    delta: float | None = None  # mean minus the baseline row's mean
    count: int = 1


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

    @property
    def checkmark_layout(self) -> bool:
        return self.design == LEAVE_ONE_OUT and bool(self.parts)

    @property
    def with_std(self) -> bool:
        return any(len(row.seeds) > 1 for row in self.rows)

    def is_best(self, row: VariantRow, column: str) -> bool:
        """Whether ``row`` shows the highest value of ``column`` (ties at the printed precision
        all count); never when every row shows the same value."""
        shown = [_shown(r.stats[column].mean) for r in self.rows if column in r.stats]
        return column in row.stats and len(set(shown)) > 1 and _shown(row.stats[column].mean) == max(shown)


def _shown(value: float) -> float:
    return round(100 * value, 1)


def _finite(values: Iterable[Any]) -> list[float]:
    return [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]


def _meta(row: dict[str, Any]) -> dict[str, Any]:
    try:
        meta = json.loads(row.get("variant_meta") or "{}")
    except (TypeError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def summarize(study: str, trial_rows: list[dict[str, Any]]) -> AblationSummary:
    """Group the latest row of each config by variant; variants keep the study's plan order."""
    rows = latest_per_config(row for row in trial_rows if row.get("study") == study)
    by_variant: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: (r.get("variant_index", 0), r.get("seed", 0))):
        by_variant.setdefault(row["variant"], []).append(row)

    variants: list[VariantRow] = []
    for variant, group in by_variant.items():
        completed = [r for r in group if r.get("status") == "completed"]
        pruned = sum(r.get("status") == "pruned" for r in group)
        entry = VariantRow(
            variant,
            sorted(int(r["seed"]) for r in completed),
            len(group) - len(completed) - pruned,
            pruned=pruned,
            off=tuple(_meta(group[0]).get("off", ())),
        )
        for column, _ in TABLE_METRICS:
            values = _finite(r.get(column) for r in completed)
            if values:
                std = statistics.stdev(values) if len(values) > 1 else 0.0
                entry.stats[column] = MetricStats(statistics.fmean(values), std, count=len(values))
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

    designs = {r.get("design") for r in rows if r.get("design")}
    design = designs.pop() if len(designs) == 1 else None
    parts: list[str] = []
    if design == LEAVE_ONE_OUT:
        parts = next((list(_meta(r)["parts"]) for r in rows if _meta(r).get("parts")), [])
    return AblationSummary(study, baseline_name, variants, design, parts)


# -- a format-neutral table -----------------------------------------------------------------
@dataclass
class Cell:
    text: str
    bold: bool = False
    kind: str = "text"  # text | number | check
    stats: MetricStats | None = None  # number cells: what the text shows


@dataclass
class Table:
    """Header groups (label, span) above the header; ``blocks`` are row groups split by rules."""

    header: list[str]
    align: str  # one of l, r, c per column
    blocks: list[list[list[Cell]]]
    groups: list[tuple[str, int]] = field(default_factory=list)


def _number(stats: MetricStats | None, with_std: bool) -> str:
    if stats is None:
        return "-"
    text = f"{100 * stats.mean:.1f}"
    if with_std:
        text += f" ± {100 * stats.std:.1f}"
    if stats.delta is not None:
        text += f" ({100 * stats.delta:+.1f})"
    return text


def _seeds(row: VariantRow) -> str:
    notes = [f"{n} {what}" for n, what in ((row.failed, "failed"), (row.pruned, "pruned")) if n]
    return str(len(row.seeds)) + (f" ({', '.join(notes)})" if notes else "")


def _metric_cell(summary: AblationSummary, row: VariantRow, column: str) -> Cell:
    stats = row.stats.get(column)
    return Cell(_number(stats, summary.with_std), summary.is_best(row, column), "number", stats)


def _variant_rows_table(summary: AblationSummary) -> Table:
    header = ["variant", "seeds", *(header for _, header in TABLE_METRICS)]
    body = [
        [Cell(row.variant), Cell(_seeds(row)), *(_metric_cell(summary, row, column) for column, _ in TABLE_METRICS)]
        for row in summary.rows
    ]
    groups = [("", 4), ("weakest camera", 2), ("average camera", 2)]
    return Table(header, "lr" + "r" * len(TABLE_METRICS), [body], groups)


def _checkmark_columns(summary: AblationSummary) -> list[VariantRow]:
    """Robust-ReID Table 2 order: each part off in turn, then the full recipe last."""
    reference = [row for row in summary.rows if row.variant == summary.baseline]
    return [row for row in summary.rows if row.variant != summary.baseline] + reference


def _checkmark_table(summary: AblationSummary) -> Table:
    columns = _checkmark_columns(summary)
    parts = [[Cell(part), *(Cell("" if part in row.off else CHECK, kind="check") for row in columns)] for part in summary.parts]
    metrics = [[Cell("seeds"), *(Cell(_seeds(row)) for row in columns)]]
    metrics += [[Cell(header), *(_metric_cell(summary, row, column) for row in columns)] for column, header in TABLE_METRICS]
    return Table(["", *(row.variant for row in columns)], "l" + "c" * len(columns), [parts, metrics])


def ablation_table(summary: AblationSummary) -> Table:
    return _checkmark_table(summary) if summary.checkmark_layout else _variant_rows_table(summary)


def _note(summary: AblationSummary, bold: str) -> str:
    spread = "mean ± std over seeds" if summary.with_std else "one seed per variant"
    reference = bold.format(summary.baseline)
    return f"Metrics in %, {spread}; (+x) is the difference to {reference}; the best value of each metric is bold."


# -- Markdown ---------------------------------------------------------------------------------
def to_markdown(summary: AblationSummary) -> str:
    """A GitHub-flavoured Markdown table; ``(+x.x)`` is the change vs the baseline row."""
    table = ablation_table(summary)

    def text(cell: Cell) -> str:
        shown = cell.text.replace("|", "\\|")
        return f"**{shown}**" if cell.bold and shown else shown

    lines = [
        "| " + " | ".join(table.header) + " |",
        "|" + "|".join({"l": "---", "r": "---:", "c": ":---:"}[a] for a in table.align) + "|",
    ]
    for block in table.blocks:
        for row in block:
            cells = [text(cell) for cell in row]
            if not summary.checkmark_layout and row[0].text == summary.baseline:
                cells[0] = f"**{cells[0]}**"  # the reference row
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + _note(summary, "**{}**") + "\n"


# -- LaTeX ------------------------------------------------------------------------------------
_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(char, char) for char in text)


def _latex_number(cell: Cell, with_std: bool) -> str:
    """``mean`` (bold if best) with a small std, the delta small on a second line, so that
    eight columns fit the width of a page."""
    stats = cell.stats
    if stats is None:
        return "--"
    mean = f"{100 * stats.mean:.1f}"
    text = rf"\textbf{{{mean}}}" if cell.bold else mean
    if with_std:
        text += rf"{{\scriptsize\,$\pm$\,{100 * stats.std:.1f}}}"
    if stats.delta is None:
        return text
    delta = f"{100 * stats.delta:+.1f}".replace("+", "$+$").replace("-", "$-$")
    return rf"\begin{{tabular}}[t]{{@{{}}r@{{}}}}{text}\\ {{\scriptsize ({delta})}}\end{{tabular}}"


def _latex_cell(cell: Cell, with_std: bool) -> str:
    if cell.kind == "check":
        return r"\checkmark" if cell.text else ""
    if cell.kind == "number":
        return _latex_number(cell, with_std)
    return rf"\textbf{{{latex_escape(cell.text)}}}" if cell.bold else latex_escape(cell.text)


def to_latex(summary: AblationSummary) -> str:
    """A ``table*`` float (full text width in two-column papers) holding a booktabs ``tabular``:
    mean (bold where best), std small beside it, the delta small below. Needs
    ``\\usepackage{booktabs}`` (and ``amssymb`` for the check marks of a leave-one-out table)."""
    table = ablation_table(summary)
    caption = latex_escape(_note(summary, "{}")).replace("±", r"$\pm$")
    lines = [
        f"% Ablation table of study '{summary.study}', written by `orchestrator summarize`.",
        "% Needs \\usepackage{booktabs}" + (" and \\usepackage{amssymb} (for \\checkmark)." if summary.checkmark_layout else "."),
        r"\begin{table*}[t]",
        r"  \centering",
        r"  \footnotesize",
        r"  \setlength{\tabcolsep}{4pt}",
        rf"  \caption{{Ablation study \texttt{{{latex_escape(summary.study)}}}. {caption}}}",
        rf"  \label{{tab:ablation-{re.sub(r'[^A-Za-z0-9]+', '-', summary.study).strip('-').lower()}}}",
        rf"  \begin{{tabular}}{{{table.align}}}",
        r"    \toprule",
    ]
    if table.groups:
        cells, rules, column = [], [], 1
        for label, span in table.groups:
            if label:
                cells.append(rf"\multicolumn{{{span}}}{{c}}{{{latex_escape(label.capitalize())}}}")
                rules.append(rf"\cmidrule(lr){{{column}-{column + span - 1}}}")
            else:
                cells += [""] * span
            column += span
        lines.append("    " + " & ".join(cells) + r" \\")
        lines.append("    " + " ".join(rules))
        header = [latex_escape(h.replace("weakest ", "").replace("avg ", "")) for h in table.header]
    else:
        header = [latex_escape(h) for h in table.header]
    lines.append("    " + " & ".join(header) + r" \\")
    for block in table.blocks:
        lines.append(r"    \midrule")
        lines.extend("    " + " & ".join(_latex_cell(cell, summary.with_std) for cell in row) + r" \\" for row in block)
    lines += [r"    \bottomrule", r"  \end{tabular}", r"\end{table*}"]
    return "\n".join(lines) + "\n"


# -- HTML -------------------------------------------------------------------------------------
_HTML_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; }
table.ablation { border-collapse: collapse; font-variant-numeric: tabular-nums; }
table.ablation caption { caption-side: bottom; text-align: left; padding-top: .6em; color: #444; }
table.ablation th, table.ablation td { padding: .25em .8em; }
table.ablation thead { border-top: 2px solid #000; border-bottom: 1px solid #000; }
table.ablation tbody { border-bottom: 1px solid #000; }
table.ablation tbody:last-of-type { border-bottom: 2px solid #000; }
td.r { text-align: right; } td.c, th.c { text-align: center; } td.l, th.l { text-align: left; }
""".strip()


def to_html(summary: AblationSummary) -> str:
    """A standalone HTML page holding the table (opens in any browser, pastes into docs)."""
    table = ablation_table(summary)
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Ablation: {html.escape(summary.study)}</title>",
        f"<style>\n{_HTML_STYLE}\n</style></head><body>",
        f"<h1>Ablation study <code>{html.escape(summary.study)}</code></h1>",
        '<table class="ablation">',
        f"<caption>{html.escape(_note(summary, '{}'))}</caption>",
        "<thead>",
    ]
    if table.groups:
        out.append("<tr>" + "".join(f'<th colspan="{span}" class="c">{html.escape(label)}</th>' for label, span in table.groups) + "</tr>")
    out.append("<tr>" + "".join(f'<th class="{a}">{html.escape(h)}</th>' for h, a in zip(table.header, table.align)) + "</tr>")
    out.append("</thead>")
    for block in table.blocks:
        out.append("<tbody>")
        for row in block:
            cells = []
            for cell, align in zip(row, table.align):
                text = html.escape(cell.text)
                cells.append(f'<td class="{align}">' + (f"<strong>{text}</strong>" if cell.bold else text) + "</td>")
            out.append("<tr>" + "".join(cells) + "</tr>")
        out.append("</tbody>")
    out += ["</table>", "</body></html>"]
    return "\n".join(out) + "\n"


# -- CSV --------------------------------------------------------------------------------------
def to_csv(summary: AblationSummary) -> str:
    """One row per variant: ``variant, reference, seeds, failed, pruned``, ``off:<part>`` (1 if
    the variant turns the part off; leave-one-out only), then ``<metric>_mean``, ``_std`` and
    ``_delta`` for each metric, unrounded and in the result store's units (fractions, not %)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    metric_columns = [f"{column}_{what}" for column, _ in TABLE_METRICS for what in ("mean", "std", "delta")]
    writer.writerow(["variant", "reference", "seeds", "failed", "pruned", *(f"off:{p}" for p in summary.parts), *metric_columns])
    for row in summary.rows:
        values: list[Any] = [row.variant, int(row.variant == summary.baseline), len(row.seeds), row.failed, row.pruned]
        values += [int(part in row.off) for part in summary.parts]
        for column, _ in TABLE_METRICS:
            stats = row.stats.get(column)
            values += ["", "", ""] if stats is None else [repr(stats.mean), repr(stats.std), "" if stats.delta is None else repr(stats.delta)]
        writer.writerow(values)
    return buffer.getvalue()


# Table formats: name -> (file name, renderer), in the one registry style (search_spaces.registry).
FORMATS: Registry[tuple[str, Any]] = Registry("table format")
for _format, _file, _render in (("md", "ablation.md", to_markdown), ("latex", "ablation.tex", to_latex), ("csv", "ablation.csv", to_csv), ("html", "ablation.html", to_html)):
    FORMATS.add(_format, (_file, _render))

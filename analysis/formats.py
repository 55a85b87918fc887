"""The summary in four formats: :func:`to_markdown`, :func:`to_latex` (booktabs),
:func:`to_html` (one self-contained page, figures embedded as data URIs) and :func:`to_csv`
(one row per variant, raw values in the store's units, for spreadsheets).

Each format holds the ablation table with its footnote, the per-camera effects (where the study
has camera rows) and, when asked, the paper's reported numbers beside the measured ones.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import re
from pathlib import Path
from typing import Any, Callable, Iterable

from analysis.summary import AblationSummary
from analysis.reproduction import reproduce
from analysis.tables import (
    Cell,
    Table,
    ablation_table,
    camera_notes,
    camera_table,
    effect_text,
    notes,
    pct,
    reproduction_notes,
    reproduction_table,
    reproduction_warnings,
)
from search_spaces.registry import Registry


def _tables(summary: AblationSummary, bold: str = "{}") -> list[tuple[Table, list[str]]]:
    """(table, footnote sentences) of every table the summary shows, in order."""
    out = [(ablation_table(summary), notes(summary, bold))]
    cameras = camera_table(summary)
    if cameras is not None:
        out.append((cameras, camera_notes(summary)))
    reproduction = reproduction_table(summary)
    if reproduction is not None:
        out.append((reproduction, reproduction_notes(summary)))
    return out


# -- Markdown ---------------------------------------------------------------------------------
def _markdown_table(table: Table) -> list[str]:
    def text(cell: Cell) -> str:
        shown = cell.text.replace("|", "\\|")
        return f"**{shown}**" if cell.bold and shown else shown

    lines = [
        "| " + " | ".join(table.header) + " |",
        "|" + "|".join({"l": "---", "r": "---:", "c": ":---:"}[a] for a in table.align) + "|",
    ]
    lines += ["| " + " | ".join(text(cell) for cell in row) + " |" for block in table.blocks for row in block]
    return lines


def to_markdown(summary: AblationSummary) -> str:
    """GitHub-flavoured Markdown: each table, its title in bold above and its footnote below."""
    parts = []
    for table, sentences in _tables(summary, "**{}**"):
        lines = [f"**{table.title}**", ""] if table.title else []
        lines += _markdown_table(table)
        parts.append("\n".join(lines) + ("\n\n" + " ".join(sentences) if sentences else ""))
    return "\n\n".join(parts) + "\n"


# -- LaTeX ------------------------------------------------------------------------------------
_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"$<$",
    ">": r"$>$",  # in text mode the default font encoding prints them as other glyphs
}


def latex_escape(text: str) -> str:
    out = "".join(_LATEX_SPECIAL.get(char, char) for char in text)
    return out.replace("±", r"$\pm$").replace("−", "$-$").replace("Δ", r"$\Delta$").replace("✓", r"\checkmark{}")


def _latex_signed(text: str) -> str:
    return text.replace("+", "$+$").replace("-", "$-$")


def _latex_interval(effect) -> str:
    return "[" + _latex_signed(pct(effect.low, True)) + ", " + _latex_signed(pct(effect.high, True)) + "]"


def _stacked(*lines: str) -> str:
    """Lines stacked in one right-aligned cell."""
    return r"\begin{tabular}[t]{@{}r@{}}" + r"\\ ".join(lines) + r"\end{tabular}"


def _latex_effect(cell: Cell) -> str:
    """The difference (``*`` if significant) over its interval, small, so that the camera
    table's columns stay narrow."""
    effect = cell.effect
    if effect is None:
        return latex_escape(cell.text) if cell.text != "-" else "--"
    text = _latex_signed(pct(effect.mean, True)) + (r"$^{\ast}$" if effect.significant else "")
    versus = re.search(r"\(vs (c\d+)\)$", cell.text)
    if versus:
        text += f" vs {versus.group(1)}"
    return _stacked(text, rf"{{\scriptsize {_latex_interval(effect)}}}") if effect.has_interval else text


def _latex_number(cell: Cell, with_std: bool) -> str:
    """``mean`` (bold if best) with a small std; below it, small, the difference (``*`` if
    significant) and below that its interval, so that eight columns fit a page's width."""
    stats = cell.stats
    if stats is None:
        return "--"
    mean = pct(stats.mean)
    text = rf"\textbf{{{mean}}}" if cell.bold else mean
    if with_std:
        text += rf"{{\scriptsize\,$\pm$\,{pct(stats.std)}}}"
    effect = stats.effect
    if effect is None:
        return text
    mark = r"$^{\ast}$" if effect.significant else ""
    lines = [text, rf"{{\scriptsize ({_latex_signed(pct(effect.mean, True))}{mark})}}"]
    if effect.has_interval:
        lines.append(rf"{{\scriptsize {_latex_interval(effect)}}}")
    return _stacked(*lines)


def _latex_cell(cell: Cell, with_std: bool) -> str:
    if cell.kind == "check":
        return r"\checkmark" if cell.text else ""
    if cell.kind == "number":
        return _latex_number(cell, with_std)
    if cell.kind == "effect":
        return _latex_effect(cell)
    return rf"\textbf{{{latex_escape(cell.text)}}}" if cell.bold else latex_escape(cell.text)


def _two_lines(header: str) -> str:
    """A long header split at its middle space into two stacked lines (narrower columns)."""
    words = header.split(" ")
    if len(header) <= 12 or len(words) < 2:
        return header
    cut = min(range(1, len(words)), key=lambda i: abs(len(" ".join(words[:i])) - len(header) / 2))
    return _stacked(" ".join(words[:cut]), " ".join(words[cut:]))


def _latex_tabular(table: Table, with_std: bool) -> list[str]:
    lines = [rf"  \begin{{tabular}}{{{table.align}}}", r"    \toprule"]
    header = [latex_escape(h) for h in table.header]
    if table.groups:
        cells, rules, column = [], [], 1
        for label, span in table.groups:
            if label:
                cells.append(rf"\multicolumn{{{span}}}{{c}}{{{latex_escape(label.capitalize())}}}")
                rules.append(rf"\cmidrule(lr){{{column}-{column + span - 1}}}")
            else:
                cells += [""] * span
            column += span
        lines += ["    " + " & ".join(cells) + r" \\", "    " + " ".join(rules)]
        header = [latex_escape(re.sub(r"^(weakest|avg) ", "", h)) for h in table.header]
    lines.append("    " + " & ".join(_two_lines(h) for h in header) + r" \\")
    for block in table.blocks:
        lines.append(r"    \midrule")
        lines.extend("    " + " & ".join(_latex_cell(cell, with_std) for cell in row) + r" \\" for row in block)
    return lines + [r"    \bottomrule", r"  \end{tabular}"]


def _label(study: str, suffix: str = "") -> str:
    return "tab:ablation-" + re.sub(r"[^A-Za-z0-9]+", "-", study).strip("-").lower() + suffix


def to_latex(summary: AblationSummary) -> str:
    """``table*`` floats (full text width in two-column papers) holding booktabs ``tabular``s:
    mean (bold where best), std small beside it, the difference and its interval small below
    (``*`` where significant). Needs ``\\usepackage{booktabs}`` and ``amssymb``."""
    lines = [
        f"% Ablation table of study '{summary.study}', written by `orchestrator summarize`.",
        "% Needs \\usepackage{booktabs} and \\usepackage{amssymb} (for \\checkmark).",
    ]
    for index, (table, sentences) in enumerate(_tables(summary)):
        title = table.title or f"Ablation study \\texttt{{{latex_escape(summary.study)}}}"
        caption = (latex_escape(table.title) if table.title else title) + ". " + latex_escape(" ".join(sentences))
        lines += [
            r"\begin{table*}[t]",
            r"  \centering",
            r"  \footnotesize",
            r"  \setlength{\tabcolsep}{4pt}",
            rf"  \caption{{{caption}}}",
            rf"  \label{{{_label(summary.study, '' if index == 0 else f'-{index}')}}}",
            *_latex_tabular(table, summary.with_std),
            r"\end{table*}",
        ]
    return "\n".join(lines) + "\n"


# -- HTML -------------------------------------------------------------------------------------
_HTML_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 80em; }
table.ablation { border-collapse: collapse; font-variant-numeric: tabular-nums; margin-bottom: 2em; }
table.ablation caption { caption-side: bottom; text-align: left; padding-top: .6em; color: #444; }
h2 { font-size: 1.1em; }
table.ablation th, table.ablation td { padding: .25em .8em; }
table.ablation thead { border-top: 2px solid #000; border-bottom: 1px solid #000; }
table.ablation tbody { border-bottom: 1px solid #000; }
table.ablation tbody:last-of-type { border-bottom: 2px solid #000; }
td.r { text-align: right; } td.c, th.c { text-align: center; } td.l, th.l { text-align: left; }
td.significant { background: #eef6ee; }
td.muted { color: #999; }
p.warning { color: #a00; font-weight: 600; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; }
""".strip()


def _html_table(table: Table, sentences: list[str]) -> list[str]:
    out = [f"<h2>{html.escape(table.title)}</h2>"] if table.title else []
    out.append('<table class="ablation">')
    if sentences:
        out.append(f"<caption>{html.escape(' '.join(sentences))}</caption>")
    out.append("<thead>")
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
                classes = [align]
                if cell.kind == "effect" and cell.effect is not None:
                    classes.append("significant" if cell.significant else "muted")
                elif cell.significant:
                    classes.append("significant")
                cells.append(f'<td class="{" ".join(classes)}">' + (f"<strong>{text}</strong>" if cell.bold else text) + "</td>")
            out.append("<tr>" + "".join(cells) + "</tr>")
        out.append("</tbody>")
    return out + ["</table>"]


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


FIGURE_CAPTIONS = {
    "camera_effects.png": "Per-camera effects: paired difference to each row's contrast (diverging scale centred at 0; pale cells are not significant).",
    "camera_bars.png": "Per-camera query-mAP and gallery-mAP (the study's weakest camera outlined in red).",
    "camera_heatmap.png": "Per-camera mAP of every variant.",
    "learning_curves.png": "Learning curves (mean over seeds, band: ± one std).",
}


def figure_caption(name: str) -> str:
    """A figure's caption; ``camera_bars_<label>.png`` is an evaluation target's version."""
    if name in FIGURE_CAPTIONS:
        return FIGURE_CAPTIONS[name]
    for known, caption in FIGURE_CAPTIONS.items():
        stem = known.removesuffix(".png")
        if name.startswith(stem + "_"):
            return f"Evaluation target '{name.removeprefix(stem + '_').removesuffix('.png')}': " + caption[0].lower() + caption[1:]
    return Path(name).stem.replace("_", " ")


def to_html(summary: AblationSummary, figures: Iterable[Path] = ()) -> str:
    """One self-contained page: the tables with their footnotes and ``figures`` (PNG files)
    embedded as data URIs, so it opens offline and travels as a single file."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Ablation: {html.escape(summary.study)}</title>",
        f"<style>\n{_HTML_STYLE}\n</style></head><body>",
        f"<h1>Ablation study <code>{html.escape(summary.study)}</code></h1>",
    ]
    for warning in reproduction_warnings(summary) if summary.reference_numbers is not None else []:
        out.append(f'<p class="warning">Warning: {html.escape(warning)}.</p>')
    for table, sentences in _tables(summary):
        out += _html_table(table, sentences)
    for path in figures:
        caption = figure_caption(Path(path).name)
        out.append(
            f'<figure><img alt="{html.escape(caption)}" src="{data_uri(path)}"><figcaption>{html.escape(caption)}</figcaption></figure>'
        )
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# -- CSV --------------------------------------------------------------------------------------
def _fraction(value: float | None) -> str:
    return "" if value is None else repr(value)


def to_csv(summary: AblationSummary) -> str:
    """One row per variant: ``variant, vs`` (its contrast row; empty for a reference row),
    ``reference`` (1 for a reference row), ``seeds, failed, pruned``, ``params``/``gmacs``
    (the row's model size, where known), ``off:<part>`` (1 if the variant turns the part off;
    leave-one-out only), then per metric ``_mean``, ``_std``, ``_delta`` (mean paired difference
    to the contrast), ``_low``/``_high`` (its 95% interval), ``_p``, ``_p_holm`` (within its
    family; empty when untested), ``_pairs``, ``_significant``, ``_untested`` (why no test was
    made), unrounded and in the store's units (fractions); with reference numbers also
    ``_paper`` (the reported value, percent), ``_paper_effect`` (the paper's row minus its
    contrast, points) and ``_verdict``; with camera rows, the per-camera effects
    (:func:`_camera_csv_columns`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    fields = ("mean", "std", "delta", "low", "high", "p", "p_holm", "pairs", "significant", "untested")
    paper = summary.reference_numbers
    extra = ("paper", "paper_effect", "verdict") if paper is not None else ()
    verdicts = {r.variant: r.verdicts for r in reproduce(summary)}
    columns = [f"{m}_{what}" for m in summary.metrics for what in (*fields, *extra)]
    camera_columns = _camera_csv_columns(summary)
    writer.writerow(
        [
            "variant",
            "vs",
            "reference",
            "seeds",
            "failed",
            "pruned",
            "params",
            "gmacs",
            *(f"off:{p}" for p in summary.parts),
            *columns,
            *camera_columns,
        ]
    )
    for row in summary.rows:
        size = summary.model_sizes.get(row.variant)
        values: list[Any] = [row.variant, row.contrast or "", int(row.contrast is None), len(row.seeds), row.failed, row.pruned]
        values += ["" if size is None else size.params, "" if size is None or size.gmacs is None else repr(size.gmacs)]
        values += [int(part in row.off) for part in summary.parts]
        for metric in summary.metrics:
            stats = row.stats.get(metric)
            effect = stats.effect if stats else None
            if stats is None:
                values += [""] * len(fields)
            elif effect is None:
                values += [repr(stats.mean), repr(stats.std)] + [""] * (len(fields) - 2)
            else:
                values += [
                    repr(stats.mean),
                    repr(stats.std),
                    repr(effect.mean),
                    _fraction(effect.low),
                    _fraction(effect.high),
                    _fraction(effect.p),
                    _fraction(effect.p_adjusted),
                    effect.pairs,
                    int(effect.significant),
                    effect.untested or "",
                ]
            if paper is not None:
                reported = paper.rows.get(row.variant, {}).get(metric)
                judged = verdicts.get(row.variant, {}).get(metric)
                values += [
                    "" if reported is None else repr(reported),
                    "" if judged is None else repr(judged.paper),
                    "" if judged is None else judged.verdict,
                ]
        writer.writerow(values + _camera_csv_values(summary, row.variant, camera_columns))
    return buffer.getvalue()


_EFFECT_FIELDS = ("delta", "low", "high", "p_holm")


def _camera_csv_columns(summary: AblationSummary) -> list[str]:
    """Per-camera effects: ``c<N>_<metric>_delta/_low/_high/_p_holm``, then the weakest camera's
    advantage ``weakest_advantage_<metric>_...`` and the camera it is compared with (``_vs``)."""
    effects = summary.cameras
    if effects is None or not effects.effects:
        return []
    columns = [f"c{c}_{m}_{f}" for m in ("q_mAP", "g_mAP") for c in effects.cameras for f in _EFFECT_FIELDS]
    if effects.advantage:
        columns += [f"weakest_advantage_{m}_{f}" for m in ("q_mAP", "g_mAP") for f in (*_EFFECT_FIELDS, "vs")]
    return columns


def _effect_fields(effect) -> list[str]:
    if effect is None:
        return [""] * len(_EFFECT_FIELDS)
    return [repr(effect.mean), _fraction(effect.low), _fraction(effect.high), _fraction(effect.p_adjusted)]


def _camera_csv_values(summary: AblationSummary, variant: str, columns: list[str]) -> list[str]:
    if not columns:
        return []
    effects = summary.cameras
    out: list[str] = []
    for m in ("q_mAP", "g_mAP"):
        per_camera = effects.effects.get((variant, m), {})
        for camera in effects.cameras:
            out += _effect_fields(per_camera.get(camera))
    if effects.advantage:
        for m in ("q_mAP", "g_mAP"):
            advantage = effects.advantage.get((variant, m))
            out += _effect_fields(advantage.effect if advantage else None) + [f"c{advantage.other}" if advantage else ""]
    return out


def to_text(summary: AblationSummary, fmt: str) -> str:
    return FORMATS[fmt][1](summary)


#: Report formats by name: (file name, renderer). A plugin may register another.
FORMATS: Registry[tuple[str, Callable[[AblationSummary], str]]] = Registry("report format")
for _name, _format in {
    "md": ("ablation.md", to_markdown),
    "latex": ("ablation.tex", to_latex),
    "csv": ("ablation.csv", to_csv),
    "html": ("ablation.html", to_html),
}.items():
    FORMATS.add(_name, _format)

__all__ = ["FORMATS", "to_markdown", "to_latex", "to_html", "to_csv", "latex_escape", "effect_text"]


def seeds_needed_text(summary: AblationSummary, delta_points: float) -> str:
    """``summarize --seeds-needed DELTA``: per table metric, the seeds a variant needs to detect
    a difference of ``delta_points`` (percentage points) at 80% power, as a Markdown table."""
    from analysis.stats import seeds_needed

    lines = [
        f"**Seeds needed to detect a difference of {delta_points:g} points** (80% power, two-sided paired t-test, alpha 0.05)",
        "",
        "| metric | paired SD | df | SD, 80% upper bound | seeds needed |",
        "|---|---:|---:|---:|---:|",
    ]
    for metric, header in summary.headers():
        plan = seeds_needed(metric, summary.effects(metric), delta_points / 100)
        if plan.sd is None:
            lines.append(f"| {header} | - | 0 | - | unknown: {'; '.join(plan.notes)} |")
            continue
        seeds = str(plan.seeds) if plan.seeds is not None else "more than 10000"
        lines.append(f"| {header} | {pct(plan.sd)} | {plan.df} | {pct(plan.sd_upper)} | {seeds} |")
    lines += [
        "",
        "The SD of the paired differences is pooled over the variants; planning on its one-sided 80% upper "
        "confidence bound (chi-square) guards against the optimistic SD that a few seeds give.",
    ]
    return "\n".join(lines) + "\n"

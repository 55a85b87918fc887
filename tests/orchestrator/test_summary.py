import statistics

import pytest

import csv
import io
import json

from orchestrator.summary import TABLE_METRICS, summarize, to_csv, to_html, to_latex, to_markdown


def row(variant, seed, index, status="completed", **metrics):
    return {
        "study": "s",
        "variant": variant,
        "variant_index": index,
        "seed": seed,
        "config_hash": f"{variant}-{seed}",
        "status": status,
        "finished_at": "2026-01-01",
        **metrics,
    }


ROWS = [
    row("baseline", 0, 0, rank1=0.50, mAP=0.30, weakest_q_mAP=0.10, avg_q_mAP=0.30, weakest_g_mAP=0.05, avg_g_mAP=0.25),
    row("baseline", 1, 0, rank1=0.60, mAP=0.40, weakest_q_mAP=0.20, avg_q_mAP=0.40, weakest_g_mAP=0.15, avg_g_mAP=0.35),
    row("+x", 0, 1, rank1=0.70, mAP=0.45, weakest_q_mAP=0.30, avg_q_mAP=0.45, weakest_g_mAP=0.25, avg_g_mAP=0.40),
    row("+x", 1, 1, rank1=0.80, mAP=0.55, weakest_q_mAP=0.40, avg_q_mAP=0.55, weakest_g_mAP=0.35, avg_g_mAP=0.50),
    row("+x", 2, 1, status="failed", error="NaN"),
]


def test_means_stds_and_deltas_match_an_independent_computation():
    summary = summarize("s", ROWS)
    assert [r.variant for r in summary.rows] == ["baseline", "+x"]
    assert summary.baseline == "baseline"
    baseline, variant = summary.rows
    for column, _ in TABLE_METRICS:
        base_values = [r[column] for r in ROWS[:2]]
        var_values = [r[column] for r in ROWS[2:4]]
        assert baseline.stats[column].mean == pytest.approx(statistics.mean(base_values))
        assert variant.stats[column].std == pytest.approx(statistics.stdev(var_values))
        assert variant.stats[column].delta == pytest.approx(statistics.mean(var_values) - statistics.mean(base_values))
        assert baseline.stats[column].delta is None
    assert variant.failed == 1 and variant.seeds == [0, 1]


def test_markdown_table_layout():
    text = to_markdown(summarize("s", ROWS))
    lines = text.splitlines()
    assert lines[0] == "| variant | seeds | rank-1 | mAP | weakest q-mAP | weakest g-mAP | avg q-mAP | avg g-mAP |"
    assert "| **baseline** | 2 | 55.0 ± 7.1 | 35.0 ± 7.1 | 15.0 ± 7.1 | 10.0 ± 7.1 |" in text
    # The best value of each metric is bold.
    assert "| +x | 2 (1 failed) | **75.0 ± 7.1 (+20.0)** | **50.0 ± 7.1 (+15.0)** |" in text


def test_without_a_baseline_variant_the_first_row_is_the_reference():
    rows = [row("a", 0, 0, rank1=0.5, mAP=0.5), row("b", 0, 1, rank1=0.6, mAP=0.4)]
    summary = summarize("s", rows)
    assert summary.baseline == "a"
    assert summary.rows[1].stats["mAP"].delta == pytest.approx(-0.1)
    assert "± " not in to_markdown(summary)  # one seed each: no std shown


def test_best_values_are_bold_ties_included_but_not_when_every_row_ties():
    rows = [row("a", 0, 0, rank1=0.5, mAP=0.4), row("b", 0, 1, rank1=0.7, mAP=0.4), row("c", 0, 2, rank1=0.7004, mAP=0.4)]
    summary = summarize("s", rows)
    best = {r.variant: summary.is_best(r, "rank1") for r in summary.rows}
    assert best == {"a": False, "b": True, "c": True}  # 70.0 and 70.0 tie at the printed precision
    assert not any(summary.is_best(r, "mAP") for r in summary.rows)
    assert not summary.is_best(summary.rows[0], "avg_g_mAP")  # a metric nobody has


def loo_rows():
    meta = lambda off: json.dumps({"design": "leave_one_out", "parts": ["GeM", "soft_margin"], "off": off})  # noqa: E731
    common = dict(design="leave_one_out", weakest_q_mAP=0.1, avg_q_mAP=0.2, weakest_g_mAP=0.1, avg_g_mAP=0.2)
    return [
        row("full", 0, 0, rank1=0.90, mAP=0.80, variant_meta=meta([]), **common),
        row("w/o GeM", 0, 1, rank1=0.85, mAP=0.78, variant_meta=meta(["GeM"]), **common),
        row("w/o soft_margin", 0, 2, rank1=0.88, mAP=0.81, variant_meta=meta(["soft_margin"]), **common),
    ]


def test_leave_one_out_studies_use_the_check_mark_layout_of_robust_reid_table_2():
    summary = summarize("s", loo_rows())
    assert summary.checkmark_layout and summary.baseline == "full" and summary.parts == ["GeM", "soft_margin"]
    lines = to_markdown(summary).splitlines()
    # One column per variant, the full recipe last; a check mark where a part is on.
    assert lines[0] == "|  | w/o GeM | w/o soft_margin | full |"
    assert lines[2] == "| GeM |  | ✓ | ✓ |"
    assert lines[3] == "| soft_margin | ✓ |  | ✓ |"
    assert "| rank-1 | 85.0 (-5.0) | 88.0 (-2.0) | **90.0** |" in lines
    assert "| mAP | 78.0 (-2.0) | **81.0 (+1.0)** | 80.0 |" in lines

    latex = to_latex(summary)
    assert r"GeM &  & \checkmark & \checkmark \\" in latex
    assert r"soft\_margin & \checkmark &  & \checkmark \\" in latex
    assert "amssymb" in latex

    rows = list(csv.DictReader(io.StringIO(to_csv(summary))))
    assert [(r["variant"], r["off:GeM"], r["off:soft_margin"], r["reference"]) for r in rows] == [
        ("full", "0", "0", "1"), ("w/o GeM", "1", "0", "0"), ("w/o soft_margin", "0", "1", "0"),
    ]


def test_latex_is_booktabs_with_escaped_names_and_a_bold_best_value():
    rows = [row("baseline", 0, 0, rank1=0.5, mAP=0.3), row("a_b & 50%", 0, 1, rank1=0.6, mAP=0.2)]
    rows = [{**r, "study": "study_x"} for r in rows]
    latex = to_latex(summarize("study_x", rows))
    for command in (r"\toprule", r"\midrule", r"\bottomrule", r"\cmidrule(lr){5-6}", r"\begin{tabular}{lrrrrrrrr}"[:-2]):
        assert command in latex
    assert r"a\_b \& 50\%" in latex
    assert r"\textbf{60.0}" in latex and r"\textbf{30.0}" in latex
    assert r"{\scriptsize ($-$10.0)}" in latex
    assert r"\label{tab:ablation-study-x}" in latex


def test_html_is_a_standalone_page_with_escaped_names_and_strong_best_values():
    from html.parser import HTMLParser

    rows = [row("baseline", 0, 0, rank1=0.5), row("<b>x</b>", 0, 1, rank1=0.6)]
    page = to_html(summarize("s", rows))
    assert page.startswith("<!DOCTYPE html>") and "&lt;b&gt;x&lt;/b&gt;" in page
    assert "<strong>60.0 (+10.0)</strong>" in page

    class Cells(HTMLParser):
        rows: list = []

        def handle_starttag(self, tag, attrs):
            if tag == "tr":
                self.rows.append(0)
            elif tag in ("td", "th") and not dict(attrs).get("colspan"):
                self.rows[-1] += 1

    parser = Cells()
    parser.feed(page)
    assert parser.rows[1:] == [8, 8, 8]  # header + two variants, every row complete


def test_csv_holds_unrounded_values_in_store_units():
    rows = list(csv.DictReader(io.StringIO(to_csv(summarize("s", ROWS)))))
    assert [r["variant"] for r in rows] == ["baseline", "+x"]
    assert float(rows[1]["rank1_mean"]) == pytest.approx(0.75)
    assert float(rows[1]["rank1_std"]) == pytest.approx(statistics.stdev([0.7, 0.8]))
    assert float(rows[1]["rank1_delta"]) == pytest.approx(0.2)
    assert rows[0]["rank1_delta"] == "" and rows[1]["failed"] == "1"

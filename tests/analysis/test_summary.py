"""The ablation table: numbers against independent computations, paired effects against scipy,
the one weakest-camera definition, and every format (intervals, marks, footnote, references)."""

import csv
import io
import json
import statistics

import numpy as np
import pytest
from scipy import stats as scipy_stats

from analysis.formats import to_csv, to_html, to_latex, to_markdown
from analysis.settings import ReferenceNumbers
from analysis.summary import summarize
from analysis.tables import camera_table


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


def cams(variant, seed, q, g):
    """Camera rows of one trial: ``q``/``g`` list the q-mAP/g-mAP of cameras 1, 2, 3."""
    return [
        {"config_hash": f"{variant}-{seed}", "camera": cam, "metric": metric, "value": value}
        for metric, values in (("q_mAP", q), ("g_mAP", g))
        for cam, value in enumerate(values, start=1)
    ]


ROWS = [
    row("baseline", 0, 0, rank1=0.50, mAP=0.30, avg_q_mAP=0.30, avg_g_mAP=0.25),
    row("baseline", 1, 0, rank1=0.60, mAP=0.40, avg_q_mAP=0.40, avg_g_mAP=0.35),
    row("baseline", 2, 0, rank1=0.55, mAP=0.33, avg_q_mAP=0.36, avg_g_mAP=0.31),
    row("+x", 0, 1, rank1=0.70, mAP=0.45, avg_q_mAP=0.45, avg_g_mAP=0.40),
    row("+x", 1, 1, rank1=0.80, mAP=0.55, avg_q_mAP=0.55, avg_g_mAP=0.50),
    row("+x", 2, 1, rank1=0.74, mAP=0.50, avg_q_mAP=0.47, avg_g_mAP=0.44),
    row("+y", 0, 2, rank1=0.52, mAP=0.31, avg_q_mAP=0.30, avg_g_mAP=0.27),
    row("+y", 1, 2, rank1=0.58, mAP=0.41, avg_q_mAP=0.41, avg_g_mAP=0.34),
    row("+y", 2, 2, status="failed", error="NaN"),
]
# Camera 3 is the baseline's weakest on average; each trial's own weakest may be another one.
CAMERAS = [
    *cams("baseline", 0, [0.40, 0.30, 0.10], [0.35, 0.25, 0.05]),
    *cams("baseline", 1, [0.50, 0.15, 0.20], [0.45, 0.10, 0.15]),
    *cams("baseline", 2, [0.45, 0.35, 0.12], [0.40, 0.30, 0.08]),
    *cams("+x", 0, [0.50, 0.40, 0.30], [0.45, 0.35, 0.25]),
    *cams("+x", 1, [0.60, 0.45, 0.40], [0.55, 0.30, 0.35]),
    *cams("+x", 2, [0.55, 0.42, 0.33], [0.50, 0.36, 0.27]),
    *cams("+y", 0, [0.41, 0.30, 0.12], [0.36, 0.24, 0.06]),
    *cams("+y", 1, [0.49, 0.18, 0.22], [0.44, 0.11, 0.18]),
]


def values(variant, metric, seeds=(0, 1, 2)):
    found = {r["seed"]: r[metric] for r in ROWS if r["variant"] == variant and metric in r}
    return [found[s] for s in seeds if s in found]


def camera_value(variant, seed, camera, metric):
    return next(c["value"] for c in CAMERAS if c["config_hash"] == f"{variant}-{seed}" and c["camera"] == camera and c["metric"] == metric)


def test_means_stds_and_paired_effects_match_scipy_with_holm_across_the_variants():
    summary = summarize("s", ROWS, CAMERAS)
    assert [r.variant for r in summary.rows] == ["baseline", "+x", "+y"] and summary.baseline == "baseline"
    base, x, y = summary.rows
    assert y.failed == 1 and y.seeds == [0, 1]
    for metric in ("rank1", "mAP", "avg_q_mAP"):
        assert x.stats[metric].mean == pytest.approx(statistics.mean(values("+x", metric)))
        assert x.stats[metric].std == pytest.approx(statistics.stdev(values("+x", metric)))
        assert base.stats[metric].effect is None
        tx = scipy_stats.ttest_rel(values("+x", metric), values("baseline", metric))
        ty = scipy_stats.ttest_rel(values("+y", metric, (0, 1)), values("baseline", metric, (0, 1)))
        # Holm over the two variants, written out: the smaller p doubled, the larger kept (but
        # never below the smaller's adjusted value).
        small, large = sorted([tx.pvalue, ty.pvalue])
        adjusted = {small: min(1, 2 * small), large: max(min(1, 2 * small), large)}
        ex, ey = x.stats[metric].effect, y.stats[metric].effect
        assert ex.p == pytest.approx(tx.pvalue) and ex.p_adjusted == pytest.approx(adjusted[tx.pvalue])
        assert (ex.low, ex.high) == pytest.approx(tuple(tx.confidence_interval()))
        assert ey.pairs == 2 and ey.unpaired == 1 and ey.p_adjusted == pytest.approx(adjusted[ty.pvalue])


def test_the_weakest_camera_is_the_reference_rows_lowest_mean_q_map_for_every_row_and_both_metrics():
    summary = summarize("s", ROWS, CAMERAS)
    assert summary.weakest_camera == 3
    x = summary.rows[1]
    for metric, camera_metric in (("weakest_q_mAP", "q_mAP"), ("weakest_g_mAP", "g_mAP")):
        expected = [camera_value("+x", s, 3, camera_metric) for s in (0, 1, 2)]
        assert x.stats[metric].values == pytest.approx(dict(zip((0, 1, 2), expected)))
    # Baseline seed 1's own weakest camera is c2 (0.15), but the table reads c3 (0.20) there too.
    assert summary.rows[0].stats["weakest_q_mAP"].values[1] == pytest.approx(0.20)
    assert "weakest q-mAP (c3)" in to_markdown(summary).splitlines()[0]


def test_markdown_shows_intervals_marks_and_a_footnote_of_test_seeds_and_correction():
    summary = summarize("s", ROWS, CAMERAS)
    text = to_markdown(summary)
    lines = text.splitlines()
    assert lines[0] == "| variant | seeds | rank-1 | mAP | weakest q-mAP (c3) | weakest g-mAP (c3) | avg q-mAP | avg g-mAP |"
    effect = summary.rows[1].stats["rank1"].effect
    mark = "*" if effect.significant else ""
    cell = f"{100 * summary.rows[1].stats['rank1'].mean:.1f} ± {100 * summary.rows[1].stats['rank1'].std:.1f} ({100 * effect.mean:+.1f} [{100 * effect.low:+.1f}, {100 * effect.high:+.1f}]{mark})"
    assert f"| +x | 3 | **{cell}** |" in text
    assert lines[2].startswith("| **baseline** | 3 | ")
    assert "| +y | 2 (1 failed) |" in text
    footnote = text.split("\n\n")[1]
    for fragment in ("95% interval (Student t on the paired differences)", "Holm's correction across the 2 variant(s)",
                     "Seeds: 0, 1, 2.", "+y: seed 2", "Weakest camera: c3"):
        assert fragment in footnote, fragment


def test_significant_differences_are_marked_and_others_are_not():
    rows = [row("baseline", s, 0, mAP=0.30 + 0.01 * s) for s in range(4)]
    rows += [row("+big", s, 1, mAP=0.40 + 0.01 * s + 0.001 * (-1) ** s) for s in range(4)]
    rows += [row("+noise", s, 2, mAP=0.30 + 0.01 * s + 0.02 * (-1) ** s) for s in range(4)]
    summary = summarize("s", rows, metrics=("mAP",))
    big, noise = summary.rows[1].stats["mAP"].effect, summary.rows[2].stats["mAP"].effect
    assert big.significant and not noise.significant
    text = to_markdown(summary)
    assert f"({100 * big.mean:+.1f} [{100 * big.low:+.1f}, {100 * big.high:+.1f}]*)" in text
    assert f"({100 * noise.mean:+.1f} [{100 * noise.low:+.1f}, {100 * noise.high:+.1f}])" in text


def test_one_seed_says_no_interval_is_possible():
    rows = [row("a", 0, 0, rank1=0.5, mAP=0.5), row("b", 0, 1, rank1=0.6, mAP=0.4)]
    summary = summarize("s", rows, metrics=("rank1", "mAP"))
    assert summary.baseline == "a" and summary.rows[1].stats["mAP"].delta == pytest.approx(-0.1)
    text = to_markdown(summary)
    assert "± " not in text and "[" not in text and "| b | 1 | **60.0 (+10.0)** | 40.0 (-10.0) |" in text
    assert "with one seed no interval is possible" in text


def test_the_spec_chooses_the_metric_columns():
    rows = [row("baseline", s, 0, rank1=0.5, rank5=0.7 + 0.01 * s, mAP=0.3) for s in range(2)]
    rows += [row("+x", s, 1, rank1=0.6, rank5=0.8 + 0.02 * s, mAP=0.35) for s in range(2)]
    summary = summarize("s", rows, metrics=("rank5", "mAP"))
    assert to_markdown(summary).splitlines()[0] == "| variant | seeds | rank-5 | mAP |"
    header = next(csv.reader(io.StringIO(to_csv(summary))))
    assert "rank5_mean" in header and "rank1_mean" not in header


def test_camera_effects_and_the_weakest_camera_advantage_equal_their_paired_computation():
    summary = summarize("s", ROWS, CAMERAS)
    effects = summary.cameras
    assert effects.cameras == [1, 2, 3] and effects.variants == ["+x", "+y"] and effects.weakest == 3
    gains = {c: [camera_value("+x", s, c, "q_mAP") - camera_value("baseline", s, c, "q_mAP") for s in (0, 1, 2)] for c in (1, 2, 3)}
    for camera in (1, 2, 3):
        assert effects.effects[("+x", "q_mAP")][camera].mean == pytest.approx(np.mean(gains[camera]))
    # The other camera that gained most on average, then the per-seed gap, paired t.
    other = max((1, 2), key=lambda c: np.mean(gains[c]))
    advantage = effects.advantage[("+x", "q_mAP")]
    gap = np.subtract(gains[3], gains[other])
    expected = scipy_stats.ttest_1samp(gap, 0.0)
    assert advantage.other == other and advantage.effect.mean == pytest.approx(gap.mean())
    assert (advantage.effect.low, advantage.effect.high) == pytest.approx(tuple(expected.confidence_interval()))
    table = camera_table(summary)
    assert table.header == ["variant", "metric", "c1", "c2", "c3 (weakest)", "c3 gain − best other"]
    assert [r[0].text + " " + r[1].text for r in table.blocks[0]] == ["+x q-mAP", "+x g-mAP", "+y q-mAP", "+y g-mAP"]
    assert "Per-camera effects" in to_markdown(summary)


def loo_rows():
    meta = lambda off: json.dumps({"design": "leave_one_out", "parts": ["GeM", "soft_margin"], "off": off})  # noqa: E731
    return [
        row("full", 0, 0, rank1=0.90, mAP=0.80, design="leave_one_out", variant_meta=meta([])),
        row("w/o GeM", 0, 1, rank1=0.85, mAP=0.78, design="leave_one_out", variant_meta=meta(["GeM"])),
        row("w/o soft_margin", 0, 2, rank1=0.88, mAP=0.81, design="leave_one_out", variant_meta=meta(["soft_margin"])),
    ]


def test_leave_one_out_studies_use_the_check_mark_layout_of_robust_reid_table_2():
    summary = summarize("s", loo_rows(), metrics=("rank1", "mAP"))
    assert summary.checkmark_layout and summary.baseline == "full" and summary.parts == ["GeM", "soft_margin"]
    lines = to_markdown(summary).splitlines()
    assert lines[0] == "|  | w/o GeM | w/o soft_margin | full |"
    assert lines[2] == "| GeM |  | ✓ | ✓ |"
    assert lines[3] == "| soft_margin | ✓ |  | ✓ |"
    assert "| rank-1 | 85.0 (-5.0) | 88.0 (-2.0) | **90.0** |" in lines
    latex = to_latex(summary)
    assert r"GeM &  & \checkmark & \checkmark \\" in latex and "amssymb" in latex
    rows = list(csv.DictReader(io.StringIO(to_csv(summary))))
    assert [(r["variant"], r["off:GeM"], r["reference"]) for r in rows] == [("full", "0", "1"), ("w/o GeM", "1", "0"), ("w/o soft_margin", "0", "0")]


def test_a_leave_one_out_table_compares_with_the_variant_that_switches_nothing_off():
    # Robust-ReID Table 2: HA-CNN and columns a-i first, the full recipe ("Robust-ReID") last.
    renamed = [{**r, "variant": {"full": "Robust-ReID"}.get(r["variant"], r["variant"]), "variant_index": (r["variant_index"] - 1) % 3} for r in loo_rows()]
    summary = summarize("s", renamed, metrics=("rank1", "mAP"))
    assert summary.baseline == "Robust-ReID"
    assert "| rank-1 | 85.0 (-5.0) | 88.0 (-2.0) | **90.0** |" in to_markdown(summary).splitlines()


def test_latex_is_booktabs_with_escaped_names_intervals_and_marks():
    rows = [{**r, "study": "study_x"} for r in ROWS]
    rows.append({**row("a_b & 50%", 0, 3, rank1=0.1), "study": "study_x"})
    summary = summarize("study_x", rows, CAMERAS)
    latex = to_latex(summary)
    for command in (r"\toprule", r"\midrule", r"\bottomrule", r"\cmidrule(lr){5-6}", r"\label{tab:ablation-study-x}"):
        assert command in latex
    assert r"a\_b \& 50\%" in latex
    effect = summary.rows[1].stats["rank1"].effect
    interval = f"[{100 * effect.low:+.1f}, {100 * effect.high:+.1f}]".replace("+", "$+$").replace("-", "$-$")
    assert interval in latex
    assert r"Holm's correction" in latex


def test_html_is_a_standalone_page_with_escaped_names_and_muted_non_significant_camera_cells():
    from html.parser import HTMLParser

    rows = [*ROWS, row("<b>x</b>", 0, 3, rank1=0.9)]
    page = to_html(summarize("s", rows, CAMERAS))
    assert page.startswith("<!DOCTYPE html>") and "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    assert 'class="r muted"' in page  # a per-camera difference that is not significant

    class Cells(HTMLParser):
        rows: list = []

        def handle_starttag(self, tag, attrs):
            if tag == "tr":
                self.rows.append(0)
            elif tag in ("td", "th") and not dict(attrs).get("colspan"):
                self.rows[-1] += 1

    parser = Cells()
    parser.feed(page)
    assert parser.rows[1:6] == [8, 8, 8, 8, 8]  # the header and four variants, every row complete


def test_csv_holds_unrounded_values_intervals_and_corrected_p_values():
    summary = summarize("s", ROWS, CAMERAS)
    rows = list(csv.DictReader(io.StringIO(to_csv(summary))))
    assert [r["variant"] for r in rows] == ["baseline", "+x", "+y"]
    effect = summary.rows[1].stats["rank1"].effect
    assert float(rows[1]["rank1_mean"]) == pytest.approx(statistics.mean(values("+x", "rank1")))
    assert float(rows[1]["rank1_low"]) == effect.low and float(rows[1]["rank1_p_holm"]) == effect.p_adjusted
    assert rows[2]["rank1_pairs"] == "2" and rows[0]["rank1_delta"] == ""
    camera = summary.cameras.effects[("+x", "q_mAP")][2]
    assert float(rows[1]["c2_q_mAP_delta"]) == camera.mean and float(rows[1]["c2_q_mAP_high"]) == camera.high
    advantage = summary.cameras.advantage[("+x", "g_mAP")]
    assert float(rows[1]["weakest_advantage_g_mAP_delta"]) == advantage.effect.mean
    assert rows[1]["weakest_advantage_g_mAP_vs"] == f"c{advantage.other}" and rows[0]["c2_q_mAP_delta"] == ""


def test_reference_numbers_sit_beside_the_measured_ones_in_every_format_with_a_dataset_warning():
    summary = summarize("s", ROWS, CAMERAS)
    summary.dataset = "synthetic"
    summary.reference_numbers = ReferenceNumbers(
        source="APRA, Table 2", dataset="market1501", protocol="single query", rows={"baseline": {"mAP": 35.0, "rank1": 60.0}, "+x": {"mAP": 52.5}}
    )
    measured = 100 * summary.rows[1].stats["mAP"].mean
    markdown = to_markdown(summary)
    assert "Reported in APRA, Table 2 on market1501 (single query)" in markdown
    rank1 = 100 * summary.rows[1].stats["rank1"].mean
    # The paper's columns in the table's order; a metric the paper has no number for shows ours alone.
    assert f"| +x | {rank1:.1f} / - | {measured:.1f} / 52.5 ({measured - 52.5:+.1f}) |" in markdown
    assert "Warning: the reference numbers of APRA, Table 2 were reported on market1501, this study ran on synthetic" in markdown
    assert "52.5" in to_latex(summary) and "52.5" in to_html(summary) and "Warning" in to_html(summary)
    rows = {r["variant"]: r for r in csv.DictReader(io.StringIO(to_csv(summary)))}
    assert float(rows["+x"]["mAP_paper"]) == 52.5 and float(rows["+x"]["mAP_vs_paper"]) == pytest.approx(measured - 52.5)
    summary.dataset = "market1501"
    assert summary.reference_warning() is None and "Warning" not in to_markdown(summary)


def test_a_relaunch_with_a_changed_recipe_counts_each_variant_seed_once_its_latest_trial():
    # The old recipe's trials stay in the store under other hashes; only the newest of each seed counts.
    old = [{**row(v, s, i, rank1=0.1, mAP=0.1), "config_hash": f"old-{v}-{s}"} for i, v in enumerate(("base", "+x")) for s in (0, 1)]
    new = [{**row(v, s, i, rank1=0.5 + 0.1 * i + 0.01 * s, mAP=0.4 + 0.1 * i), "finished_at": "2026-02-01"} for i, v in enumerate(("base", "+x")) for s in (0, 1)]
    summary = summarize("s", old + new, metrics=("rank1", "mAP"))
    rows = {r.variant: r for r in summary.rows}
    assert rows["base"].seeds == [0, 1] and rows["+x"].seeds == [0, 1]
    assert rows["+x"].stats["mAP"].mean == pytest.approx(0.5)
    assert rows["+x"].stats["mAP"].delta == pytest.approx(0.1)

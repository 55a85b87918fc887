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
from analysis.reproduction import recipe_values, recipe_warnings, reproduce
from analysis.settings import PaperRecipe, ReferenceNumbers
from analysis.summary import summarize
from analysis.tables import camera_table, notes
from statsmodels.stats.multitest import multipletests


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


def test_means_stds_and_paired_effects_match_scipy_with_holm_within_each_family():
    summary = summarize("s", ROWS, CAMERAS)
    assert [r.variant for r in summary.rows] == ["baseline", "+x", "+y"] and summary.baseline == "baseline"
    base, x, y = summary.rows
    assert (base.contrast, x.contrast, y.contrast) == (None, "baseline", "baseline")
    assert y.failed == 1 and y.seeds == [0, 1]
    # +y's mAP gains are 0.01 at both shared seeds: no spread, no interval, no test.
    assert y.stats["mAP"].effect.untested == "no spread" and not y.stats["mAP"].effect.has_interval
    for metric in ("rank1", "avg_q_mAP", "avg_g_mAP"):
        assert x.stats[metric].mean == pytest.approx(statistics.mean(values("+x", metric)))
        assert x.stats[metric].std == pytest.approx(statistics.stdev(values("+x", metric)))
        assert base.stats[metric].effect is None
        tx = scipy_stats.ttest_rel(values("+x", metric), values("baseline", metric))
        ty = scipy_stats.ttest_rel(values("+y", metric, (0, 1)), values("baseline", metric, (0, 1)))
        ex, ey = x.stats[metric].effect, y.stats[metric].effect
        assert ex.p == pytest.approx(tx.pvalue) and (ex.low, ex.high) == pytest.approx(tuple(tx.confidence_interval()))
        # +y shares two seeds: its interval and p are shown, but it is not tested nor in a family.
        assert ey.pairs == 2 and ey.unpaired == 1 and ey.p == pytest.approx(ty.pvalue)
        assert ey.untested == "2 paired seeds" and ey.p_adjusted is None and not ey.significant
    # The study metric (mAP) is the confirmatory family: one test, its p unchanged.
    assert x.stats["mAP"].effect.p_adjusted == pytest.approx(x.stats["mAP"].effect.p)
    # The other five columns are one secondary family, corrected together (statsmodels' Holm).
    secondary = ["rank1", "weakest_q_mAP", "weakest_g_mAP", "avg_q_mAP", "avg_g_mAP"]
    raw = [x.stats[m].effect.p for m in secondary]
    expected = multipletests(raw, method="holm")[1]
    assert [x.stats[m].effect.p_adjusted for m in secondary] == pytest.approx(list(expected))


def test_a_raw_p_below_005_that_holm_lifts_above_it_shows_no_star():
    base = [0.30, 0.32, 0.31, 0.33]
    gains = {"+a": [0.010, 0.020, 0.005, 0.015], "+b": [0.012, 0.004, 0.018, 0.010]}
    rows = [row("baseline", s, 0, mAP=v) for s, v in enumerate(base)]
    rows += [row(name, s, i + 1, mAP=v + d) for i, (name, diffs) in enumerate(gains.items()) for s, (v, d) in enumerate(zip(base, diffs))]
    summary = summarize("s", rows, metrics=("mAP",))
    a, b = summary.rows[1].stats["mAP"].effect, summary.rows[2].stats["mAP"].effect
    # Raw p-values (scipy's paired t on these literals): 0.0305 and 0.0318, both below 0.05 ...
    assert a.p == pytest.approx(0.030466, abs=1e-6) and b.p == pytest.approx(0.031777, abs=1e-6)
    # ... Holm over the two: 2 x 0.0305 = 0.0609 for both, so neither earns a star.
    assert a.p_adjusted == pytest.approx(0.060933, abs=1e-6) and b.p_adjusted == pytest.approx(0.060933, abs=1e-6)
    assert not a.significant and not b.significant
    assert "*" not in to_markdown(summary).split("\n\n")[0]
    assert "**" not in to_markdown(summary).split("\n\n")[0]  # nor bold: no value is significantly best


def test_the_weakest_camera_is_chosen_on_every_row_and_seed_pooled():
    # q-mAP of cameras 1-3 per seed. The baseline alone has camera 2 lowest (0.303 < 0.307), but
    # pooled over both rows and all seeds camera 3 is (0.333 < 0.335): the choice does not rest
    # on the reference row's own noise at the seeds the table then tests.
    q_base = {0: [0.50, 0.20, 0.30], 1: [0.50, 0.35, 0.30], 2: [0.50, 0.36, 0.32]}
    q_var = {0: [0.55, 0.25, 0.40], 1: [0.52, 0.45, 0.33], 2: [0.51, 0.40, 0.35]}
    rows = [row(v, s, i, mAP=0.3) for i, v in enumerate(("baseline", "+m")) for s in range(3)]
    cameras = [c for s in range(3) for c in cams("baseline", s, q_base[s], q_base[s])]
    cameras += [c for s in range(3) for c in cams("+m", s, q_var[s], q_var[s])]
    summary = summarize("s", rows, cameras, metrics=("weakest_q_mAP",))
    assert summary.weakest_camera == 3 and summary.weakest.rule == "pooled"
    assert summary.rows[0].stats["weakest_q_mAP"].values == pytest.approx({0: 0.30, 1: 0.30, 2: 0.32})
    assert summary.rows[1].stats["weakest_q_mAP"].values == pytest.approx({0: 0.40, 1: 0.33, 2: 0.35})
    assert summary.headers() == [("weakest_q_mAP", "weakest q-mAP (c3)")]
    assert "over every row and seed of the table" in " ".join(notes(summary))
    # The reference row alone (the biased rule the simulation measures) would read camera 2.
    assert summarize("s", rows, cameras, metrics=("weakest_q_mAP",), weakest_rule="reference").weakest_camera == 2
    # A declared camera is read at every seed; nothing is chosen.
    declared = summarize("s", rows, cameras, metrics=("weakest_q_mAP",), weakest_camera=1)
    assert declared.rows[1].stats["weakest_q_mAP"].values == pytest.approx({0: 0.55, 1: 0.52, 2: 0.51})
    assert "declared in the spec" in " ".join(notes(declared))


def test_the_old_fixture_keeps_camera_3_for_every_row_and_both_metrics():
    summary = summarize("s", ROWS, CAMERAS)
    assert summary.weakest_camera == 3
    x = summary.rows[1]
    for metric, camera_metric in (("weakest_q_mAP", "q_mAP"), ("weakest_g_mAP", "g_mAP")):
        expected = [camera_value("+x", s, 3, camera_metric) for s in (0, 1, 2)]
        assert x.stats[metric].values == pytest.approx(dict(zip((0, 1, 2), expected)))
    # Baseline seed 1's own lowest camera is c2 (0.15), but the table reads c3 (0.20) there too.
    assert summary.rows[0].stats["weakest_q_mAP"].values[1] == pytest.approx(0.20)
    assert "weakest q-mAP (c3)" in to_markdown(summary).splitlines()[0]


def test_markdown_shows_intervals_marks_and_a_footnote_of_test_seeds_families_and_what_went_untested():
    summary = summarize("s", ROWS, CAMERAS)
    text = to_markdown(summary)
    lines = text.splitlines()
    assert lines[0] == "| variant | seeds | rank-1 | mAP | weakest q-mAP (c3) | weakest g-mAP (c3) | avg q-mAP | avg g-mAP |"
    # +x's rank-1 cell from scipy: mean, std, the paired interval, and a star decided by
    # statsmodels' Holm over the secondary family (+x's five non-mAP columns; +y is untested).
    secondary = ["rank1", "weakest_q_mAP", "weakest_g_mAP", "avg_q_mAP", "avg_g_mAP"]
    pairs = {m: (values("+x", m), values("baseline", m)) for m in ("rank1", "avg_q_mAP", "avg_g_mAP")}
    pairs["weakest_q_mAP"] = (
        [camera_value("+x", s, 3, "q_mAP") for s in (0, 1, 2)],
        [camera_value("baseline", s, 3, "q_mAP") for s in (0, 1, 2)],
    )
    pairs["weakest_g_mAP"] = (
        [camera_value("+x", s, 3, "g_mAP") for s in (0, 1, 2)],
        [camera_value("baseline", s, 3, "g_mAP") for s in (0, 1, 2)],
    )
    # (camera 3 is the study's weakest: see the test above)
    tests = {m: scipy_stats.ttest_rel(*pairs[m]) for m in secondary}
    starred = dict(zip(secondary, multipletests([tests[m].pvalue for m in secondary], method="holm")[0]))
    rank1 = values("+x", "rank1")
    low, high = tests["rank1"].confidence_interval()
    difference = np.mean(np.subtract(*pairs["rank1"]))
    cell = (
        f"{100 * np.mean(rank1):.1f} ± {100 * np.std(rank1, ddof=1):.1f} "
        f"({100 * difference:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]{'*' if starred['rank1'] else ''})"
    )
    assert f"| +x | 3 | {cell} |" in text or f"| +x | 3 | **{cell}** |" in text
    assert lines[2].startswith("| baseline | 3 | ")
    assert "| +y | 2 (1 failed) |" in text
    footnote = text.split("\n\n")[1]
    for fragment in (
        "95% interval (Student t on the paired differences)",
        "mAP (the study metric, confirmatory: 1 test)",
        "rank-1, weakest q-mAP, weakest g-mAP, avg q-mAP, avg g-mAP (the other columns together, secondary: 5 tests)",
        "tested only from 3 paired seeds up",
        "Not tested, so never starred: +y (2 paired seeds, no spread).",
        "Seeds: 0, 1, 2.",
        "+y: seed 2",
        "Weakest camera: c3, the camera with the lowest q-mAP over every row and seed of the table",
    ):
        assert fragment in footnote, fragment


def test_significant_differences_are_marked_and_others_are_not():
    rows = [row("baseline", s, 0, mAP=0.30 + 0.01 * s) for s in range(4)]
    rows += [row("+big", s, 1, mAP=0.40 + 0.01 * s + 0.001 * (-1) ** s) for s in range(4)]
    rows += [row("+noise", s, 2, mAP=0.30 + 0.01 * s + 0.02 * (-1) ** s) for s in range(4)]
    summary = summarize("s", rows, metrics=("mAP",))
    big, noise = summary.rows[1].stats["mAP"].effect, summary.rows[2].stats["mAP"].effect
    # Independently: scipy's paired t for both, Holm over the two (the study metric's family).
    mAP = {v: [r["mAP"] for r in rows if r["variant"] == v] for v in ("baseline", "+big", "+noise")}
    raw = [scipy_stats.ttest_rel(mAP[v], mAP["baseline"]).pvalue for v in ("+big", "+noise")]
    assert list(multipletests(raw, method="holm")[0]) == [True, False]
    assert big.significant and not noise.significant
    text = to_markdown(summary)
    assert f"({100 * big.mean:+.1f} [{100 * big.low:+.1f}, {100 * big.high:+.1f}]*)" in text
    assert f"({100 * noise.mean:+.1f} [{100 * noise.low:+.1f}, {100 * noise.high:+.1f}])" in text


def test_one_seed_says_no_interval_is_possible():
    rows = [row("a", 0, 0, rank1=0.5, mAP=0.5), row("b", 0, 1, rank1=0.6, mAP=0.4)]
    summary = summarize("s", rows, metrics=("rank1", "mAP"))
    assert summary.baseline == "a" and summary.rows[1].stats["mAP"].delta == pytest.approx(-0.1)
    text = to_markdown(summary)
    # No bold either: a single seed tests nothing, so nothing is significantly best.
    assert "± " not in text and "[" not in text and "| b | 1 | 60.0 (+10.0) | 40.0 (-10.0) |" in text
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
    assert effects.cameras == [1, 2, 3] and effects.variants == ["+x", "+y"] and effects.weakest_camera == 3
    gains = {c: [camera_value("+x", s, c, "q_mAP") - camera_value("baseline", s, c, "q_mAP") for s in (0, 1, 2)] for c in (1, 2, 3)}
    for camera in (1, 2, 3):
        assert effects.effects[("+x", "q_mAP")][camera].mean == pytest.approx(np.mean(gains[camera]))
    # One family per variant: its 3 cameras x 2 metrics, Holm-corrected together (statsmodels).
    keys = [(m, c) for m in ("q_mAP", "g_mAP") for c in (1, 2, 3)]
    gaps = {(m, c): [camera_value("+x", s, c, m) - camera_value("baseline", s, c, m) for s in (0, 1, 2)] for m, c in keys}
    # Camera 1 gains exactly 0.10 at every seed in both metrics: no spread, so no test.
    tested = [key for key in keys if np.std(gaps[key]) > 1e-9]
    assert tested == [("q_mAP", 2), ("q_mAP", 3), ("g_mAP", 2), ("g_mAP", 3)]
    raw = [scipy_stats.ttest_1samp(gaps[key], 0.0).pvalue for key in tested]
    assert [effects.effects[("+x", m)][c].p_adjusted for m, c in tested] == pytest.approx(list(multipletests(raw, method="holm")[1]))
    assert effects.effects[("+x", "q_mAP")][1].untested == "no spread"
    # The other camera that gained most on average, then the per-seed gap, paired t.
    other = max((1, 2), key=lambda c: np.mean(gains[c]))
    advantage = effects.advantage[("+x", "q_mAP")]
    gap = np.subtract(gains[3], gains[other])
    expected = scipy_stats.ttest_1samp(gap, 0.0)
    assert advantage.other == other and advantage.effect.mean == pytest.approx(gap.mean())
    assert (advantage.effect.low, advantage.effect.high) == pytest.approx(tuple(expected.confidence_interval()))
    table = camera_table(summary)
    assert table.header == ["variant", "vs", "metric", "c1", "c2", "c3 (weakest)", "c3 gain − best other"]
    assert [" ".join(c.text for c in r[:3]) for r in table.blocks[0]] == [
        "+x baseline q-mAP",
        "+x baseline g-mAP",
        "+y baseline q-mAP",
        "+y baseline g-mAP",
    ]
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
    assert "| rank-1 | 85.0 (-5.0) | 88.0 (-2.0) | 90.0 |" in lines
    latex = to_latex(summary)
    assert r"GeM &  & \checkmark & \checkmark \\" in latex and "amssymb" in latex
    rows = list(csv.DictReader(io.StringIO(to_csv(summary))))
    assert [(r["variant"], r["off:GeM"], r["reference"]) for r in rows] == [
        ("full", "0", "1"),
        ("w/o GeM", "1", "0"),
        ("w/o soft_margin", "0", "0"),
    ]


def test_a_leave_one_out_table_compares_with_the_variant_that_switches_nothing_off():
    # Robust-ReID Table 2: HA-CNN and columns a-i first, the full recipe ("Robust-ReID") last.
    renamed = [
        {**r, "variant": {"full": "Robust-ReID"}.get(r["variant"], r["variant"]), "variant_index": (r["variant_index"] - 1) % 3}
        for r in loo_rows()
    ]
    summary = summarize("s", renamed, metrics=("rank1", "mAP"))
    assert summary.baseline == "Robust-ReID"
    assert "| rank-1 | 85.0 (-5.0) | 88.0 (-2.0) | 90.0 |" in to_markdown(summary).splitlines()


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


def test_a_reproduction_is_judged_on_effects_with_a_verdict_per_row_and_metric():
    summary = summarize("s", ROWS, CAMERAS)
    summary.dataset = "synthetic"
    summary.reference_numbers = ReferenceNumbers(
        source="APRA, Table 2",
        dataset="market1501",
        protocol="single query",
        rows={
            "baseline": {"mAP": 35.0, "rank1": 60.0},
            "+x": {"mAP": 52.5, "rank1": 75.0},
            "+y": {"mAP": 36.0, "rank1": 58.0},
            "+z": {"mAP": 1.0},
        },
    )
    x = summary.rows[1]
    # Our +x effects (points) with scipy's paired interval: mAP [12.8, 18.5] holds the paper's
    # 52.5 - 35.0 = +17.5; rank-1 [17.9, 21.4] lies wholly above the paper's 75.0 - 60.0 = +15.0.
    interval = scipy_stats.ttest_rel(values("+x", "mAP"), values("baseline", "mAP")).confidence_interval()
    assert 100 * interval.low < 17.5 < 100 * interval.high
    assert 100 * scipy_stats.ttest_rel(values("+x", "rank1"), values("baseline", "rank1")).confidence_interval().low > 15.0
    rows = {r.variant: r for r in reproduce(summary)}
    assert rows["+x"].verdicts["mAP"].verdict == "consistent" and rows["+x"].verdicts["mAP"].paper == pytest.approx(17.5)
    assert rows["+x"].verdicts["rank1"].verdict == "larger"
    # +y's mAP gains have no spread (no interval): too few seeds to tell; its rank-1 interval
    # (2 pairs) is wide and holds the paper's -2.0 and 0.
    assert rows["+y"].verdicts["mAP"].verdict == "too few seeds to tell"
    assert rows["+y"].verdicts["rank1"].verdict == "consistent" and rows["+y"].verdicts["rank1"].with_zero
    # The reference row is shown in absolute numbers, not judged.
    assert rows["baseline"].verdicts == {} and rows["baseline"].absolute["mAP"] == (
        pytest.approx(100 * summary.rows[0].stats["mAP"].mean),
        35.0,
    )
    markdown = to_markdown(summary)
    assert "Reproduction of APRA, Table 2 on market1501, judged on effects (single query)" in markdown
    assert (
        f"paper +17.5, ours {100 * x.stats['mAP'].effect.mean:+.1f} [{100 * interval.low:+.1f}, {100 * interval.high:+.1f}] (n=3): consistent"
        in markdown
    )
    assert "Warning: dataset: the paper reports market1501, this study ran on synthetic." in markdown
    assert "Warning: the paper's rows '+z' match no variant with results in this study." in markdown
    assert "+17.5" in to_latex(summary) and "consistent" in to_html(summary) and "Warning" in to_html(summary)
    csv_rows = {r["variant"]: r for r in csv.DictReader(io.StringIO(to_csv(summary)))}
    assert float(csv_rows["+x"]["mAP_paper"]) == 52.5 and float(csv_rows["+x"]["mAP_paper_effect"]) == pytest.approx(17.5)
    assert csv_rows["+x"]["rank1_verdict"] == "larger" and csv_rows["baseline"]["mAP_verdict"] == ""


def test_the_recipe_the_paper_reports_is_compared_field_by_field_with_the_trials():
    recipe = PaperRecipe(input_size=(256, 128), epochs=120, backbone="resnet50", pretrained=True, batch=(16, 4), seeds=1)
    numbers = ReferenceNumbers(source="P", dataset="market1501", recipe=recipe, rows={"base": {"mAP": 80.0}})
    base = {
        "cfg.dataset.name": "market1501",
        "cfg.dataset.height": 256,
        "cfg.dataset.width": 128,
        "cfg.train.epochs": 120,
        "cfg.model.backbone": "resnet50",
        "cfg.model.pretrained": "resnet50.tv_in1k",
        "cfg.train.ids_per_batch": 16,
        "cfg.train.images_per_id": 4,
    }
    same = [{**base, "changes": "{}"}, {**base, "cfg.model.backbone": "resnet18", "changes": json.dumps({"model.backbone": "resnet18"})}]
    # A row that swaps the backbone on purpose is no deviation: the recipe is read from the others.
    assert recipe_warnings(numbers, recipe_values(same)) == []
    short = [
        {**base, "cfg.train.epochs": 1, "cfg.dataset.height": 128, "cfg.dataset.width": 64, "cfg.model.pretrained": None, "changes": "{}"}
    ]
    assert recipe_warnings(numbers, recipe_values(short)) == [
        "input size: the paper uses 256x128, this study 128x64",
        "epochs: the paper trains 120, this study 1",
        "pretrained: the paper starts from ImageNet weights, this study from random weights",
    ]


def test_a_relaunch_with_a_changed_recipe_counts_each_variant_seed_once_its_latest_trial():
    # The old recipe's trials stay in the store under other hashes; only the newest of each seed counts.
    old = [{**row(v, s, i, rank1=0.1, mAP=0.1), "config_hash": f"old-{v}-{s}"} for i, v in enumerate(("base", "+x")) for s in (0, 1)]
    new = [
        {**row(v, s, i, rank1=0.5 + 0.1 * i + 0.01 * s, mAP=0.4 + 0.1 * i), "finished_at": "2026-02-01"}
        for i, v in enumerate(("base", "+x"))
        for s in (0, 1)
    ]
    summary = summarize("s", old + new, metrics=("rank1", "mAP"))
    rows = {r.variant: r for r in summary.rows}
    assert rows["base"].seeds == [0, 1] and rows["+x"].seeds == [0, 1]
    assert rows["+x"].stats["mAP"].mean == pytest.approx(0.5)
    assert rows["+x"].stats["mAP"].delta == pytest.approx(0.1)


def test_bold_marks_only_the_single_best_value_that_is_significantly_above_its_contrast():
    base = [0.30, 0.32, 0.31, 0.33]
    gains = {
        "+big": [0.100, 0.102, 0.099, 0.101],  # best and clearly significant
        "+small": [0.010, 0.012, 0.009, 0.011],  # significant, not best
        "+noisy": [0.150, -0.100, 0.140, 0.050],  # highest mean of some columns below, not significant
    }
    rows = [row("baseline", s, 0, mAP=v, rank1=v) for s, v in enumerate(base)]
    for i, (name, diffs) in enumerate(gains.items()):
        rows += [
            row(name, s, i + 1, mAP=v + d, rank1=v + (0.2 + 0.01 * s if name == "+noisy" else d))
            for s, (v, d) in enumerate(zip(base, diffs))
        ]
    summary = summarize("s", rows, metrics=("mAP", "rank1"))
    by = {r.variant: r for r in summary.rows}
    assert by["+big"].stats["mAP"].effect.significant and summary.is_best(by["+big"], "mAP")
    assert by["+small"].stats["mAP"].effect.significant and not summary.is_best(by["+small"], "mAP")
    # rank-1: +noisy is highest by about +0.2 at every seed (significant): bold; +big is not best.
    assert summary.is_best(by["+noisy"], "rank1") and not summary.is_best(by["+big"], "rank1")
    # mAP: +noisy's mean gain (+6.0) is below +big's (+10.1) anyway; now make it the highest, unsignificant:
    loud = [{**r, "mAP": r["mAP"] + 0.1} if r["variant"] == "+noisy" else r for r in rows]
    summary = summarize("s", loud, metrics=("mAP",))
    by = {r.variant: r for r in summary.rows}
    assert not by["+noisy"].stats["mAP"].effect.significant
    assert not any(summary.is_best(r, "mAP") for r in summary.rows)  # the best is noise: nothing bold
    # Ties at the printed precision earn nothing either.
    twin = [{**r, "variant": "+twin", "config_hash": f"twin-{r['seed']}", "variant_index": 9} for r in rows if r["variant"] == "+big"]
    summary = summarize("s", rows + twin, metrics=("mAP",))
    assert not any(summary.is_best(r, "mAP") for r in summary.rows)


def test_each_row_is_compared_with_its_own_contrast_and_the_table_names_it():
    # Implicit attention Table 1's shape: each augmentation against the baseline of its own loss.
    base = {0: 0.30, 1: 0.32, 2: 0.31}
    level = {"softmax": 0.0, "softmax+aug": 0.05, "triplet": 0.03, "triplet+aug": 0.10}
    contrast = {"softmax": None, "softmax+aug": "softmax", "triplet": "softmax", "triplet+aug": "triplet"}
    wiggle = {0: 0.004, 1: -0.003, 2: 0.001}
    rows = [
        row(v, s, i, mAP=base[s] + level[v] + (i % 2) * wiggle[s], variant_meta=json.dumps({"compare_to": contrast[v]}))
        for i, v in enumerate(level)
        for s in base
    ]
    summary = summarize("s", rows, metrics=("mAP",))
    assert [r.contrast for r in summary.rows] == [None, "softmax", "softmax", "triplet"]
    mean = {v: [r["mAP"] for r in rows if r["variant"] == v] for v in level}
    expected = scipy_stats.ttest_rel(mean["triplet+aug"], mean["triplet"])
    effect = summary.rows[3].stats["mAP"].effect
    assert effect.mean == pytest.approx(0.07, abs=0.002) and effect.p == pytest.approx(expected.pvalue)
    lines = to_markdown(summary).splitlines()
    assert lines[0] == "| variant | vs | seeds | mAP |"
    assert lines[5].startswith("| triplet+aug | triplet | 3 |")
    assert "the row named under vs (its contrast)" in to_markdown(summary)
    csv_rows = {r["variant"]: r for r in csv.DictReader(io.StringIO(to_csv(summary)))}
    assert (csv_rows["triplet+aug"]["vs"], csv_rows["softmax"]["reference"]) == ("triplet", "1")
    # The plan's contrasts win over the stored ones (a spec edited since), and old rows without
    # any fall back to the design's reference row (here the first variant).
    replanned = summarize(
        "s", rows, metrics=("mAP",), contrasts={"softmax": None, "softmax+aug": "softmax", "triplet": "softmax", "triplet+aug": "softmax"}
    )
    assert replanned.rows[3].contrast == "softmax" and replanned.rows[3].stats["mAP"].effect.mean == pytest.approx(0.10, abs=0.002)
    old = summarize("s", [{k: v for k, v in r.items() if k != "variant_meta"} for r in rows], metrics=("mAP",))
    assert [r.contrast for r in old.rows] == [None, "softmax", "softmax", "softmax"]

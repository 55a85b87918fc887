import statistics

import pytest

from orchestrator.summary import TABLE_METRICS, summarize, to_markdown


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
    assert lines[0].startswith("| variant | seeds | rank-1 | mAP |")
    assert "| **baseline** | 2 | 55.0 ± 7.1 | 35.0 ± 7.1 |" in text
    assert "| +x | 2 (1 failed) | 75.0 ± 7.1 (+20.0) | 50.0 ± 7.1 (+15.0) |" in text


def test_without_a_baseline_variant_the_first_row_is_the_reference():
    rows = [row("a", 0, 0, rank1=0.5, mAP=0.5), row("b", 0, 1, rank1=0.6, mAP=0.4)]
    summary = summarize("s", rows)
    assert summary.baseline == "a"
    assert summary.rows[1].stats["mAP"].delta == pytest.approx(-0.1)
    assert "± " not in to_markdown(summary)  # one seed each: no std shown

"""An evaluation target's metrics in the result rows: scalars as ``<label>/<metric>`` columns of
``trials``, per-camera values as ``cameras`` rows with the metric ``<label>/<metric>``."""

from __future__ import annotations

from orchestrator.rows import camera_rows, curve_row, trial_row
from search_spaces import AblationSpec, Recipe, expand


def test_a_targets_metrics_split_like_the_own_ones():
    trial = expand(Recipe(), AblationSpec(design="list", variants=[{"name": "a"}]))[0]
    final = {
        "epoch": 3,
        "mAP": 0.5,
        "cam/c01/q_mAP": 0.4,
        "duke/mAP": 0.2,
        "duke/lowest_q_mAP": 0.05,
        "duke/lowest_q_mAP_camera": 8.0,
        "duke/cam/c01/q_mAP": 0.3,
        "duke/cam/c08/q_mAP": 0.05,
        "duke/cam/c08/g_mAP": 0.02,
        "duke/cam/c08/rank1": 0.0,
    }
    row = trial_row("s", trial, 0, status="completed", error=None, final=final, started_at=None, finished_at="t")
    assert {key: row[key] for key in row if key.startswith("duke/")} == {
        "duke/mAP": 0.2,
        "duke/lowest_q_mAP": 0.05,
        "duke/lowest_q_mAP_camera": 8.0,
    }
    assert sorted((r["camera"], r["metric"], r["value"]) for r in camera_rows("s", trial, final)) == [
        (1, "duke/q_mAP", 0.3),
        (1, "q_mAP", 0.4),
        (8, "duke/g_mAP", 0.02),
        (8, "duke/q_mAP", 0.05),
        (8, "duke/rank1", 0.0),
    ]
    assert not any("/cam/" in key for key in curve_row("s", trial, final))

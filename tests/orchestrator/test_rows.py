"""Result rows use the metric names of search_spaces.metrics: camera keys go to the cameras
table and nowhere else, and every trial row records the identity version of its hash."""

from __future__ import annotations

import json

from orchestrator.rows import camera_rows, curve_row, trial_row
from search_spaces import AblationSpec, Recipe, expand
from search_spaces.identity import IDENTITY_VERSION
from search_spaces.metrics import CAMERA_KEY_NAMES, CAMERA_METRICS, EPOCH, G_MAP, MAP, Q_MAP, Q_RANK1, camera_key, parse_camera_key


def test_camera_keys_round_trip_for_every_per_camera_metric():
    for metric in CAMERA_METRICS:
        assert parse_camera_key(camera_key(12, metric)) == (12, CAMERA_KEY_NAMES[metric])
    assert camera_key(3, Q_RANK1) == "cam/c03/rank1"  # the MLflow name of DESIGN.md
    assert parse_camera_key(MAP) is None and parse_camera_key("cam/x/q_mAP") is None


def test_rows_split_camera_metrics_from_scalars():
    trial = expand(Recipe(), AblationSpec(design="list", variants=[{"name": "a"}]))[0]
    final = {EPOCH: 4, MAP: 0.5, camera_key(1, Q_MAP): 0.4, camera_key(2, G_MAP): 0.3, camera_key(2, Q_RANK1): 1.0}
    row = trial_row("s", trial, 0, status="completed", error=None, final=final, started_at=None, finished_at="t")
    assert row[MAP] == 0.5 and not any(parse_camera_key(key) for key in row)
    assert row["identity_version"] == IDENTITY_VERSION and json.loads(row["config_json"])["seed"] == trial.seed
    cameras = camera_rows("s", trial, final)
    assert sorted((r["camera"], r["metric"], r["value"], r[EPOCH]) for r in cameras) == [
        (1, "q_mAP", 0.4, 4),
        (2, "g_mAP", 0.3, 4),
        (2, "rank1", 1.0, 4),
    ]
    curve = curve_row("s", trial, final)
    assert curve[EPOCH] == 4 and curve[MAP] == 0.5 and not any(parse_camera_key(key) for key in curve)

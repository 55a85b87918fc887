"""The apra_synthetic_cpu preset run for real: Ray Tune, MLflow (SQLite), Parquet.

APRA's question (Table 2: BoT vs BoT+APRA, weakest-camera Q-mAP and G-mAP) at CPU scale on
the synthetic dataset, whose camera 6 is built to be weak. Slow: 6 trials of 12 epochs.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from orchestrator.preset_library import preset_text
from search_spaces.metrics import AVG_Q_MAP, COMPLETED, LOWEST_G_MAP, LOWEST_Q_MAP
from storage import CONFIG_PREFIX, ResultStore
from tests.cli import run_orchestrator

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_apra_synthetic_preset_answers_the_weakest_camera_question(tmp_path):
    spec = tmp_path / "apra.yaml"
    spec.write_text(preset_text("apra_synthetic_cpu"), encoding="utf-8")
    result = run_orchestrator("launch", str(spec), cwd=tmp_path, timeout=3600, REID_ORCH_CACHE=str(tmp_path / "cache"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    check_apra_study(tmp_path / "studies" / "apra-synthetic-cpu", result.stdout)


def check_apra_study(study: Path, stdout: str) -> None:
    """The rows of a finished apra_synthetic_cpu study, in Parquet and MLflow."""
    rows = ResultStore(str(study / "results")).read_rows("trials", "apra-synthetic-cpu")
    assert sorted((r["variant"], r["seed"]) for r in rows) == [(v, s) for v in ("+APRA", "BagTricks") for s in (0, 1, 2)]
    for row in rows:
        assert row["status"] == COMPLETED
        assert row[CONFIG_PREFIX + "model.last_stride"] == 1 and row[CONFIG_PREFIX + "loss.center.weight"] == 0.0005
        assert row[CONFIG_PREFIX + "model.apra.stages"] == ("[1]" if row["variant"] == "+APRA" else "[]")
        assert 0.0 < row[LOWEST_Q_MAP] <= row[AVG_Q_MAP] <= 1.0 and 0.0 < row[LOWEST_G_MAP] <= 1.0
        assert row["rank1"] <= row["rank5"] <= row["rank10"] <= row["rank20"] <= row["rank50"]  # rank-50 reaches the store
        assert row["mAP"] > 0.05  # trained: far above chance on 100 gallery identities
    cameras = ResultStore(str(study / "results")).read_rows("cameras", "apra-synthetic-cpu")
    q_maps = {}
    for row in cameras:
        if row["metric"] == "q_mAP":
            q_maps.setdefault((row["variant"], row["seed"]), {})[row["camera"]] = row["value"]
    for key, per_camera in q_maps.items():
        trial = next(r for r in rows if (r["variant"], r["seed"]) == key)
        assert min(per_camera.values()) == pytest.approx(trial[LOWEST_Q_MAP])
        assert min(per_camera, key=per_camera.get) == 6  # the synthetic set's built-in weak camera

    with sqlite3.connect(study / "mlflow.db") as db:
        logged = {key for (key,) in db.execute("select distinct key from latest_metrics")}
    assert {"rank1", "rank5", "rank10", "rank20", "rank50", "cam/c06/q_mAP", "cam/c06/g_mAP"} <= logged
    assert "| +APRA | 3 |" in stdout and "weakest q-mAP" in stdout

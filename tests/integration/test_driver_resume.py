"""A driver that dies mid-trial (killed with all its Ray processes, as a lost machine goes) and
the relaunch that follows: the trial trains on from its last checkpoint, not from epoch 1, and
its curve, Parquet rows and MLflow run come out whole and once. Real ``orchestrator`` processes,
Ray Tune, MLflow (SQLite) and Parquet."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest

from storage import ResultStore
from tests.cli import run_orchestrator
from tests.integration.test_interrupts import Driver, mlflow_runs

pytestmark = pytest.mark.integration

STUDY = "lost-driver"
EPOCHS, EVERY = 6, 2


def checkpoint_at(study_dir: Path, epoch: int) -> bool:
    """Whether Tune's storage holds a whole checkpoint of ``epoch``."""
    for history in study_dir.glob("ray/*/*/checkpoint_*/history.json"):
        try:
            done = json.loads(history.read_text(encoding="utf-8"))["epoch"] == epoch
        except (OSError, ValueError):
            continue  # still being written
        if done and (history.parent / "trainer.pt").is_file():
            return True
    return False


def test_a_relaunch_after_the_driver_died_resumes_the_trial_from_its_checkpoint(tiny_market, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        textwrap.dedent(
            f"""
            study: {{name: {STUDY}}}
            baseline:
              dataset: {{name: market1501, root: "{tiny_market}", height: 64, width: 32}}
              model: {{backbone: resnet10t}}
              train: {{epochs: {EPOCHS}, ids_per_batch: 4, images_per_id: 4, warmup_epochs: 0, lr_steps: [], eval_every: 2}}
            ablation: {{design: list, variants: [{{name: baseline}}], seeds: [0]}}
            resources: {{cpus_per_trial: 1, checkpoint_every: {EVERY}}}
            """
        ),
        encoding="utf-8",
    )
    study_dir = tmp_path / "studies" / STUDY
    driver = Driver("launch", str(spec), cwd=tmp_path)
    try:
        deadline = time.monotonic() + 300
        while not checkpoint_at(study_dir, 4):
            assert driver.process.poll() is None, driver.text()
            assert time.monotonic() < deadline, driver.text()
            time.sleep(0.1)
    finally:
        driver.kill()  # the driver and every Ray process it started, at once
    store = ResultStore(str(study_dir / "results"))
    assert store.read_rows("trials", STUDY) == []  # nothing written: the trial was cut off
    launches = set(study_dir.glob("ray/*"))

    resumed = run_orchestrator("resume", STUDY, cwd=tmp_path, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "from its checkpoint at epoch 4 (an earlier launch's)" in resumed.stdout, resumed.stdout

    # The relaunch trained epochs 5 and 6 only (Tune's own log of the new launch's results).
    (relaunch,) = set(study_dir.glob("ray/*")) - launches
    (results,) = relaunch.glob("*/result.json")
    assert [json.loads(line)["epoch"] for line in results.read_text(encoding="utf-8").splitlines()] == [5, 6]
    # One row, a whole curve, each epoch once.
    (row,) = store.read_rows("trials", STUDY)
    assert row["status"] == "completed" and row["epochs_done"] == EPOCHS and row["epochs_rerun"] == 0
    # The checkpoint it resumed from, the killed launch's, was deleted with the relaunch's own
    # once the row was stored; the compute counts the epochs before it too.
    assert list(study_dir.glob("ray/*/*/checkpoint_*")) == []
    assert row["wall_seconds"] > row["train_seconds"] + row["eval_seconds"] > 0
    assert sorted(r["epoch"] for r in store.read_rows("curves", STUDY)) == list(range(1, EPOCHS + 1))
    # One MLflow run, the first launch's, reopened and finished, with every epoch once.
    from mlflow.tracking import MlflowClient

    _, children = mlflow_runs(tmp_path, STUDY)
    (run,) = children
    assert run.info.status == "FINISHED"
    client = MlflowClient(tracking_uri=f"sqlite:///{study_dir / 'mlflow.db'}")
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "epoch")) == list(range(1, EPOCHS + 1))
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "mAP")) == [2, 4, 6]

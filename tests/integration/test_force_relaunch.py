"""``launch --force`` end to end: completed trials run again, no earlier launch's checkpoint is
resumed from (not even an interrupted trial's), and the newer row of a config is the one every
reader takes (the table, ``status``)."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest

from tests.cli import run_orchestrator

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OLD_MAP = 0.999  # a number no tiny study reaches: where it shows, the older row was read


EPOCHS = 4


def spec_text(root: Path, variants: str = "[{name: a}, {name: b, set: {train.lr: 0.001}}]") -> str:
    return textwrap.dedent(
        f"""
        study: {{name: frc}}
        baseline:
          dataset: {{name: market1501, root: "{root}", height: 64, width: 32}}
          model: {{backbone: resnet10t}}
          train: {{epochs: {EPOCHS}, ids_per_batch: 4, images_per_id: 4, warmup_epochs: 0, lr_steps: [], eval_every: 1}}
        ablation:
          design: list
          variants: {variants}
          seeds: [0]
        resources: {{cpus_per_trial: 1, checkpoint_every: 1}}
        """
    )


def parts(results: Path, table: str) -> list[Path]:
    return sorted((results / table / "frc").glob("part-*.parquet"))


def rows(results: Path, table: str) -> list[dict]:
    import pyarrow.parquet as pq

    return [row for path in parts(results, table) for row in pq.read_table(path).to_pylist()]


def test_force_reruns_completed_trials_from_scratch_and_the_newer_row_wins(tiny_market, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from orchestrator.resume_points import find_resume_points
    from orchestrator.spec import load_spec
    from tests.integration.test_driver_resume import checkpoint_at
    from tests.integration.test_interrupts import Driver

    # b completes alone; then a launch of both runs a and is killed after a's first checkpoint,
    # as a dead driver leaves it: a plain relaunch would resume a from there.
    only_b = tmp_path / "only_b.yaml"
    only_b.write_text(spec_text(tiny_market, "[{name: b, set: {train.lr: 0.001}}]"), encoding="utf-8")
    first = run_orchestrator("launch", str(only_b), cwd=tmp_path, REID_ORCH_NUM_CPUS="2")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    spec = tmp_path / "study.yaml"
    spec.write_text(spec_text(tiny_market), encoding="utf-8")
    study_dir = tmp_path / "studies" / "frc"
    results = study_dir / "results"
    hash_a = next(t.config_hash for t in load_spec(spec).trials if t.variant == "a")
    driver = Driver("launch", str(spec), cwd=tmp_path)
    try:
        deadline = time.monotonic() + 300
        while not checkpoint_at(study_dir, 1):
            assert driver.process.poll() is None, driver.text()
            assert time.monotonic() < deadline, driver.text()
            time.sleep(0.1)
    finally:
        driver.kill()
    assert [row["variant"] for row in rows(results, "trials")] == ["b"]
    assert hash_a in find_resume_points(str(study_dir / "ray"), None, "frc", {hash_a: None}, warn=lambda _: None)
    # b's stored row gets a number its rerun cannot reach.
    for path in parts(results, "trials"):
        table = pq.read_table(path)
        if table.column("variant").to_pylist() == ["b"]:
            pq.write_table(table.set_column(table.schema.get_field_index("mAP"), "mAP", pa.array([OLD_MAP])), path)

    forced = run_orchestrator("launch", str(spec), "--force", cwd=tmp_path, REID_ORCH_NUM_CPUS="2")
    assert forced.returncode == 0, forced.stdout[-3000:] + forced.stderr[-3000:]
    assert "2 trials planned, 0 already completed, 2 to run" in forced.stdout
    assert "resume from an earlier launch's checkpoint" not in forced.stdout
    assert "from its checkpoint at epoch" not in forced.stdout
    trials = rows(results, "trials")
    assert sorted(row["variant"] for row in trials) == ["a", "b", "b"]  # b ran again: its old row stays, a newer one beside it
    a_row = next(row for row in trials if row["variant"] == "a")
    assert a_row["train_seconds"] > 0 and a_row["status"] == "completed"  # trained, not restored at its last epoch
    assert sorted(row["epoch"] for row in rows(results, "curves") if row["config_hash"] == hash_a) == list(range(1, EPOCHS + 1))
    newer_b = max((row for row in trials if row["variant"] == "b"), key=lambda row: row["finished_at"])
    assert newer_b["mAP"] != OLD_MAP

    # Every reader takes the newer row.
    assert "99.9" not in forced.stdout  # the table launch printed
    table = run_orchestrator("summarize", "frc", cwd=tmp_path)
    assert table.returncode == 0 and "99.9" not in table.stdout and "| b |" in table.stdout
    status = run_orchestrator("status", "frc", cwd=tmp_path)
    assert status.returncode == 0 and "99.9%" not in status.stdout and "done 2," in status.stdout

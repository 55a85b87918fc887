"""A result store that breaks while trials run (its folder replaced by a file): the launch ends
with one line and exit 1 (a fault of the run, not of the input), the rows of the trials that
finished meanwhile are kept beside the study, and ``resume`` on the repaired store writes them
first: those trials do not run again, and no row is lost or doubled."""

from __future__ import annotations

import subprocess
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tests.cli import EXE, orchestrator_env, run_orchestrator

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def spec_text(root: Path) -> str:
    return textwrap.dedent(
        f"""
        study: {{name: brk}}
        baseline:
          dataset: {{name: market1501, root: "{root}", height: 64, width: 32}}
          model: {{backbone: resnet10t}}
          train: {{epochs: 1, ids_per_batch: 4, images_per_id: 4, warmup_epochs: 0, lr_steps: [], eval_every: 1}}
        ablation:
          design: list
          variants:
            - {{name: a}}
            - {{name: b, set: {{train.lr: 0.001}}}}
            - {{name: c, set: {{train.lr: 0.002}}}}
            - {{name: d, set: {{train.lr: 0.004}}}}
          seeds: [0]
        resources: {{cpus_per_trial: 2, retries: 0, checkpoint_every: 0}}
        """
    )


def break_store_after_first_row(results: Path, moved: Path, stop: threading.Event) -> None:
    """Once the first trial's row is published, put a file where the store's folder was."""
    rows = results / "trials" / "brk"
    while not stop.is_set():
        if rows.is_dir() and any(rows.glob("part-*.parquet")):
            results.rename(moved)
            results.write_text("not a folder any more")
            return
        time.sleep(0.05)


def test_rows_refused_mid_run_are_kept_and_stored_by_resume(tiny_market, tmp_path):
    import pyarrow.parquet as pq

    spec = tmp_path / "study.yaml"
    spec.write_text(spec_text(tiny_market), encoding="utf-8")
    study_dir = tmp_path / "studies" / "brk"
    results, moved = study_dir / "results", tmp_path / "results-moved"
    stop = threading.Event()
    breaker = threading.Thread(target=break_store_after_first_row, args=(results, moved, stop), daemon=True)
    breaker.start()
    launch = subprocess.run(
        [str(EXE), "launch", str(spec)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=orchestrator_env(REID_ORCH_NUM_CPUS="2"),
        timeout=900,
    )
    stop.set()
    assert moved.is_dir(), launch.stdout[-3000:] + launch.stderr[-3000:]
    errors = [line for line in launch.stderr.splitlines() if line.startswith("error:")]
    assert launch.returncode == 1, launch.stdout[-3000:] + launch.stderr[-3000:]
    assert len(errors) == 1 and "the result store stopped taking rows mid-run" in errors[0], launch.stderr[-3000:]
    kept = sorted((study_dir / "unsaved-rows").glob("*.json"))
    assert len(kept) >= 1 and f"the rows of {len(kept)} finished trial(s) are kept in {study_dir / 'unsaved-rows'}" in errors[0]
    assert "run `orchestrator resume brk`" in errors[0]

    # The user repairs the store and resumes.
    results.unlink()
    moved.rename(results)
    resumed = run_orchestrator("resume", "brk", cwd=tmp_path, REID_ORCH_NUM_CPUS="2")
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert f"stored the rows of {len(kept)} trial(s) that finished while the result store refused them" in resumed.stdout
    done_before = 1 + len(kept)
    assert f"4 trials planned, {done_before} already completed, {4 - done_before} to run" in resumed.stdout
    assert not list((study_dir / "unsaved-rows").glob("*.json"))
    rows = [row for f in (results / "trials" / "brk").glob("part-*.parquet") for row in pq.read_table(f).to_pylist()]
    assert sorted(row["variant"] for row in rows) == ["a", "b", "c", "d"]  # each once: none lost, none doubled
    assert all(row["status"] == "completed" for row in rows)

"""Studies survive what clusters do: failing trials, and a driver killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from tests.cli import EXE as EXE_PATH
from tests.cli import orchestrator_env as env
from tests.cli import run_orchestrator

pytestmark = pytest.mark.integration

EXE = str(EXE_PATH)


def orchestrator(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run_orchestrator(*args, cwd=cwd)


def write_spec(path: Path, body: str) -> Path:
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def trial_rows(workdir: Path, study: str) -> list[dict]:
    from storage import ResultStore

    return ResultStore(str(workdir / "studies" / study / "results")).read_rows("trials", study)


def mlflow_children(workdir: Path, study: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'studies' / study / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(study)
    runs = client.search_runs([experiment.experiment_id])
    return [r for r in runs if r.data.tags.get("reid.role") == "trial"]


def test_failing_trials_are_recorded_with_their_error_and_the_study_finishes(tiny_market, tmp_path):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"this is not a checkpoint")
    spec = write_spec(
        tmp_path / "faults.yaml",
        f"""
        study: {{name: faults}}
        baseline:
          dataset: {{name: market1501, root: "{tiny_market}", height: 64, width: 32}}
          train: {{epochs: 2, ids_per_batch: 4, images_per_id: 4, warmup_epochs: 0, lr_steps: [], eval_every: 1}}
        ablation:
          design: one_at_a_time
          variants:
            - name: diverges
              set: {{train.optimizer: sgd, train.lr: 1.0e+6}}
            - name: bad-weights
              set: {{model.pretrained_path: "{corrupt}"}}
        resources: {{cpus_per_trial: 1, retries: 1}}
        """,
    )
    result = orchestrator("launch", str(spec), cwd=tmp_path)
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]  # trials failed: exit 1
    assert "2 trial(s) failed" in result.stdout
    assert result.stdout.count("retrying") == 2  # each failing trial retried once
    rows = {r["variant"]: r for r in trial_rows(tmp_path, "faults")}
    assert rows["baseline"]["status"] == "completed"
    assert rows["diverges"]["status"] == "failed" and "NonFiniteLossError" in rows["diverges"]["error"]
    assert rows["bad-weights"]["status"] == "failed" and rows["bad-weights"]["error"]
    detail = rows["bad-weights"]["error_traceback"]
    assert rows["bad-weights"]["error"] in detail and "\x1b[" not in detail
    runs = {r.data.tags["reid.variant"]: r for r in mlflow_children(tmp_path, "faults")}
    assert runs["baseline"].info.status == "FINISHED"
    assert runs["diverges"].info.status == "FAILED" and "NonFiniteLossError" in runs["diverges"].data.tags["reid.error"]
    assert "| diverges | 0 (1 failed) |" in result.stdout

    # One line per failed attempt (trial, attempt, cause, where the traceback is), no traceback
    # on the terminal: Ray Tune's ERROR line with the traceback of every attempt is silenced.
    assert "Traceback" not in result.stdout + result.stderr and "ERROR" not in result.stderr, result.stderr[-3000:]
    diverges = [line for line in result.stdout.splitlines() if "diverges seed=0" in line and "NonFiniteLossError" in line]
    assert len(diverges) == 2, diverges
    retry, failed = diverges
    assert "retrying diverges seed=0" in retry and "(attempt 1 of 2; traceback: " in retry
    assert "FAILED diverges seed=0" in failed and " after 2 attempts: " in failed
    pattern = failed.rsplit("traceback: ", 1)[1].rstrip(")")
    assert retry.endswith(f"traceback: {pattern})")
    (log,) = tmp_path.glob(pattern)  # relative to the folder the command ran in
    text = log.read_text(encoding="utf-8")
    assert text.count("Failure # ") == 2 and "NonFiniteLossError: loss became" in text  # both attempts


def test_a_driver_killed_mid_study_is_finished_by_resume_without_duplicates(tiny_market, tmp_path):
    spec = write_spec(
        tmp_path / "killme.yaml",
        f"""
        study: {{name: killme}}
        baseline:
          dataset: {{name: market1501, root: "{tiny_market}", height: 64, width: 32}}
          train: {{epochs: 6, ids_per_batch: 4, images_per_id: 4, warmup_epochs: 0, lr_steps: [], eval_every: 3}}
        ablation:
          design: grid
          axes: {{loss.triplet.margin: [0.2, 0.3, 0.4, 0.5]}}
        resources: {{cpus_per_trial: 1, max_concurrent_trials: 1}}
        """,
    )
    driver = subprocess.Popen(
        [EXE, "launch", str(spec)], cwd=tmp_path, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    parts = tmp_path / "studies" / "killme" / "results" / "trials" / "killme"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (parts.is_dir() and any(parts.glob("part-*.parquet"))):
        assert driver.poll() is None, driver.stdout.read().decode()[-3000:]
        time.sleep(0.2)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray it started, without warning
    driver.wait(timeout=60)
    before = {r["config_hash"]: r for r in trial_rows(tmp_path, "killme")}
    assert 1 <= len(before) < 4
    first_parts = sorted(p.name for p in parts.glob("part-*.parquet"))

    status = orchestrator("status", "killme", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert "4 trials planned" in status.stdout and f"done {len(before)}" in status.stdout

    resumed = orchestrator("resume", "killme", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert f"{len(before)} already completed, {4 - len(before)} to run" in resumed.stdout

    after = trial_rows(tmp_path, "killme")
    hashes = [r["config_hash"] for r in after]
    assert len(hashes) == len(set(hashes)) == 4  # no duplicate Parquet row
    assert all(r["status"] == "completed" for r in after)
    for digest, row in before.items():  # completed trials were not rerun
        assert next(r for r in after if r["config_hash"] == digest)["finished_at"] == row["finished_at"]
    assert set(first_parts) <= {p.name for p in parts.glob("part-*.parquet")}
    children = mlflow_children(tmp_path, "killme")  # active runs only: stale ones were deleted
    assert sorted(r.data.tags["reid.config_hash"] for r in children) == sorted(hashes)
    assert all(r.info.status == "FINISHED" for r in children)

    done = orchestrator("status", "killme", cwd=tmp_path)
    assert "done 4, running 0, failed 0, pruned 0, pending 0" in done.stdout and "finished" in done.stdout


@pytest.mark.slow
def test_each_failed_attempt_is_one_line_and_debug_shows_its_traceback(tiny_market, tmp_path):
    # The case: 2 diverging trials, 2 retries each, printed 320 lines of Ray tracebacks.
    spec = write_spec(
        tmp_path / "nan.yaml",
        f"""
        study: {{name: nan}}
        baseline:
          dataset: {{name: market1501, root: "{tiny_market}", height: 64, width: 32}}
          train: {{epochs: 1, ids_per_batch: 4, images_per_id: 4, warmup_epochs: 0, lr_steps: [], optimizer: sgd, lr: 1.0e+6}}
        ablation:
          design: grid
          axes: {{loss.triplet.margin: [0.2, 0.3]}}
        resources: {{cpus_per_trial: 1, retries: 2}}
        """,
    )
    result = run_orchestrator("--debug", "launch", str(spec), cwd=tmp_path)
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    failures = [line for line in result.stdout.splitlines() if "NonFiniteLossError" in line]
    assert len(failures) == 6, failures  # 3 attempts of 2 trials, one line each
    for margin in ("0.2", "0.3"):
        mine = [line for line in failures if f"margin={margin} seed=0" in line]
        assert [line.split("(")[-1].split(";")[0] for line in mine[:2]] == ["attempt 1 of 3", "attempt 2 of 3"], mine
        assert "FAILED" in mine[2] and "after 3 attempts" in mine[2]
    assert "Traceback" not in result.stdout
    # --debug: each attempt's traceback on stderr, once; Ray Tune's own copies stay silent.
    assert sorted(line.split(" (")[0] for line in result.stderr.splitlines() if line.startswith("Failure # ")) == [
        "Failure # 1",
        "Failure # 1",
        "Failure # 2",
        "Failure # 2",
        "Failure # 3",
        "Failure # 3",
    ], result.stderr[-3000:]
    for traceback in result.stderr.split("Failure # ")[1:]:  # the frames down to the raise
        assert 'trainables/engine.py", line' in traceback and "NonFiniteLossError: loss became nan" in traceback
    assert "Trial task failed" not in result.stderr and "Trials did not complete" not in result.stderr

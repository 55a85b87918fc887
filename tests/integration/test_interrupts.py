"""A running study meets the user and the machine: Ctrl-C, a second driver, a store that stops
taking writes. Real ``orchestrator`` processes, real Ray Tune, MLflow (SQLite) and Parquet."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tests.cli import EXE as EXE_PATH
from tests.cli import orchestrator_env as env
from tests.cli import run_orchestrator

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXE = str(EXE_PATH)


def write_spec(path: Path, study: str, dataset: Path, margins: list[float], epochs: int = 4) -> Path:
    path.write_text(
        textwrap.dedent(
            f"""
            study: {{name: {study}}}
            baseline:
              dataset: {{name: market1501, root: "{dataset}", height: 64, width: 32}}
              train: {{epochs: {epochs}, ids_per_batch: 4, images_per_id: 4, warmup_epochs: 0, lr_steps: [], eval_every: 2}}
            ablation:
              design: grid
              axes: {{loss.triplet.margin: {margins}}}
            resources: {{cpus_per_trial: 1, max_concurrent_trials: 1}}
            """
        ),
        encoding="utf-8",
    )
    return path


class Driver:
    """``orchestrator launch`` in the background, its output collected line by line."""

    def __init__(self, *args: str, cwd: Path):
        self.process = subprocess.Popen(
            [EXE, *args], cwd=cwd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, self.err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream, into: list[str]) -> None:
        for line in stream:
            into.append(line)

    def wait_for(self, fragment: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(fragment in line for line in self.out):
                return
            assert self.process.poll() is None, self.text()
            time.sleep(0.2)
        raise AssertionError(f"no '{fragment}' within {timeout:.0f}s:\n{self.text()}")

    def finish(self, timeout: float) -> int:
        code = self.process.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=10)
        return code

    def text(self) -> str:
        return "".join(self.out)[-3000:] + "\n--- stderr ---\n" + "".join(self.err)[-3000:]

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=60)


def mlflow_runs(workdir: Path, study: str) -> tuple[object, list]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'studies' / study / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(study)
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("reid.role") == "study")
    return parent, [r for r in runs if r.data.tags.get("reid.role") == "trial"]


@pytest.mark.parametrize(
    "stop, exit_code, said",
    [
        # SIGINT to the process group: what a terminal's Ctrl-C sends.
        ("ctrl-c", 130, "interrupted"),
        # SIGTERM to the driver alone: what `kill PID` sends, and what Kubernetes sends a pod's
        # main process before evicting it. Ray's handler (installed by ray.init) used to tear
        # Ray down under Tune: exit 134 with a crash dump, the parent run FAILED.
        ("sigterm", 143, "terminated (SIGTERM)"),
    ],
    ids=["ctrl-c", "sigterm"],
)
def test_a_stop_mid_trial_ends_within_seconds_marks_runs_killed_and_the_study_resumes(stop, exit_code, said, tiny_market, tmp_path):
    study = stop.replace("-", "")
    spec = write_spec(tmp_path / "spec.yaml", study, tiny_market, [0.2, 0.3], epochs=4)
    driver = Driver("launch", str(spec), cwd=tmp_path)
    try:
        driver.wait_for("started ")
        time.sleep(2)
        if stop == "ctrl-c":
            os.killpg(driver.process.pid, signal.SIGINT)
        else:
            driver.process.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        code = driver.finish(timeout=60)
        stopped_in = time.monotonic() - stopped
    finally:
        driver.kill()
    assert code == exit_code, driver.text()
    assert stopped_in < 30, stopped_in
    out, err = "".join(driver.out), "".join(driver.err)
    assert err.strip().splitlines() == [
        f"error: {said}: study '{study}' stopped; finished trials are kept, the rest run on `orchestrator resume {study}`"
    ], err
    assert "Tuner.restore" not in out
    assert "difference to" not in out and "| variant" not in out  # no (empty) table
    parent, children = mlflow_runs(tmp_path, study)
    assert parent.info.status == "KILLED"
    assert children and not [r for r in children if r.info.status == "RUNNING"]
    assert any(r.info.status == "KILLED" for r in children)

    status = run_orchestrator("status", study, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    # The lock was released.
    assert "driver: none running" in status.stdout and f"orchestrator resume {study}" in status.stdout

    resumed = run_orchestrator("resume", study, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    parent, children = mlflow_runs(tmp_path, study)
    assert parent.info.status == "FINISHED"
    assert sorted(r.info.status for r in children) == ["FINISHED"] * 2


def test_a_second_driver_is_refused_and_the_first_finishes_untouched(tiny_market, tmp_path):
    # Enough trials (one at a time) that the first driver still runs while the second one, a
    # resume and a status come and go: workers are reused, so trials follow each other quickly.
    margins = [0.2, 0.25, 0.3, 0.35, 0.4, 0.45]
    spec = write_spec(tmp_path / "spec.yaml", "twice", tiny_market, margins)
    first = Driver("launch", str(spec), cwd=tmp_path)
    try:
        first.wait_for("started ")
        second = run_orchestrator("launch", str(spec), cwd=tmp_path, timeout=300)
        assert second.returncode == 2, second.stdout[-2000:] + second.stderr[-2000:]
        lines = [line for line in second.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, second.stderr
        assert f"study 'twice' is being run by another driver (pid {first.process.pid} on host {socket.gethostname()}, started " in lines[0]
        resumed = run_orchestrator("resume", "twice", cwd=tmp_path, timeout=300)
        assert resumed.returncode == 2 and "is being run by another driver" in resumed.stderr
        status = run_orchestrator("status", "twice", cwd=tmp_path)
        assert f"driver: running (pid {first.process.pid}" in status.stdout, status.stdout
        code = first.finish(timeout=600)
    finally:
        first.kill()
    assert code == 0, first.text()
    parent, children = mlflow_runs(tmp_path, "twice")
    assert parent.info.status == "FINISHED"
    assert sorted(r.info.status for r in children) == ["FINISHED"] * len(margins)  # none deleted, none duplicated


def test_a_store_that_stops_taking_writes_ends_in_one_store_error_line(tiny_market, tmp_path):
    spec = write_spec(tmp_path / "spec.yaml", "nostore", tiny_market, [0.2, 0.3], epochs=2)
    results = tmp_path / "studies" / "nostore" / "results"
    results.mkdir(parents=True)
    (results / "cameras").write_text("a file where the cameras table's folder must go")
    result = run_orchestrator("launch", str(spec), cwd=tmp_path, timeout=600)
    # The store passed the checks and failed while trials ran: a fault of the run (exit 1), not of the input.
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and result.stderr.strip().splitlines()[-1] == errors[0], result.stderr[-3000:]
    assert "the result store stopped taking rows mid-run" in errors[0] and f"cannot write cameras to '{results}'" in errors[0]
    kept = list((tmp_path / "studies" / "nostore" / "unsaved-rows").glob("*.json"))
    assert kept and f"the rows of {len(kept)} finished trial(s) are kept" in errors[0]
    assert "Traceback" not in result.stderr and "TuneError" not in result.stderr
    parent, children = mlflow_runs(tmp_path, "nostore")
    assert parent.info.status == "FAILED" and not [r for r in children if r.info.status == "RUNNING"]

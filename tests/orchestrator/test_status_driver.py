"""``orchestrator status`` tells a live driver from a dead one (the study lock's heartbeat and
pid), and fails with exit 2 when it cannot read the result store; ``summarize --out`` refuses a
file where a folder belongs."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.spec import load_spec
from orchestrator.study_files import SPEC_COPY, record_launch
from orchestrator.tracking import StudyTracker, default_tracking_uri
from storage import ResultStore
from storage.lock import LockHolder, StudyLock

SPEC = "study: {name: s}\nablation:\n  design: list\n  variants: [{name: a}, {name: b, set: {model.neck: l2norm}}]\n"


@pytest.fixture(scope="module")
def launched_study(tmp_path_factory) -> Path:
    """A study as a launch leaves it: spec copy, launch record, store, one RUNNING child run
    (built once: MLflow's SQLite set-up takes seconds)."""
    root = tmp_path_factory.mktemp("launched")
    study_dir = root / "studies" / "s"
    store = root / "store"
    ResultStore(str(store)).check_writable()
    uri = default_tracking_uri(study_dir)
    record_launch(study_dir, SPEC, store_uri=str(store), tracking_uri=uri, address=None)
    loaded = load_spec(study_dir / SPEC_COPY)
    tracker = StudyTracker(uri, "s")
    tracker.start_study(params={}, tags={})
    running = tracker.start_trial(loaded.trials[0], [])
    for epoch in range(1, 8):  # the recorder logs every epoch's report
        tracker.log_metrics(running, {"epoch": epoch, "loss": 3.0 / epoch}, step=epoch)
    return store


@pytest.fixture
def launched(launched_study, monkeypatch):
    monkeypatch.chdir(launched_study.parent)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield launched_study
    shutil.rmtree(launched_study / "_locks", ignore_errors=True)


def status_lines(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["status", "s", *args])
    return result.exit_code, result.stdout, result.stderr


def test_a_live_driver_shows_its_running_trials(launched):
    lock = StudyLock(str(launched), "s", heartbeat_seconds=60)
    lock.acquire()
    try:
        code, out, err = status_lines()
    finally:
        lock.release()
    assert code == 0, err
    assert "done 0, running 1, failed 0, pruned 0, pending 1" in out
    assert f"driver: running (pid {os.getpid()} on host {socket.gethostname()}" in out
    # Each running trial with its latest epoch, of the 30 the recipe trains by default.
    assert "running: a seed=0 (epoch 7/30)" in out and "resume" not in out


def test_a_dead_driver_leaves_interrupted_trials_and_names_resume(launched):
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    beat = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")  # fresh: only the pid tells
    body = LockHolder("t", socket.gethostname(), process.pid, "2026-11-30T08:00:00+00:00", beat).to_json()
    (launched / "_locks").mkdir()
    (launched / "_locks" / "s.json").write_bytes(body)
    code, out, err = status_lines()
    assert code == 0, err
    assert "done 0, running 0, failed 0, pruned 0, pending 2" in out
    assert f"driver: gone (pid {process.pid} on host {socket.gethostname()}" in out and "is gone" in out
    assert "interrupted: a seed=0" in out
    assert "not running: continue with `orchestrator resume s`" in out


def test_no_lock_means_no_driver(launched):
    code, out, err = status_lines()
    assert code == 0, err
    assert "driver: none running" in out and "running 0" in out
    assert "continue with `orchestrator resume s`" in out


def test_an_unreadable_store_is_an_error_not_an_empty_study(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    study_dir = tmp_path / "studies" / "s"
    record_launch(study_dir, SPEC, store_uri=str(tmp_path / "vanished"), tracking_uri=default_tracking_uri(study_dir), address=None)
    code, out, err = status_lines()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert f"result store '{tmp_path / 'vanished'}' does not exist" in lines[0]
    assert "pending" not in out
    (tmp_path / "vanished").write_text("a file")
    code, _, err = status_lines()
    assert code == 2 and "is not a folder" in err


def test_summarize_out_pointing_at_a_file(tmp_path):
    from tests.orchestrator.fake_study import write_fake_study

    store = ResultStore(str(tmp_path / "store"))
    write_fake_study(store)
    target = tmp_path / "report.md"
    target.write_text("keep me")
    result = CliRunner().invoke(app, ["summarize", "fake", "--store", store.uri, "--out", str(target)])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.stderr
    assert f"--out {target}: {target} is a file, not a folder" in lines[0]
    assert target.read_text() == "keep me"

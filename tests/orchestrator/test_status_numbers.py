"""What ``orchestrator status`` computes from the store: the best trial so far, the time left,
the plan's own trials only (after an edited relaunch), and a tracking server that does not
answer costs seconds, not minutes."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.spec import load_spec
from orchestrator.study_files import SPEC_COPY, record_launch
from storage import ResultStore

# Three variants x two seeds = 6 planned trials, one CPU each.
SPEC = (
    "study: {name: s}\n"
    "ablation:\n  design: list\n  seeds: [0, 1]\n"
    "  variants: [{name: a}, {name: b, set: {model.neck: l2norm}}, {name: c, set: {train.lr: 0.001}}]\n"
    "resources: {cpus_per_trial: 1}\n"
)


def row(trial, status: str, m_ap: float | None, started: str, finished: str) -> dict:
    return {
        "study": "s",
        "trial_id": trial.config_hash,
        "config_hash": trial.config_hash,
        "variant": trial.variant,
        "seed": trial.seed,
        "status": status,
        "mAP": m_ap,
        "started_at": started,
        "finished_at": finished,
    }


@pytest.fixture
def study(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("REID_ORCH_NUM_CPUS", "2")  # two trials at a time
    study_dir = tmp_path / "studies" / "s"
    store = ResultStore(str(tmp_path / "store"))
    store.check_writable()
    record_launch(study_dir, SPEC, store_uri=store.uri, tracking_uri=f"sqlite:///{tmp_path / 'no-mlflow.db'}", address=None)
    trials = {(t.variant, t.seed): t for t in load_spec(study_dir / SPEC_COPY).trials}
    return store, trials, study_dir


def status_of(*args: str) -> str:
    result = CliRunner().invoke(app, ["status", "s", *args])
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_best_so_far_is_the_highest_completed_latest_row_and_time_left_follows_durations(study):
    store, trials, _ = study
    writes = [
        # a seed 0: done in 100 s, mAP 42%
        row(trials["a", 0], "completed", 0.42, "2026-01-01T00:00:00+00:00", "2026-01-01T00:01:40+00:00"),
        # b seed 1: first run 90% (older), rerun with --force to 61% (newer: it counts), 300 s
        row(trials["b", 1], "completed", 0.90, "2026-01-01T00:00:00+00:00", "2026-01-01T00:05:00+00:00"),
        row(trials["b", 1], "completed", 0.61, "2026-01-02T00:00:00+00:00", "2026-01-02T00:05:00+00:00"),
        # c seed 0 failed with a high number reported before it diverged: never the best; 500 s
        row(trials["c", 0], "failed", 0.95, "2026-01-01T00:00:00+00:00", "2026-01-01T00:08:20+00:00"),
    ]
    for index, values in enumerate(writes):
        store.write_trial("s", f"{values['trial_id']}-{index}", {"trials": [values]})
    out = status_of()
    assert "study 's': 6 trials planned" in out
    assert "done 2, running 0, failed 1, pruned 0, pending 3" in out
    assert "best mAP so far: 61.0% (b seed=1)" in out
    # Completed trials took 100 and 300 s (the failed one's 500 s is no estimate of a trial's
    # length); 3 pending at 2 at a time: 3 x 200 / 2 = 300 s.
    from orchestrator.status import study_status

    assert study_status(load_spec(study[2] / SPEC_COPY), store).seconds_left == pytest.approx(300.0)


def test_time_left_shows_while_a_driver_runs(study):
    from storage.lock import StudyLock

    store, trials, _ = study
    store.write_trial(
        "s", "x", {"trials": [row(trials["a", 0], "completed", 0.5, "2026-01-01T00:00:00+00:00", "2026-01-01T00:10:00+00:00")]}
    )
    lock = StudyLock(store.uri, "s", heartbeat_seconds=60)
    lock.acquire()
    try:
        out = status_of()
    finally:
        lock.release()
    # 5 pending x 600 s / 2 at a time = 1500 s
    assert "time left: about 25 min" in out


def test_an_edited_relaunch_counts_only_the_trials_the_spec_plans(study):
    store, trials, study_dir = study
    for (variant, seed), trial in trials.items():
        store.write_trial(
            "s", trial.config_hash, {"trials": [row(trial, "completed", 0.3, "2026-01-01T00:00:00+00:00", "2026-01-01T00:01:00+00:00")]}
        )
    # The spec is edited down to one variant and relaunched: 2 trials planned, 6 rows stored.
    edited = SPEC.replace(", {name: b, set: {model.neck: l2norm}}, {name: c, set: {train.lr: 0.001}}", "")
    record_launch(study_dir, edited, store_uri=store.uri, tracking_uri=f"sqlite:///{study_dir / 'x.db'}", address=None)
    out = status_of()
    assert "study 's': 2 trials planned" in out
    assert "done 2, running 0, failed 0, pruned 0, pending 0" in out
    assert "(and 4 stored trial(s) of configs the spec no longer plans, not counted)" in out
    assert "finished" in out


def silent_server() -> tuple[socket.socket, threading.Event]:
    """A TCP server that accepts connections and never answers (a hung or firewalled server)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    stop = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue
        for connection in held:
            connection.close()

    threading.Thread(target=accept, daemon=True).start()
    return server, stop


def test_status_with_a_tracking_server_that_never_answers_ends_in_seconds(study):
    server, stop = silent_server()
    try:
        port = server.getsockname()[1]
        started = time.monotonic()
        out = status_of("--tracking-uri", f"http://127.0.0.1:{port}")
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        server.close()
    assert f"(MLflow at http://127.0.0.1:{port} not readable" in out and "running trials unknown" in out
    assert "6 trials planned" in out
    assert elapsed < 30  # one 5 s request, no retries (MLflow's defaults: minutes)


def test_status_with_nothing_listening_at_the_tracking_address_ends_in_seconds(study):
    from tests.fixtures_s3 import free_port

    port = free_port()
    started = time.monotonic()
    out = status_of("--tracking-uri", f"http://127.0.0.1:{port}")
    assert f"(MLflow at http://127.0.0.1:{port} not readable" in out
    assert time.monotonic() - started < 20

"""The study lock: one live driver per study, on a local folder and on S3 (moto), with stale-lock
takeover after a crash (old heartbeat, or a dead pid on this host)."""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import sys
import threading
import time

import pytest

from storage.lock import LOCK_FOLDER, LockHeldError, LockHolder, StudyLock


def old_holder(*, host: str, pid: int, age_seconds: float, heartbeat_seconds: float = 15.0) -> bytes:
    beat = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=age_seconds)).isoformat(timespec="seconds")
    return LockHolder("dead-token", host, pid, "2026-11-30T01:02:03+00:00", beat, heartbeat_seconds).to_json()


def finished_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture(params=["local", "s3"])
def store_uri(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "results")
    bucket = request.getfixturevalue("s3_bucket")
    return f"s3://{bucket}/studies/results"


def write_raw(store_uri: str, study: str, body: bytes) -> None:
    if store_uri.startswith("s3://"):
        lock = StudyLock(store_uri, study)
        lock.backend.client.put_object(Bucket=lock.backend.bucket, Key=lock.backend.key(f"{study}.json"), Body=body)
    else:
        from pathlib import Path

        path = Path(store_uri) / LOCK_FOLDER / f"{study}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)


def test_a_second_driver_is_refused_naming_the_first(store_uri):
    first = StudyLock(store_uri, "s", heartbeat_seconds=30)
    holder = first.acquire()
    try:
        with pytest.raises(LockHeldError) as caught:
            StudyLock(store_uri, "s").acquire()
        message = str(caught.value)
        assert f"pid {holder.pid} on host {socket.gethostname()}" in message and holder.started_at in message
        assert "orchestrator resume s" in message
        # Another study in the same store is not blocked.
        with StudyLock(store_uri, "other"):
            pass
    finally:
        first.release()
    assert StudyLock(store_uri, "s").read() is None
    with StudyLock(store_uri, "s") as again:  # free again after release
        assert again.read().token == again.holder.token


@pytest.mark.parametrize("round_", range(4))
def test_racing_drivers_get_exactly_one_lock(store_uri, round_):
    # Several rounds: a lock created empty and written afterwards let a racer read it empty, take
    # it for a dead driver's and move it aside, so two drivers held it (seen under load).
    winners, losers = [], []
    drivers = 6 if store_uri.startswith("s3://") else 12

    def try_lock():
        lock = StudyLock(store_uri, f"race-{round_}", heartbeat_seconds=30)
        try:
            lock.acquire()
            winners.append(lock)
        except LockHeldError:
            losers.append(lock)

    threads = [threading.Thread(target=try_lock) for _ in range(drivers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1 and len(losers) == drivers - 1
    winners[0].release()


def test_a_lock_with_an_old_heartbeat_is_taken_over_with_a_warning(store_uri):
    write_raw(store_uri, "s", old_holder(host="gone-node", pid=4242, age_seconds=3600))
    warnings: list[str] = []
    lock = StudyLock(store_uri, "s", warn=warnings.append, heartbeat_seconds=30)
    lock.acquire()
    try:
        assert lock.read().token == lock.holder.token
        assert len(warnings) == 1 and "pid 4242 on host gone-node" in warnings[0] and "heartbeat" in warnings[0]
    finally:
        lock.release()


def test_a_fresh_lock_of_a_dead_pid_on_this_host_is_taken_over(store_uri):
    pid = finished_pid()
    write_raw(store_uri, "s", old_holder(host=socket.gethostname(), pid=pid, age_seconds=1))
    warnings: list[str] = []
    with StudyLock(store_uri, "s", warn=warnings.append) as lock:
        assert lock.read().pid != pid
    assert len(warnings) == 1 and f"process {pid} on this host is gone" in warnings[0]


def test_a_fresh_lock_on_another_host_is_respected(store_uri):
    write_raw(store_uri, "s", old_holder(host="other-node", pid=1, age_seconds=5))
    with pytest.raises(LockHeldError, match="pid 1 on host other-node"):
        StudyLock(store_uri, "s").acquire()


def test_the_heartbeat_is_refreshed_while_held(store_uri):
    lock = StudyLock(store_uri, "s", heartbeat_seconds=0.5)
    lock.acquire()
    try:
        first = lock.read()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and lock.read().heartbeat_at == first.heartbeat_at:
            time.sleep(0.2)
        later = lock.read()
        assert later.heartbeat_at > first.heartbeat_at and later.token == first.token and not lock.lost
    finally:
        lock.release()


def test_a_driver_whose_lock_was_taken_over_notices(store_uri):
    uri = store_uri
    warnings: list[str] = []
    lock = StudyLock(uri, "s", heartbeat_seconds=3600, warn=warnings.append)
    lock.acquire()
    write_raw(uri, "s", old_holder(host="elsewhere", pid=7, age_seconds=0))
    lock.refresh()
    assert lock.lost and "taken over" in warnings[-1]
    lock.release()  # must not delete the new holder's lock
    assert StudyLock(uri, "s").read().host == "elsewhere"


def test_s3_conditional_create_is_honoured_by_the_server(s3_bucket):
    """The lock relies on If-None-Match: * (create-then-verify covers servers without it)."""
    import botocore.exceptions

    lock = StudyLock(f"s3://{s3_bucket}/r", "s")
    client, key = lock.backend.client, lock.backend.key("probe")
    client.put_object(Bucket=s3_bucket, Key=key, Body=b"1", IfNoneMatch="*")
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.put_object(Bucket=s3_bucket, Key=key, Body=b"2", IfNoneMatch="*")
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412

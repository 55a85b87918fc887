"""A real S3-speaking server for tests: ``moto_server`` on 127.0.0.1, started and stopped here.

Import the fixtures into a package's ``conftest.py``::

    from tests.fixtures_s3 import moto_endpoint, s3_bucket, s3_env  # noqa: F401

Credentials are dummies set for the test only; ``SECRET`` lets a test check that no message
ever shows it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

KEY_ID = "AKIATESTKEYID0000000"
SECRET = "test-secret-9f3c2b-never-print-me"
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, timeout: float, process: subprocess.Popen | None = None) -> None:
    """Poll ``url`` until it answers (any HTTP status) or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server for {url} exited with status {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - a recycled id owned by someone else
        return False
    return True


def stop_process_group(process: subprocess.Popen, grace: float = 5.0) -> None:
    """Stop every process of the group ``process`` leads (it was started with
    start_new_session): SIGTERM, then SIGKILL whatever is left after ``grace`` seconds."""
    pgid = process.pid
    if _group_alive(pgid):
        os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            process.poll()  # reap the leader so it does not linger as a zombie of the group
            if not _group_alive(pgid):
                break
            time.sleep(0.1)
        else:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:  # pragma: no cover
        pass


def _moto_command() -> list[str]:
    exe = Path(sys.executable).with_name("moto_server")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("moto_server")
    return [found] if found else [sys.executable, "-m", "moto.server"]


@contextmanager
def running_moto_server(log_path: Path) -> Iterator[str]:
    """Start ``moto_server -H 127.0.0.1 -p PORT`` in its own process group; yield its URL."""
    port = free_port()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [*_moto_command(), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for_http(url, timeout=60, process=process)
            yield url
        finally:
            stop_process_group(process)


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory) -> Iterator[str]:
    """URL of a moto S3 server on 127.0.0.1, shared by the tests of one package."""
    pytest.importorskip("moto.server", reason="needs moto[server] (pip install -e '.[test]')")
    log = tmp_path_factory.mktemp("moto") / "moto_server.log"
    with running_moto_server(log) as url:
        yield url


def s3_environment(endpoint: str) -> dict[str, str]:
    """The environment a process needs to use the test server (dummy credentials)."""
    return {
        "AWS_ACCESS_KEY_ID": KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@pytest.fixture
def s3_env(moto_endpoint, monkeypatch) -> dict[str, str]:
    """Point boto3 and pyarrow at the test server for this test only."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    env = s3_environment(moto_endpoint)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def boto3_client(endpoint: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET, region_name=REGION)


@pytest.fixture
def s3_bucket(s3_env) -> str:
    """A fresh, empty bucket on the test server."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    boto3_client(s3_env["AWS_ENDPOINT_URL_S3"]).create_bucket(Bucket=name)
    return name

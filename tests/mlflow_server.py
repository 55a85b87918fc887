"""``mlflow server`` on 127.0.0.1 for the tests that need a real tracking server."""

from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

from tests.fixtures_s3 import free_port, stop_process_group, wait_for_http


@contextmanager
def running_mlflow_server(folder: Path, artifacts: str, env: Mapping[str, str]) -> Iterator[int]:
    """An MLflow server with its SQLite store in ``folder`` and its artifacts at ``artifacts``
    (a folder or an ``s3://`` URI); yields its port once ``/health`` answers. One worker and no
    GenAI job runner (a dozen helper processes) on a two-core test machine; the server runs in
    its own process group, stopped whole afterwards. Its output goes to ``folder/server.log``."""
    port = free_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    command = [
        str(mlflow) if mlflow.exists() else "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{folder / 'mlflow.db'}",
        "--artifacts-destination",
        artifacts,
        "--workers",
        "1",
    ]
    env = {**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    with open(folder / "server.log", "wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=folder, env=env, start_new_session=True)
        try:
            wait_for_http(f"http://127.0.0.1:{port}/health", timeout=120, process=server)
            yield port
        finally:
            stop_process_group(server)

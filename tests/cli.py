"""Run the real ``orchestrator`` command as a subprocess, the way a user does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXE = Path(sys.executable).with_name("orchestrator")


def orchestrator_env(**extra: str) -> dict[str, str]:
    """The test's environment for the command: two Ray CPUs, unbuffered, no inherited MLflow URI."""
    env = {**os.environ, "REID_ORCH_NUM_CPUS": "2", "PYTHONUNBUFFERED": "1", "COLUMNS": "200", **extra}
    if "MLFLOW_TRACKING_URI" not in extra:
        env.pop("MLFLOW_TRACKING_URI", None)
    return env


def run_orchestrator(*args: str, cwd: Path, timeout: float = 900, **env: str) -> subprocess.CompletedProcess:
    command = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "orchestrator.cli"]
    return subprocess.run([*command, *args], capture_output=True, text=True, cwd=cwd, env=orchestrator_env(**env), timeout=timeout)

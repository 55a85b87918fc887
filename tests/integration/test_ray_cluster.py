"""``launch --address`` on a real two-node Ray cluster started on this machine."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli import run_orchestrator

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def two_node_cluster():
    import shutil
    import tempfile

    port = free_port()
    # Short: Ray's unix sockets live under the temp dir and socket paths are limited to 107 bytes.
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]
    head = [str(BIN / "ray"), "start", "--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp_dir}", *common]
    started = subprocess.run(head, env=env, capture_output=True, text=True, timeout=180)
    assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
    try:
        worker = [str(BIN / "ray"), "start", f"--address=127.0.0.1:{port}", *common]
        subprocess.run(worker, check=True, env=env, capture_output=True, timeout=180)
        yield f"127.0.0.1:{port}", env
    finally:
        stop_cluster(f"127.0.0.1:{port}", temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def stop_cluster(gcs_address: str, temp_dir: str) -> None:
    """Kill only this cluster's processes (``ray stop`` would stop every Ray on the machine)."""
    import signal
    import time

    for _ in range(3):
        victims = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if gcs_address in cmdline or temp_dir in cmdline:
                victims.append(int(proc.name))
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not victims:
            return
        time.sleep(1)


def test_plugin_study_lands_on_both_nodes_and_results_on_shared_storage(two_node_cluster, tiny_market, tmp_path):
    """The example plugin study (examples/plugins/): the squeeze-excitation plugin reaches the
    workers of both nodes through Ray's runtime environment (its staged sources are the only
    place a worker looks for it)."""
    from storage import ResultStore
    from tests.integration.test_plugin_study import example_study

    address, _ = two_node_cluster
    shared = tmp_path / "shared-results"  # stands in for S3 or a shared filesystem
    study_dir = tmp_path / "spec"
    study_dir.mkdir()
    spec = example_study(study_dir, tiny_market)
    spec.write_text(spec.read_text(encoding="utf-8").replace("output: {checkpoints: checkpoints}", f'output: {{store: "{shared}"}}'), encoding="utf-8")
    # A trial no node of this cluster can hold is refused before anything is submitted.
    greedy = study_dir / "greedy.yaml"  # beside the plugin it names
    text = spec.read_text(encoding="utf-8")
    assert "\n  cpus_per_trial: 1\n" in text
    greedy.write_text(text.replace("\n  cpus_per_trial: 1\n", "\n  cpus_per_trial: 1\n  gpus_per_trial: 1\n"), encoding="utf-8")
    refused = run_orchestrator("launch", str(greedy), "--address", address, cwd=tmp_path, timeout=300, RAY_AUTH_MODE="token")
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert refused.returncode == 2 and len(errors) == 1, refused.stdout[-3000:] + refused.stderr[-3000:]
    assert "resources.gpus_per_trial: a trial asks for 1 CPU and 1 GPU, more than any of the nodes of the cluster has (1 CPU / 0 GPU)" in errors[0]
    assert not (tmp_path / "studies").exists() and not shared.exists()

    result = run_orchestrator("launch", str(spec), "--address", address, cwd=tmp_path, timeout=600, RAY_AUTH_MODE="token")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"connecting to Ray at {address}" in result.stdout
    rows = ResultStore(str(shared)).read_rows("trials", "se_placement")
    assert len(rows) == 4 and all(r["status"] == "completed" for r in rows), [r.get("error") for r in rows]
    assert sorted(r.get("cfg.model.se.stages") or "off" for r in rows) == ["[1]", "[2]", "[3]", "off"]
    assert len({r["cfg.plugins.se_block"] for r in rows if r.get("cfg.model.se.stages")}) == 1
    assert len({r["node_id"] for r in rows}) == 2, "trials should run on both nodes"

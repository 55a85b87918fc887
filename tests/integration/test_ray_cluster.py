"""``launch --address`` on a real two-node Ray cluster started on this machine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.cli import run_orchestrator
from tests.fixtures_s3 import free_port

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent


@dataclass
class LocalCluster:
    """A Ray cluster of two nodes on this machine; each node's processes form one process group
    (its ``ray start`` ran in a session of its own), so one node can be killed alone."""

    address: str
    env: dict[str, str]
    temp_dir: str
    groups: list[int] = field(default_factory=list)  # head first

    def kill_worker(self) -> None:
        """The worker node dies at once, as a lost machine or an evicted pod does: its raylet,
        agents and the trial workers it started, without warning."""
        group = self.groups[1]
        # Ray's workers run in sessions of their own: found by the raylet that started them.
        raylets = {pid for pid in _pids() if _pgid(pid) == group and b"raylet" in _read(pid, "cmdline")}
        workers = {pid for pid in _pids() if any(f"RAY_RAYLET_PID={r}\0".encode() in _read(pid, "environ") for r in raylets)}
        os.killpg(group, signal.SIGKILL)
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and int(p.name) != os.getpid()]


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _read(pid: int, name: str) -> bytes:
    try:
        return (Path("/proc") / str(pid) / name).read_bytes()
    except OSError:
        return b""


@pytest.fixture()
def two_node_cluster():
    import shutil
    import tempfile

    port = free_port()
    # Short: Ray's unix sockets live under the temp dir and socket paths are limited to 107 bytes.
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]
    cluster = LocalCluster(f"127.0.0.1:{port}", env, temp_dir)
    head = [str(BIN / "ray"), "start", "--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp_dir}", *common]
    try:
        started = subprocess.Popen(head, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        cluster.groups.append(started.pid)
        output, _ = started.communicate(timeout=180)
        assert started.returncode == 0, output[-3000:]
        # --block: `ray start` stays the leader of the worker node's process group.
        worker = [str(BIN / "ray"), "start", f"--address={cluster.address}", "--block", *common]
        node = subprocess.Popen(worker, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        cluster.groups.append(node.pid)
        wait_for_nodes(cluster, 2, timeout=180)
        yield cluster
    finally:
        stop_cluster(cluster.address, temp_dir, cluster.groups)
        shutil.rmtree(temp_dir, ignore_errors=True)


def wait_for_nodes(cluster: LocalCluster, count: int, timeout: float) -> None:
    """Until ``ray status`` lists ``count`` live nodes (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        status = subprocess.run(
            [str(BIN / "ray"), "status", f"--address={cluster.address}"], env=cluster.env, capture_output=True, text=True, timeout=60
        )
        alive = status.stdout.split("Pending:")[0].count("node_")
        if status.returncode == 0 and alive >= count:
            return
        assert time.monotonic() < deadline, (
            f"{alive} of {count} Ray nodes up after {timeout:.0f}s: {status.stdout[-1500:]}{status.stderr[-1500:]}"
        )
        time.sleep(1)


def stop_cluster(gcs_address: str, temp_dir: str, groups: list[int] = ()) -> None:
    """Kill only this cluster's processes (``ray stop`` would stop every Ray on the machine):
    its nodes' process groups, then anything else naming its address or temp dir."""
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
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

    address = two_node_cluster.address
    shared = tmp_path / "shared-results"  # stands in for S3 or a shared filesystem
    study_dir = tmp_path / "spec"
    study_dir.mkdir()
    spec = example_study(study_dir, tiny_market)
    spec.write_text(
        spec.read_text(encoding="utf-8").replace("output: {checkpoints: checkpoints}", f'output: {{store: "{shared}"}}'), encoding="utf-8"
    )
    # A trial no node of this cluster can hold is refused before anything is submitted.
    greedy = study_dir / "greedy.yaml"  # beside the plugin it names
    text = spec.read_text(encoding="utf-8")
    assert "\n  cpus_per_trial: 1\n" in text
    greedy.write_text(text.replace("\n  cpus_per_trial: 1\n", "\n  cpus_per_trial: 1\n  gpus_per_trial: 1\n"), encoding="utf-8")
    refused = run_orchestrator("launch", str(greedy), "--address", address, cwd=tmp_path, timeout=300, RAY_AUTH_MODE="token")
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert refused.returncode == 2 and len(errors) == 1, refused.stdout[-3000:] + refused.stderr[-3000:]
    assert (
        "resources.gpus_per_trial: a trial asks for 1 CPU and 1 GPU, more than any of the nodes of the cluster has (1 CPU / 0 GPU)"
        in errors[0]
    )
    assert not (tmp_path / "studies").exists() and not shared.exists()

    result = run_orchestrator("launch", str(spec), "--address", address, cwd=tmp_path, timeout=600, RAY_AUTH_MODE="token")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"connecting to Ray at {address}" in result.stdout
    rows = ResultStore(str(shared)).read_rows("trials", "se_placement")
    assert len(rows) == 4 and all(r["status"] == "completed" for r in rows), [r.get("error") for r in rows]
    assert sorted(r.get("cfg.model.se.stages") or "off" for r in rows) == ["[1]", "[2]", "[3]", "off"]
    assert len({r["cfg.plugins.se_block"] for r in rows if r.get("cfg.model.se.stages")}) == 1
    assert len({r["node_id"] for r in rows}) == 2, "trials should run on both nodes"


@pytest.mark.slow
def test_a_trial_whose_node_dies_finishes_on_the_other_node_from_its_checkpoint(two_node_cluster, tiny_market, tmp_path):
    """Two trials, one per node (each node has one CPU, each trial needs one); once both have
    checkpointed, the worker node is killed. Its trial starts again on the head node from its
    last checkpoint (re-running at most ``checkpoint_every`` epochs) and the study records each
    trial once: one Parquet row, one curve row per epoch, one MLflow run with each step once."""
    from mlflow.tracking import MlflowClient

    from storage import ResultStore
    from tests.cli import EXE, orchestrator_env

    every, epochs = 3, 12
    spec = tmp_path / "lost_node.yaml"
    spec.write_text(
        textwrap.dedent(
            f"""
            study: {{name: lost_node}}
            baseline:
              dataset: {{name: market1501, root: "{tiny_market}", height: 64, width: 32}}
              train: {{epochs: {epochs}, ids_per_batch: 4, images_per_id: 4, warmup_epochs: 0, lr_steps: [], eval_every: 6}}
            ablation: {{design: list, variants: [{{name: base}}], seeds: [0, 1]}}
            resources: {{cpus_per_trial: 1, max_concurrent_trials: 2, checkpoint_every: {every}}}
            """
        ),
        encoding="utf-8",
    )
    study_dir = tmp_path / "studies" / "lost_node"
    command = [str(EXE), "launch", str(spec), "--address", two_node_cluster.address]
    env = orchestrator_env(RAY_AUTH_MODE="token")
    log = tmp_path / "launch.log"  # a file, not a pipe: nothing reads it while the test waits
    with open(log, "w", encoding="utf-8") as sink:
        driver = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # Both trials running, checkpointed and an epoch past it (Tune's result.json has a line
        # per reported epoch), neither finished: one runs on each node, and the worker's
        # trial loses epochs with its node.
        deadline = time.monotonic() + 300
        while not both_checkpointed_and_past_it(study_dir, every):
            assert driver.poll() is None, log.read_text(encoding="utf-8")[-3000:]
            assert time.monotonic() < deadline, "the trials never checkpointed"
            time.sleep(0.2)
        assert not list(study_dir.glob("results/trials/lost_node/part-*.parquet")), "a trial finished before the kill"
        killed_at = time.monotonic()
        two_node_cluster.kill_worker()
        driver.wait(timeout=600)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait(timeout=60)
    output = log.read_text(encoding="utf-8")
    assert driver.returncode == 0, output[-4000:]
    retries = [line for line in output.splitlines() if "retrying base" in line]
    assert len(retries) == 1 and "from its checkpoint at epoch" in retries[0], output[-4000:]
    resumed_from = int(retries[0].split("from its checkpoint at epoch ")[1].split()[0])
    assert resumed_from >= every and resumed_from % every == 0

    store = ResultStore(str(study_dir / "results"))
    rows = store.read_rows("trials", "lost_node")
    assert sorted(r["seed"] for r in rows) == [0, 1] and all(r["status"] == "completed" for r in rows), rows
    rerun = sorted(int(r["epochs_rerun"]) for r in rows)
    assert rerun[0] == 0 and rerun[1] <= every, rerun  # at most N epochs trained again
    assert all(r["epochs_done"] == epochs for r in rows)
    assert len({r["node_id"] for r in rows}) == 1, "both trials should end on the surviving head node"
    curves = store.read_rows("curves", "lost_node")
    for seed in (0, 1):
        assert sorted(int(r["epoch"]) for r in curves if r["seed"] == seed) == list(range(1, epochs + 1))

    client = MlflowClient(tracking_uri=f"sqlite:///{study_dir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("lost_node")
    runs = [r for r in client.search_runs([experiment.experiment_id]) if r.data.tags.get("reid.role") == "trial"]
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    for run in runs:
        assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == list(range(1, epochs + 1))
    print(f"worker killed; study finished {time.monotonic() - killed_at:.0f}s later; resumed from epoch {resumed_from}, re-ran {rerun[1]}")


def both_checkpointed_and_past_it(study_dir: Path, every: int) -> bool:
    """Each of the two trial folders holds a checkpoint and more than ``every`` results. (Counted
    per folder: one trial may briefly hold two checkpoints, the next before the last is dropped,
    while the other has not started yet.)"""
    trials = [folder for folder in study_dir.glob("ray/*/*") if folder.is_dir()]
    return len(trials) == 2 and all(any(t.glob("checkpoint_*")) and reported(t / "result.json") > every for t in trials)


def reported(result_json: Path) -> int:
    """Results Tune has recorded for a trial (one JSON line each)."""
    try:
        return len(result_json.read_text(encoding="utf-8").splitlines())
    except OSError:
        return 0

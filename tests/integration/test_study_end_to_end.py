"""A real 2-trial, 2-epoch study through the real CLI: Ray Tune, MLflow (SQLite), Parquet."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.cli import run_orchestrator

pytestmark = pytest.mark.integration

SECRETS = {"AWS_SECRET_ACCESS_KEY": "e2e-secret-key-value", "MLFLOW_TRACKING_PASSWORD": "e2e-mlflow-password"}


def orchestrator(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    # Credentials in the environment must never reach output, MLflow, Parquet or Ray's logs
    # (checked below).
    return run_orchestrator(*args, cwd=cwd, **SECRETS, **env)


@pytest.fixture(scope="module")
def finished_study(tiny_market, tiny_duke, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("study")
    spec = workdir / "study.yaml"
    spec.write_text(
        textwrap.dedent(
            f"""
            study:
              name: e2e
            baseline:
              dataset: {{name: market1501, root: "{tiny_market}", height: 64, width: 32}}
              model: {{backbone: resnet10t}}
              train: {{epochs: 2, ids_per_batch: 4, images_per_id: 4, warmup_epochs: 0, lr_steps: [], eval_every: 2}}
              eval: {{targets: [{{label: duke, name: dukemtmc, root: "{tiny_duke}"}}]}}
            ablation:
              design: one_at_a_time
              variants:
                - name: +erasing
                  set: {{augment.random_erasing.p: 0.5}}
              seeds: [0]
            resources: {{cpus_per_trial: 1}}
            output: {{checkpoints: checkpoints}}
            """
        ),
        encoding="utf-8",
    )
    # Ray's session folder (its logs) where the test can search it; a short path, as Ray's
    # sockets live there and a socket path may not exceed 107 characters. A command-line
    # override (not of the trial configs: the relaunch below runs nothing).
    ray_tmp = tmp_path_factory.mktemp("r")
    result = orchestrator("launch", str(spec), "resources.retries=1", cwd=workdir, RAY_TMPDIR=str(ray_tmp))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return workdir, spec, result, ray_tmp


def test_launch_prints_progress_and_the_ablation_table(finished_study):
    _, _, result, _ = finished_study
    out = result.stdout
    assert "2 trials planned, 0 already completed, 2 to run" in out
    assert out.count("finished ") == 2
    assert "| variant | seeds | params (M) | GMACs | rank-1 | mAP |" in out
    assert "| baseline | 1 |" in out and "| +erasing | 1 |" in out
    # Decoding is one line per dataset (the training set, the evaluation target); each trial
    # prints each epoch, its evaluation epoch with rank-1 and mAP.
    assert out.count("decoded ") == 2 and " images in " in out
    for label in ("baseline seed=0", "+erasing seed=0"):
        lines = [line for line in out.splitlines() if line.startswith(f"  {label} [") and " epoch " in line]
        assert [line.split(" epoch ")[1].split(":")[0] for line in lines] == ["1/2", "2/2"], lines
        assert "loss " in lines[0] and " img/s" in lines[0] and "rank-1 " in lines[1] and "study ~" in lines[0]
    # The closing lines name where everything went.
    workdir = finished_study[0]
    assert f"report:  {workdir / 'studies' / 'e2e' / 'report'}/" in out


def test_overrides_reach_the_study_folders_spec_copy_that_resume_reads(finished_study):
    from orchestrator.launch import load_for_resume
    from orchestrator.study_files import locate_study

    workdir, spec, _, _ = finished_study
    copy = workdir / "studies" / "e2e" / "spec.yaml"
    assert "resources.retries=1" in copy.read_text(encoding="utf-8").splitlines()[0]
    location = locate_study(str(workdir / "studies" / "e2e"))
    resumed = load_for_resume(location)
    assert resumed.spec.resources.retries == 1  # the file says nothing: the default is 2
    assert resumed.spec.baseline.train.epochs == 2 and resumed.name == "e2e"


def test_parquet_tables_hold_one_row_per_trial_camera_and_epoch(finished_study):
    import pyarrow.parquet as pq

    workdir, _, _, _ = finished_study
    results = workdir / "studies" / "e2e" / "results"
    trial_files = sorted((results / "trials" / "e2e").glob("part-*.parquet"))
    assert len(trial_files) == 2  # one part file per finished trial
    trials = [pq.read_table(f).to_pylist()[0] for f in trial_files]
    assert {t["variant"] for t in trials} == {"baseline", "+erasing"}
    for t in trials:
        assert t["status"] == "completed" and t["error"] is None
        assert 0.0 <= t["mAP"] <= 1.0 and 0.0 <= t["rank1"] <= 1.0
        assert t["cfg.model.backbone"] == "resnet10t"
        assert t["num_valid_queries"] > 0
        assert 0.0 <= t["duke/mAP"] <= 1.0 and t["duke/mAP"] != t["mAP"]  # eval.targets, through Ray's object store
    erasing = next(t for t in trials if t["variant"] == "+erasing")
    assert erasing["cfg.augment.random_erasing.p"] == 0.5

    cameras = [row for f in (results / "cameras" / "e2e").glob("*.parquet") for row in pq.read_table(f).to_pylist()]
    assert {row["metric"] for row in cameras} >= {"q_mAP", "g_mAP"}
    assert {row["camera"] for row in cameras if row["metric"] == "q_mAP"} == set(range(1, 7))
    curves = [row for f in (results / "curves" / "e2e").glob("*.parquet") for row in pq.read_table(f).to_pylist()]
    assert sorted((row["variant"], row["epoch"]) for row in curves) == [("+erasing", 1), ("+erasing", 2), ("baseline", 1), ("baseline", 2)]
    for row in curves:  # evaluation metrics on the evaluation epoch only, none lost
        assert row["loss"] > 0
        assert (row["mAP"] is None) if row["epoch"] == 1 else (0.0 <= row["mAP"] <= 1.0)
    # No temporary file is left visible.
    assert not [p for p in results.rglob("*") if p.name.startswith(".tmp")]


def test_mlflow_has_a_parent_run_and_one_child_per_trial(finished_study):
    from mlflow.tracking import MlflowClient

    workdir, _, _, _ = finished_study
    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'studies' / 'e2e' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("e2e")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("reid.role") == "study"]
    children = [r for r in runs if r.data.tags.get("reid.role") == "trial"]
    assert len(parents) == 1 and len(children) == 2
    parent_id = parents[0].info.run_id
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent_id
        assert child.info.status == "FINISHED"
        assert child.data.params["model.backbone"] == "resnet10t"
        assert child.data.params["train.epochs"] == "2"
        metrics = child.data.metrics
        assert {"rank1", "rank5", "rank10", "mAP", "loss"} <= set(metrics)
        assert "cam/c01/q_mAP" in metrics and "cam/c06/g_mAP" in metrics
        assert "duke/cam/c08/q_mAP" in metrics and "duke/mAP" in metrics
        history = client.get_metric_history(child.info.run_id, "mAP")
        assert [m.step for m in history] == [2]
        assert [m.step for m in client.get_metric_history(child.info.run_id, "loss")] == [1, 2]
    artifacts = [a.path for a in client.list_artifacts(parent_id)]
    assert "ablation.md" in artifacts


def test_python_dash_m_trainables_reproduces_a_stored_trial_from_the_spec_and_its_hash(finished_study):
    # Alone, without Ray, with the threads the study's trials had (cpus_per_trial: 1), not
    # torch's default of one per core.
    import sys

    from storage import ResultStore

    workdir, spec, _, _ = finished_study
    row = next(
        r for r in ResultStore(str(workdir / "studies" / "e2e" / "results")).read_rows("trials", "e2e") if r["variant"] == "+erasing"
    )
    command = [sys.executable, "-m", "trainables", str(spec), "--hash", row["config_hash"][:12]]
    result = subprocess.run(command, capture_output=True, text=True, cwd=workdir, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith(f"trial +erasing seed=0 [{row['config_hash'][:8]}], 1 thread(s)")
    # To the last digit: the loss at two torch threads differs from one thread's in the 6th digit here.
    assert result.stdout.splitlines()[-1] == f"final: rank1={row['rank1']!r} mAP={row['mAP']!r} loss={row['loss']!r}", result.stdout[-500:]


def test_relaunch_runs_nothing_and_summarize_prints_the_same_table(finished_study):
    workdir, spec, first, _ = finished_study
    again = orchestrator("launch", str(spec), cwd=workdir)
    assert again.returncode == 0, again.stderr
    assert "2 already completed, 0 to run" in again.stdout
    summary = orchestrator("summarize", "e2e", cwd=workdir)
    assert summary.returncode == 0, summary.stderr
    table = summary.stdout.strip()
    assert table and table in first.stdout


def test_no_credential_reaches_output_mlflow_parquet_or_ray_logs(finished_study):
    workdir, _, result, ray_tmp = finished_study
    study_dir = workdir / "studies" / "e2e"
    # Ray Tune would copy AWS_SECRET_ACCESS_KEY into the trials' runtime environment, which
    # Ray's runtime-env agent logs in clear.
    assert list(ray_tmp.glob("ray/session_*/logs/runtime_env_agent.log"))
    haystacks = [result.stdout, result.stderr]
    for path in [*study_dir.rglob("*"), *ray_tmp.rglob("*")]:
        if path.is_file() and not path.is_symlink():
            haystacks.append(path.read_bytes().decode("latin-1"))
    for secret in SECRETS.values():
        assert not any(secret in text for text in haystacks), f"{secret} leaked"


def test_each_trial_saves_a_checkpoint_that_reloads_strictly(finished_study):
    from trainables.models.checkpoint import load_checkpoint
    from storage import ResultStore

    workdir, _, _, _ = finished_study
    rows = ResultStore(str(workdir / "studies" / "e2e" / "results")).read_rows("trials", "e2e")
    for row in rows:
        model, kwargs = load_checkpoint(workdir / "checkpoints" / f"{row['config_hash']}.pt")
        assert kwargs["backbone"] == "resnet10t" and model.classifier.out_features > 0

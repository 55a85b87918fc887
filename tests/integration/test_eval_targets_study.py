"""A real study with an evaluation target (``eval.targets``): train on one tiny synthetic
dataset (6 cameras), test every trial on another (8 cameras, generated from another seed).
Ray Tune, MLflow (SQLite) and Parquet as a user runs them, through the real CLI."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.cli import run_orchestrator

# ~40-90 s on 2 cores (4 trials): the slow suite; test_study_end_to_end runs a target in the fast one.
pytestmark = [pytest.mark.integration, pytest.mark.slow]

STUDY = "transfer"


@pytest.fixture(scope="module")
def finished_study(tiny_market, tiny_duke, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("transfer")
    spec = workdir / "study.yaml"
    spec.write_text(
        textwrap.dedent(
            f"""
            study:
              name: {STUDY}
            baseline:
              dataset: {{name: market1501, root: "{tiny_market}", height: 64, width: 32}}
              model: {{backbone: resnet10t}}
              train: {{epochs: 1, ids_per_batch: 4, images_per_id: 4, warmup_epochs: 0, lr_steps: [], eval_every: 1}}
              eval:
                targets: [{{label: duke, name: dukemtmc, root: "{tiny_duke}"}}]
            ablation:
              design: one_at_a_time
              variants:
                - name: +erasing
                  set: {{augment.random_erasing.p: 0.5}}
              seeds: [0, 1]
            resources: {{cpus_per_trial: 1, checkpoint_every: 0}}
            output: {{checkpoints: checkpoints}}
            report:
              metrics: [rank1, mAP, duke/rank1, duke/mAP, duke/weakest_q_mAP]
            """
        ),
        encoding="utf-8",
    )
    result = run_orchestrator("launch", str(spec), cwd=workdir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return workdir, result


def _rows(workdir: Path, table: str) -> list[dict]:
    from storage import ResultStore

    return ResultStore(str(workdir / "studies" / STUDY / "results")).read_rows(table, STUDY)


def test_the_driver_decodes_the_target_once(finished_study):
    _, result = finished_study
    assert result.stdout.count("decoding evaluation target 'duke'") == 1


def test_trial_rows_camera_rows_and_mlflow_carry_the_targets_metrics(finished_study, tiny_duke):
    from mlflow.tracking import MlflowClient

    workdir, _ = finished_study
    trials = _rows(workdir, "trials")
    assert len(trials) == 4 and {t["status"] for t in trials} == {"completed"}
    cameras = _rows(workdir, "cameras")
    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'studies' / STUDY / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name(STUDY).experiment_id], "tags.`reid.role` = 'trial'")
    by_hash = {run.data.tags["reid.config_hash"]: run for run in runs}
    for trial in trials:
        run = by_hash[trial["config_hash"]]
        mlflow = run.data.metrics
        for metric in ("rank1", "mAP", "mINP", "lowest_q_mAP", "avg_g_mAP", "num_valid_queries"):
            assert trial[f"duke/{metric}"] == pytest.approx(mlflow[f"duke/{metric}"])
        assert trial["duke/num_valid_queries"] == 8 * 4  # 8 test ids, each seen by 4 of the 8 cameras: one query per camera
        assert trial["duke/mAP"] != trial["mAP"]
        mine = {(row["camera"], row["metric"]): row["value"] for row in cameras if row["config_hash"] == trial["config_hash"]}
        # The target's own camera ids (8), beside the training dataset's 6.
        assert {c for c, m in mine if m == "duke/q_mAP"} == set(range(1, 9))
        assert {c for c, m in mine if m == "q_mAP"} == set(range(1, 7))
        assert {m for _, m in mine} == {"q_mAP", "g_mAP", "rank1", "duke/q_mAP", "duke/g_mAP", "duke/rank1"}
        for camera in range(1, 9):
            assert mine[(camera, "duke/q_mAP")] == pytest.approx(mlflow[f"duke/cam/c{camera:02d}/q_mAP"])
            assert mine[(camera, "duke/g_mAP")] == pytest.approx(mlflow[f"duke/cam/c{camera:02d}/g_mAP"])
        assert not any(key.startswith("duke/cam/") for key in trial)  # per-camera values live in the cameras table
        # Only the final evaluation asks the target: one MLflow step, the last epoch.
        assert [m.step for m in client.get_metric_history(run.info.run_id, "duke/mAP")] == [1]


def test_the_stored_values_are_the_model_evaluated_on_the_target_directly(finished_study, tiny_duke):
    import torch

    from search_spaces.trial_config import DatasetConfig
    from trainables.data.datasets import load_reid_data
    from trainables.engine_hooks import Evaluator
    from trainables.models.checkpoint import load_checkpoint

    workdir, _ = finished_study
    trial = next(t for t in _rows(workdir, "trials") if t["variant"] == "+erasing")
    model, _ = load_checkpoint(workdir / "checkpoints" / f"{trial['config_hash']}.pt")
    duke = load_reid_data(DatasetConfig(name="dukemtmc", root=str(tiny_duke), height=64, width=32))
    direct = Evaluator(duke, torch.device("cpu"))(model)
    for metric in ("rank1", "rank5", "mAP", "mINP", "avg_q_mAP", "lowest_q_mAP"):
        assert trial[f"duke/{metric}"] == pytest.approx(direct[metric], abs=1e-6)


def test_summarize_shows_the_target_columns_with_paired_effects(finished_study):
    workdir, launched = finished_study
    result = run_orchestrator("summarize", STUDY, cwd=workdir)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("| variant"))
    columns = [cell.strip() for cell in header.strip("|").split("|")]
    # variant, seeds, the model's size, then the spec's columns
    assert columns[2:4] == ["params (M)", "GMACs"]
    assert columns[4:8] == ["rank-1", "mAP", "duke rank-1", "duke mAP"]
    assert columns[8].startswith("duke weakest q-mAP (c")  # the target's own weakest camera, named
    erasing = next(line for line in lines if line.startswith("| +erasing"))
    cells = [cell.strip() for cell in erasing.strip("|").split("|")]
    for cell in cells[6:9]:  # the target's columns: mean, and the paired difference with its interval
        assert "(" in cell and "[" in cell and "]" in cell, cell
    assert result.stdout.strip() in launched.stdout

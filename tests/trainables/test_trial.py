"""The trial loop alone, without Ray: a plain function call and ``python -m trainables``."""

from __future__ import annotations

import subprocess
import sys

import pytest

from search_spaces import TrialConfig
from trainables.data.datasets import load_reid_data
from trainables.trial import NonFiniteLossError, RuntimeOptions, metrics_for_report, run_trial


def tiny_config(root, **train) -> TrialConfig:
    return TrialConfig.model_validate(
        {
            "dataset": {"name": "market1501", "root": str(root), "height": 64, "width": 32},
            "train": {"epochs": 2, "ids_per_batch": 4, "images_per_id": 4, "warmup_epochs": 0, "lr_steps": [], "eval_every": 1, **train},
        }
    )


def test_run_trial_reports_every_epoch_with_evaluation_metrics(tiny_market):
    config = tiny_config(tiny_market)
    reports: list[dict] = []
    final = run_trial(config, load_reid_data(config.dataset), report=reports.append, runtime=RuntimeOptions(threads=1))
    assert [r["epoch"] for r in reports] == [1, 2]
    assert final is reports[-1]
    for key in ("loss", "loss_id", "loss_triplet", "lr", "rank1", "rank5", "mAP", "mINP", "eval_seconds", "num_valid_queries"):
        assert key in final
    assert 0 <= final["mAP"] <= 1
    cameras = {k for k in final if k.startswith("cam/")}
    assert {"cam/c01/q_mAP", "cam/c01/g_mAP", "cam/c01/rank1"} <= cameras
    assert final["lowest_q_mAP"] <= final["avg_q_mAP"]


def test_same_seed_same_result(tiny_market):
    config = tiny_config(tiny_market, epochs=1)
    data = load_reid_data(config.dataset)
    a = run_trial(config, data, report=lambda m: None, runtime=RuntimeOptions(threads=1))
    b = run_trial(config, data, report=lambda m: None, runtime=RuntimeOptions(threads=1))
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-5) and a["mAP"] == pytest.approx(b["mAP"], abs=1e-6)


def test_a_diverging_loss_fails_the_trial(tiny_market):
    config = tiny_config(tiny_market, epochs=3, lr=1e6, optimizer="sgd")
    with pytest.raises(NonFiniteLossError, match="loss became"):
        run_trial(config, report=lambda m: None, runtime=RuntimeOptions(threads=1))


def test_metrics_for_report_flattens_camera_dicts():
    flat = metrics_for_report({"mAP": 0.5, "q_mAP": {1: 0.4, 12: 0.6}, "q_rank1": {3: 1.0}, "cmc": [1, 2], "lowest_q_mAP_camera": 1})
    assert flat == {"mAP": 0.5, "cam/c01/q_mAP": 0.4, "cam/c12/q_mAP": 0.6, "cam/c03/rank1": 1.0, "lowest_q_mAP_camera": 1.0}


def test_python_dash_m_trainables_runs_a_trial_file(tiny_market, tmp_path):
    trial = tmp_path / "trial.yaml"
    trial.write_text(
        f"dataset: {{name: market1501, root: '{tiny_market}', height: 64, width: 32}}\n"
        "train: {epochs: 1, ids_per_batch: 4, images_per_id: 4, warmup_epochs: 0, lr_steps: []}\n",
        encoding="utf-8",
    )
    result = subprocess.run([sys.executable, "-m", "trainables", str(trial), "--threads", "1"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "epoch=1" in result.stdout and "mAP=" in result.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {epochs: zero}\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "trainables", str(bad)], capture_output=True, text=True)
    assert result.returncode == 2 and "train.epochs" in result.stderr


def test_a_trial_with_apra_and_dranet_trains_on_camera_ids(tiny_market):
    config = TrialConfig.model_validate(
        {
            "dataset": {"name": "market1501", "root": str(tiny_market), "height": 64, "width": 32},
            "model": {"apra": {"stages": [1], "lam": 0.1}, "dranet": {"rcam": True, "rsam": True, "stage": 3}},
            "loss": {"triplet": {"kind": "batch_soft", "soft_margin": True}},
            "train": {"epochs": 1, "ids_per_batch": 4, "images_per_id": 4, "warmup_epochs": 0, "lr_steps": []},
        }
    )
    final = run_trial(config, load_reid_data(config.dataset), report=lambda m: None, runtime=RuntimeOptions(threads=1))
    assert {"loss_camera", "loss_hard", "loss_triplet", "mAP"} <= set(final)
    # six cameras in the tiny dataset: an untrained camera classifier starts near ln(6)
    assert 0.5 < final["loss_camera"] < 5.0

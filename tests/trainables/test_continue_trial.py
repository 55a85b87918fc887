"""A trial that continues its parent's final model (``train.init_from``; Robust-ReID Table 3):
it loads the parent's checkpoint strictly and runs only the SWA/SWAG cycles, numbered on."""

from __future__ import annotations

import math

import pytest
import torch

from search_spaces import TrialConfig
from search_spaces.hashing import config_hash
from trainables.data.datasets import load_reid_data
from trainables.models import load_checkpoint
from trainables.trial import RuntimeOptions, build_trainer, learning_rates, run_trial

TRAIN = {"epochs": 2, "ids_per_batch": 4, "images_per_id": 4, "warmup_epochs": 0, "lr_steps": [], "eval_every": 10}
CYCLES = {"enabled": True, "average": False, "cycles": 2, "cycle_epochs": 1, "decay": 0.5, "lr": 1e-3}


def configs(tiny_market, **model):
    dataset = {"name": "market1501", "root": str(tiny_market), "height": 64, "width": 32}
    parent = TrialConfig.model_validate({"dataset": dataset, "model": model, "train": TRAIN})
    child = TrialConfig.model_validate(
        {"dataset": dataset, "model": model, "train": {**TRAIN, "swa": CYCLES, "init_from": config_hash(parent)}}
    )
    return parent, child


def test_the_lr_plan_of_a_continued_trial_holds_only_its_cycles(tiny_market):
    parent, child = configs(tiny_market)
    plan = learning_rates(child).lrs
    assert len(plan) == 4 and all(math.isnan(lr) for lr in plan[:2])  # epochs 1-2 are the parent's
    assert plan[2:] == pytest.approx((1e-3, 5e-4))
    assert not any(math.isnan(lr) for lr in learning_rates(parent).lrs)


def test_a_continued_trial_starts_from_the_parents_weights_and_numbers_on(tiny_market, tmp_path):
    parent, child = configs(tiny_market)
    data = load_reid_data(parent.dataset)
    runtime = RuntimeOptions(threads=1, checkpoint_path=str(tmp_path / "{hash}.pt"))
    run_trial(parent, data, report=lambda metrics: None, runtime=runtime)
    saved, _ = load_checkpoint(tmp_path / f"{config_hash(parent)}.pt")

    trainer = build_trainer(child, data, report=lambda metrics: None, runtime=runtime)
    loaded = trainer.model.state_dict()
    for name, tensor in saved.state_dict().items():
        assert torch.equal(loaded[name].cpu(), tensor), name
    reports: list[dict] = []
    trainer.report = reports.append
    final = trainer.train()
    assert [r["epoch"] for r in reports] == [3, 4]  # the parent's epochs are not run again
    assert [r["lr"] for r in reports] == pytest.approx([1e-3, 5e-4])
    assert "mAP" in final
    assert (tmp_path / f"{config_hash(child)}.pt").is_file()


def test_a_missing_or_foreign_parent_checkpoint_is_a_clear_error(tiny_market, tmp_path):
    parent, child = configs(tiny_market)
    data = load_reid_data(parent.dataset)
    runtime = RuntimeOptions(threads=1, checkpoint_path=str(tmp_path / "{hash}.pt"))
    with pytest.raises(FileNotFoundError, match=f"train.init_from {config_hash(parent)}: the parent trial's checkpoint .* is missing"):
        build_trainer(child, data, runtime=runtime)
    with pytest.raises(ValueError, match="no checkpoint folder"):
        build_trainer(child, data, runtime=RuntimeOptions(threads=1))
    # A checkpoint of another architecture under the parent's hash: the strict load refuses it.
    other, _ = configs(tiny_market, neck="none")
    run_trial(other, data, report=lambda metrics: None, runtime=RuntimeOptions(threads=1, checkpoint_path=str(tmp_path / "other.pt")))
    (tmp_path / "other.pt").rename(tmp_path / f"{config_hash(parent)}.pt")
    with pytest.raises(ValueError, match="does not fit this trial's model"):
        build_trainer(child, data, runtime=runtime)

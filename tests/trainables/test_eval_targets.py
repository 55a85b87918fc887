"""A trial's evaluation targets (``eval.targets``): the trained model evaluated on another
dataset, exactly as evaluating that model on the dataset directly."""

from __future__ import annotations

import pytest
import torch

from search_spaces.trial_config import DatasetConfig, TrialConfig
from trainables.data.datasets import EvalSplits, eval_key, load_reid_data, load_targets
from trainables.data.errors import DatasetError
from trainables.engine_hooks import Evaluator
from trainables.trial import RuntimeOptions, build_trainer

TRAIN = {"epochs": 2, "ids_per_batch": 4, "images_per_id": 4, "warmup_epochs": 0, "lr_steps": [], "eval_every": 1}


def trial_config(market, duke, **overrides) -> TrialConfig:
    values = {
        "dataset": {"name": "market1501", "root": str(market), "height": 64, "width": 32},
        "model": {"backbone": "resnet10t"},
        "train": TRAIN,
        "eval": {"distance": "cosine", "max_rank": 10, "targets": [{"label": "duke", "name": "dukemtmc", "root": str(duke)}]},
    }
    for section, value in overrides.items():
        values[section] = {**values.get(section, {}), **value}
    return TrialConfig.model_validate(values)


def train(config: TrialConfig) -> tuple[list[dict], torch.nn.Module]:
    reports: list[dict] = []
    trainer = build_trainer(config, report=reports.append, runtime=RuntimeOptions(device="cpu", threads=1))
    trainer.train()
    return reports, trainer.model


def direct(model, duke, config: TrialConfig) -> dict[str, float]:
    """The model evaluated on the target as if it were the trial's own dataset."""
    data = load_reid_data(DatasetConfig(name="dukemtmc", root=str(duke), height=64, width=32))
    return Evaluator(data, torch.device("cpu"), config.eval.distance, config.eval.max_rank)(model)


def targets_of(report: dict) -> dict[str, float]:
    return {key.removeprefix("duke/"): value for key, value in report.items() if key.startswith("duke/")}


def test_the_final_evaluation_equals_evaluating_the_model_on_the_target_directly(tiny_market, tiny_duke):
    config = trial_config(tiny_market, tiny_duke)
    reports, model = train(config)
    expected = direct(model, tiny_duke, config)
    expected.pop("eval_seconds")
    reported = targets_of(reports[-1])
    assert reported == pytest.approx(expected, abs=1e-9)
    # rank-k up to the trial's max_rank, and the target's own 8 cameras (the trial's dataset has 6).
    assert "rank10" in reported and "rank20" not in reported
    assert {key for key in reported if key.endswith("/q_mAP")} == {f"cam/c{c:02d}/q_mAP" for c in range(1, 9)}
    assert {key for key in reports[-1] if key.startswith("cam/") and key.endswith("/q_mAP")} == {f"cam/c{c:02d}/q_mAP" for c in range(1, 7)}
    # Epoch 1 evaluated too (eval_every 1), on the trial's own dataset only.
    assert "mAP" in reports[0] and not targets_of(reports[0])


def test_a_target_leaves_the_trials_own_numbers_as_they_were(tiny_market, tiny_duke):
    with_target, _ = train(trial_config(tiny_market, tiny_duke))
    without, _ = train(trial_config(tiny_market, tiny_duke, eval={"targets": []}))
    own = {
        key: value
        for key, value in with_target[-1].items()
        if not key.startswith("duke/") and key not in ("eval_seconds", "epoch_seconds", "images_per_second")
    }
    assert own == {key: value for key, value in without[-1].items() if key in own}
    assert set(own) == {key for key in without[-1] if key not in ("eval_seconds", "epoch_seconds", "images_per_second")}


def test_with_swa_the_target_sees_the_averaged_model(tiny_market, tiny_duke):
    config = trial_config(tiny_market, tiny_duke, train={"epochs": 1, "swa": {"enabled": True, "cycles": 1, "cycle_epochs": 1}})
    reports, model = train(config)  # SWA leaves its mean loaded, BatchNorm refreshed
    expected = direct(model, tiny_duke, config)
    expected.pop("eval_seconds")
    assert targets_of(reports[-1]) == pytest.approx(expected, abs=1e-9)


def test_with_swag_the_target_gets_the_model_average_too(tiny_market, tiny_duke):
    config = trial_config(
        tiny_market,
        tiny_duke,
        train={"epochs": 1, "swa": {"enabled": True, "cycles": 2, "cycle_epochs": 1, "swag": True, "swag_samples": 2}},
    )
    reports, model = train(config)
    swa_mean = direct(model, tiny_duke, config)  # the SWA mean alone: not SWAG's average of two sampled models
    reported = targets_of(reports[-1])
    assert 0.0 < reported["mAP"] <= 1.0 and reported["mAP"] != pytest.approx(swa_mean["mAP"], abs=1e-9)


def test_targets_come_from_the_drivers_decoded_splits_when_there(tiny_market, tmp_path):
    config = trial_config(tiny_market, tmp_path / "nowhere")
    target = config.eval.targets[0].dataset_for(config.dataset)
    decoded = EvalSplits(query=object(), gallery=object())  # what the driver put in the object store
    assert load_targets(config, {eval_key(target): decoded}) == {"duke": decoded}
    with pytest.raises(DatasetError, match="folder not found"):
        load_targets(config, {})  # not decoded by the driver: read here

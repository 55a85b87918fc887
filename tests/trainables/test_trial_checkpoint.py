"""A trial's state through a checkpoint folder, as a lost worker's successor reads it: SWAG,
random erasing and a center loss continue where they stood, on the device of the new trainer."""

from __future__ import annotations

import pytest
import torch

from search_spaces import TrialConfig
from trainables.data.datasets import load_reid_data
from trainables.trial import RuntimeOptions, build_trainer
from trainables.trial_checkpoint import HISTORY_FILE, STATE_FILE, history_config_hash, load_trainer, parse_history, save_trainer

TIMING = ("epoch_seconds", "images_per_second", "eval_seconds")


def config_for(root) -> TrialConfig:
    return TrialConfig.model_validate(
        {
            "dataset": {"name": "market1501", "root": str(root), "height": 32, "width": 16},
            "augment": {"random_erasing": {"p": 0.5}},
            "loss": {"center": {"weight": 0.1}},
            "train": {
                "epochs": 2,
                "ids_per_batch": 4,
                "images_per_id": 2,
                "warmup_epochs": 0,
                "lr_steps": [],
                "eval_every": 5,
                "swa": {"enabled": True, "cycles": 2, "cycle_epochs": 1, "lr": 1e-3, "swag": True, "swag_samples": 2},
            },
        }
    )


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_a_trial_resumed_from_its_checkpoint_folder_ends_as_the_uninterrupted_one(device, tiny_market, tmp_path):
    config = config_for(tiny_market)
    data = load_reid_data(config.dataset)
    runtime = RuntimeOptions(device=device, threads=1)
    folder = tmp_path / "checkpoint"

    def report(metrics):
        if metrics["epoch"] == 3:  # after the first SWA cycle: the averager holds one snapshot
            save_trainer(trainer, folder, config_hash="h-planned")

    trainer = build_trainer(config, data, report=report, runtime=runtime)
    uninterrupted = trainer.train()
    assert (folder / STATE_FILE).is_file()
    # The reports up to the checkpoint, for a new driver to rebuild the curve without torch.
    epoch, history = parse_history((folder / HISTORY_FILE).read_text(encoding="utf-8"))
    assert epoch == 3 and history == trainer.history[:3]
    assert history_config_hash((folder / HISTORY_FILE).read_text(encoding="utf-8")) == "h-planned"  # the folder names its trial

    torch.manual_seed(12345)  # a new process starts from other random numbers
    reports: list[dict] = []
    resumed = build_trainer(config, data, report=reports.append, runtime=runtime)
    assert load_trainer(resumed, folder) == 3
    final = resumed.train()
    assert [r["epoch"] for r in reports] == [4]
    if device == "cpu":
        assert {k: v for k, v in final.items() if k not in TIMING} == {k: v for k, v in uninterrupted.items() if k not in TIMING}
    else:  # CUDA kernels are not bit-exact run to run (bf16 autocast, atomics)
        assert final["loss"] == pytest.approx(uninterrupted["loss"], rel=0.05)
        assert final["mAP"] == pytest.approx(uninterrupted["mAP"], abs=0.05)
    assert final["loss_center"] > 0 and "mAP" in final


def test_a_folder_without_a_state_is_refused(tiny_market, tmp_path):
    config = config_for(tiny_market)
    trainer = build_trainer(config, load_reid_data(config.dataset), report=lambda m: None, runtime=RuntimeOptions(device="cpu", threads=1))
    with pytest.raises(FileNotFoundError, match=STATE_FILE):
        load_trainer(trainer, tmp_path)

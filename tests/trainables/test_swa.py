"""SWA/SWAG (Robust-ReID section 3.1): cyclic cosine schedule, weight moments, SWAG samples,
BatchNorm recomputation, and the SWA phase of a trial."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from search_spaces import TrialConfig
from search_spaces.hashing import config_hash
from trainables.data.datasets import load_reid_data
from trainables.models import load_checkpoint
from trainables.models.swag import WeightAverager, recompute_batchnorm
from trainables.schedule import cyclic_cosine_lr, is_cycle_end
from trainables.trial import RuntimeOptions, run_trial


def test_cyclic_cosine_schedule_of_the_paper():
    kwargs = dict(peak_lr=0.03, cycle_epochs=35, decay=0.7)
    lrs = [cyclic_cosine_lr(e, **kwargs) for e in range(1, 15 * 35 + 1)]
    assert lrs[0] == pytest.approx(0.03)
    assert lrs[35] == pytest.approx(0.03 * 0.7)  # the second cycle restarts at the decayed peak
    assert lrs[14 * 35] == pytest.approx(0.03 * 0.7**14)
    assert all(a > b for a, b in zip(lrs[:35], lrs[1:35]))  # cosine annealing within a cycle
    assert lrs[17] == pytest.approx(0.03 * 0.5 * (1 + math.cos(math.pi * 17 / 35)))
    assert [e for e in range(1, 106) if is_cycle_end(e, 35)] == [35, 70, 105]
    with pytest.raises(ValueError):
        cyclic_cosine_lr(0, **kwargs)


def test_weight_averager_keeps_mean_and_diagonal_variance():
    model = nn.Linear(3, 2)
    snapshots = []
    averager = WeightAverager(model, second_moment=True)
    for k in range(4):
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn_like(p))
        snapshots.append({n: p.detach().clone() for n, p in model.named_parameters()})
        averager.collect(model)
    stacked = {n: torch.stack([s[n] for s in snapshots]) for n in snapshots[0]}
    for name, values in stacked.items():
        assert torch.allclose(averager.mean[name], values.mean(0), atol=1e-6)
        assert torch.allclose(averager.variance()[name], values.var(0, unbiased=False).clamp(min=1e-30), atol=1e-5)
    averager.load_into(model)
    assert torch.allclose(model.weight, stacked["weight"].mean(0), atol=1e-6)


def test_swag_samples_follow_mean_and_scaled_variance():
    model = nn.Linear(50, 40)
    averager = WeightAverager(model, second_moment=True)
    for value in (1.0, 3.0):  # mean 2, variance 1 for every weight
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(value)
        averager.collect(model)
    generator = torch.Generator().manual_seed(0)
    sample = averager.sample(0.5, generator)["weight"]
    assert float(sample.mean()) == pytest.approx(2.0, abs=0.05)
    assert float(sample.var()) == pytest.approx(0.5, rel=0.1)
    with pytest.raises(ValueError, match="no second moment"):
        WeightAverager(model).variance()


def test_recompute_batchnorm_averages_over_the_batches_and_restores_state():
    model = nn.Sequential(nn.BatchNorm1d(3))
    model.eval()
    batches = [torch.randn(8, 3) + 5.0 for _ in range(3)]
    recompute_batchnorm(model, batches)
    assert torch.allclose(model[0].running_mean, torch.cat(batches).mean(0), atol=1e-5)
    assert model[0].momentum == 0.1 and not model.training


def test_a_trial_with_swag_runs_extra_cycles_and_saves_the_average(tiny_market, tmp_path):
    config = TrialConfig.model_validate(
        {
            "dataset": {"name": "market1501", "root": str(tiny_market), "height": 64, "width": 32},
            "train": {
                "epochs": 1,
                "ids_per_batch": 4,
                "images_per_id": 4,
                "warmup_epochs": 0,
                "lr_steps": [],
                "eval_every": 10,
                "swa": {"enabled": True, "cycles": 2, "cycle_epochs": 1, "decay": 0.5, "lr": 1e-3, "swag": True, "swag_samples": 2},
            },
        }
    )
    reports: list[dict] = []
    runtime = RuntimeOptions(threads=1, checkpoint_path=str(tmp_path / "{hash}-{seed}.pt"))
    final = run_trial(config, load_reid_data(config.dataset), report=reports.append, runtime=runtime)
    assert [r["epoch"] for r in reports] == [1, 2, 3]
    assert [r["lr"] for r in reports[1:]] == pytest.approx([1e-3, 5e-4])
    assert reports[-1]["swa_snapshots"] == 2 and "mAP" in final and "mAP" not in reports[0]
    model, kwargs = load_checkpoint(tmp_path / f"{config_hash(config)}-0.pt")
    assert kwargs["backbone"] == "resnet10t" and kwargs["inserts"] == []


def test_swa_parameters_are_conditional():
    off = TrialConfig.model_validate({"train": {"swa": {"cycles": 3, "swag": True}}})
    assert off.train.swa == TrialConfig().train.swa
    swa = TrialConfig.model_validate({"train": {"swa": {"enabled": True, "swag_samples": 3}}}).train.swa
    assert swa.swag_samples == 10  # reset: SWAG is off
    with pytest.raises(ValueError, match="less than or equal to 1"):
        TrialConfig.model_validate({"train": {"swa": {"enabled": True, "decay": 1.5}}})

"""The training engine: hook call order, what hooks receive, the loss-term / extra-optimizer
extension point (a center loss), SWA through hooks checked against a hand-made average, and a
resumed trial that reports what the uninterrupted one reported."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn

from search_spaces import TrialConfig
from trainables.data.datasets import load_reid_data
from trainables.engine import HookBase, StepContext
from trainables.engine_hooks import refresh_batchnorm
from trainables.trial import RuntimeOptions, build_trainer

RUNTIME = RuntimeOptions(device="cpu", threads=1)  # bit-exact comparisons: no CUDA nondeterminism


def tiny_config(root, augment=None, **train) -> TrialConfig:
    return TrialConfig.model_validate(
        {
            "dataset": {"name": "market1501", "root": str(root), "height": 32, "width": 16},
            "augment": augment or {},
            "train": {"epochs": 2, "ids_per_batch": 4, "images_per_id": 2, "warmup_epochs": 0, "lr_steps": [], "eval_every": 5, **train},
        }
    )


@pytest.fixture(scope="module")
def tiny_data(tiny_market):
    return load_reid_data(tiny_config(tiny_market).dataset)


class Recorder(HookBase):
    def __init__(self, calls: list):
        self.calls = calls
        self.steps: list[StepContext] = []

    def before_train(self):
        self.calls.append("before_train")

    def before_epoch(self):
        self.calls.append("before_epoch")

    def after_step(self, step):
        self.calls.append("after_step")
        self.steps.append(step)

    def after_epoch(self):
        self.calls.append(("after_epoch", self.trainer.metrics["epoch"], "mAP" in self.trainer.metrics))

    def after_train(self):
        self.calls.append("after_train")


def test_hooks_are_called_in_order_around_every_step_and_epoch(tiny_market, tiny_data):
    calls: list = []
    recorder = Recorder(calls)
    trainer = build_trainer(
        tiny_config(tiny_market), tiny_data, report=lambda m: calls.append(("report", m["epoch"])), runtime=RUNTIME, hooks=[recorder]
    )
    batches = len(trainer.sampler.epoch(0))
    final = trainer.train()
    epoch = ["before_epoch", *["after_step"] * batches]
    # The evaluation hook runs before the added one: the last epoch's report already has mAP.
    expected = [
        "before_train",
        *epoch,
        ("after_epoch", 1, False),
        ("report", 1),
        *epoch,
        ("after_epoch", 2, True),
        ("report", 2),
        "after_train",
    ]
    assert calls == expected
    step = recorder.steps[0]
    assert (step.epoch, step.iteration) == (1, 0)
    assert step.images.shape == (8, 3, 32, 16) and step.images.dtype == torch.float32
    assert torch.equal(step.labels, trainer.train_labels[step.index]) and torch.equal(step.camera_labels, trainer.train_cameras[step.index])
    assert step.output.embedding.shape[0] == 8 and step.output.logits.shape == (8, int(trainer.train_labels.max()) + 1)
    assert set(step.parts) >= {"loss", "loss_id", "loss_triplet"}
    assert final is trainer.final and trainer.epoch == 2
    assert final["loss"] == pytest.approx(sum(s.parts["loss"] for s in recorder.steps[batches:]) / batches)


def center_loss_for(trainer, weight: float = 0.5) -> "CenterLoss":
    """A center loss sized for the trainer's classes and feature width (eval-mode probe: it
    changes no state and draws no random numbers)."""
    trainer.model.eval()
    with torch.no_grad():
        dim = trainer.model(torch.zeros(2, 3, 32, 16, device=trainer.device)).features.shape[1]
    return CenterLoss(int(trainer.train_labels.max()) + 1, dim, weight=weight)


class CenterLoss(HookBase):
    """A center loss (Wen et al. 2016) trained as fast-reid does: its term joins the loss before
    backward; its centers have their own SGD, stepped after the main step with the gradient
    rescaled by 1 / weight."""

    def __init__(self, num_classes: int, dim: int, weight: float = 0.5, lr: float = 0.5):
        self.centers = nn.Parameter(torch.zeros(num_classes, dim))
        self.optimizer = torch.optim.SGD([self.centers], lr=lr)
        self.weight = weight
        self.steps = 0

    def loss_terms(self, step):
        self.optimizer.zero_grad()
        features = step.output.features.float()
        return {"center": self.weight * 0.5 * (features - self.centers[step.labels]).pow(2).sum(1).mean()}

    def after_step(self, step):
        self.centers.grad.mul_(1.0 / self.weight)
        self.optimizer.step()
        self.steps += 1

    def state_dict(self):
        return {"centers": self.centers.detach().clone(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state):
        with torch.no_grad():
            self.centers.copy_(state["centers"])
        self.optimizer.load_state_dict(state["optimizer"])


def test_a_hook_adds_a_loss_term_and_steps_its_own_optimizer(tiny_market, tiny_data):
    config = tiny_config(tiny_market, epochs=1)
    plain = build_trainer(config, tiny_data, report=lambda m: None, runtime=RUNTIME)
    plain_report = plain.train()
    trainer = build_trainer(config, tiny_data, report=lambda m: None, runtime=RUNTIME)
    center = center_loss_for(trainer)
    trainer.register(center)
    report = trainer.train()
    batches = len(trainer.sampler.epoch(0))
    assert center.steps == batches
    # reported beside the objective's parts, and part of the total
    assert report["loss"] == pytest.approx(report["loss_id"] + report["loss_triplet"] + report["loss_center"], rel=1e-5)
    assert report["loss_center"] > 0 and "loss_center" not in plain_report
    # its own optimizer moved the centers off zero, for the classes that were trained on
    seen = trainer.train_labels.unique()
    assert bool((center.centers[seen].abs().sum(1) > 0).all())
    # the term took part in the backward pass: same seed and batches, different weights
    first = next(iter(trainer.model.state_dict()))
    assert not torch.equal(trainer.model.state_dict()[first], plain.model.state_dict()[first])
    assert plain_report["loss_id"] != report["loss_id"]


def test_swa_through_hooks_is_the_average_of_the_cycle_end_weights(tiny_market, tiny_data):
    config = tiny_config(tiny_market, epochs=1, swa={"enabled": True, "cycles": 2, "cycle_epochs": 1, "decay": 0.5, "lr": 1e-3})

    class Snapshots(HookBase):
        """Keeps the weights at each epoch's end, before SWA loads its mean after the last."""

        def __init__(self):
            self.weights = []

        def after_step(self, step):
            if step.iteration == len(self.trainer.sampler.epoch(step.epoch - 1)) - 1:
                self.weights.append({n: p.detach().clone() for n, p in self.trainer.model.named_parameters()})

    snapshots = Snapshots()
    reports: list[dict] = []
    trainer = build_trainer(config, tiny_data, report=reports.append, runtime=RUNTIME, hooks=[snapshots])
    final = trainer.train()
    assert [r["epoch"] for r in reports] == [1, 2, 3] and [r.get("swa_snapshots") for r in reports] == [None, 1, 2]
    assert [r["lr"] for r in reports] == pytest.approx([3.5e-4, 1e-3, 5e-4])
    assert "mAP" not in reports[0] and "mAP" not in reports[1]
    # By hand: the mean of the SWA phase's cycle-end weights (epochs 2 and 3), BatchNorm
    # recomputed, evaluated as a plain model: the same numbers as the SWA hook's evaluation.
    by_hand = copy.deepcopy(trainer.model)
    with torch.no_grad():
        for name, param in by_hand.named_parameters():
            param.copy_((snapshots.weights[1][name] + snapshots.weights[2][name]) / 2)
    for name, param in trainer.model.named_parameters():  # the hook left the SWA mean loaded
        assert torch.allclose(param, dict(by_hand.named_parameters())[name], atol=1e-6)
    refresh_batchnorm(by_hand, trainer.train_images, trainer.batch_size)
    evaluation = trainer.hooks[0].evaluator(by_hand)
    assert final["mAP"] == pytest.approx(evaluation["mAP"], abs=1e-6)
    assert final["cam/c01/q_mAP"] == pytest.approx(evaluation["cam/c01/q_mAP"], abs=1e-6)


def test_a_resumed_trial_reports_what_the_uninterrupted_one_did(tiny_market, tiny_data):
    # SWAG (averager state, sampled weights), random erasing (the augmenter's generator) and a
    # center loss hook (a hook's own state) all have to continue exactly.
    config = tiny_config(
        tiny_market,
        augment={"random_erasing": {"p": 0.5}},
        epochs=1,
        swa={"enabled": True, "cycles": 2, "cycle_epochs": 1, "lr": 1e-3, "swag": True, "swag_samples": 2},
    )
    saved: dict[int, bytes] = {}
    reports: list[dict] = []

    def report_and_save(metrics):
        reports.append(metrics)
        buffer = io.BytesIO()
        torch.save(trainer.state_dict(), buffer)
        saved[metrics["epoch"]] = buffer.getvalue()

    trainer = build_trainer(config, tiny_data, report=report_and_save, runtime=RUNTIME)
    trainer.register(center_loss_for(trainer, weight=0.1))
    uninterrupted = trainer.train()
    assert sorted(saved) == [1, 2, 3]

    resumed_reports: list[dict] = []
    # A fresh process would start from other random numbers: scramble them before loading.
    torch.manual_seed(12345)
    resumed = build_trainer(config, tiny_data, report=resumed_reports.append, runtime=RUNTIME)
    resumed.register(center_loss_for(resumed, weight=0.1))
    resumed.load_state_dict(torch.load(io.BytesIO(saved[2]), weights_only=False))
    assert [r["epoch"] for r in resumed.history] == [1, 2]  # the reports before the state came with it
    final = resumed.train()
    assert [r["epoch"] for r in resumed_reports] == [3]
    assert resumed.history[:2] == reports[:2] and resumed.history[2] is not reports[2]
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    timing = ("epoch_seconds", "images_per_second", "eval_seconds")
    same = {k: v for k, v in uninterrupted.items() if k not in timing}
    assert {k: v for k, v in final.items() if k not in timing} == same
    assert same["loss_center"] > 0 and "mAP" in same
    for (name, a), b in zip(trainer.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_state_from_another_set_of_hooks_is_refused(tiny_market, tiny_data):
    config = tiny_config(tiny_market, epochs=1)
    state = build_trainer(config, tiny_data, report=lambda m: None, runtime=RUNTIME).state_dict()
    other = build_trainer(config, tiny_data, report=lambda m: None, runtime=RUNTIME, hooks=[Recorder([])])
    with pytest.raises(ValueError, match="hook states"):
        other.load_state_dict(state)

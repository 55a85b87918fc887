"""A small training engine with hooks (the shape of fast-reid's ``engine/train_loop.py`` and
``engine/hooks.py``): :class:`Trainer` runs epochs over a learning-rate plan, and everything
that is not "one optimisation step per P x K batch" -- evaluation, SWA/SWAG collection and the
averaged evaluation with its BatchNorm refresh, saving the final model, extra loss terms and
extra optimizer steps -- is a :class:`HookBase` that the trial plugs in
(:mod:`trainables.engine_hooks`; assembled by :func:`trainables.trial.build_trainer`).

Call order, for hooks ``h1, h2, ...`` in the order they were registered::

    before_train()                      h1, h2, ...     (also when resuming)
    for each remaining epoch e of the plan (1-based over the whole trial):
        before_epoch()                  h1, h2, ...
        for each P x K batch of epoch e:
            output = model(augmented batch)
            loss = objective(output) + sum of h.loss_terms(step)     # before backward
            backward; main optimizer step
            after_step(step)            h1, h2, ...     # e.g. a second optimizer's step
        after_epoch()                   h1, h2, ...     # may add metrics to trainer.metrics
        report(trainer.metrics)
    after_train()                       h1, h2, ...

**Extension point: a loss with its own optimizer** (a center loss, Wen et al. 2016, trained as
fast-reid and torchreid do). The hook returns its weighted term from
:meth:`HookBase.loss_terms`: the term joins the total before ``backward`` (so the backbone gets
its gradient) and is reported as ``loss_<name>``, averaged over the epoch. There it also zeroes
its own parameters' gradients. In :meth:`HookBase.after_step` it rescales those gradients
(e.g. by ``1 / weight``) and steps its own optimizer. ``step.output`` still holds the model's
output, but its graph is freed by the main ``backward``: use it detached there.
``tests/trainables/test_engine.py`` trains such a hook.

**State, to checkpoint and resume a trial** (:meth:`Trainer.state_dict` /
:meth:`Trainer.load_state_dict`, at an epoch boundary): the model, the optimizer, the last
completed epoch and its report, the augmenter's and the global random generators, and each
hook's own state (the SWA averager). The sampler needs none: the batches of epoch ``e`` are a
pure function of the seed and ``e`` (:class:`~trainables.data.sampler.PKSampler`), so the
position in the data order is the epoch. A trainer built the same way that loads the state and
trains on reports what the uninterrupted run reported.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from search_spaces import metrics as names
from trainables.data.augment import BatchAugmenter
from trainables.data.sampler import PKSampler
from trainables.losses import ReIDObjective
from trainables.models import ReIDModel

Reporter = Callable[[dict[str, Any]], None]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the trial is recorded as failed."""


@dataclass
class StepContext:
    """One optimisation step as hooks see it: :meth:`HookBase.loss_terms` gets it after the
    forward pass (``parts`` still empty), :meth:`HookBase.after_step` after the main step."""

    epoch: int
    iteration: int
    index: torch.Tensor  # (B,) dataset indices of the batch
    images: torch.Tensor  # (B, 3, H, W) the augmented, normalised batch the model saw
    labels: torch.Tensor  # (B,) identity labels 0..N-1
    camera_labels: torch.Tensor | None  # (B,) camera labels 0..C-1
    output: Any = None  # the model's ReIDOutput (features, embedding, logits, ...)
    parts: dict[str, float] = field(default_factory=dict)  # the step's loss parts


class HookBase:
    """A hook into :class:`Trainer`; every method is optional. ``self.trainer`` is set when the
    hook is registered. A hook with state (a running average, a center loss' centers) returns
    it from :meth:`state_dict`, so a resumed trial continues exactly."""

    trainer: "Trainer"

    def before_train(self) -> None:
        pass

    def before_epoch(self) -> None:
        pass

    def loss_terms(self, step: StepContext) -> Mapping[str, torch.Tensor] | None:
        """Weighted scalar terms added to the loss before ``backward``, by name (reported as
        ``loss_<name>``)."""
        return None

    def after_step(self, step: StepContext) -> None:
        pass

    def after_epoch(self) -> None:
        pass

    def after_train(self) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass


def train_step(
    model: ReIDModel,
    objective: ReIDObjective,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    camera_labels: torch.Tensor | None = None,
    extra_terms: Callable[[Any], Mapping[str, torch.Tensor]] | None = None,
) -> dict[str, float]:
    """One optimisation step on a normalised float batch; bf16 autocast and channels_last on
    CUDA. ``extra_terms(output)`` may add weighted loss terms before ``backward``. Returns the
    loss parts; a non-finite loss raises :class:`NonFiniteLossError`."""
    on_cuda = images.device.type == "cuda"
    if on_cuda:
        images = images.contiguous(memory_format=torch.channels_last)
    with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=on_cuda):
        output = model(images)
    terms = objective(output, labels, camera_labels)
    total, parts = terms.total, terms.parts
    extra = extra_terms(output) if extra_terms is not None else None
    if extra:
        total = total + sum(extra.values())
        # One device-to-host copy for the new total and the extra terms.
        values = torch.stack([total.detach().float(), *(v.detach().float() for v in extra.values())]).tolist()
        parts = {**parts, **{f"{names.LOSS}_{name}": value for name, value in zip(extra, values[1:])}, names.LOSS: values[0]}
    if not math.isfinite(parts[names.LOSS]):
        raise NonFiniteLossError(f"loss became {parts[names.LOSS]}")
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    return parts


@dataclass(frozen=True)
class EpochPlan:
    """The epochs a trial runs: ``lrs[e - 1]`` is the learning rate of 1-based epoch ``e``."""

    lrs: tuple[float, ...]

    @property
    def epochs(self) -> int:
        return len(self.lrs)


class Trainer:
    """Runs the epochs of an :class:`EpochPlan` on P x K batches and calls the hooks.

    The training images (uint8, on the trial's device) are indexed by the sampler's batches,
    augmented on the device and fed to :func:`train_step`. While hooks run, ``metrics`` is the
    epoch's report (``after_epoch`` adds evaluation metrics to it); ``final`` is the last report,
    ``history`` every report so far and ``epoch`` the last completed epoch.
    """

    def __init__(
        self,
        *,
        model: ReIDModel,
        objective: ReIDObjective,
        optimizer: torch.optim.Optimizer,
        sampler: PKSampler,
        augmenter: BatchAugmenter,
        train_images: torch.Tensor,
        train_labels: torch.Tensor,
        train_cameras: torch.Tensor | None,
        plan: EpochPlan,
        hooks: Sequence[HookBase] = (),
        report: Reporter = lambda metrics: None,
    ):
        self.model, self.objective, self.optimizer = model, objective, optimizer
        self.sampler, self.augmenter = sampler, augmenter
        self.train_images, self.train_labels, self.train_cameras = train_images, train_labels, train_cameras
        self.plan = plan
        self.report = report
        self.hooks: list[HookBase] = []
        for hook in hooks:
            self.register(hook)
        self.epoch = 0
        self.metrics: dict[str, Any] = {}
        self.final: dict[str, Any] = {}
        self.history: list[dict[str, Any]] = []  # every report so far, in epoch order

    def register(self, hook: HookBase) -> None:
        hook.trainer = self
        self.hooks.append(hook)

    @property
    def device(self) -> torch.device:
        return self.train_images.device

    @property
    def batch_size(self) -> int:
        return self.sampler.ids_per_batch * self.sampler.images_per_id

    # -- the loop ---------------------------------------------------------------------------
    def train(self) -> dict[str, Any]:
        """Run the remaining epochs of the plan; returns the last epoch's report."""
        self._call("before_train")
        for epoch in range(self.epoch + 1, self.plan.epochs + 1):
            self._call("before_epoch")
            self.metrics = self.run_epoch(epoch, self.plan.lrs[epoch - 1])
            self._call("after_epoch")
            self.epoch, self.final = epoch, self.metrics
            self.history.append(dict(self.metrics))
            self.report(self.metrics)
        self._call("after_train")
        return self.final

    def run_epoch(self, epoch: int, lr: float) -> dict[str, Any]:
        """One pass over the sampler's batches of ``epoch``: the epoch's mean loss parts, then
        ``epoch``, ``lr``, ``epoch_seconds`` and ``images_per_second``."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        started = time.perf_counter()
        sums: dict[str, float] = {}
        batches = self.sampler.epoch(epoch - 1)
        contributors = [h for h in self.hooks if type(h).loss_terms is not HookBase.loss_terms]
        for iteration, batch in enumerate(batches):
            index = torch.from_numpy(batch).to(self.device)
            images = self.augmenter(self.train_images[index], index)
            cameras = self.train_cameras[index] if self.train_cameras is not None else None
            step = StepContext(epoch, iteration, index, images, self.train_labels[index], cameras)
            try:
                parts = train_step(
                    self.model, self.objective, self.optimizer, images, step.labels, cameras, self._extra_terms(step, contributors)
                )
            except NonFiniteLossError as err:
                raise NonFiniteLossError(f"{err} at epoch {epoch}, iteration {iteration}") from None
            step.parts = parts
            self._call("after_step", step)
            for key, value in parts.items():
                sums[key] = sums.get(key, 0.0) + value
        seconds = time.perf_counter() - started
        metrics: dict[str, Any] = {key: value / max(len(batches), 1) for key, value in sums.items()}
        seen = len(batches) * self.batch_size
        metrics.update({names.EPOCH: epoch, names.LR: lr, names.EPOCH_SECONDS: seconds, names.IMAGES_PER_SECOND: seen / max(seconds, 1e-9)})
        return metrics

    @staticmethod
    def _extra_terms(step: StepContext, contributors: list[HookBase]) -> Callable[[Any], dict[str, torch.Tensor]]:
        """The callback :func:`train_step` calls between forward and backward: it hands the
        output to the step (for every hook's ``after_step``) and collects the hooks' terms."""

        def terms(output: Any) -> dict[str, torch.Tensor]:
            step.output = output
            extra: dict[str, torch.Tensor] = {}
            for hook in contributors:
                extra.update(hook.loss_terms(step) or {})
            return extra  # empty: the plain step, no extra host sync

        return terms

    def _call(self, name: str, *args: Any) -> None:
        for hook in self.hooks:
            getattr(hook, name)(*args)

    # -- state, to checkpoint and resume a trial ------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed trial needs to continue where this one stands; take it between
        epochs (from the reporter, or after :meth:`train`). Like ``nn.Module.state_dict`` it
        refers to live tensors: serialise it (``torch.save``) before training on."""
        return {
            "epoch": self.epoch,
            "final": dict(self.final),
            "history": [dict(report) for report in self.history],
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "augmenter_rng": self.augmenter.generator.get_state(),
            "rng": {
                "python": random.getstate(),
                "numpy": np.random.get_state(),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            },
            "hooks": [hook.state_dict() for hook in self.hooks],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s output; the trainer must be built as the one that
        saved it (same config, same hooks)."""
        if len(state["hooks"]) != len(self.hooks):
            raise ValueError(f"the state holds {len(state['hooks'])} hook states but this trainer has {len(self.hooks)} hooks")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.augmenter.generator.set_state(state["augmenter_rng"])
        rng = state["rng"]
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        torch.set_rng_state(rng["torch"])
        if rng["cuda"]:
            torch.cuda.set_rng_state_all(rng["cuda"])
        for hook, hook_state in zip(self.hooks, state["hooks"]):
            hook.load_state_dict(hook_state)
        self.epoch = int(state["epoch"])
        self.final = dict(state["final"])
        self.history = [dict(report) for report in state.get("history", [])]  # older states have none

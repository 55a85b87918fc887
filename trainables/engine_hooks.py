"""The hooks a ReID trial plugs into :class:`~trainables.engine.Trainer`: periodic evaluation,
SWA/SWAG (Robust-ReID section 3.1) with BatchNorm refresh and the averaged evaluation, and
saving the final model; plus the evaluation helpers they share (embeddings of a split, metrics
flattened into report keys).

Evaluation runs every ``every`` epochs and after the last one. With SWA on, the last epoch
evaluates the averaged model instead: SWA, the mean weights (Izmailov et al. 2018), or SWAG,
the mean embedding over ``swag_samples`` weight sets drawn from ``N(mean, scale * diag var)``
(Maddox et al. 2019), with the BatchNorm statistics recomputed on the un-augmented training
images for each. Evaluations before the last epoch use the current SGD weights. The last
epoch's evaluation (plain or averaged) is the final one: it also evaluates the trial's
``eval.targets`` (:class:`Evaluator`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import numpy as np
import torch

from search_spaces import metrics as names
from trainables.data.arrays import SplitArrays
from trainables.data.augment import to_normalized_float
from trainables.data.datasets import EvalSplits, ReIDData
from trainables.engine import HookBase, StepContext
from trainables.evaluation import evaluate_features
from trainables.losses.center import CenterLossStep
from trainables.models import ReIDModel, save_checkpoint
from trainables.models.swag import WeightAverager, recompute_batchnorm
from trainables.schedule import is_cycle_end


# -- evaluation helpers ------------------------------------------------------------------------
@torch.no_grad()
def extract_embeddings(model: ReIDModel, split: SplitArrays, device: torch.device, batch_size: int) -> torch.Tensor:
    """Retrieval embeddings (float32, on ``device``) of every image of a split."""
    model.eval()
    chunks = []
    use_bf16 = device.type == "cuda"
    for start in range(0, len(split.images), batch_size):
        batch = torch.from_numpy(split.images[start : start + batch_size]).to(device, non_blocking=True)
        x = to_normalized_float(batch)
        if use_bf16:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            chunks.append(model(x).embedding.float())
    return torch.cat(chunks)


def metrics_for_report(result: Mapping[str, Any]) -> dict[str, float]:
    """Flatten an ``evaluate`` result into report keys: scalars as they are, per-camera dicts
    as ``cam/cNN/<metric>`` (:func:`search_spaces.metrics.camera_key`; ``q_rank1`` is keyed
    ``cam/cNN/rank1``). Arrays (the full CMC
    curve) are left out."""
    flat: dict[str, float] = {}
    for key, value in result.items():
        if isinstance(value, Mapping):
            for camera, camera_value in value.items():
                flat[names.camera_key(camera, key)] = float(camera_value)
        elif isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
            flat[key] = float(value)
    return flat


#: The key of the trial's own test set among a final evaluation's embeddings (targets: their label).
OWN_TEST_SET = ""
Embeddings = dict[str, tuple[torch.Tensor, torch.Tensor]]  # test set -> (query, gallery) embeddings


@dataclass(frozen=True)
class Evaluator:
    """Evaluates a model on a trial's query and gallery (``eval.distance``, ``eval.max_rank``).

    ``targets`` (``eval.targets``, by label) are evaluated too by the final evaluation only
    (``final=True``): the same model, feature, distance and max_rank on each target's query and
    gallery with its own person and camera ids, reported as ``<label>/<metric>``. Earlier
    evaluation epochs track training on the trial's own data; the transfer question is asked
    of the model the trial ends with, and every target is paid for once.
    """

    data: ReIDData
    device: torch.device
    distance: str = "euclidean"
    max_rank: int = 50
    batch_size: int = 256
    targets: Mapping[str, EvalSplits] = field(default_factory=dict)

    def embeddings(self, model: ReIDModel) -> tuple[torch.Tensor, torch.Tensor]:
        """(query, gallery) embeddings of the trial's own test set."""
        return (
            extract_embeddings(model, self.data.query, self.device, self.batch_size),
            extract_embeddings(model, self.data.gallery, self.device, self.batch_size),
        )

    def all_embeddings(self, model: ReIDModel, *, final: bool) -> Embeddings:
        """Embeddings of the own test set (key :data:`OWN_TEST_SET`) and, when ``final``, of
        every target (key: its label)."""
        out = {OWN_TEST_SET: self.embeddings(model)}
        for label, splits in self.targets.items() if final else ():
            out[label] = (
                extract_embeddings(model, splits.query, self.device, self.batch_size),
                extract_embeddings(model, splits.gallery, self.device, self.batch_size),
            )
        return out

    def metrics(self, query: torch.Tensor, gallery: torch.Tensor, splits: ReIDData | EvalSplits | None = None) -> dict[str, float]:
        """Metrics of query against gallery embeddings of ``splits`` (default: the trial's own)."""
        d = splits if splits is not None else self.data
        result = evaluate_features(
            query, gallery, d.query.pids, d.gallery.pids, d.query.camids, d.gallery.camids, metric=self.distance, max_rank=self.max_rank
        )
        return metrics_for_report(result)

    def all_metrics(self, embeddings: Embeddings) -> dict[str, float]:
        """Metrics of :meth:`all_embeddings`: the own test set's under their names, a target's
        as ``<label>/<metric>`` (its cameras ``<label>/cam/cNN/<metric>``)."""
        out: dict[str, float] = {}
        for label, (query, gallery) in embeddings.items():
            if label == OWN_TEST_SET:
                out.update(self.metrics(query, gallery))
            else:
                out.update({names.target_key(label, k): v for k, v in self.metrics(query, gallery, self.targets[label]).items()})
        return out

    def __call__(self, model: ReIDModel, *, final: bool = False) -> dict[str, float]:
        started = time.perf_counter()
        metrics = self.all_metrics(self.all_embeddings(model, final=final))
        metrics[names.EVAL_SECONDS] = time.perf_counter() - started
        return metrics


def training_batches(train_images: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    """The training images in order, normalised, un-augmented (for BatchNorm recomputation);
    a last batch of a single image is left out (BatchNorm cannot train on it)."""
    on_cuda = train_images.device.type == "cuda"
    for start in range(0, len(train_images), batch_size):
        chunk = train_images[start : start + batch_size]
        if len(chunk) < 2:
            continue
        x = to_normalized_float(chunk)
        yield x.contiguous(memory_format=torch.channels_last) if on_cuda else x


def refresh_batchnorm(model: ReIDModel, train_images: torch.Tensor, batch_size: int) -> None:
    """Recompute BatchNorm statistics on the training images (after loading averaged weights)."""
    on_cuda = train_images.device.type == "cuda"
    with torch.autocast(train_images.device.type, dtype=torch.bfloat16, enabled=on_cuda):
        recompute_batchnorm(model, training_batches(train_images, batch_size))


# -- hooks ---------------------------------------------------------------------------------
class EvaluationHook(HookBase):
    """Evaluates the current weights after every ``every``-th epoch and after the last one
    (not the last with ``evaluate_last`` off: SWA evaluates the averaged model there)."""

    def __init__(self, evaluator: Evaluator, every: int, *, evaluate_last: bool = True):
        self.evaluator, self.every, self.evaluate_last = evaluator, every, evaluate_last

    def after_epoch(self) -> None:
        epoch, last = self.trainer.metrics[names.EPOCH], self.trainer.plan.epochs
        if epoch == last and not self.evaluate_last:
            return
        if epoch % self.every == 0 or epoch == last:
            # The last epoch's evaluation is the final one: the evaluation targets join it.
            self.trainer.metrics.update(self.evaluator(self.trainer.model, final=epoch == last))


class SWAHook(HookBase):
    """SWA / SWAG over the epochs after ``start_epoch`` (Robust-ReID section 3.1): the weights
    at the end of each cycle of ``cycle_epochs`` epochs are collected into a
    :class:`WeightAverager` (reported as ``swa_snapshots``); after the plan's last epoch the
    averaged model is evaluated (SWA, or SWAG's model average over ``swag_samples`` draws
    seeded by ``seed``) with BatchNorm refreshed, and the SWA mean is left loaded."""

    def __init__(
        self,
        evaluator: Evaluator,
        *,
        start_epoch: int,
        cycle_epochs: int,
        swag: bool = False,
        swag_samples: int = 10,
        swag_scale: float = 0.5,
        seed: int = 0,
    ):
        self.evaluator = evaluator
        self.start_epoch, self.cycle_epochs = start_epoch, cycle_epochs
        self.swag, self.swag_samples, self.swag_scale, self.seed = swag, swag_samples, swag_scale, seed
        self.averager: WeightAverager | None = None

    def before_train(self) -> None:
        if self.averager is None:  # a resumed trial keeps the loaded one
            self.averager = WeightAverager(self.trainer.model, second_moment=self.swag)

    def after_epoch(self) -> None:
        trainer = self.trainer
        k = trainer.metrics[names.EPOCH] - self.start_epoch  # 1-based epoch of the SWA phase
        if k < 1 or self.averager is None:
            return
        if is_cycle_end(k, self.cycle_epochs):
            self.averager.collect(trainer.model)
            trainer.metrics[names.SWA_SNAPSHOTS] = self.averager.count
        if trainer.metrics[names.EPOCH] == trainer.plan.epochs:
            trainer.metrics.update(self.evaluate_averaged())

    def evaluate_averaged(self) -> dict[str, float]:
        """Evaluate SWA (the mean weights) or SWAG (the mean embedding over sampled weight sets),
        recomputing BatchNorm statistics for each; leaves the SWA mean loaded in the model."""
        assert self.averager is not None  # made in before_train
        started = time.perf_counter()
        model, images, batch_size = self.trainer.model, self.trainer.train_images, self.trainer.batch_size
        if self.swag:
            generator = torch.Generator().manual_seed(self.seed)
            total: Embeddings = {}
            for _ in range(self.swag_samples):
                self.averager.load_into(model, self.averager.sample(self.swag_scale, generator))
                refresh_batchnorm(model, images, batch_size)
                # The evaluation targets get the same model average as the own test set.
                for key, (q, g) in self.evaluator.all_embeddings(model, final=True).items():
                    q0, g0 = total.get(key, (0, 0))
                    total[key] = (q0 + q, g0 + g)
            embeddings = {key: (q / self.swag_samples, g / self.swag_samples) for key, (q, g) in total.items()}
        self.averager.load_into(model)
        refresh_batchnorm(model, images, batch_size)
        if not self.swag:
            embeddings = self.evaluator.all_embeddings(model, final=True)
        metrics = self.evaluator.all_metrics(embeddings)
        metrics[names.EVAL_SECONDS] = time.perf_counter() - started
        return metrics

    def state_dict(self) -> dict[str, Any]:
        a = self.averager
        return (
            {}
            if a is None
            else {
                "count": a.count,
                "mean": {n: t.clone() for n, t in a.mean.items()},
                "sq_mean": {n: t.clone() for n, t in a.sq_mean.items()},
            }
        )

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if not state:
            return
        self.averager = WeightAverager(self.trainer.model, second_moment=self.swag)
        self.averager.count = int(state["count"])
        self.averager.mean = {n: t.clone() for n, t in state["mean"].items()}
        self.averager.sq_mean = {n: t.clone() for n, t in state["sq_mean"].items()}


class CheckpointHook(HookBase):
    """Saves the trial's final model with its build kwargs to ``path`` when training ends
    (registered after :class:`SWAHook`, so with SWA on it is the SWA mean)."""

    def __init__(self, path: str):
        self.path = path

    def after_train(self) -> None:
        model = self.trainer.model
        save_checkpoint(self.path, model, model.build_kwargs)


class CenterLossHook(HookBase):
    """Bag of Tricks' center loss (Luo et al. 2019, section 3.6; Wen et al. 2016, eq. 2) as an
    extra term and an extra optimizer step: ``weight * L_C`` on the pre-neck features joins the
    loss before ``backward`` (reported as ``loss_center``), and after the model's step the
    centers take their own SGD step (:meth:`CenterLossStep.step`, gradient rescaled by
    ``1 / weight`` as BoT does)."""

    def __init__(self, center: CenterLossStep):
        self.center = center

    def loss_terms(self, step: StepContext) -> Mapping[str, torch.Tensor]:
        return {"center": self.center.weight * self.center(step.output.features, step.labels)}

    def after_step(self, step: StepContext) -> None:
        self.center.step()

    def state_dict(self) -> dict[str, Any]:
        return {"centers": self.center.loss.state_dict(), "optimizer": self.center.optimizer.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state:
            self.center.loss.load_state_dict(state["centers"])
            self.center.optimizer.load_state_dict(state["optimizer"])


class CompositeRateHook(HookBase):
    """Reports implicit attention's effective composite rate each epoch (Yaghoubi et al.):
    the share of training images that have a compatible partner and the share of samples
    actually composited (about ``p`` times that share)."""

    def after_epoch(self) -> None:
        self.trainer.metrics.update(self.trainer.augmenter.composite_stats())

"""One ReID trial: build from the trial config, train, evaluate, report.

``run_trial`` knows nothing of Ray or MLflow: it calls ``report(metrics)`` once per epoch, and
the caller decides where metrics go (Ray Tune in a study, stdout when run alone with
``python -m trainables``). Evaluation epochs add rank-k, mAP, mINP and the per-camera
``cam/cNN/q_mAP`` / ``cam/cNN/g_mAP`` / ``cam/cNN/rank1`` metrics.

With ``train.swa`` on, ``cycles * cycle_epochs`` more epochs follow ``train.epochs`` (numbered
on from it) under the cyclic cosine schedule; the weights at each cycle end are averaged, and
the last epoch evaluates the averaged model (SWA) or the SWAG Bayesian model average -- the
mean of the embeddings of ``swag_samples`` sampled weight sets -- with BatchNorm statistics
recomputed on the (un-augmented) training images. Evaluations before the last epoch use the
current SGD weights. The trial's final model (the SWA mean with SWA on) can be saved with
``RuntimeOptions.checkpoint_path``.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch

from search_spaces.hashing import config_hash
from search_spaces.trial_config import ROBUST_REID_BACKBONES, TrialConfig
from trainables.data.arrays import SplitArrays
from trainables.data.augment import AUGMENTATIONS, BatchAugmenter, to_normalized_float
from trainables.data.datasets import ReIDData, load_reid_data
from trainables.data.market import relabel
from trainables.data.sampler import PKSampler
from trainables.evaluation import evaluate_features
from trainables.losses import ReIDObjective
from trainables.losses.terms import LOSSES
from trainables.models import INSERTS, ReIDModel, save_checkpoint
from trainables.models.swag import WeightAverager, recompute_batchnorm
from trainables.schedule import cyclic_cosine_lr, is_cycle_end, learning_rate

Reporter = Callable[[dict[str, Any]], None]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the trial is recorded as failed."""


@dataclass(frozen=True)
class RuntimeOptions:
    """Where and how a trial runs. Not part of the config hash: it does not change the result."""

    device: str = "auto"
    threads: int | None = None
    eval_batch_size: int = 256
    # Save the final model (with its build kwargs) here; ``{hash}`` and ``{seed}`` are replaced
    # by the trial config's hash and seed, so one setting serves every trial of a study.
    checkpoint_path: str | None = None


def pick_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def model_kwargs(config: TrialConfig, num_classes: int, num_cameras: int = 0) -> dict[str, Any]:
    """Adapter from the config to :class:`ReIDModel`'s keyword arguments (also what a
    checkpoint stores): backbone options and the surgery spec of every inserted module that is
    on, built from its section (``module_kwargs``) plus the data facts its class ``needs``."""
    m = config.model
    facts = {"num_classes": num_classes, "num_cameras": num_cameras}
    inserts: list[dict[str, Any]] = []
    for name, section in m.active_inserts().items():
        kwargs = section.module_kwargs()
        for need in INSERTS.get(name).needs:
            if need not in facts:
                raise ValueError(f"inserted module '{name}' needs '{need}'; the data provides: {', '.join(facts)}")
            kwargs[need] = facts[need]
        inserts.extend({"module": name, "stage": stage, "kwargs": dict(kwargs)} for stage in section.placements())
    inserts.sort(key=lambda spec: spec["stage"])  # stable: registration order at a shared stage (APRA before DRANet)
    backbone_kwargs = {"shuffle_blocks": m.shuffle_blocks} if m.backbone in ROBUST_REID_BACKBONES else {}
    return dict(
        backbone=m.backbone,
        num_classes=num_classes,
        pooling=m.pooling,
        neck=m.neck,
        classifier_bias=m.classifier_bias,
        pretrained_path=m.pretrained_path,
        backbone_kwargs=backbone_kwargs,
        inserts=inserts,
    )


def build_model(config: TrialConfig, num_classes: int, num_cameras: int = 0) -> ReIDModel:
    """The trial's model; ``num_cameras`` (training cameras) is needed by modules that ask for
    it (APRA's camera classifier)."""
    return ReIDModel(**model_kwargs(config, num_classes, num_cameras))


def build_objective(config: TrialConfig) -> ReIDObjective:
    """The objective: the baseline losses, each inserted module's terms at its section's weights,
    and the registered loss terms that are on (``loss.<name>``)."""
    loss = config.loss
    weights = {term: w for section in config.model.active_inserts().values() for term, w in section.loss_weights().items()}
    return ReIDObjective(
        id_weight=loss.id_weight,
        label_smoothing=loss.label_smoothing,
        triplet_kind=loss.triplet.kind,
        triplet_margin=loss.triplet.margin,
        triplet_soft_margin=loss.triplet.soft_margin,
        triplet_weight=loss.triplet.weight,
        term_weights=weights,
        extra_terms=[(name, LOSSES.get(name)(**section.term_kwargs()), section.weight) for name, section in loss.active_terms().items()],
    )


def build_optimizer(config: TrialConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    t = config.train
    params = [p for p in model.parameters() if p.requires_grad]
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=t.lr, momentum=0.9, weight_decay=t.weight_decay, nesterov=True)
    return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)


def build_augmenter(config: TrialConfig, device: torch.device, data: ReIDData | None = None) -> BatchAugmenter:
    """Adapter from the config to the batch augmenter. With ``augment.implicit_attention`` on,
    the composite's precomputed inputs (``data.composite``, or loaded now from the dataset's
    cache) are moved to ``device`` beside the training images; calls then need the indices."""
    a = config.augment
    composite = None
    if a.implicit_attention.is_active():
        from trainables.data.augment import CompositeTensors
        from trainables.data.datasets import ensure_composite

        if data is None:
            raise ValueError("augment.implicit_attention needs the trial's data (masks and composite bank)")
        composite = CompositeTensors.from_bank(ensure_composite(data, config.dataset, a), device)
    return BatchAugmenter(
        flip=a.flip,
        pad=a.pad,
        erasing_p=a.random_erasing.p,
        erasing_area=a.random_erasing.area,
        erasing_ratio=a.random_erasing.ratio,
        composite=composite,
        composite_p=a.implicit_attention.p,
        seed=config.seed,
        device=device,
        extra=[AUGMENTATIONS.get(name)(**section.augmentation_kwargs()) for name, section in a.active_augmentations().items()],
    )


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
    as ``cam/cNN/<metric>``. Arrays (the full CMC curve) are left out."""
    flat: dict[str, float] = {}
    for key, value in result.items():
        if isinstance(value, Mapping):
            name = "rank1" if key.endswith("rank1") else key
            for camera, camera_value in value.items():
                flat[f"cam/c{int(camera):02d}/{name}"] = float(camera_value)
        elif isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
            flat[key] = float(value)
    return flat


def evaluate_embeddings(config: TrialConfig, query: torch.Tensor, gallery: torch.Tensor, data: ReIDData) -> dict[str, float]:
    result = evaluate_features(
        query,
        gallery,
        data.query.pids,
        data.gallery.pids,
        data.query.camids,
        data.gallery.camids,
        metric=config.eval.distance,
        max_rank=config.eval.max_rank,
    )
    return metrics_for_report(result)


def evaluate_model(config: TrialConfig, model: ReIDModel, data: ReIDData, device: torch.device, runtime: RuntimeOptions) -> dict[str, float]:
    started = time.perf_counter()
    query = extract_embeddings(model, data.query, device, runtime.eval_batch_size)
    gallery = extract_embeddings(model, data.gallery, device, runtime.eval_batch_size)
    metrics = evaluate_embeddings(config, query, gallery, data)
    metrics["eval_seconds"] = time.perf_counter() - started
    return metrics


def train_step(
    model: ReIDModel,
    objective: ReIDObjective,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    camera_labels: torch.Tensor | None = None,
) -> dict[str, float]:
    """One optimisation step on a normalised float batch; bf16 autocast and channels_last on
    CUDA. Returns the loss parts; a non-finite loss raises :class:`NonFiniteLossError`."""
    on_cuda = images.device.type == "cuda"
    if on_cuda:
        images = images.contiguous(memory_format=torch.channels_last)
    with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=on_cuda):
        output = model(images)
    terms = objective(output, labels, camera_labels)
    if not math.isfinite(terms.parts["loss"]):
        raise NonFiniteLossError(f"loss became {terms.parts['loss']}")
    optimizer.zero_grad(set_to_none=True)
    terms.total.backward()
    optimizer.step()
    return terms.parts


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
    on_cuda = train_images.device.type == "cuda"
    with torch.autocast(train_images.device.type, dtype=torch.bfloat16, enabled=on_cuda):
        recompute_batchnorm(model, training_batches(train_images, batch_size))


def evaluate_averaged(
    config: TrialConfig,
    model: ReIDModel,
    averager: WeightAverager,
    data: ReIDData,
    train_images: torch.Tensor,
    device: torch.device,
    runtime: RuntimeOptions,
) -> dict[str, float]:
    """Evaluate SWA (the mean weights) or SWAG (the mean embedding over sampled weight sets),
    recomputing BatchNorm statistics for each; leaves the SWA mean loaded in ``model``."""
    started = time.perf_counter()
    swa = config.train.swa
    batch_size = config.train.ids_per_batch * config.train.images_per_id
    if swa.swag:
        generator = torch.Generator().manual_seed(config.seed)
        query = gallery = None
        for _ in range(swa.swag_samples):
            averager.load_into(model, averager.sample(swa.swag_scale, generator))
            refresh_batchnorm(model, train_images, batch_size)
            q = extract_embeddings(model, data.query, device, runtime.eval_batch_size)
            g = extract_embeddings(model, data.gallery, device, runtime.eval_batch_size)
            query = q if query is None else query + q
            gallery = g if gallery is None else gallery + g
        assert query is not None and gallery is not None  # swag_samples >= 1 by validation
        query, gallery = query / swa.swag_samples, gallery / swa.swag_samples
    averager.load_into(model)
    refresh_batchnorm(model, train_images, batch_size)
    if not swa.swag:
        query = extract_embeddings(model, data.query, device, runtime.eval_batch_size)
        gallery = extract_embeddings(model, data.gallery, device, runtime.eval_batch_size)
    metrics = evaluate_embeddings(config, query, gallery, data)
    metrics["eval_seconds"] = time.perf_counter() - started
    return metrics


def print_report(metrics: dict[str, Any]) -> None:
    shown = {k: v for k, v in metrics.items() if not k.startswith("cam/")}
    print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()), flush=True)


def run_trial(
    config: TrialConfig,
    data: ReIDData | None = None,
    report: Reporter = print_report,
    runtime: RuntimeOptions = RuntimeOptions(),
) -> dict[str, float]:
    """Train and evaluate one trial; returns the final epoch's metrics."""
    if runtime.threads:
        torch.set_num_threads(runtime.threads)
    device = pick_device(runtime.device)
    seed_everything(config.seed)
    data = data if data is not None else load_reid_data(config.dataset, augment=config.augment)

    labels, _ = relabel(data.train.pids)
    # Camera ids relabelled to 0..C-1: the targets of APRA's camera classifier.
    cameras, _ = relabel(data.train.camids)
    num_classes = int(labels.max()) + 1
    model = build_model(config, num_classes, num_cameras=int(cameras.max()) + 1).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    objective = build_objective(config)
    optimizer = build_optimizer(config, model)
    augmenter = build_augmenter(config, device, data)
    sampler = PKSampler(labels, config.train.ids_per_batch, config.train.images_per_id, seed=config.seed)
    # The decoded training set goes to the trial's device once; batches are gathered there.
    train_images = torch.from_numpy(data.train.images).to(device)
    train_labels = torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device)
    train_cameras = torch.from_numpy(np.asarray(cameras, dtype=np.int64)).to(device)

    def train_epoch(epoch: int, lr: float) -> dict[str, Any]:
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        started = time.perf_counter()
        sums: dict[str, float] = {}
        batches = sampler.epoch(epoch - 1)
        for iteration, batch in enumerate(batches):
            index = torch.from_numpy(batch).to(device)
            try:
                parts = train_step(model, objective, optimizer, augmenter(train_images[index], index), train_labels[index], train_cameras[index])
            except NonFiniteLossError as err:
                raise NonFiniteLossError(f"{err} at epoch {epoch}, iteration {iteration}") from None
            for key, value in parts.items():
                sums[key] = sums.get(key, 0.0) + value
        seconds = time.perf_counter() - started
        metrics: dict[str, Any] = {key: value / max(len(batches), 1) for key, value in sums.items()}
        images = len(batches) * t.ids_per_batch * t.images_per_id
        metrics.update(epoch=epoch, lr=lr, epoch_seconds=seconds, images_per_second=images / max(seconds, 1e-9))
        return metrics

    t = config.train
    final: dict[str, float] = {}
    for epoch in range(1, t.epochs + 1):
        lr = learning_rate(
            epoch, base_lr=t.lr, warmup_epochs=t.warmup_epochs, warmup_factor=t.warmup_factor, steps=t.lr_steps, gamma=t.lr_gamma
        )
        metrics = train_epoch(epoch, lr)
        if epoch % t.eval_every == 0 or (epoch == t.epochs and not t.swa.enabled):
            metrics.update(evaluate_model(config, model, data, device, runtime))
        report(metrics)
        final = metrics

    if t.swa.enabled:
        swa = t.swa
        averager = WeightAverager(model, second_moment=swa.swag)
        swa_epochs = swa.cycles * swa.cycle_epochs
        for k in range(1, swa_epochs + 1):
            epoch = t.epochs + k
            metrics = train_epoch(epoch, cyclic_cosine_lr(k, peak_lr=swa.lr or t.lr, cycle_epochs=swa.cycle_epochs, decay=swa.decay))
            if is_cycle_end(k, swa.cycle_epochs):
                averager.collect(model)
                metrics["swa_snapshots"] = averager.count
            if k == swa_epochs:
                metrics.update(evaluate_averaged(config, model, averager, data, train_images, device, runtime))
            elif epoch % t.eval_every == 0:
                metrics.update(evaluate_model(config, model, data, device, runtime))
            report(metrics)
            final = metrics

    if runtime.checkpoint_path:
        path = runtime.checkpoint_path.format(hash=config_hash(config), seed=config.seed)
        save_checkpoint(path, model, model.build_kwargs)
    return final

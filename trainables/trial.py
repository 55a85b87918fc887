"""One ReID trial: build from the trial config, train, evaluate, report.

``run_trial`` knows nothing of Ray or MLflow: it calls ``report(metrics)`` once per epoch, and
the caller decides where metrics go (Ray Tune in a study, stdout when run alone with
``python -m trainables``). Evaluation epochs add rank-k, mAP, mINP and the per-camera
``cam/cNN/q_mAP`` / ``cam/cNN/g_mAP`` / ``cam/cNN/rank1`` metrics.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import torch

from search_spaces.trial_config import TrialConfig
from trainables.data.arrays import SplitArrays
from trainables.data.augment import BatchAugmenter, to_normalized_float
from trainables.data.datasets import ReIDData, load_reid_data
from trainables.data.market import relabel
from trainables.data.sampler import PKSampler
from trainables.evaluation import evaluate_features
from trainables.losses import ReIDObjective
from trainables.models import ReIDModel
from trainables.schedule import learning_rate

Reporter = Callable[[dict[str, Any]], None]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the trial is recorded as failed."""


@dataclass(frozen=True)
class RuntimeOptions:
    """Where and how a trial runs. Not part of the config hash: it does not change the result."""

    device: str = "auto"
    threads: int | None = None
    eval_batch_size: int = 256


def pick_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_model(config: TrialConfig, num_classes: int) -> ReIDModel:
    """Adapter from the config to the model's keyword arguments."""
    m = config.model
    return ReIDModel(
        backbone=m.backbone,
        num_classes=num_classes,
        pooling=m.pooling,
        neck=m.neck,
        classifier_bias=m.classifier_bias,
        pretrained_path=m.pretrained_path,
    )


def build_objective(config: TrialConfig) -> ReIDObjective:
    loss = config.loss
    return ReIDObjective(
        id_weight=loss.id_weight,
        label_smoothing=loss.label_smoothing,
        triplet_kind=loss.triplet.kind,
        triplet_margin=loss.triplet.margin,
        triplet_weight=loss.triplet.weight,
    )


def build_optimizer(config: TrialConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    t = config.train
    params = [p for p in model.parameters() if p.requires_grad]
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=t.lr, momentum=0.9, weight_decay=t.weight_decay, nesterov=True)
    return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)


def build_augmenter(config: TrialConfig, device: torch.device) -> BatchAugmenter:
    a = config.augment
    return BatchAugmenter(
        flip=a.flip,
        pad=a.pad,
        erasing_p=a.random_erasing.p,
        erasing_area=a.random_erasing.area,
        erasing_ratio=a.random_erasing.ratio,
        seed=config.seed,
        device=device,
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


def evaluate_model(config: TrialConfig, model: ReIDModel, data: ReIDData, device: torch.device, runtime: RuntimeOptions) -> dict[str, float]:
    started = time.perf_counter()
    query = extract_embeddings(model, data.query, device, runtime.eval_batch_size)
    gallery = extract_embeddings(model, data.gallery, device, runtime.eval_batch_size)
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
    metrics = metrics_for_report(result)
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
    data = data if data is not None else load_reid_data(config.dataset)

    labels, _ = relabel(data.train.pids)
    num_classes = int(labels.max()) + 1
    model = build_model(config, num_classes).to(device)
    on_cuda = device.type == "cuda"
    if on_cuda:
        model = model.to(memory_format=torch.channels_last)
    objective = build_objective(config)
    optimizer = build_optimizer(config, model)
    augmenter = build_augmenter(config, device)
    sampler = PKSampler(labels, config.train.ids_per_batch, config.train.images_per_id, seed=config.seed)
    # The decoded training set goes to the trial's device once; batches are gathered there.
    train_images = torch.from_numpy(data.train.images).to(device)
    train_labels = torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device)

    t = config.train
    final: dict[str, float] = {}
    for epoch in range(1, t.epochs + 1):
        lr = learning_rate(
            epoch, base_lr=t.lr, warmup_epochs=t.warmup_epochs, warmup_factor=t.warmup_factor, steps=t.lr_steps, gamma=t.lr_gamma
        )
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        started = time.perf_counter()
        sums: dict[str, float] = {}
        batches = sampler.epoch(epoch - 1)
        for iteration, batch in enumerate(batches):
            index = torch.from_numpy(batch).to(device)
            x = augmenter(train_images[index])
            if on_cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=on_cuda):
                output = model(x)
            terms = objective(output, train_labels[index])
            if not math.isfinite(terms.parts["loss"]):
                raise NonFiniteLossError(f"loss became {terms.parts['loss']} at epoch {epoch}, iteration {iteration}")
            optimizer.zero_grad(set_to_none=True)
            terms.total.backward()
            optimizer.step()
            for key, value in terms.parts.items():
                sums[key] = sums.get(key, 0.0) + value
        seconds = time.perf_counter() - started
        metrics: dict[str, Any] = {key: value / max(len(batches), 1) for key, value in sums.items()}
        metrics.update(
            epoch=epoch,
            lr=lr,
            epoch_seconds=seconds,
            images_per_second=len(batches) * t.ids_per_batch * t.images_per_id / max(seconds, 1e-9),
        )
        if epoch % t.eval_every == 0 or epoch == t.epochs:
            metrics.update(evaluate_model(config, model, data, device, runtime))
        report(metrics)
        final = metrics
    return final

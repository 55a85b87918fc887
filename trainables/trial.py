"""One ReID trial: build from the trial config, train, evaluate, report.

The builders here turn the config into keyword arguments and objects (``model_kwargs``,
``build_model``, ``build_objective``, ``build_optimizer``, ``build_augmenter``); the loop is
:class:`trainables.engine.Trainer`, with evaluation, SWA/SWAG and the final checkpoint as hooks
(:mod:`trainables.engine_hooks`), put together by :func:`build_trainer`.

``run_trial`` knows nothing of Ray or MLflow: it calls ``report(metrics)`` once per epoch, and
the caller decides where metrics go (Ray Tune in a study, stdout when run alone with
``python -m trainables``). Evaluation epochs add rank-k, mAP, mINP and the per-camera
``cam/cNN/q_mAP`` / ``cam/cNN/g_mAP`` / ``cam/cNN/rank1`` metrics; the last one also the same
metrics of each ``eval.targets`` entry as ``<label>/<metric>`` (``duke/mAP``, ``duke/cam/c03/q_mAP``).

With ``train.swa`` on, ``cycles * cycle_epochs`` more epochs follow ``train.epochs`` (numbered
on from it) under the cyclic cosine schedule; the weights at each cycle end are averaged, and
the last epoch evaluates the averaged model (SWA) or the SWAG Bayesian model average -- the
mean of the embeddings of ``swag_samples`` sampled weight sets -- with BatchNorm statistics
recomputed on the (un-augmented) training images. Evaluations before the last epoch use the
current SGD weights. The trial's final model (the SWA mean with SWA on) can be saved with
``RuntimeOptions.checkpoint_path``.

A trial that continues a parent (``train.init_from``, Robust-ReID section 4.2 / Table 3: the
"+LR scheme" and "+SWAG" rows train on from the converged "-" model) loads the parent's final
model from the same ``checkpoint_path`` (its ``{hash}`` the parent's) strictly, before training,
and runs only the SWA/SWAG cycles: its epochs are numbered on from ``train.epochs`` (the
parent's last epoch), so its curves continue the parent's. The optimizer starts afresh (a
checkpoint holds the model only), as does the center loss when on.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from search_spaces.hashing import config_hash
from search_spaces.metrics import parse_camera_key
from search_spaces.trial_config import ROBUST_REID_BACKBONES, TrialConfig
from trainables.data.augment import AUGMENTATIONS, BatchAugmenter
from trainables.data.datasets import EvalSplits, ReIDData, load_reid_data, load_targets
from trainables.data.market import relabel
from trainables.data.sampler import PKSampler
from trainables.engine import EpochPlan, HookBase, NonFiniteLossError, Reporter, Trainer, train_step
from trainables.engine_hooks import (
    CenterLossHook,
    CheckpointHook,
    CompositeRateHook,
    EvaluationHook,
    Evaluator,
    SWAHook,
    extract_embeddings,
    metrics_for_report,
)
from trainables.losses import ReIDObjective
from trainables.losses.center import CenterLossStep
from trainables.losses.terms import LOSSES
from trainables.models import INSERTS, ReIDModel
from trainables.schedule import cyclic_cosine_lr, learning_rate

# The step, its error and the evaluation helpers moved to the engine; they stay importable from
# here (benchmarks and tests use these names).
_MOVED = (NonFiniteLossError, train_step, extract_embeddings, metrics_for_report)


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
        pretrained=m.pretrained or None,
        last_stride=m.last_stride,
        retrieval_feature=config.eval.feature,
    )


def build_model(config: TrialConfig, num_classes: int, num_cameras: int = 0) -> ReIDModel:
    """The trial's model; ``num_cameras`` (training cameras) is needed by modules that ask for
    it (APRA's camera classifier). Each module is initialised from the trial seed and its own
    name, so variants sharing a seed are paired."""
    from trainables.models.seeding import seeded_model

    return seeded_model(model_kwargs(config, num_classes, num_cameras), config.seed)


def build_center_loss(config: TrialConfig, model: ReIDModel, num_classes: int, device: torch.device) -> CenterLossStep | None:
    """Bag of Tricks' center loss with its own SGD over the centers, or None when off."""
    center = config.loss.center
    if center.weight <= 0:
        return None
    return CenterLossStep(num_classes, model.feature_dim, weight=center.weight, lr=center.lr, device=device)


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


# Devices with torch's fused (one kernel per step) Adam and SGD.
FUSED_OPTIMIZER_DEVICES = ("cpu", "cuda")


def build_optimizer(config: TrialConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """SGD (Nesterov, momentum 0.9) or Adam at ``train.lr`` and ``train.weight_decay``.

    Fused where torch has it: the same update in one kernel over all parameters instead of ~10
    per parameter tensor. On CPU that is 7x less optimizer time (4 ms against 29 ms per Adam step
    for a ResNet-10 on one thread, most of a small-image trial's step); results agree with the
    per-tensor update to float rounding (1e-9 after 50 steps)."""
    t = config.train
    params = [p for p in model.parameters() if p.requires_grad]
    devices = {p.device.type for p in params}
    fused = True if devices and devices <= set(FUSED_OPTIMIZER_DEVICES) else None
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=t.lr, momentum=0.9, weight_decay=t.weight_decay, nesterov=True, fused=fused)
    return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay, fused=fused)


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


def print_report(metrics: dict[str, Any]) -> None:
    shown = {k: v for k, v in metrics.items() if parse_camera_key(k) is None}
    print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()), flush=True)


def learning_rates(config: TrialConfig) -> EpochPlan:
    """The LR of every epoch number: warm-up and step decay over ``train.epochs``, then the
    SWA/SWAG cycles' cosine (their epochs numbered on from ``train.epochs``).

    A continued trial (``train.init_from``) runs only the cycles: the plan's first
    ``train.epochs`` entries are epoch numbers it starts after (the parent's), and it never runs
    them -- :func:`build_trainer` starts it there as a resumed trial starts, so its epoch numbers
    line up with the parent's. They hold NaN: a rate that must never be used."""
    t = config.train
    lrs = [
        math.nan
        if t.init_from
        else learning_rate(
            epoch, base_lr=t.lr, warmup_epochs=t.warmup_epochs, warmup_factor=t.warmup_factor, steps=t.lr_steps, gamma=t.lr_gamma
        )
        for epoch in range(1, t.epochs + 1)
    ]
    swa = t.swa
    if swa.enabled:
        lrs += [
            cyclic_cosine_lr(k, peak_lr=swa.lr or t.lr, cycle_epochs=swa.cycle_epochs, decay=swa.decay)
            for k in range(1, swa.cycles * swa.cycle_epochs + 1)
        ]
    return EpochPlan(tuple(lrs))


def build_hooks(config: TrialConfig, evaluator: Evaluator, runtime: RuntimeOptions, center: CenterLossStep | None = None) -> list[HookBase]:
    """The trial's hooks, in call order: the center loss's term and step, the composite rate,
    SWA/SWAG (with the final averaged evaluation), periodic evaluation, then saving the final
    model (after SWA has loaded the mean). ``swa.average: false`` runs the cyclic schedule
    without averaging (Robust-ReID Table 3's "+LR scheme"): the last epoch evaluates as usual."""
    t = config.train
    hooks: list[HookBase] = []
    if center is not None:
        hooks.append(CenterLossHook(center))
    if config.augment.implicit_attention.enabled and config.augment.implicit_attention.p > 0:
        hooks.append(CompositeRateHook())
    averaging = t.swa.enabled and t.swa.average
    if averaging:
        s = t.swa
        swa = SWAHook(
            evaluator,
            start_epoch=t.epochs,
            cycle_epochs=s.cycle_epochs,
            swag=s.swag,
            swag_samples=s.swag_samples,
            swag_scale=s.swag_scale,
            seed=config.seed,
        )
        hooks.append(swa)
    hooks.append(EvaluationHook(evaluator, t.eval_every, evaluate_last=not averaging))
    if runtime.checkpoint_path:
        hooks.append(CheckpointHook(runtime.checkpoint_path.format(hash=config_hash(config), seed=config.seed)))
    return hooks


def build_trainer(
    config: TrialConfig,
    data: ReIDData | None = None,
    report: Reporter = print_report,
    runtime: RuntimeOptions = RuntimeOptions(),
    hooks: Sequence[HookBase] = (),
    targets: Mapping[str, EvalSplits] | None = None,
) -> Trainer:
    """Everything a trial trains with, seeded: model, objective, optimizer, augmenter, sampler,
    the training set on the trial's device, the LR plan and the hooks (``hooks`` are called
    after the trial's own). ``data`` is loaded (after seeding) when not given, and so are the
    query and gallery of the ``eval.targets`` (by label) when ``targets`` is not given."""
    if runtime.threads:
        torch.set_num_threads(runtime.threads)
    device = pick_device(runtime.device)
    seed_everything(config.seed)
    data = data if data is not None else load_reid_data(config.dataset, augment=config.augment)
    labels, _ = relabel(data.train.pids)
    # Camera ids relabelled to 0..C-1: the targets of APRA's camera classifier.
    cameras, _ = relabel(data.train.camids)
    num_classes = int(labels.max()) + 1
    model = build_model(config, num_classes, num_cameras=int(cameras.max()) + 1)
    if config.train.init_from:
        load_parent(model, config, runtime)
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    objective = build_objective(config)
    center = build_center_loss(config, model, num_classes, device)
    optimizer = build_optimizer(config, model)
    augmenter = build_augmenter(config, device, data)
    sampler = PKSampler(labels, config.train.ids_per_batch, config.train.images_per_id, seed=config.seed)
    targets = targets if targets is not None else load_targets(config)
    evaluator = Evaluator(data, device, config.eval.distance, config.eval.max_rank, runtime.eval_batch_size, targets=targets)
    trainer = Trainer(
        model=model,
        objective=objective,
        optimizer=optimizer,
        sampler=sampler,
        augmenter=augmenter,
        # The decoded training set goes to the trial's device once; batches are gathered there.
        train_images=torch.from_numpy(data.train.images).to(device),
        train_labels=torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device),
        train_cameras=torch.from_numpy(np.asarray(cameras, dtype=np.int64)).to(device),
        plan=learning_rates(config),
        hooks=[*build_hooks(config, evaluator, runtime, center), *hooks],
        report=report,
    )
    # A continued trial starts after its parent's last epoch, as a resumed one starts after its own.
    trainer.epoch = config.train.first_epoch - 1
    return trainer


def parent_checkpoint(config: TrialConfig, runtime: RuntimeOptions) -> str:
    """Where the parent's final model of a continued trial is: ``runtime.checkpoint_path``
    (the study's checkpoint folder) with the parent's hash."""
    if not runtime.checkpoint_path:
        raise ValueError(
            f"train.init_from {config.train.init_from}: no checkpoint folder to load the parent's model from "
            "(RuntimeOptions.checkpoint_path, the study's output.checkpoints)"
        )
    return runtime.checkpoint_path.format(hash=config.train.init_from, seed=config.seed)


def load_parent(model: torch.nn.Module, config: TrialConfig, runtime: RuntimeOptions) -> None:
    """Load the parent trial's final model into ``model`` strictly (every key, every shape)."""
    from trainables.models.checkpoint import load_checkpoint

    path = parent_checkpoint(config, runtime)
    try:
        parent, _ = load_checkpoint(path)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"train.init_from {config.train.init_from}: the parent trial's checkpoint {path} is missing "
            "(the parent did not finish, or its checkpoint was removed)"
        ) from None
    try:
        model.load_state_dict(parent.state_dict(), strict=True)
    except RuntimeError as err:
        detail = str(err).strip().splitlines()
        raise ValueError(f"train.init_from: the checkpoint {path} does not fit this trial's model: {' '.join(detail[:3])}") from None
    print(
        f"continuing the parent trial {config.train.init_from} from {path}: epochs {config.train.first_epoch}-{config.train.total_epochs}",
        flush=True,
    )


def run_trial(
    config: TrialConfig,
    data: ReIDData | None = None,
    report: Reporter = print_report,
    runtime: RuntimeOptions = RuntimeOptions(),
) -> dict[str, float]:
    """Train and evaluate one trial; returns the final epoch's metrics."""
    return build_trainer(config, data, report, runtime).train()

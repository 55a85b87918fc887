"""A timm backbone with a ReID head, and optional modules inserted after backbone stages.

Training returns the pooled feature (for the metric loss) and identity logits; evaluation
returns the embedding used for retrieval. Necks:

- ``bnneck`` (Luo et al., *Bag of Tricks*, section 3.4): triplet loss on the pooled feature
  ``f_t``, a BatchNorm without a learned shift gives ``f_i`` for the classifier, and ``f_i`` is
  the retrieval embedding.
- ``l2norm`` (Robust-ReID section 3.1, "L2 normalization"): the pooled feature is L2-normalised
  and used for both losses and retrieval. For the two-branch Robust-ReID/HA-CNN backbones each
  branch's part (global, local) is normalised on its own, as in the paper's Fig. 4.
- ``none``: the pooled feature is used everywhere.

Inserted modules (``inserts``, see :mod:`trainables.models.inserts`) are placed by
:func:`~trainables.models.surgery.insert_after_stage` after the backbone weights are loaded.
In training their side outputs join the :class:`ReIDOutput` (``modules``): an auxiliary
output (APRA's camera logits) and hard examples (DRANet's), which run through the rest of the
backbone appended to the batch and come back as identity logits (``hard_logits``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import timm
import torch
from torch import nn
from torch.nn import functional as F

# Registers the Robust-ReID/HA-CNN timm models and the inserted modules.
import trainables.models.apra  # noqa: F401
import trainables.models.dranet  # noqa: F401
import trainables.models.robust_reid  # noqa: F401
from trainables.models.inserts import InsertedModule, ModuleOutput, build_insert
from trainables.models.last_stride import set_last_stride
from trainables.models.pooling import build_pooling
from trainables.models.pretrained import create_pretrained_backbone
from trainables.models.surgery import insert_after_stage, stage_info

# Classifier-head parameter prefixes of timm models: dropped when loading backbone weights.
HEAD_PREFIXES = ("fc.", "classifier.", "head.", "last_linear.")


@dataclass
class ReIDOutput:
    """One forward pass.

    ``features``: (B, D) input to the metric loss; ``logits``: (B, classes) identity scores
    (training only); ``embedding``: (B, D) retrieval embedding; ``modules``: the side outputs
    of each inserted module (training only), from which the objective takes their loss terms;
    ``hard_logits``: identity logits of every appended hard example, (B, classes) each.
    """

    features: torch.Tensor
    logits: torch.Tensor | None
    embedding: torch.Tensor
    modules: list[ModuleOutput] = field(default_factory=list)
    hard_logits: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def aux_logits(self) -> list[torch.Tensor]:
        """The modules' auxiliary outputs (APRA: one (B, cameras) tensor per module)."""
        return [m.aux for m in self.modules if m.aux is not None]


def load_backbone_weights(backbone: nn.Module, path: str) -> None:
    """Load a local weights file strictly (classifier-head keys excepted); never downloads."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"backbone weights file not found: {file}")
    state = torch.load(file, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    state = {k: v for k, v in state.items() if not k.startswith(HEAD_PREFIXES)}
    expected = {k for k in backbone.state_dict() if not k.startswith(HEAD_PREFIXES)}
    missing, unexpected = expected - set(state), set(state) - expected
    if missing or unexpected:
        raise ValueError(
            f"weights in {file} do not match the backbone: {len(missing)} missing keys "
            f"(e.g. {sorted(missing)[:3]}), {len(unexpected)} unexpected (e.g. {sorted(unexpected)[:3]})"
        )
    backbone.load_state_dict(state, strict=False)


class ReIDModel(nn.Module):
    """Backbone (+ inserted modules) -> global pooling -> neck -> identity classifier.

    Args:
        backbone: timm model name (including ``robust_reid_1x``/``robust_reid_2x``/``hacnn``).
        num_classes: training identities.
        pooling: 'avg' or 'gem'.
        neck: 'bnneck', 'l2norm' or 'none'.
        classifier_bias: bias in the identity classifier.
        pretrained_path: local backbone weights, loaded before any surgery.
        pretrained: a timm weight tag (``resnet50.tv_in1k``) loaded through timm
            (:mod:`trainables.models.pretrained`); exclusive with ``pretrained_path``.
        last_stride: stride of the last downsampling stage (Bag of Tricks: 1), None keeps it
            (:mod:`trainables.models.last_stride`).
        retrieval_feature: ``post_neck`` (the embedding after the neck) or ``pre_neck`` (the
            pooled feature before it) is what evaluation ranks with.
        backbone_kwargs: extra keyword arguments for ``timm.create_model``
            (e.g. ``{"shuffle_blocks": False}`` for the Robust-ReID backbones).
        inserts: modules to insert, in order, as ``{"module": registry name, "stage":
            feature_info index, "kwargs": {...}}``; the stage's channel count is passed for you.
        insert_factory: builds each insert from its spec and channel count instead of
            ``build_insert`` (per-module seeding, :func:`trainables.models.seeding.seeded_model`);
            not part of ``build_kwargs``: it changes initial weights only.
    """

    def __init__(
        self,
        *,
        backbone: str,
        num_classes: int,
        pooling: str = "avg",
        neck: str = "bnneck",
        classifier_bias: bool = False,
        pretrained_path: str | None = None,
        backbone_kwargs: Mapping[str, Any] | None = None,
        inserts: Sequence[Mapping[str, Any]] = (),
        pretrained: str | None = None,
        last_stride: int | None = None,
        retrieval_feature: str = "post_neck",
        insert_factory: Callable[[Mapping[str, Any], int], nn.Module] | None = None,
    ):
        super().__init__()
        self.build_kwargs: dict[str, Any] = copy.deepcopy(
            dict(
                backbone=backbone,
                num_classes=num_classes,
                pooling=pooling,
                neck=neck,
                classifier_bias=classifier_bias,
                pretrained_path=pretrained_path,
                backbone_kwargs=dict(backbone_kwargs or {}),
                inserts=[dict(spec) for spec in inserts],
                pretrained=pretrained,
                last_stride=last_stride,
                retrieval_feature=retrieval_feature,
            )
        )
        if neck not in ("bnneck", "l2norm", "none"):
            raise ValueError(f"unknown neck '{neck}'; known: bnneck, l2norm, none")
        if retrieval_feature not in ("post_neck", "pre_neck"):
            raise ValueError(f"unknown retrieval_feature '{retrieval_feature}'; known: post_neck, pre_neck")
        if pretrained and pretrained_path:
            raise ValueError("give pretrained (a timm weight tag) or pretrained_path (a local file), not both")
        if pretrained:
            if pretrained.split(".")[0] != backbone:
                raise ValueError(f"weight tag '{pretrained}' is not one of backbone '{backbone}'")
            net = create_pretrained_backbone(pretrained, num_classes=0, global_pool="", **dict(backbone_kwargs or {}))
        else:
            net = timm.create_model(backbone, pretrained=False, num_classes=0, global_pool="", **dict(backbone_kwargs or {}))
        if pretrained_path:
            load_backbone_weights(net, pretrained_path)
        if last_stride is not None:
            if getattr(net, "embedding_dims", None) is not None:
                raise ValueError(f"last_stride applies to timm CNN backbones; '{backbone}' fixes its strides (Robust-ReID Table 1)")
            set_last_stride(net, last_stride)
        self.retrieval_feature = retrieval_feature
        for spec in inserts:
            unknown = set(spec) - {"module", "stage", "kwargs"}
            if unknown or "module" not in spec or "stage" not in spec:
                raise ValueError(f"an insert is {{'module', 'stage', 'kwargs'}}, got keys {sorted(spec)}")
            info = stage_info(net, spec["stage"])
            module = (
                insert_factory(spec, info.channels)
                if insert_factory
                else build_insert(spec["module"], info.channels, dict(spec.get("kwargs") or {}))
            )
            net = insert_after_stage(net, spec["stage"], module)
        self.backbone = net
        self.inserted = [m for m in net.modules() if isinstance(m, InsertedModule)]
        expanding = [m for m in self.inserted if m.hard_example_names]
        if len(expanding) > 1:
            raise ValueError("at most one inserted module may generate hard examples")
        self.hard_example_names: tuple[str, ...] = expanding[0].hard_example_names if expanding else ()

        # Two-branch backbones (Robust-ReID/HA-CNN) pool inside and return their descriptor.
        self.branch_dims: tuple[int, ...] | None = getattr(net, "embedding_dims", None)
        if self.branch_dims is not None:
            net.reset_classifier(0, global_pool=pooling)
            self.pool: nn.Module = nn.Identity()
        else:
            self.pool = build_pooling(pooling)
        self.feature_dim = int(net.num_features)
        self.neck_kind = neck
        self.bottleneck: nn.Module = nn.Identity()
        if neck == "bnneck":
            self.bottleneck = nn.BatchNorm1d(self.feature_dim)
            self.bottleneck.bias.requires_grad_(False)  # BNNeck: no shift, as in Bag of Tricks
        self.classifier = nn.Linear(self.feature_dim, num_classes, bias=classifier_bias)
        nn.init.normal_(self.classifier.weight, std=0.001)
        if classifier_bias:
            nn.init.zeros_(self.classifier.bias)

    def pooled_features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, D) pooled backbone features; N > B in training when hard examples are appended."""
        if self.branch_dims is not None:
            return self.backbone.forward_head(self.backbone.forward_features(images), pre_logits=True)
        return self.pool(self.backbone.forward_features(images))

    def forward(self, images: torch.Tensor) -> ReIDOutput:
        batch = images.shape[0]
        for module in self.inserted:
            module.clear()
        pooled = self.pooled_features(images)
        if self.neck_kind == "l2norm":
            parts = pooled.split(list(self.branch_dims), dim=1) if self.branch_dims else (pooled,)
            pooled = torch.cat([F.normalize(part, dim=1) for part in parts], dim=1)
        embedding = self.bottleneck(pooled)
        if not self.training:
            retrieval = pooled if self.retrieval_feature == "pre_neck" else embedding
            return ReIDOutput(features=pooled, logits=None, embedding=retrieval)
        logits = self.classifier(embedding)
        expected = batch * (1 + len(self.hard_example_names))
        if pooled.shape[0] != expected:
            raise RuntimeError(f"the backbone returned {pooled.shape[0]} rows for a batch of {batch}; expected {expected}")
        hard = {name: logits[(i + 1) * batch : (i + 2) * batch] for i, name in enumerate(self.hard_example_names)}
        outputs = []
        for module in self.inserted:
            aux = module.aux_logits()
            own = {name: hard[name] for name in module.hard_example_names}
            outputs.append(ModuleOutput(module.insert_name, module, None if aux is None else aux[:batch], own))
            module.clear()  # hold no graph tensors between calls (a module with one cannot be deep-copied)
        return ReIDOutput(
            features=pooled[:batch],
            logits=logits[:batch],
            embedding=embedding[:batch],
            modules=outputs,
            hard_logits=hard,
        )

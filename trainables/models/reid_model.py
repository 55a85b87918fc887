"""A timm backbone with a ReID head.

Training returns the pooled feature (for the metric loss) and identity logits; evaluation
returns the embedding used for retrieval. Necks:

- ``bnneck`` (Luo et al., *Bag of Tricks*, section 3.4): triplet loss on the pooled feature
  ``f_t``, a BatchNorm without a learned shift gives ``f_i`` for the classifier, and ``f_i`` is
  the retrieval embedding.
- ``l2norm`` (Robust-ReID section 3.1, "L2 normalization"): the pooled feature is L2-normalised
  and used for both losses and retrieval.
- ``none``: the pooled feature is used everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from torch import nn
from torch.nn import functional as F

from trainables.models.pooling import build_pooling

# Classifier-head parameter prefixes of timm models: dropped when loading backbone weights.
HEAD_PREFIXES = ("fc.", "classifier.", "head.", "last_linear.")


@dataclass
class ReIDOutput:
    """``features``: input to the metric loss; ``logits``: identity scores (training only)."""

    features: torch.Tensor
    logits: torch.Tensor | None
    embedding: torch.Tensor


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
    """Backbone -> global pooling -> neck -> identity classifier."""

    def __init__(
        self,
        *,
        backbone: str,
        num_classes: int,
        pooling: str = "avg",
        neck: str = "bnneck",
        classifier_bias: bool = False,
        pretrained_path: str | None = None,
    ):
        super().__init__()
        self.backbone = timm.create_model(backbone, pretrained=False, num_classes=0, global_pool="")
        if pretrained_path:
            load_backbone_weights(self.backbone, pretrained_path)
        self.feature_dim = int(self.backbone.num_features)
        self.pool = build_pooling(pooling)
        if neck not in ("bnneck", "l2norm", "none"):
            raise ValueError(f"unknown neck '{neck}'; known: bnneck, l2norm, none")
        self.neck_kind = neck
        self.bottleneck: nn.Module = nn.Identity()
        if neck == "bnneck":
            self.bottleneck = nn.BatchNorm1d(self.feature_dim)
            self.bottleneck.bias.requires_grad_(False)  # BNNeck: no shift, as in Bag of Tricks
        self.classifier = nn.Linear(self.feature_dim, num_classes, bias=classifier_bias)
        nn.init.normal_(self.classifier.weight, std=0.001)
        if classifier_bias:
            nn.init.zeros_(self.classifier.bias)

    def forward(self, images: torch.Tensor) -> ReIDOutput:
        pooled = self.pool(self.backbone.forward_features(images))
        if self.neck_kind == "l2norm":
            pooled = F.normalize(pooled, dim=1)
        embedding = self.bottleneck(pooled)
        logits = self.classifier(embedding) if self.training else None
        return ReIDOutput(features=pooled, logits=logits, embedding=embedding)

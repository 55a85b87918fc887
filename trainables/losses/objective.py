"""The training objective of a ReID trial, built from explicit keyword arguments.

``L = id_weight * CE_ls(logits, y) + triplet_weight * L_tri(features, y)``: the Bag of Tricks
baseline (cross entropy with label smoothing plus batch-hard triplet), the person-identity loss
``L_p`` of APRA section 5.2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from trainables.losses.triplet import batch_hard_triplet
from trainables.models.reid_model import ReIDOutput


@dataclass
class LossTerms:
    total: torch.Tensor
    parts: dict[str, float]


class ReIDObjective:
    """Computes the weighted loss terms for one batch."""

    def __init__(
        self,
        *,
        id_weight: float = 1.0,
        label_smoothing: float = 0.1,
        triplet_kind: str = "batch_hard",
        triplet_margin: float = 0.3,
        triplet_weight: float = 1.0,
    ):
        if triplet_kind not in ("batch_hard", "none"):
            raise ValueError(f"unknown triplet loss '{triplet_kind}'; known: batch_hard, none")
        self.id_weight = id_weight
        self.label_smoothing = label_smoothing
        self.triplet_kind = triplet_kind
        self.triplet_margin = triplet_margin
        self.triplet_weight = triplet_weight

    def __call__(self, output: ReIDOutput, labels: torch.Tensor) -> LossTerms:
        assert output.logits is not None, "the model must be in training mode"
        loss_id = F.cross_entropy(output.logits.float(), labels, label_smoothing=self.label_smoothing)
        total = self.id_weight * loss_id
        parts = {"loss_id": float(loss_id.detach())}
        if self.triplet_kind == "batch_hard" and self.triplet_weight > 0:
            loss_tri = batch_hard_triplet(output.features, labels, self.triplet_margin)
            total = total + self.triplet_weight * loss_tri
            parts["loss_triplet"] = float(loss_tri.detach())
        parts["loss"] = float(total.detach())
        return LossTerms(total=total, parts=parts)

"""The training objective of a ReID trial, built from explicit keyword arguments.

``L = id_weight * CE_ls(logits, y) + triplet_weight * L_tri(features, y)
      + camera_weight * L_cam + hard_weight * L_hard``

- the first two terms are the Bag of Tricks baseline (cross entropy with label smoothing plus a
  triplet loss, :mod:`trainables.losses.triplet`): APRA's person loss ``L_p`` (section 5.2);
- ``L_cam``: cross entropy of APRA's camera classifiers on the camera ids (no smoothing),
  averaged over the APRA modules, so ``camera_weight`` is the paper's ``lambda`` however many
  stages carry APRA (section 5.2: ``L = L_p + lambda * L_cam``);
- ``L_hard``: DRANet's hard examples trained with the ID loss (cross entropy with label
  smoothing, the images' identity labels), averaged over the kinds of hard example;
- with ``center`` (:mod:`trainables.losses.center`), ``center.weight * L_C`` on the pre-neck
  feature (Bag of Tricks section 3.6).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from trainables.losses.center import CenterLossStep
from trainables.losses.triplet import TRIPLET_KINDS, triplet_loss
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
        triplet_soft_margin: bool = False,
        triplet_weight: float = 1.0,
        camera_weight: float = 0.01,
        hard_weight: float = 1.0,
        center: CenterLossStep | None = None,
    ):
        if triplet_kind != "none":
            TRIPLET_KINDS.get(triplet_kind)  # unknown kinds fail here, listing the known ones
        for name, value in (("id_weight", id_weight), ("triplet_weight", triplet_weight), ("camera_weight", camera_weight), ("hard_weight", hard_weight)):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        self.id_weight = id_weight
        self.label_smoothing = label_smoothing
        self.triplet_kind = triplet_kind
        self.triplet_margin = triplet_margin
        self.triplet_soft_margin = triplet_soft_margin
        self.triplet_weight = triplet_weight
        self.camera_weight = camera_weight
        self.hard_weight = hard_weight
        # Bag of Tricks' center loss on the pre-neck feature; its centers step after the model's.
        self.center = center

    def __call__(self, output: ReIDOutput, labels: torch.Tensor, camera_labels: torch.Tensor | None = None) -> LossTerms:
        if output.logits is None:
            raise ValueError("the objective needs training outputs: call model.train() before the forward pass")
        loss_id = F.cross_entropy(output.logits.float(), labels, label_smoothing=self.label_smoothing)
        total = self.id_weight * loss_id
        parts: dict[str, torch.Tensor] = {"loss_id": loss_id}
        if self.triplet_kind != "none" and self.triplet_weight > 0:
            loss_tri = triplet_loss(
                output.features, labels, kind=self.triplet_kind, margin=self.triplet_margin, soft_margin=self.triplet_soft_margin
            )
            total = total + self.triplet_weight * loss_tri
            parts["loss_triplet"] = loss_tri
        if self.center is not None:
            loss_center = self.center(output.features, labels)
            total = total + self.center.weight * loss_center
            parts["loss_center"] = loss_center
        if output.camera_logits:
            if camera_labels is None:
                raise ValueError("the model has a camera classifier (APRA): pass the batch's camera labels")
            loss_cam = torch.stack([F.cross_entropy(c.float(), camera_labels) for c in output.camera_logits]).mean()
            total = total + self.camera_weight * loss_cam
            parts["loss_camera"] = loss_cam
        if output.hard_logits:
            loss_hard = torch.stack(
                [F.cross_entropy(h.float(), labels, label_smoothing=self.label_smoothing) for h in output.hard_logits.values()]
            ).mean()
            total = total + self.hard_weight * loss_hard
            parts["loss_hard"] = loss_hard
        parts["loss"] = total
        # One device-to-host copy for all the reported numbers (not one sync per term).
        values = torch.stack([v.detach().float() for v in parts.values()]).tolist()
        return LossTerms(total=total, parts=dict(zip(parts, values)))

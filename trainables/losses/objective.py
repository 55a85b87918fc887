"""The training objective of a ReID trial, built from explicit keyword arguments.

``L = id_weight * CE_ls(logits, y) + triplet_weight * L_tri(features, y)
      + sum_t w_t * mean_modules(L_t)``

- the first two terms are the Bag of Tricks baseline (cross entropy with label smoothing plus a
  triplet loss, :mod:`trainables.losses.triplet`): APRA's person loss ``L_p`` (section 5.2);
- ``L_t``: the loss terms the inserted modules contribute
  (:meth:`trainables.models.inserts.InsertedModule.loss_terms`), each averaged over the modules
  giving it and weighted by ``term_weights[t]`` (from their config sections). APRA gives
  ``loss_camera`` (its camera classifiers' cross entropy; averaged over the APRA modules, the
  weight is the paper's ``lambda`` however many stages carry APRA, section 5.2:
  ``L = L_p + lambda * L_cam``); DRANet gives ``loss_hard`` (its hard examples trained with
  the ID loss).
- ``extra_terms``: registered loss terms (:mod:`trainables.losses.terms`), ``(name, term,
  weight)`` each, reported as ``loss_<name>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch
from torch.nn import functional as F

from trainables.losses.triplet import TRIPLET_KINDS, triplet_loss
from trainables.models.inserts import LossTargets
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
        term_weights: Mapping[str, float] | None = None,
        extra_terms: Sequence[tuple[str, Callable[[ReIDOutput, LossTargets], torch.Tensor], float]] = (),
    ):
        if triplet_kind != "none":
            TRIPLET_KINDS.get(triplet_kind)  # unknown kinds fail here, listing the known ones
        term_weights = dict(term_weights or {})
        for name, value in (
            ("id_weight", id_weight),
            ("triplet_weight", triplet_weight),
            *term_weights.items(),
            *((n, w) for n, _, w in extra_terms),
        ):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        self.id_weight = id_weight
        self.label_smoothing = label_smoothing
        self.triplet_kind = triplet_kind
        self.triplet_margin = triplet_margin
        self.triplet_soft_margin = triplet_soft_margin
        self.triplet_weight = triplet_weight
        self.term_weights = term_weights
        self.extra_terms = list(extra_terms)

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
        targets = LossTargets(labels, camera_labels, self.label_smoothing)
        contributed: dict[str, list[torch.Tensor]] = {}
        for module_output in output.modules:
            for term, value in module_output.loss_terms(targets).items():
                contributed.setdefault(term, []).append(value)
        for term, values in contributed.items():
            if term not in self.term_weights:
                raise ValueError(
                    f"an inserted module contributes the loss term '{term}' but no weight was given for it; weights: {sorted(self.term_weights)}"
                )
            loss_term = torch.stack(values).mean()
            total = total + self.term_weights[term] * loss_term
            parts[term] = loss_term
        for name, term_fn, weight in self.extra_terms:  # registered loss terms (loss.<name>)
            value = term_fn(output, targets)
            total = total + weight * value
            parts[f"loss_{name}"] = value
        parts["loss"] = total
        # One device-to-host copy for all the reported numbers (not one sync per term).
        values = torch.stack([v.detach().float() for v in parts.values()]).tolist()
        return LossTerms(total=total, parts=dict(zip(parts, values)))

"""Metric-learning losses on a P x K batch (Robust-ReID section 3.1, eqs. 2-5).

A triplet loss here has two parts:

- a *kind*, registered with :func:`register_triplet`, that reduces each anchor's distances to
  one positive distance ``d_ap`` and one negative distance ``d_an``: ``batch_hard`` takes the
  hardest positive and negative (eq. 3, Hermans et al.), ``batch_soft`` the softmax-weighted
  sums of eq. 4 (Ristani & Tomasi), with ``w_p ~ exp(d(a, p))`` over the positives and
  ``w_n ~ exp(-d(a, n))`` over the negatives (weights not detached);
- a *margin function*: the hinge ``[m + d_ap - d_an]_+`` or, with ``soft_margin``, the soft
  margin ``softplus(d_ap - d_an)`` of eq. 5, which has no margin parameter.

Anchors without a positive or a negative in the batch are skipped.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch.nn import functional as F

from trainables.models.registry import Registry

# (dist (B, B), positive mask, negative mask) -> (d_ap (B,), d_an (B,)); rows that are not
# valid anchors may hold anything finite.
AnchorDistances = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

TRIPLET_KINDS: Registry[AnchorDistances] = Registry("triplet loss")


def register_triplet(name: str) -> Callable[[AnchorDistances], AnchorDistances]:
    """Decorator registering a triplet kind (an anchor-distance reduction) under ``name``."""
    return TRIPLET_KINDS.register(name)


def pairwise_euclidean(features: torch.Tensor) -> torch.Tensor:
    """(B, D) -> (B, B) euclidean distances, numerically safe at zero."""
    squared = features.pow(2).sum(1, keepdim=True)
    dist = squared + squared.t() - 2.0 * features @ features.t()
    return dist.clamp(min=1e-12).sqrt()


@register_triplet("batch_hard")
def hardest_distances(dist: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 3: ``max_p d(a, p)`` and ``min_n d(a, n)``."""
    d_ap = dist.masked_fill(~positive, float("-inf")).amax(1)
    d_an = dist.masked_fill(~negative, float("inf")).amin(1)
    return d_ap, d_an


@register_triplet("batch_soft")
def softmax_weighted_distances(dist: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 4: ``sum_p w_p d(a, p)`` with ``w_p = softmax_p(d)`` and ``sum_n w_n d(a, n)`` with
    ``w_n = softmax_n(-d)``."""
    has_pos = positive.any(1, keepdim=True)
    has_neg = negative.any(1, keepdim=True)
    # Rows without positives/negatives get uniform finite logits (they are dropped later).
    w_p = torch.where(has_pos, dist.masked_fill(~positive, float("-inf")), 0.0).softmax(1)
    w_n = torch.where(has_neg, (-dist).masked_fill(~negative, float("-inf")), 0.0).softmax(1)
    return (w_p * dist).sum(1), (w_n * dist).sum(1)


def _all_triplets() -> AnchorDistances:
    def not_a_reduction(dist: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise TypeError("batch_all averages over triplets, not anchors: call triplet_loss")

    return not_a_reduction


# Eq. 2 (Schroff et al.'s original triplet loss) over every valid (a, p, n) of the batch: the
# "original triplet loss" of Robust-ReID's column b. It has no per-anchor reduction, so
# triplet_loss handles it; the registration makes the name known to configs and checks.
register_triplet("batch_all")(_all_triplets())


def batch_all_triplet_loss(
    dist: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float, soft_margin: bool
) -> torch.Tensor:
    """Eq. 2 averaged over all valid triplets: ``mean_{a,p,n} [m + d(a, p) - d(a, n)]_+``."""
    gap = dist[:, :, None] - dist[:, None, :]  # (a, p, n)
    valid = positive[:, :, None] & negative[:, None, :]
    if not bool(valid.any()):
        return dist.sum() * 0.0
    gap = gap[valid]
    return F.softplus(gap).mean() if soft_margin else F.relu(margin + gap).mean()


def triplet_loss(
    features: torch.Tensor, labels: torch.Tensor, *, kind: str, margin: float = 0.3, soft_margin: bool = False
) -> torch.Tensor:
    """Mean triplet loss over the valid anchors of a batch (0 if there are none).

    Args:
        features: (B, D) embeddings (computed in float32).
        labels: (B,) identity labels.
        kind: a registered kind ('batch_hard', 'batch_soft', 'batch_all').
        margin: ``m`` of the hinge; unused with ``soft_margin``.
        soft_margin: ``softplus(d_ap - d_an)`` (eq. 5) instead of ``[m + d_ap - d_an]_+``.
    """
    reduce = TRIPLET_KINDS.get(kind)
    features = features.float()
    dist = pairwise_euclidean(features)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    positive = same & ~eye
    negative = ~same
    if kind == "batch_all":
        return batch_all_triplet_loss(dist, positive, negative, margin, soft_margin)
    valid = positive.any(1) & negative.any(1)
    if not bool(valid.any()):
        return features.sum() * 0.0
    d_ap, d_an = reduce(dist, positive, negative)
    gap = (d_ap - d_an)[valid]
    return F.softplus(gap).mean() if soft_margin else F.relu(margin + gap).mean()


def batch_hard_triplet(features: torch.Tensor, labels: torch.Tensor, margin: float, soft_margin: bool = False) -> torch.Tensor:
    """Batch-hard triplet loss (Hermans et al. 2017; Robust-ReID eq. 3):
    ``mean_a [m + max_p d(a, p) - min_n d(a, n)]_+`` over every anchor of the batch."""
    return triplet_loss(features, labels, kind="batch_hard", margin=margin, soft_margin=soft_margin)


def batch_soft_triplet(features: torch.Tensor, labels: torch.Tensor, margin: float = 0.3, soft_margin: bool = True) -> torch.Tensor:
    """Weighted batch-soft triplet loss (Robust-ReID eq. 4; with ``soft_margin`` eq. 5)."""
    return triplet_loss(features, labels, kind="batch_soft", margin=margin, soft_margin=soft_margin)

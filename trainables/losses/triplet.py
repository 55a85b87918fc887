"""Metric-learning losses on a P x K batch."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def pairwise_euclidean(features: torch.Tensor) -> torch.Tensor:
    """(B, D) -> (B, B) euclidean distances, numerically safe at zero."""
    squared = features.pow(2).sum(1, keepdim=True)
    dist = squared + squared.t() - 2.0 * features @ features.t()
    return dist.clamp(min=1e-12).sqrt()


def batch_hard_triplet(features: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Batch-hard triplet loss (Hermans et al. 2017; Robust-ReID eq. 3):
    ``mean_a [m + max_p d(a, p) - min_n d(a, n)]_+`` over every anchor of the batch.

    Anchors without a positive or a negative in the batch are skipped.
    """
    features = features.float()
    dist = pairwise_euclidean(features)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    positive = same & ~eye
    negative = ~same
    valid = positive.any(1) & negative.any(1)
    if not bool(valid.any()):
        return features.sum() * 0.0
    hardest_positive = dist.masked_fill(~positive, float("-inf")).amax(1)
    hardest_negative = dist.masked_fill(~negative, float("inf")).amin(1)
    return F.relu(margin + hardest_positive - hardest_negative)[valid].mean()

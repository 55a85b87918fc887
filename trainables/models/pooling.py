"""Global pooling layers for the ReID head."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from trainables.models.registry import Registry


class GeneralizedMeanPooling(nn.Module):
    """GeM pooling (Radenovic et al.), used by Robust-ReID section 3.2:
    ``GeM(f_k) = (1/n * sum_i x_i^p_k)^(1/p_k)`` with a learnable ``p`` initialised to 3.

    ``p = 1`` is average pooling and ``p -> inf`` approaches max pooling.
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6):
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.adaptive_avg_pool2d(x.clamp(min=self.eps).pow(self.p), 1)
        return pooled.pow(1.0 / self.p).flatten(1)


class AveragePooling(nn.Module):
    """Global average pooling to a (B, C) tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


POOLINGS: Registry[type[nn.Module]] = Registry("pooling")
POOLINGS.add("avg", AveragePooling)
POOLINGS.add("gem", GeneralizedMeanPooling)


def build_pooling(kind: str) -> nn.Module:
    return POOLINGS.get(kind)()

"""Stochastic weight averaging (SWA, Izmailov et al. 2018) and its Gaussian extension with a
diagonal covariance (SWAG-diagonal, Maddox et al. 2019), as Robust-ReID uses them (section 3.1
"SWAG": cyclic cosine learning rate, the weights at the end of each cycle averaged).

:class:`WeightAverager` keeps the running mean of the parameters over the collected snapshots
and, for SWAG, their running mean of squares; ``var = E[w^2] - E[w]^2`` (clamped at a small
positive floor). :meth:`WeightAverager.sample` draws ``w ~ N(mean, scale * var)``, the diagonal
SWAG sample (Maddox et al. use ``scale = 1/2`` for the diagonal part). Only parameters are
averaged; BatchNorm running statistics do not follow the average, so after loading averaged or
sampled weights they are recomputed on the training images with :func:`recompute_batchnorm`.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

VARIANCE_FLOOR = 1e-30


class WeightAverager:
    """Running moments of a model's parameters over snapshots (float32, on the model's device)."""

    def __init__(self, model: nn.Module, *, second_moment: bool = False):
        self.names = [name for name, _ in model.named_parameters()]
        self.count = 0
        self.second_moment = second_moment
        self.mean: dict[str, torch.Tensor] = {}
        self.sq_mean: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def collect(self, model: nn.Module) -> None:
        """Add the model's current parameters as one more snapshot."""
        params = dict(model.named_parameters())
        self.count += 1
        for name in self.names:
            value = params[name].detach().float()
            if self.count == 1:
                self.mean[name] = value.clone()
                if self.second_moment:
                    self.sq_mean[name] = value.pow(2)
            else:
                self.mean[name] += (value - self.mean[name]) / self.count
                if self.second_moment:
                    self.sq_mean[name] += (value.pow(2) - self.sq_mean[name]) / self.count

    def variance(self) -> dict[str, torch.Tensor]:
        if not self.second_moment:
            raise ValueError("this averager keeps no second moment (create it with second_moment=True)")
        return {n: (self.sq_mean[n] - self.mean[n].pow(2)).clamp(min=VARIANCE_FLOOR) for n in self.names}

    @torch.no_grad()
    def sample(self, scale: float = 0.5, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """A SWAG-diagonal weight sample ``mean + sqrt(scale * var) * z``, ``z ~ N(0, I)``."""
        variance = self.variance()
        out = {}
        for name in self.names:
            noise = torch.randn(self.mean[name].shape, generator=generator, device="cpu").to(self.mean[name].device)
            out[name] = self.mean[name] + (scale * variance[name]).sqrt() * noise
        return out

    @torch.no_grad()
    def load_into(self, model: nn.Module, weights: dict[str, torch.Tensor] | None = None) -> None:
        """Copy ``weights`` (default: the mean) into the model's parameters."""
        if self.count == 0:
            raise ValueError("no snapshot collected yet")
        weights = self.mean if weights is None else weights
        for name, param in model.named_parameters():
            param.copy_(weights[name].to(param.dtype))


@torch.no_grad()
def recompute_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor]) -> None:
    """Recompute every BatchNorm's running mean/variance as the plain average over ``batches``
    (a forward pass in training mode; like ``torch.optim.swa_utils.update_bn``). The model's
    training flag and the layers' momenta are restored."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return
    momenta = {}
    for bn in norms:
        bn.reset_running_stats()
        momenta[bn] = bn.momentum
        bn.momentum = None  # cumulative moving average
    was_training = model.training
    model.train()
    for batch in batches:
        model(batch)
    for bn, momentum in momenta.items():
        bn.momentum = momentum
    model.train(was_training)

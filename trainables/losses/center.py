"""Center loss (Wen et al., "A discriminative feature learning approach for deep face
recognition", ECCV 2016, eq. 2) as Bag of Tricks trains it (Luo et al., CVPRW 2019, section 3.6).

``L_C = 1/B * sum_j ||f_t,j - c_{y_j}||^2``: the squared distance of each pre-BNNeck feature to
its identity's center, summed over the batch and divided by the batch size (the reference code
``layers/center_loss.py`` of michuanhaohao/reid-strong-baseline; Wen et al. write 1/2 * sum,
a constant factor absorbed by the weight). The total loss adds ``weight * L_C`` (BoT: 0.0005).

The centers are parameters of the loss, not of the model, and have their own SGD optimizer
(BoT: lr 0.5). Their gradient reaches them scaled by ``weight`` through the total loss; BoT
multiplies it by ``1 / weight`` before the centers' step (``engine/trainer.py``,
``create_supervised_trainer_with_center``), so the centers move by ``lr * dL_C/dc``, i.e. as
Wen et al.'s update ``c_j <- c_j - alpha * delta c_j`` with alpha = lr, whatever the weight.
:class:`CenterLossStep` does exactly that after the model's own optimizer step.
"""

from __future__ import annotations

import torch
from torch import nn


class CenterLoss(nn.Module):
    """``L_C`` of a batch. Args: ``num_classes`` identities, ``feat_dim`` feature size."""

    def __init__(self, num_classes: int, feat_dim: int):
        super().__init__()
        if num_classes < 1 or feat_dim < 1:
            raise ValueError(f"center loss needs num_classes >= 1 and feat_dim >= 1, got {num_classes}, {feat_dim}")
        # BoT initialises the centers from a standard normal.
        self.centers = nn.Parameter(torch.randn(num_classes, feat_dim))

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``features`` (B, D) float, ``labels`` (B,) int64 in [0, num_classes) -> scalar."""
        if features.dim() != 2 or features.shape[1] != self.centers.shape[1]:
            raise ValueError(f"features must be (B, {self.centers.shape[1]}), got {tuple(features.shape)}")
        diff = features.float() - self.centers[labels]
        return diff.pow(2).sum(dim=1).clamp(min=1e-12, max=1e12).sum() / features.shape[0]


class CenterLossStep:
    """The center loss with its own optimizer: ``loss(features, labels)`` in the forward pass,
    then :meth:`step` after ``total.backward()`` (BoT's gradient rescaling by ``1/weight``)."""

    def __init__(self, num_classes: int, feat_dim: int, *, weight: float, lr: float, device: torch.device | str = "cpu"):
        if weight <= 0:
            raise ValueError(f"center loss weight must be > 0 to train centers, got {weight}")
        self.weight = weight
        self.loss = CenterLoss(num_classes, feat_dim).to(device)
        self.optimizer = torch.optim.SGD(self.loss.parameters(), lr=lr)

    def __call__(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.loss(features, labels)

    def step(self) -> None:
        """Undo the weight on the centers' gradient, step them, clear it for the next batch."""
        for param in self.loss.parameters():
            if param.grad is not None:
                param.grad.mul_(1.0 / self.weight)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

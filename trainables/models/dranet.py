"""DRANet: Dual Reverse Attention Networks (Liu, Qi, Zhang, Shi), hard examples generated in
feature space by a reverse channel attention module (RCAM) and a reverse spatial attention
module (RSAM), inserted after one backbone stage.

RCAM (the paper's Fig. 2), on the stage output ``A`` with ``g = gap(A)``::

    m = sigmoid(W1 relu(W0 g))          # channel attention, (B, C, 1, 1)
    B = A * m                           # attended feature: continues through the network
    C = A * (1 - m) ** alpha_c          # channel hard example

RSAM (Fig. 3), on ``B`` (``B = A`` when RCAM is off)::

    H = sigmoid(f_1x1(f_3x3(B)))        # spatial attention, (B, 1, H, W)
    D = B * (1 - H) ** alpha_s          # spatial hard example

Choices the slides leave open (documented in the issue note):

- ``H`` is squashed by a sigmoid: the formulas need ``H`` in [0, 1] for ``(1 - H)^alpha_s``;
  ``f_3x3`` maps C -> C/r channels and ``f_1x1`` maps those to one map, with nothing in between
  (the formula composes the two convolutions directly).
- The attended feature that continues is ``B * H`` with RSAM on (``B`` otherwise), so both
  attentions are trained by the main ID and triplet losses.
- The hard examples use the attention maps *detached*: their ID loss trains the layers after
  the insertion point (and those before it through ``A``) to recognise a person from the
  less discriminative channels/regions, but does not teach the attention to stop erasing.
- In training the hard examples are appended to the batch (``[main, C, D]`` along dim 0) and
  run through the rest of the backbone with shared weights, then through the same pooling,
  neck and classifier; :class:`~trainables.models.reid_model.ReIDModel` splits them off and the
  objective trains them with the ID loss (cross entropy with label smoothing, same labels).
  BatchNorm layers after the insertion see them as extra images of the batch.
- ``alpha = 0`` gives ``C = A`` and ``D = B``: the hard examples reduce to the unerased features.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from trainables.models.inserts import InsertedModule, LossTargets, ModuleOutput, register_insert


class ReverseChannelAttention(nn.Module):
    """RCAM's attention ``m = sigmoid(W1 relu(W0 gap(A)))``: (B, C, 1, 1) in [0, 1]."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.w0 = nn.Linear(channels, hidden)
        self.w1 = nn.Linear(hidden, channels)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        g = F.adaptive_avg_pool2d(a, 1).flatten(1)
        return torch.sigmoid(self.w1(F.relu(self.w0(g))))[:, :, None, None]


class ReverseSpatialAttention(nn.Module):
    """RSAM's attention ``H = sigmoid(f_1x1(f_3x3(B)))``: (B, 1, H, W) in [0, 1]."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.f3x3 = nn.Conv2d(channels, hidden, 3, padding=1)
        self.f1x1 = nn.Conv2d(hidden, 1, 1)

    def forward(self, b: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.f1x1(self.f3x3(b)))


@register_insert("dranet")
class DRANet(InsertedModule):
    """RCAM and/or RSAM after one stage; see the module docstring.

    Args:
        channels: channels of the feature map after the stage.
        rcam, rsam: which reverse attention modules are on (at least one).
        alpha_c, alpha_s: exponents of the reversed maps (>= 0).
        reduction: reduction ratio of the RCAM MLP and of RSAM's 3x3 conv.
    """

    def __init__(
        self, *, channels: int, rcam: bool = True, rsam: bool = True, alpha_c: float = 1.0, alpha_s: float = 1.0, reduction: int = 16
    ):
        super().__init__()
        if not (rcam or rsam):
            raise ValueError("DRANet needs rcam or rsam on")
        if alpha_c < 0 or alpha_s < 0:
            raise ValueError(f"alpha_c and alpha_s must be >= 0, got {alpha_c} and {alpha_s}")
        self.alpha_c = float(alpha_c)
        self.alpha_s = float(alpha_s)
        self.rcam = ReverseChannelAttention(channels, reduction) if rcam else None
        self.rsam = ReverseSpatialAttention(channels, reduction) if rsam else None

    @property
    def hard_example_names(self) -> tuple[str, ...]:
        return tuple(name for name, on in (("dranet_channel", self.rcam), ("dranet_spatial", self.rsam)) if on is not None)

    def extra_repr(self) -> str:
        return f"alpha_c={self.alpha_c}, alpha_s={self.alpha_s}"

    def attend(self, a: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(attended feature, [C?, D?])`` for an input ``A``; hard examples in name order."""
        hard: list[torch.Tensor] = []
        b = a
        if self.rcam is not None:
            m = self.rcam(a)
            b = a * m
            hard.append(a * (1.0 - m.detach()).pow(self.alpha_c))
        out = b
        if self.rsam is not None:
            h = self.rsam(b)
            out = b * h
            hard.append(b * (1.0 - h.detach()).pow(self.alpha_s))
        return out, hard

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        out, hard = self.attend(a)
        if not self.training:
            return out
        return torch.cat([out, *hard], dim=0)

    def loss_terms(self, output: ModuleOutput, targets: LossTargets) -> dict[str, torch.Tensor]:
        """``L_hard``: the hard examples trained with the ID loss (the images' identity labels,
        label smoothing as the main ID loss), averaged over the kinds of hard example."""
        if not output.hard_logits:
            return {}
        losses = [F.cross_entropy(h.float(), targets.labels, label_smoothing=targets.label_smoothing) for h in output.hard_logits.values()]
        return {"loss_hard": torch.stack(losses).mean()}

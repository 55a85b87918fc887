"""A lab's own attention block as a plugin: squeeze-and-excitation (Hu et al., "Squeeze-and-
Excitation Networks", CVPR 2018, section 3).

For a feature map ``U`` (C x H x W): squeeze ``z = gap(U)`` (eq. 2), excite
``s = sigmoid(W2 relu(W1 z))`` with ``W1`` reducing C to C/r (eq. 3), and rescale
``U~ = s * U`` channel-wise (eq. 4). Here the rescaled map is added back to ``U``
(``U + s * U``, a residual gate) so that a freshly initialised block placed after a stage
starts close to the identity.

This one file is everything the package needs: the config section (``model.se``: ``stages``
says where it goes and whether it is on, ``reduction`` is its own parameter) and the module.
Name the file in a spec's ``plugins:`` list; see ``se_placement.yaml`` beside it.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from search_spaces.sections import StagedInsert
from trainables.models.inserts import InsertedModule, register_insert


class SEConfig(StagedInsert):
    """``model.se``: after which backbone stages (empty: off) and the reduction ratio r."""

    reduction: int = Field(8, ge=1, description="Channel reduction r of the excitation MLP (paper: 16).")


@register_insert("se", config=SEConfig)
class SqueezeExcitation(InsertedModule):
    """Squeeze-and-excitation gate for a stage with ``channels`` channels."""

    def __init__(self, *, channels: int, reduction: int = 8):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.excite = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.excite(x.mean(dim=(2, 3)))  # squeeze (eq. 2), excite (eq. 3)
        return x + x * s[:, :, None, None]  # rescale (eq. 4), added back to the input

"""APRA: Adversarial Pairwise Reverse Attention (Ang et al., "Adversarial pairwise reverse
attention for camera performance imbalance in person re-identification", section 5.1).

Given a feature map ``F`` (C x H x W), a channel attention ``M_c`` (C x 1 x 1) and a spatial
attention ``M_s`` (1 x H x W) are derived as in CBAM (Woo et al., the paper's [22]):

- ``M_c = sigmoid(MLP(avgpool(F)) + MLP(maxpool(F)))`` (a shared two-layer MLP, ratio ``r``);
- ``M_s = sigmoid(conv_kxk([mean_c(F'); max_c(F')]))`` on the channel-modulated ``F' = F * M_c``
  (Fig. 3: "a convolutional layer derives the spatial attention filter from channel-pooled
  features after channel modulation").

Section 5.1.1, the pairwise reverse attention:

- person path ``F_p = relu(F * M_c * M_s + F)`` -- returned, so the rest of the backbone and the
  retrieval embedding come from the person path;
- camera path ``F_k = relu(F * (1 - M_c) * (1 - M_s) + F)``.

Section 5.1.2: the camera path goes through a gradient reversal layer (identity forward,
gradient multiplied by ``-grl_scale`` backward; Ganin et al.) into a camera classifier
(global average pooling + linear layer) trained with cross entropy on the camera ids. The
reversal sits between the camera path and its classifier, as in DANN: the classifier learns to
recognise cameras while everything upstream is pushed to remove camera information. The total
loss ``L_id + L_tri + lambda * L_cam`` (section 5.2) is formed in
:class:`trainables.losses.objective.ReIDObjective`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from trainables.models.inserts import InsertedModule, LossTargets, ModuleOutput, register_insert


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad.neg() * ctx.scale, None


def reverse_gradient(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Identity in the forward pass; multiplies the gradient by ``-scale`` in the backward pass."""
    return _ReverseGradient.apply(x, float(scale))


class GradientReversal(nn.Module):
    """Gradient reversal layer (Ganin et al. 2016; APRA section 5.1.2) with a fixed scale."""

    def __init__(self, scale: float = 1.0):
        super().__init__()
        if scale < 0:
            raise ValueError(f"grl_scale must be >= 0 (the sign is reversed by the layer), got {scale}")
        self.scale = float(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return reverse_gradient(x, self.scale)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


class ChannelAttention(nn.Module):
    """CBAM channel attention: ``sigmoid(MLP(avg) + MLP(max))`` -> (B, C, 1, 1) in [0, 1]."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=True),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = F.adaptive_avg_pool2d(x, 1)
        peak = F.adaptive_max_pool2d(x, 1)
        return torch.sigmoid(self.mlp(avg) + self.mlp(peak))


class SpatialAttention(nn.Module):
    """CBAM spatial attention: ``sigmoid(BN(conv([mean_c; max_c])))`` -> (B, 1, H, W) in [0, 1]."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"spatial attention kernel must be odd, got {kernel_size}")
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
        return torch.sigmoid(self.bn(self.conv(pooled)))


@register_insert("apra")
class APRA(InsertedModule):
    """APRA module for a stage with ``channels`` channels; see the module docstring.

    Args:
        channels: channels of the feature map after the stage.
        num_cameras: camera classes of the training set (camera ids relabelled to 0..C-1).
        reduction: channel-attention MLP reduction ratio.
        grl_scale: gradient reversal scale (the camera loss's gradient upstream of the
            classifier is multiplied by ``-grl_scale``).
        spatial_kernel: spatial-attention conv kernel size.

    Its section is ``model.apra`` (:class:`search_spaces.trial_config.APRAConfig`); it needs
    the number of training cameras and contributes ``loss_camera`` (weighted by ``lam``).
    """

    needs = ("num_cameras",)

    def __init__(self, *, channels: int, num_cameras: int, reduction: int = 16, grl_scale: float = 1.0, spatial_kernel: int = 7):
        super().__init__()
        if num_cameras < 2:
            raise ValueError(f"APRA needs at least 2 training cameras to classify, got {num_cameras}")
        self.channel_attention = ChannelAttention(channels, reduction)
        self.spatial_attention = SpatialAttention(spatial_kernel)
        self.reversal = GradientReversal(grl_scale)
        self.camera_classifier = nn.Linear(channels, num_cameras)

    def attention_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(M_c, M_s)``: (B, C, 1, 1) and (B, 1, H, W), both in [0, 1]."""
        m_c = self.channel_attention(x)
        m_s = self.spatial_attention(x * m_c)
        return m_c, m_s

    def paths(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(F_p, F_k)``: the person and camera paths of section 5.1.1."""
        m_c, m_s = self.attention_maps(x)
        person = F.relu(x * m_c * m_s + x)
        camera = F.relu(x * (1.0 - m_c) * (1.0 - m_s) + x)
        return person, camera

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            m_c, m_s = self.attention_maps(x)
            return F.relu(x * m_c * m_s + x)
        person, camera = self.paths(x)
        pooled = F.adaptive_avg_pool2d(self.reversal(camera), 1).flatten(1)
        self._aux = self.camera_classifier(pooled)
        return person

    def loss_terms(self, output: ModuleOutput, targets: LossTargets) -> dict[str, torch.Tensor]:
        """``L_cam``: cross entropy of the camera classifier on the camera ids (no smoothing)."""
        if output.aux is None:
            return {}
        if targets.cameras is None:
            raise ValueError("the model has a camera classifier (APRA): pass the batch's camera labels")
        return {"loss_camera": F.cross_entropy(output.aux.float(), targets.cameras)}

"""Building blocks of HA-CNN and Robust-ReID.

- Inception-A / Inception-B and the harmonious attention (soft spatial x channel attention and
  hard regional attention) of HA-CNN (Li, Zhu, Gong, "Harmonious attention network for person
  re-identification", CVPR 2018; layer shapes as in its public implementation).
- Shuffle-A / Shuffle-B of Robust-ReID (Lawen et al., section 3.2 and Fig. 5), i.e. the
  ShuffleNet-v2 units (Ma et al. 2018): Shuffle-A splits the channels in two, keeps one half
  and applies 1x1 conv -> 3x3 depth-wise conv -> 1x1 conv to the other, then shuffles; Shuffle-B
  also applies convolutions to the first half, so it can downsample (stride 2) or expand
  channels.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ConvBlock(nn.Sequential):
    """conv -> BatchNorm -> ReLU (``relu=False`` drops the activation, ``groups`` for depth-wise)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, padding: int = 0, *, groups: int = 1, relu: bool = True):
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class InceptionA(nn.Module):
    """HA-CNN Inception-A: four streams of ``out/4`` channels at stride 1."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        if out_ch % 4:
            raise ValueError(f"Inception-A needs output channels divisible by 4, got {out_ch}")
        mid = out_ch // 4
        self.stream1 = nn.Sequential(ConvBlock(in_ch, mid, 1), ConvBlock(mid, mid, 3, padding=1))
        self.stream2 = nn.Sequential(ConvBlock(in_ch, mid, 1), ConvBlock(mid, mid, 3, padding=1))
        self.stream3 = nn.Sequential(ConvBlock(in_ch, mid, 1), ConvBlock(mid, mid, 3, padding=1))
        self.stream4 = nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1), ConvBlock(in_ch, mid, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.stream1(x), self.stream2(x), self.stream3(x), self.stream4(x)], 1)


class InceptionB(nn.Module):
    """HA-CNN Inception-B: three streams, stride 2."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        if out_ch % 4:
            raise ValueError(f"Inception-B needs output channels divisible by 4, got {out_ch}")
        mid = out_ch // 4
        self.stream1 = nn.Sequential(ConvBlock(in_ch, mid, 1), ConvBlock(mid, mid, 3, stride=2, padding=1))
        self.stream2 = nn.Sequential(
            ConvBlock(in_ch, mid, 1), ConvBlock(mid, mid, 3, padding=1), ConvBlock(mid, mid, 3, stride=2, padding=1)
        )
        self.stream3 = nn.Sequential(nn.MaxPool2d(3, stride=2, padding=1), ConvBlock(in_ch, mid * 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.stream1(x), self.stream2(x), self.stream3(x)], 1)


def channel_shuffle(x: torch.Tensor, groups: int = 2) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class ShuffleA(nn.Module):
    """Shuffle-A (ShuffleNet-v2 basic unit): split, 1x1 -> dw 3x3 -> 1x1 on one half, shuffle."""

    def __init__(self, channels: int):
        super().__init__()
        if channels % 2:
            raise ValueError(f"Shuffle-A needs an even channel count, got {channels}")
        half = channels // 2
        self.branch = nn.Sequential(
            ConvBlock(half, half, 1),
            ConvBlock(half, half, 3, padding=1, groups=half, relu=False),
            ConvBlock(half, half, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kept, changed = x.chunk(2, dim=1)
        return channel_shuffle(torch.cat([kept, self.branch(changed)], 1))


class ShuffleB(nn.Module):
    """Shuffle-B: "similar to Shuffle-A", so the input is split into two equal halves, but
    "convolution operators are applied to the first branch as well" so that the block can
    down-sample (``stride=2``) or expand channels (Robust-ReID section 3.2). First half:
    3x3 depth-wise conv -> 1x1 conv; second half: 1x1 -> 3x3 depth-wise -> 1x1; each half gives
    ``out/2`` channels; then a channel shuffle. (Reading of Fig. 5, which the text describes
    only in words; it lands the parameter counts of Table 1, see ``robust_reid.py``.)"""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__()
        if in_ch % 2 or out_ch % 2:
            raise ValueError(f"Shuffle-B needs even channel counts, got {in_ch} -> {out_ch}")
        half_in, half_out = in_ch // 2, out_ch // 2
        self.branch1 = nn.Sequential(
            ConvBlock(half_in, half_in, 3, stride=stride, padding=1, groups=half_in, relu=False),
            ConvBlock(half_in, half_out, 1),
        )
        self.branch2 = nn.Sequential(
            ConvBlock(half_in, half_out, 1),
            ConvBlock(half_out, half_out, 3, stride=stride, padding=1, groups=half_out, relu=False),
            ConvBlock(half_out, half_out, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, second = x.chunk(2, dim=1)
        return channel_shuffle(torch.cat([self.branch1(first), self.branch2(second)], 1))


class SpatialAttn(nn.Module):
    """HA-CNN soft spatial attention: channel mean -> 3x3 conv stride 2 -> upsample -> 1x1 conv."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = ConvBlock(1, 1, 3, stride=2, padding=1)
        self.conv2 = ConvBlock(1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(x.mean(1, keepdim=True))
        y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=True)
        return self.conv2(y)


class ChannelAttn(nn.Module):
    """HA-CNN soft channel attention: global average pool -> 1x1 squeeze -> 1x1 excite."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.conv1 = ConvBlock(channels, max(1, channels // reduction), 1)
        self.conv2 = ConvBlock(max(1, channels // reduction), channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(F.adaptive_avg_pool2d(x, 1)))


class SoftAttn(nn.Module):
    """Soft attention: ``sigmoid(conv(spatial(x) * channel(x)))``, (B, C, H, W) in [0, 1]."""

    def __init__(self, channels: int):
        super().__init__()
        self.spatial = SpatialAttn()
        self.channel = ChannelAttn(channels)
        # HA-CNN section 3.1: 1x1 conv then sigmoid (no ReLU in between, so the map spans (0, 1)).
        self.conv = ConvBlock(channels, channels, 1, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(self.spatial(x) * self.channel(x)))


class HardAttn(nn.Module):
    """Hard regional attention: translations ``(t_x, t_y)`` of four horizontal stripes."""

    REGIONS = 4

    def __init__(self, channels: int):
        super().__init__()
        self.fc = nn.Linear(channels, self.REGIONS * 2)
        self.init_params()

    def init_params(self) -> None:
        # Start at four evenly spaced stripes (the HA-CNN initialisation).
        nn.init.zeros_(self.fc.weight)
        with torch.no_grad():
            self.fc.bias.copy_(torch.tensor([0, -0.75, 0, -0.25, 0, 0.25, 0, 0.75], dtype=torch.float))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        theta = torch.tanh(self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1)))
        return theta.view(-1, self.REGIONS, 2)


class HarmAttn(nn.Module):
    """Harmonious attention: the soft map and the hard-region translations of one stage."""

    def __init__(self, channels: int):
        super().__init__()
        self.soft = SoftAttn(channels)
        self.hard = HardAttn(channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.soft(x), self.hard(x)


def crop_regions(x: torch.Tensor, theta: torch.Tensor, size: tuple[int, int]) -> list[torch.Tensor]:
    """Sample the four stripes (full width, quarter height, translated by ``theta``) of ``x``,
    each resized to ``size``: the spatial-transformer crop of HA-CNN's local branch."""
    b = x.shape[0]
    scale = torch.tensor([[1.0, 0.0], [0.0, 0.25]], dtype=x.dtype, device=x.device).expand(b, 2, 2)
    regions = []
    for i in range(theta.shape[1]):
        affine = torch.cat([scale, theta[:, i, :, None].to(x.dtype)], dim=2)
        grid = F.affine_grid(affine, [b, x.shape[1], *size], align_corners=False)
        regions.append(F.grid_sample(x, grid, align_corners=False))
    return regions

"""Batch-wise training augmentation in torch, on whatever device the batch lives on.

Images arrive as uint8 (B, H, W, 3); the output is a normalised float (B, 3, H, W) tensor.
Doing this per batch on the trial's device (rather than per image in a loader) keeps the
input pipeline off the critical path on a GPU and needs no worker processes on a CPU.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_normalized_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) normalised with ImageNet statistics."""
    x = images.permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image horizontally with probability 0.5."""
    flip = torch.rand(x.shape[0], generator=generator, device=x.device) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)


def random_pad_crop(x: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``pad`` pixels, then crop each image back to size at a random offset."""
    if pad <= 0:
        return x
    b, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    off_y = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=x.device)
    off_x = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=x.device)
    rows = off_y[:, None] + torch.arange(h, device=x.device)[None, :]
    cols = off_x[:, None] + torch.arange(w, device=x.device)[None, :]
    batch = torch.arange(b, device=x.device)[:, None, None]
    # Advanced indexing gathers (B, H, W, C); move channels back to dim 1.
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def random_erasing(
    x: torch.Tensor,
    p: float,
    area: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator,
    attempts: int = 10,
) -> torch.Tensor:
    """Random erasing (Zhong et al. 2017), as used by Robust-ReID section 3.1: with probability
    ``p`` replace a rectangle covering ``area`` (fraction of the image) with aspect ratio in
    ``ratio`` (log-uniform) by random noise. All samples are drawn in one vectorised step with
    a few attempts each; a sample whose attempts all fall outside the image is left intact.
    """
    if p <= 0:
        return x
    b, c, h, w = x.shape
    device = x.device
    apply = torch.rand(b, generator=generator, device=device) < p
    target = torch.empty(b, attempts, device=device).uniform_(area[0], area[1], generator=generator) * h * w
    log_r = torch.empty(b, attempts, device=device).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator)
    aspect = log_r.exp()
    eh = (target * aspect).sqrt().round().long()
    ew = (target / aspect).sqrt().round().long()
    fits = (eh < h) & (ew < w) & (eh > 0) & (ew > 0)
    first = torch.where(fits.any(1), fits.float().argmax(1), torch.zeros(b, dtype=torch.long, device=device))
    apply &= fits.any(1)
    eh = eh.gather(1, first[:, None]).squeeze(1)
    ew = ew.gather(1, first[:, None]).squeeze(1)
    top = (torch.rand(b, generator=generator, device=device) * (h - eh + 1).clamp(min=1)).long()
    left = (torch.rand(b, generator=generator, device=device) * (w - ew + 1).clamp(min=1)).long()
    ys = torch.arange(h, device=device)[None, :]
    xs = torch.arange(w, device=device)[None, :]
    in_rows = (ys >= top[:, None]) & (ys < (top + eh)[:, None])
    in_cols = (xs >= left[:, None]) & (xs < (left + ew)[:, None])
    mask = (in_rows[:, :, None] & in_cols[:, None, :] & apply[:, None, None]).unsqueeze(1)
    noise = torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype)
    return torch.where(mask, noise, x)


class BatchAugmenter:
    """Applies the configured augmentations to a uint8 batch; deterministic per seed."""

    def __init__(
        self,
        *,
        flip: bool = True,
        pad: int = 10,
        erasing_p: float = 0.0,
        erasing_area: tuple[float, float] = (0.02, 0.4),
        erasing_ratio: tuple[float, float] = (0.3, 3.3),
        seed: int = 0,
        device: torch.device | str = "cpu",
    ):
        self.flip, self.pad = flip, pad
        self.erasing_p, self.erasing_area, self.erasing_ratio = erasing_p, erasing_area, erasing_ratio
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = to_normalized_float(images)
        if self.flip:
            x = random_flip(x, self.generator)
        x = random_pad_crop(x, self.pad, self.generator)
        return random_erasing(x, self.erasing_p, self.erasing_area, self.erasing_ratio, self.generator)

"""Batch-wise training augmentation in torch, on whatever device the batch lives on.

Images arrive as uint8 (B, H, W, 3); the output is a normalised float (B, 3, H, W) tensor.
Order: the implicit-attention composite first (it needs the images as stored, aligned with
their masks; the paper applies it "in the first place before any other augmentation"), then
flip, pad-crop and random erasing, then the registered augmentations of plugins
(:func:`register_augmentation`, each configured by its section ``augment.<name>``).
Doing this per batch on the trial's device (rather than per image in a loader) keeps the
input pipeline off the critical path on a GPU and needs no worker processes on a CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from search_spaces.metrics import COMPOSITE_PARTNER_SHARE, COMPOSITE_RATE
from search_spaces.registry import Registry
from search_spaces.trial_config import AUGMENT_SECTIONS, AugmentSection, register_augment_section, require_section

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_normalized_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) normalised with ImageNet statistics."""
    x = images.permute(0, 3, 1, 2).contiguous().float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return x.sub_(mean).div_(std)  # in place: the same arithmetic as (x - mean) / std


def _vectorized(requested: bool | None, device: torch.device) -> bool:
    """Per-sample loops win on a CPU; one batched kernel wins on an accelerator."""
    return requested if requested is not None else device.type != "cpu"


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


def flip_pad_crop(images: torch.Tensor, flip: bool, pad: int, generator: torch.Generator, vectorized: bool | None = None) -> torch.Tensor:
    """``random_pad_crop(random_flip(to_normalized_float(images)))`` in one pass, same draws.

    The shift and the mirror are applied while gathering the uint8 pixels (a slice copy per
    sample on the CPU, one vectorised gather on other devices); the pixels that come from the
    zero padding are zeroed after normalisation, as padding the normalised image does.
    ``vectorized`` picks the path (default: vectorised on every device but the CPU).
    """
    b, h, w, _ = images.shape
    device = images.device
    flipped = torch.rand(b, generator=generator, device=device) < 0.5 if flip else torch.zeros(b, dtype=torch.bool, device=device)
    if pad <= 0:
        if flip:
            images = torch.where(flipped.view(-1, 1, 1, 1), images.flip(2), images)
        return to_normalized_float(images)
    off_y = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=device) - pad
    off_x = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=device) - pad
    if not _vectorized(vectorized, device):
        # One uint8 slice copy per sample (cheaper than any gather on a CPU), one normalisation,
        # then the padding strips of each sample set to 0.
        shifted = torch.empty_like(images)
        windows = []
        for k, (dy, dx, mirror) in enumerate(zip(off_y.tolist(), off_x.tolist(), flipped.tolist())):
            r0, r1, c0, c1 = max(0, -dy), min(h, h - dy), max(0, -dx), min(w, w - dx)
            windows.append((r0, r1, c0, c1))
            if r0 >= r1 or c0 >= c1:
                continue  # the crop shows only padding
            if mirror:  # out[r, c] = images[r + dy, w - 1 - (c + dx)]
                shifted[k, r0:r1, c0:c1] = images[k, r0 + dy : r1 + dy, w - c1 - dx : w - c0 - dx].flip(1)
            else:
                shifted[k, r0:r1, c0:c1] = images[k, r0 + dy : r1 + dy, c0 + dx : c1 + dx]
        out = to_normalized_float(shifted)
        for k, (r0, r1, c0, c1) in enumerate(windows):
            if r0 >= r1 or c0 >= c1:
                out[k] = 0.0
                continue
            out[k, :, :r0] = 0.0
            out[k, :, r1:] = 0.0
            out[k, :, :, :c0] = 0.0
            out[k, :, :, c1:] = 0.0
        return out
    rows = off_y[:, None] + torch.arange(h, device=device)[None, :]  # source rows (B, H)
    cols = off_x[:, None] + torch.arange(w, device=device)[None, :]  # source cols of the mirror (B, W)
    valid = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    src_cols = torch.where(flipped[:, None], w - 1 - cols, cols).clamp(0, w - 1)
    batch = torch.arange(b, device=device)[:, None, None]
    out = images[batch, rows.clamp(0, h - 1)[:, :, None], src_cols[:, None, :]]
    return to_normalized_float(out).masked_fill_(~valid[:, None], 0.0)


def random_erasing(
    x: torch.Tensor,
    p: float,
    area: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator,
    attempts: int = 10,
    inplace: bool = False,
    vectorized: bool | None = None,
) -> torch.Tensor:
    """Random erasing (Zhong et al. 2017), as used by Robust-ReID section 3.1: with probability
    ``p`` replace a rectangle covering ``area`` (fraction of the image) with aspect ratio in
    ``ratio`` (log-uniform) by random noise. All samples are drawn in one vectorised step with
    a few attempts each; a sample whose attempts all fall outside the image is left intact.

    On a CPU the noise is drawn for the erased rectangles only and written in place (into a
    copy of ``x`` unless ``inplace``); elsewhere (or with ``vectorized``) one noise tensor and
    a masked select.
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
    if not _vectorized(vectorized, device):
        out = x if inplace else x.clone()
        for k in apply.nonzero().flatten().tolist():
            t, l_, hh, ww = int(top[k]), int(left[k]), int(eh[k]), int(ew[k])
            out[k, :, t : t + hh, l_ : l_ + ww] = torch.randn((c, hh, ww), generator=generator, dtype=x.dtype)
        return out
    ys = torch.arange(h, device=device)[None, :]
    xs = torch.arange(w, device=device)[None, :]
    in_rows = (ys >= top[:, None]) & (ys < (top + eh)[:, None])
    in_cols = (xs >= left[:, None]) & (xs < (left + ew)[:, None])
    mask = (in_rows[:, :, None] & in_cols[:, None, :] & apply[:, None, None]).unsqueeze(1)
    noise = torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype)
    return torch.where(mask, noise, x)


@dataclass
class CompositeTensors:
    """A :class:`~trainables.data.implicit_attention.CompositeBank` as tensors on one device.

    ``roi``: (N, H, W, 1) uint8 in {0, 1}; ``backgrounds``: (N, H, W, 3) uint8; ``offsets``:
    (N + 1,) int64; ``partners``: (M,) int64. Indexed by the training-set index of a sample.
    """

    roi: torch.Tensor
    backgrounds: torch.Tensor
    offsets: torch.Tensor
    partners: torch.Tensor

    @classmethod
    def from_arrays(
        cls, roi: np.ndarray, backgrounds: np.ndarray, offsets: np.ndarray, partners: np.ndarray, device: torch.device | str = "cpu"
    ) -> "CompositeTensors":
        as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)  # noqa: E731
        return cls(
            roi=as_tensor((np.asarray(roi) > 0).astype(np.uint8)[..., None]),
            backgrounds=as_tensor(backgrounds),
            offsets=as_tensor(offsets.astype(np.int64, copy=False)),
            partners=as_tensor(partners.astype(np.int64, copy=False)),
        )

    @classmethod
    def from_bank(cls, bank, device: torch.device | str = "cpu") -> "CompositeTensors":
        return cls.from_arrays(bank.roi_masks, bank.backgrounds, bank.offsets, bank.partners, device)


def implicit_attention_composite(
    images: torch.Tensor,
    index: torch.Tensor,
    bank: CompositeTensors,
    p: float,
    generator: torch.Generator,
    inplace: bool = False,
    vectorized: bool | None = None,
    counts: dict[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Implicit-attention composite (Yaghoubi et al., eq. 1) of a uint8 batch, on its device.

    For each sample b (training-set index ``i = index[b]``), with probability ``p`` and when i
    has a compatible partner, a partner j is drawn uniformly from its list and the sample
    becomes ``where(roi_i, images[b], backgrounds[j])``; otherwise it is left as it is. The
    label of i is untouched (the batch order is kept). ``p <= 0`` returns ``images`` itself.

    On a CPU only the composited samples are computed, one by one with ``cv2.copyTo`` (a few
    microseconds each; torch's broadcast select over the 3 channels is ~50x slower), into a copy
    of ``images`` unless ``inplace``. On other devices the whole batch is computed as
    ``image * m + background * (1 - m)`` on uint8 (exact: one term is always 0), without a host
    synchronisation. ``vectorized`` forces either path. ``counts["composited"]``, if given, is
    increased by the number of samples composited (a device tensor: no synchronisation).
    """
    if p <= 0 or bank.partners.numel() == 0:
        return images
    b = images.shape[0]
    device = images.device
    start = bank.offsets[index]
    count = bank.offsets[index + 1] - start
    apply = (torch.rand(b, generator=generator, device=device) < p) & (count > 0)
    pick = (torch.rand(b, generator=generator, device=device) * count).long()
    pick = torch.minimum(pick, (count - 1).clamp(min=0))
    partner = bank.partners[(start + pick).clamp(max=bank.partners.numel() - 1)]
    if counts is not None:
        counts["composited"] = counts.get("composited", 0) + apply.sum()
    if not _vectorized(vectorized, device):
        chosen = apply.nonzero().flatten().tolist()
        if not chosen:
            return images
        out = images if inplace else images.clone()
        out_np, images_np = out.numpy(), images.numpy()
        roi_np, backgrounds_np = bank.roi.numpy(), bank.backgrounds.numpy()
        own, other = index.tolist(), partner.tolist()
        for k in chosen:
            source = images_np[k].copy() if inplace else images_np[k]
            out_np[k] = backgrounds_np[other[k]]
            cv2.copyTo(source, roi_np[own[k], :, :, 0], out_np[k])  # ROI pixels of i over B_j
        return out
    m = bank.roi[index] | (~apply).to(torch.uint8)[:, None, None, None]
    return images * m + bank.backgrounds[partner] * (1 - m)


class BatchAugmentation:
    """Base of a registered augmentation: built with its section's keyword arguments
    (``augment.<name>``), called on the normalised float batch (B, 3, H, W) after the built-in
    augmentations, with the augmenter's generator (so a trial stays deterministic per seed)."""

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError


AUGMENTATIONS: Registry[Callable[..., BatchAugmentation]] = Registry("augmentation")


def register_augmentation(name: str, config: type[AugmentSection] | None = None) -> Callable[[type], type]:
    """Decorator registering a :class:`BatchAugmentation` under ``name``; ``config`` (its
    section model) is registered as ``augment.<name>`` in the same call (a plugin's one file)."""

    def decorate(augmentation: type) -> type:
        require_section(name, config, AUGMENT_SECTIONS, register_augment_section, "register_augmentation")
        AUGMENTATIONS.add(name, augmentation)
        return augmentation

    return decorate


class BatchAugmenter:
    """Applies the configured augmentations to a uint8 batch; deterministic per seed.

    With ``composite`` (precomputed tensors on the batch's device) and ``composite_p > 0``,
    calls must pass the training-set ``index`` of each sample.
    """

    def __init__(
        self,
        *,
        flip: bool = True,
        pad: int = 10,
        erasing_p: float = 0.0,
        erasing_area: tuple[float, float] = (0.02, 0.4),
        erasing_ratio: tuple[float, float] = (0.3, 3.3),
        composite: CompositeTensors | None = None,
        composite_p: float = 0.0,
        seed: int = 0,
        device: torch.device | str = "cpu",
        extra: Sequence[BatchAugmentation] = (),
    ):
        self.flip, self.pad = flip, pad
        self.extra = list(extra)  # registered augmentations, applied last in this order
        self.erasing_p, self.erasing_area, self.erasing_ratio = erasing_p, erasing_area, erasing_ratio
        self.composite, self.composite_p = composite, composite_p
        # Realised composite rate (implicit attention): samples seen and composited since the
        # last composite_stats() call; the count stays on the device until it is read.
        self._seen, self._counts = 0, {}
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)

    def __call__(self, images: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        if self.composite is not None and self.composite_p > 0:
            if index is None:
                raise ValueError("the implicit-attention composite needs the training-set index of each sample")
            images = implicit_attention_composite(images, index, self.composite, self.composite_p, self.generator, counts=self._counts)
            self._seen += images.shape[0]
        x = flip_pad_crop(images, self.flip, self.pad, self.generator)
        x = random_erasing(x, self.erasing_p, self.erasing_area, self.erasing_ratio, self.generator, inplace=True)
        for augmentation in self.extra:
            x = augmentation(x, self.generator)
        return x

    def composite_stats(self) -> dict[str, float]:
        """Implicit attention's effective rate, since the last call: ``composite_partner_share``
        (training images with at least one compatible partner: only they can be composited)
        and ``composite_rate`` (samples actually composited / samples augmented, about p times
        the share). Empty without the composite."""
        if self.composite is None or self.composite_p <= 0:
            return {}
        counts = self.composite.offsets[1:] - self.composite.offsets[:-1]
        share = float((counts > 0).float().mean()) if counts.numel() else 0.0
        composited = float(self._counts.get("composited", 0))
        rate = composited / self._seen if self._seen else 0.0
        self._seen, self._counts = 0, {}
        return {COMPOSITE_PARTNER_SHARE: share, COMPOSITE_RATE: rate}

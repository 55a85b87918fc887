"""Implicit-attention augmentation: precomputed partners and inpainted backgrounds.

Yaghoubi et al., "An implicit attention mechanism for deep learning pedestrian
re-identification frameworks" (``papers/implicit_attention_augmentation.md``). A synthetic
sample keeps the region of interest (ROI) of image i and takes everything else from image j:

    S(i->j)(x, y) = ROI_i U UR_j                                   (eq. 1)
                  = I_i(x, y)  where M_i(x, y) = 1,  else  B_j(x, y)

with the label of i. ``B_j`` is image j with its own ROI removed: the ROI mask of j dilated by
a ``dilation`` x ``dilation`` kernel (``M_d = M_j (+) K_7x7``, section 3.2 "smoothness") and
filled by Telea inpainting (``cv2.INPAINT_TELEA``, the paper's ref. [16]). The ROI is the whole
person mask (``full_body``) or its top ``upper_fraction`` of rows (``upper_body``: head and
torso; j's lower body then stays in ``B_j``).

Partners j of i must satisfy the constraints of section 3.2, each with a configurable
threshold; :func:`compatible_partners` documents our reading of the two that the paper writes
backwards (size: ``min/max area >= area_ratio``; shape: ``IoU >= mask_iou``).

Everything except the per-sample coin flip is precomputed once per dataset by
:func:`build_bank` into a :class:`CompositeBank` (ROI masks, backgrounds, partner lists in CSR
form) and cached on disk beside the dataset by :func:`load_or_build_bank`, so a training step
only does the masked select ``where(roi_i, image_i, background_j)``: on the trial's device in
:func:`trainables.data.augment.implicit_attention_composite`, or per sample on the CPU with
the albumentations transform in :mod:`trainables.data.implicit_attention_transform`.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from trainables.data.errors import DatasetError, summarize_paths
from trainables.data.market import ImageRecord
from trainables.data.threads import every_tenth, run_on_threads

__all__ = [
    "CACHE_VERSION",
    "ROI_KINDS",
    "SHAPE_GRID",
    "VIEWPOINTS_FILE",
    "CompositeBank",
    "CompositeParams",
    "build_bank",
    "compatible_partners",
    "composite",
    "dataset_fingerprint",
    "inpaint_background",
    "inpaint_backgrounds",
    "load_or_build_bank",
    "read_viewpoints",
    "roi_masks",
    "shape_grid",
]

CACHE_VERSION = 1
ROI_KINDS: tuple[str, ...] = ("full_body", "upper_body")
#: masks are compared for shape (IoU) on this (height, width) grid, area-resampled
SHAPE_GRID: tuple[int, int] = (32, 16)
#: optional viewpoint labels, ``<path under the layout root> <label>`` per line
VIEWPOINTS_FILE = "viewpoints.txt"
_CACHE_SUBDIR = Path(".reid-cache") / "implicit_attention"

Progress = Callable[[str], None] | None


@dataclass(frozen=True)
class CompositeParams:
    """What the precomputation depends on (everything but the probability ``p``)."""

    roi: str = "full_body"
    upper_fraction: float = 0.5
    area_ratio: float = 0.8
    mask_iou: float = 0.5
    same_viewpoint: bool = False
    dilation: int = 7
    inpaint_radius: float = 3.0
    max_partners: int = 256

    def __post_init__(self) -> None:
        if self.roi not in ROI_KINDS:
            raise ValueError(f"roi must be one of {list(ROI_KINDS)}, got {self.roi!r}")
        for name in ("upper_fraction", "area_ratio", "mask_iou"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value}")
        if self.dilation < 1 or self.inpaint_radius <= 0 or self.max_partners < 1:
            raise ValueError(
                "dilation >= 1, inpaint_radius > 0 and max_partners >= 1 must hold, got "
                f"{self.dilation}, {self.inpaint_radius}, {self.max_partners}"
            )

    def background_fields(self) -> dict:
        return {"roi": self.roi, "upper_fraction": self.upper_fraction, "dilation": self.dilation, "inpaint_radius": self.inpaint_radius}

    def partner_fields(self) -> dict:
        return {
            "roi": self.roi,
            "upper_fraction": self.upper_fraction,
            "area_ratio": self.area_ratio,
            "mask_iou": self.mask_iou,
            "same_viewpoint": self.same_viewpoint,
            "max_partners": self.max_partners,
            "grid": list(SHAPE_GRID),
        }

    def key(self) -> str:
        """A short stable text naming these parameters (part of ``dataset_key``)."""
        return _digest(asdict(self))[:12]


@dataclass
class CompositeBank:
    """Precomputed inputs of the composite for the N training images (aligned with them).

    Attributes:
        roi_masks: ``(N, H, W)`` uint8 in {0, 1}: the ROI of each image (undilated).
        backgrounds: ``(N, H, W, 3)`` uint8 RGB: each image with its dilated ROI inpainted.
        offsets: ``(N + 1,)`` int64; the partners of i are ``partners[offsets[i]:offsets[i+1]]``.
        partners: ``(M,)`` int64 indices of compatible partners, ascending within each image.
        params: the parameters they were computed with.
    """

    roi_masks: np.ndarray
    backgrounds: np.ndarray
    offsets: np.ndarray
    partners: np.ndarray
    params: CompositeParams

    def __len__(self) -> int:
        return len(self.roi_masks)

    def partners_of(self, index: int) -> np.ndarray:
        return self.partners[self.offsets[index] : self.offsets[index + 1]]

    @property
    def partner_counts(self) -> np.ndarray:
        return np.diff(self.offsets)


# --------------------------------------------------------------------------------------------
# Masks and constraints
# --------------------------------------------------------------------------------------------


def roi_masks(masks: np.ndarray, roi: str, upper_fraction: float = 0.5) -> np.ndarray:
    """ROI masks ``(N, H, W)`` uint8 {0, 1} from person masks ``(N, H, W)``.

    ``full_body``: the mask itself. ``upper_body``: the mask rows from its top row down to
    ``top + ceil(upper_fraction * person height)`` (head and torso for a standing person).
    """
    masks = (np.asarray(masks) > 0).astype(np.uint8)
    if roi == "full_body":
        return masks
    if roi != "upper_body":
        raise ValueError(f"roi must be one of {list(ROI_KINDS)}, got {roi!r}")
    n, h, _ = masks.shape
    rows = masks.any(axis=2)  # (N, H)
    has = rows.any(axis=1)
    top = np.where(has, rows.argmax(axis=1), 0)
    bottom = np.where(has, h - 1 - rows[:, ::-1].argmax(axis=1), -1)
    cut = top + np.ceil(upper_fraction * (bottom - top + 1)).astype(np.int64)
    keep = np.arange(h)[None, :] < cut[:, None]  # (N, H)
    return masks * keep[:, :, None].astype(np.uint8)


def shape_grid(masks: np.ndarray, grid: tuple[int, int] = SHAPE_GRID) -> np.ndarray:
    """Masks area-resampled to ``grid`` and binarised at 0.5: ``(N, gh * gw)`` bool."""
    gh, gw = grid
    out = np.empty((len(masks), gh * gw), dtype=bool)
    for i, mask in enumerate(masks):
        small = cv2.resize(mask.astype(np.float32), (gw, gh), interpolation=cv2.INTER_AREA)
        out[i] = (small >= 0.5).reshape(-1)
    return out


def compatible_partners(
    rois: np.ndarray,
    *,
    area_ratio: float,
    mask_iou: float,
    viewpoints: np.ndarray | None = None,
    max_partners: int = 256,
    seed: int = 0,
    grid: tuple[int, int] = SHAPE_GRID,
) -> tuple[np.ndarray, np.ndarray]:
    """Partner lists of every image under the constraints of section 3.2.

    j (!= i) is a partner of i when all hold:

    - size: ``min(A_i, A_j) / max(A_i, A_j) >= area_ratio``, A = ROI mask area in pixels, both
      non-zero. The paper writes ``min(A_i, A_j) / max(A_i, A_j) < T_s`` (T_s = 0.8), which
      would pair only persons whose areas differ by more than 20%, against its stated aim of
      avoiding "significant differences" and "unrealistic stretching". We take the reading
      that keeps similar-sized persons together.
    - shape: ``IoU(M_i, M_j) >= mask_iou``, the masks compared in place (the composite is pixel
      aligned, so position matters as much as shape) on a ``grid`` resampling. The paper's
      "if IoU is lower than T_i we consider those images for merging" reads backwards the same
      way ("to ensure the shape similarity"); we keep similar shapes.
    - viewpoint: equal labels when ``viewpoints`` is given.

    When more than ``max_partners`` qualify, a fixed random subset (``seed``) is kept.

    Args:
        rois: ``(N, H, W)`` ROI masks (non-zero = ROI).
    Returns:
        ``(offsets (N + 1,), partners (M,))`` int64, partners ascending per image.
    """
    import torch

    n = len(rois)
    areas = torch.from_numpy((np.asarray(rois) > 0).reshape(n, -1).sum(1).astype(np.float64))
    small = torch.from_numpy(shape_grid(rois, grid).astype(np.float32))
    small_area = small.sum(1)
    views = torch.from_numpy(np.asarray(viewpoints, dtype=np.int64)) if viewpoints is not None else None
    generator = torch.Generator().manual_seed(seed)
    keep = min(max_partners, max(n - 1, 1))
    chunk = max(1, min(1024, (1 << 24) // max(n, 1)))
    counts: list[torch.Tensor] = []
    lists: list[torch.Tensor] = []
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        rows = torch.arange(start, stop)
        inter = small[start:stop] @ small.T
        union = small_area[start:stop, None] + small_area[None, :] - inter
        iou = torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))
        a_i, a_j = areas[start:stop, None], areas[None, :]
        ratio = torch.minimum(a_i, a_j) / torch.maximum(a_i, a_j).clamp(min=1)
        ok = (ratio >= area_ratio) & (iou >= mask_iou) & (a_i > 0) & (a_j > 0)
        ok[torch.arange(stop - start), rows] = False
        if views is not None:
            ok &= views[start:stop, None] == views[None, :]
        # A uniform random subset of the compatible ones: the `keep` smallest random keys.
        keys = torch.rand(ok.shape, generator=generator)
        keys[~ok] = 2.0
        values, index = keys.topk(keep, dim=1, largest=False)
        index = torch.where(values < 2.0, index, torch.full_like(index, n)).sort(dim=1).values
        counts.append((index < n).sum(1))
        lists.append(index[index < n])
    count = torch.cat(counts) if counts else torch.zeros(0, dtype=torch.long)
    offsets = np.zeros(n + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(count.numpy())
    partners = torch.cat(lists).numpy().astype(np.int64) if lists else np.zeros(0, dtype=np.int64)
    return offsets, partners


# --------------------------------------------------------------------------------------------
# Backgrounds and the composite
# --------------------------------------------------------------------------------------------


def inpaint_background(image: np.ndarray, roi: np.ndarray, dilation: int = 7, radius: float = 3.0) -> np.ndarray:
    """Image with its ROI removed: ``cv2.inpaint(image, dilate(roi, K_d x d), radius, TELEA)``."""
    if not roi.any():
        return image.copy()
    kernel = np.ones((dilation, dilation), dtype=np.uint8)
    dilated = cv2.dilate((roi > 0).astype(np.uint8) * 255, kernel)
    return cv2.inpaint(np.ascontiguousarray(image), dilated, radius, cv2.INPAINT_TELEA)


def inpaint_backgrounds(
    images: np.ndarray, rois: np.ndarray, dilation: int = 7, radius: float = 3.0, num_threads: int | None = None, progress: Progress = None
) -> np.ndarray:
    """:func:`inpaint_background` of every image, on a thread pool (OpenCV releases the GIL)."""
    n = len(images)
    out = np.empty_like(images)

    def work(i: int) -> None:
        out[i] = inpaint_background(images[i], rois[i], dilation, radius)

    run_on_threads(work, n, num_threads, every_tenth(n, progress, lambda done: f"inpainted {done}/{n} backgrounds"))
    return out


def composite(image_i: np.ndarray, roi_i: np.ndarray, background_j: np.ndarray) -> np.ndarray:
    """Eq. 1 for one pair: ``where(roi_i, image_i, background_j)`` (uint8 H x W x 3), as a copy
    of ``background_j`` with the ROI pixels of ``image_i`` copied over (``cv2.copyTo``)."""
    out = np.array(background_j, copy=True, order="C")
    mask = np.ascontiguousarray(roi_i, dtype=np.uint8)
    return cv2.copyTo(np.ascontiguousarray(image_i), mask, out)


def build_bank(
    images: np.ndarray, masks: np.ndarray, params: CompositeParams, viewpoints: np.ndarray | None = None, progress: Progress = None
) -> CompositeBank:
    """Compute ROI masks, backgrounds and partner lists of ``images`` (no cache)."""
    if masks.shape != images.shape[:3]:
        raise DatasetError(f"masks {masks.shape} do not match images {images.shape[:3]}")
    if params.same_viewpoint and viewpoints is None:
        raise DatasetError("same_viewpoint needs viewpoint labels, none were given")
    rois = roi_masks(masks, params.roi, params.upper_fraction)
    backgrounds = inpaint_backgrounds(images, rois, params.dilation, params.inpaint_radius, progress=progress)
    offsets, partners = compatible_partners(
        rois,
        area_ratio=params.area_ratio,
        mask_iou=params.mask_iou,
        viewpoints=viewpoints if params.same_viewpoint else None,
        max_partners=params.max_partners,
    )
    return CompositeBank(rois, backgrounds, offsets, partners, params)


# --------------------------------------------------------------------------------------------
# Viewpoints, fingerprints and the on-disk cache
# --------------------------------------------------------------------------------------------


def read_viewpoints(records: Sequence[ImageRecord], root: str | Path, *, synthetic: bool = False) -> np.ndarray:
    """Viewpoint labels of ``records`` as dense ints, from ``<root>/viewpoints.txt``.

    Each line is ``<image path under root> <label>`` (any label text: ``front``, ``back``,
    ``side``, a pose-cluster id). The synthetic dataset draws everyone front-facing, so all of
    its images share one label. The paper estimates viewpoints with a pose estimator where a
    dataset has no annotation; none of the public ReID datasets ships them.

    Raises:
        DatasetError: the file is missing or does not label every image.
    """
    if synthetic:
        return np.zeros(len(records), dtype=np.int64)
    root = Path(root)
    path = root / VIEWPOINTS_FILE
    if not path.is_file():
        raise DatasetError(
            f"same_viewpoint needs viewpoint labels in {str(path)!r} ('<path under {root}> <label>' "
            "per line); write them or set augment.implicit_attention.same_viewpoint: false"
        )
    labels: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.rsplit(maxsplit=1)
        if len(fields) == 2:
            labels[Path(fields[0]).as_posix()] = fields[1]
    missing = []
    names = []
    for record in records:
        rel = Path(record.path).relative_to(root).as_posix()
        if rel not in labels:
            missing.append(record.path)
        else:
            names.append(labels[rel])
    if missing:
        raise DatasetError(f"{str(path)!r} has no viewpoint label for {summarize_paths(missing)}")
    _, dense = np.unique(np.array(names, dtype=object).astype(str), return_inverse=True)
    return dense.astype(np.int64)


def dataset_fingerprint(records: Sequence[ImageRecord], root: str | Path, size: tuple[int, int]) -> str:
    """Changes whenever an image, a mask, the viewpoint file or the decoded size changes."""
    root = Path(root)
    h = hashlib.sha256(f"{size[0]}x{size[1]}".encode())
    for record in records:
        for path in (record.path, record.mask_path):
            if path is None:
                h.update(b"-")
                continue
            stat = Path(path).stat()
            h.update(f"{Path(path).relative_to(root).as_posix()}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    viewpoints = root / VIEWPOINTS_FILE
    if viewpoints.is_file():
        h.update(viewpoints.read_bytes())
    return h.hexdigest()[:16]


def _digest(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def cache_dirs(root: str | Path) -> list[Path]:
    """Where a dataset's composite cache may live: beside it, else in the user cache folder
    (for read-only dataset copies)."""
    from trainables.data.synthetic import default_cache_dir

    root = Path(root).resolve()
    fallback = default_cache_dir() / "implicit_attention" / hashlib.sha256(str(root).encode()).hexdigest()[:12]
    return [root / _CACHE_SUBDIR, fallback]


def _write(path: Path, save: Callable, *args, **kwargs) -> None:
    # Through an open file: np.save / np.savez append a suffix to bare temporary names.
    with open(path, "wb") as handle:
        save(handle, *args, **kwargs)


def _save_atomic(path: Path, save: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        save(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _try_load(dirs: Sequence[Path], name: str, load: Callable[[Path], object]) -> object | None:
    for folder in dirs:
        path = folder / name
        if path.is_file():
            try:
                return load(path)
            except (OSError, ValueError, KeyError, EOFError):
                continue  # a damaged cache file is recomputed
    return None


def _store(dirs: Sequence[Path], name: str, save: Callable[[Path], None]) -> Path | None:
    for folder in dirs:
        try:
            _save_atomic(folder / name, save)
            return folder / name
        except OSError:
            continue
    return None


def load_or_build_bank(
    images: np.ndarray,
    masks: np.ndarray,
    params: CompositeParams,
    *,
    root: str | Path,
    fingerprint: str,
    viewpoints: np.ndarray | None = None,
    progress: Progress = None,
) -> CompositeBank:
    """:func:`build_bank` through the on-disk cache of the dataset at ``root``.

    Backgrounds are keyed by (fingerprint, ROI, dilation, radius) and partner lists by
    (fingerprint, ROI, thresholds, viewpoint rule), so a sweep over thresholds inpaints once.
    Files are written atomically (temporary name, then rename) under
    ``<root>/.reid-cache/implicit_attention/``, or the user cache folder when the dataset is
    read-only; a damaged or mismatched file is recomputed.
    """
    if masks.shape != images.shape[:3]:
        raise DatasetError(f"masks {masks.shape} do not match images {images.shape[:3]}")
    if params.same_viewpoint and viewpoints is None:
        raise DatasetError("same_viewpoint needs viewpoint labels, none were given")
    n, h, w = masks.shape
    dirs = cache_dirs(root)
    base = {"version": CACHE_VERSION, "fingerprint": fingerprint, "n": n, "size": [h, w]}
    rois = roi_masks(masks, params.roi, params.upper_fraction)

    bg_name = f"backgrounds-{_digest({**base, **params.background_fields()})[:16]}.npy"
    backgrounds = _try_load(dirs, bg_name, lambda p: np.load(p, allow_pickle=False))
    if not (isinstance(backgrounds, np.ndarray) and backgrounds.shape == images.shape and backgrounds.dtype == np.uint8):
        if progress is not None:
            progress(f"implicit attention: inpainting {n} backgrounds ({params.roi}, {params.dilation}x{params.dilation} dilation)")
        backgrounds = inpaint_backgrounds(images, rois, params.dilation, params.inpaint_radius, progress=progress)
        _store(dirs, bg_name, lambda p: _write(p, np.save, backgrounds, allow_pickle=False))

    pa_name = f"partners-{_digest({**base, **params.partner_fields()})[:16]}.npz"
    loaded = _try_load(dirs, pa_name, lambda p: dict(np.load(p, allow_pickle=False)))
    if isinstance(loaded, dict) and loaded.get("offsets", np.zeros(0)).shape == (n + 1,):
        offsets, partners = loaded["offsets"].astype(np.int64), loaded["partners"].astype(np.int64)
    else:
        if progress is not None:
            progress(f"implicit attention: matching partners of {n} images")
        offsets, partners = compatible_partners(
            rois,
            area_ratio=params.area_ratio,
            mask_iou=params.mask_iou,
            viewpoints=viewpoints if params.same_viewpoint else None,
            max_partners=params.max_partners,
        )
        _store(dirs, pa_name, lambda p: _write(p, np.savez, offsets=offsets, partners=partners))
    return CompositeBank(rois, backgrounds, offsets, partners, params)

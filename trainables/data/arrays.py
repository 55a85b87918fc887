"""Decode a split into uint8 arrays once, so every trial on a node shares the same memory.

DESIGN.md "Performance design": a dataset is decoded once per node into uint8 arrays (then put
in shared memory or the Ray object store) rather than once per trial. This module does the
decoding: :func:`load_split` turns :class:`~trainables.data.market.ImageRecord` lists into a
:class:`SplitArrays`, and :func:`load_market_dataset` does it for train, query and gallery.

Images are decoded with OpenCV (``IMREAD_COLOR`` then BGR -> RGB) and resized to
``(height, width)`` with ``INTER_LINEAR``; masks are read as single channel, resized with
``INTER_NEAREST`` and stored as 0/1. Decoding runs on a few threads (OpenCV releases the
GIL; Ctrl-C stops them at once: :mod:`trainables.data.threads`). Every unreadable file is
collected and reported in one :class:`DatasetError`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from trainables.data.errors import DatasetError, summarize_paths
from trainables.data.threads import every_tenth, run_on_threads
from trainables.data.market import SPLIT_FOLDERS, ImageRecord, read_market_split

__all__ = ["SplitArrays", "find_unreadable", "load_market_dataset", "load_masks", "load_split"]

_JPEG_SUFFIXES = frozenset({".jpg", ".jpeg"})
_JPEG_TAIL = 1024  # the end-of-image marker must sit within this many bytes of the end


@dataclass
class SplitArrays:
    """One decoded split.

    Attributes:
        images: ``(N, H, W, 3)`` uint8 RGB.
        pids: ``(N,)`` int64 person ids as in the file names (not relabelled).
        camids: ``(N,)`` int64 1-based camera ids.
        masks: ``(N, H, W)`` uint8 in {0, 1} (1 = person), or None when not loaded.
        paths: the N source image paths.
    """

    images: np.ndarray
    pids: np.ndarray
    camids: np.ndarray
    masks: np.ndarray | None
    paths: list[str]

    def __len__(self) -> int:
        return len(self.paths)

    @classmethod
    def from_records(cls, records: Sequence[ImageRecord], images: np.ndarray, masks: np.ndarray | None = None) -> "SplitArrays":
        """Decoded ``images`` (and ``masks``) with the ids and paths of their ``records``."""
        return cls(
            images=images,
            pids=np.array([r.pid for r in records], dtype=np.int64),
            camids=np.array([r.camid for r in records], dtype=np.int64),
            masks=masks,
            paths=[str(r.path) for r in records],
        )


def _read_bytes(path: Path) -> np.ndarray | None:
    try:
        return np.fromfile(path, dtype=np.uint8)  # works for non-ASCII paths, unlike imread
    except OSError:
        return None


def _decode_image(path: Path, height: int, width: int) -> np.ndarray | None:
    data = _read_bytes(path)
    if data is None or data.size == 0:
        return None
    if path.suffix.lower() in _JPEG_SUFFIXES:
        # libjpeg decodes a truncated file into a grey-filled image with only a warning;
        # a missing end-of-image marker is the reliable sign of such a file.
        tail = data[-_JPEG_TAIL:].tobytes()
        if data[:2].tobytes() != b"\xff\xd8" or b"\xff\xd9" not in tail:
            return None
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        return None
    if bgr.shape[:2] != (height, width):
        bgr = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _decode_mask(path: Path, height: int, width: int) -> np.ndarray | None:
    data = _read_bytes(path)
    if data is None or data.size == 0:
        return None
    mask = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
    if mask is None:
        return None
    if mask.shape != (height, width):
        mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
    return (mask > 127).astype(np.uint8)


def load_split(
    records: Sequence[ImageRecord],
    height: int,
    width: int,
    with_masks: bool = False,
    progress: Callable[[str], None] | None = None,
    num_threads: int | None = None,
) -> SplitArrays:
    """Decode ``records`` into one :class:`SplitArrays` of ``(height, width)`` images.

    Args:
        records: images to decode, in the order wanted (e.g. from ``read_market_split``).
        height, width: output size; images are resized with ``INTER_LINEAR``.
        with_masks: also decode each record's ``mask_path`` (``INTER_NEAREST``, stored 0/1).
        progress: called with a short message about every 10% of the images.
        num_threads: decoding threads; default ``min(8, os.cpu_count())``.

    Raises:
        DatasetError: a bad size, records without a mask when ``with_masks`` is set, or
            files that cannot be decoded (all collected; the first few are named).
    """
    if height < 1 or width < 1:
        raise DatasetError(f"image size must be positive, got height={height}, width={width}")
    if with_masks:
        missing = [r.path for r in records if r.mask_path is None]
        if missing:
            raise DatasetError(
                f"with_masks is set but no mask was found for {summarize_paths(missing)}; "
                "masks are read from <root>/masks/<split folder>/<stem>.png "
                "(generate them or turn masks off)"
            )
    n = len(records)
    images = np.empty((n, height, width, 3), dtype=np.uint8)
    masks = np.empty((n, height, width), dtype=np.uint8) if with_masks else None

    def work(i: int) -> list[Path]:
        record = records[i]
        failed = []
        img = _decode_image(Path(record.path), height, width)
        if img is None:
            failed.append(Path(record.path))
        else:
            images[i] = img
        if masks is not None:
            mask = _decode_mask(Path(record.mask_path), height, width)  # type: ignore[arg-type]
            if mask is None:
                failed.append(Path(record.mask_path))  # type: ignore[arg-type]
            else:
                masks[i] = mask
        return failed

    report = every_tenth(n, progress, lambda done: f"decoded {done}/{n} images")
    bad = [path for failed in run_on_threads(work, n, num_threads, report) for path in failed]
    if bad:
        raise DatasetError(f"cannot decode {summarize_paths(bad)}; the files are missing, truncated or not images: replace or remove them")
    return SplitArrays.from_records(records, images, masks)


def load_masks(records: Sequence[ImageRecord], height: int, width: int, num_threads: int | None = None) -> np.ndarray:
    """Decode only the masks of ``records``: ``(N, height, width)`` uint8 in {0, 1}.

    Raises:
        DatasetError: records without a mask, or masks that cannot be decoded.
    """
    missing = [r.path for r in records if r.mask_path is None]
    if missing:
        raise DatasetError(
            f"no person mask for {summarize_paths(missing)}; masks are read from "
            "<root>/masks/<path under root>.png: compute them with `orchestrator data masks`"
        )
    masks = np.empty((len(records), height, width), dtype=np.uint8)

    def work(i: int) -> Path | None:
        mask = _decode_mask(Path(records[i].mask_path), height, width)  # type: ignore[arg-type]
        if mask is None:
            return Path(records[i].mask_path)  # type: ignore[arg-type]
        masks[i] = mask
        return None

    bad = [path for path in run_on_threads(work, len(records), num_threads) if path is not None]
    if bad:
        raise DatasetError(f"cannot decode mask {summarize_paths(bad)}: recompute or remove them")
    return masks


def _readable(path: Path) -> bool:
    data = _read_bytes(path)
    if data is None or data.size == 0:
        return False
    if path.suffix.lower() in _JPEG_SUFFIXES:
        tail = data[-_JPEG_TAIL:].tobytes()
        if data[:2].tobytes() != b"\xff\xd8" or b"\xff\xd9" not in tail:
            return False
    return cv2.imdecode(data, cv2.IMREAD_REDUCED_GRAYSCALE_2) is not None


def find_unreadable(
    paths: Sequence[str | Path], num_threads: int | None = None, progress: Callable[[str], None] | None = None
) -> list[Path]:
    """The files among ``paths`` that are missing, empty, truncated or not images, in order."""
    items = [Path(p) for p in paths]
    n = len(items)
    report = every_tenth(n, progress, lambda done: f"checked {done}/{n} files")
    readable = run_on_threads(lambda i: _readable(items[i]), n, num_threads, report)
    return [path for path, ok in zip(items, readable) if not ok]


def load_market_dataset(root: str | Path, height: int, width: int, with_masks: bool = False) -> dict[str, SplitArrays]:
    """Read and decode train, query and gallery of a Market-1501 style dataset at ``root``.

    Person ids are kept as in the file names; use :func:`trainables.data.market.relabel` for
    contiguous training labels.
    """
    return {split: load_split(read_market_split(root, split), height, width, with_masks=with_masks) for split in SPLIT_FOLDERS}

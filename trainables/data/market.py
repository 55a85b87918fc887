"""Market-1501 layout: file-name parsing and split reading.

A Market-1501 style dataset is a folder with three sub-folders::

    <root>/bounding_box_train/0002_c1s1_000451_03.jpg   train split
    <root>/query/0001_c1s1_001051_00.jpg                query split
    <root>/bounding_box_test/-1_c3s2_000123_01.jpg      gallery split
    <root>/masks/<folder>/<stem>.png                   optional person masks (0/255)

A file name starts with the person id and the 1-based camera id: ``<pid>_c<cam>...``. The rest
(``s<sequence>_<frame>_<box>``) is ignored, so DukeMTMC-reID names (``0001_c2_f0046182.jpg``)
and any folder that follows the same convention read the same way. Person id ``-1`` marks a
junk image (a bad detection) and ``0`` a distractor (a person outside the test identities).

Protocol (see DESIGN.md "Metrics"): junk never enters train, query or gallery; distractors stay
only in the gallery, where they are legitimate negatives.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainables.data.errors import DatasetError, summarize_paths

__all__ = [
    "DISTRACTOR_PID",
    "EXPECTED_NAME_PATTERN",
    "IMAGE_SUFFIXES",
    "JUNK_PID",
    "SPLIT_FOLDERS",
    "DatasetError",
    "ImageRecord",
    "keep_record",
    "mask_path_for",
    "parse_market_name",
    "read_market_split",
    "relabel",
    "scan_market_folder",
]

JUNK_PID = -1
DISTRACTOR_PID = 0

#: split name -> folder name inside the dataset root
SPLIT_FOLDERS: dict[str, str] = {
    "train": "bounding_box_train",
    "query": "query",
    "gallery": "bounding_box_test",
}

#: files with these suffixes are images and must follow the naming convention; anything else in
#: a split folder (Market-1501 ships a ``Thumbs.db``) is ignored.
IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp"})

EXPECTED_NAME_PATTERN = (
    "'<pid>_c<camera>[s<seq>_<frame>_<box>].jpg' such as '0002_c1s1_000451_03.jpg' "
    "(pid: digits or -1 for junk, 0 for distractors; camera: 1-based)"
)

_NAME_RE = re.compile(r"^(-1|\d+)_c(\d+)(?:[^0-9].*)?$")

_BAD_NAMES_SHOWN = 5


@dataclass(frozen=True)
class ImageRecord:
    """One image of a split: where it is, whose it is and which camera took it."""

    path: Path
    pid: int
    camid: int
    mask_path: Path | None = None


def parse_market_name(filename: str | Path, max_camera: int | None = None) -> tuple[int, int]:
    """Return ``(pid, camid)`` parsed from a Market-1501 style file name.

    ``camid`` is 1-based, as written in the name (``c1`` -> 1). ``pid`` is -1 for junk and 0
    for distractors. Only the base name is parsed; the whole path is named in the error.
    ``max_camera`` (a dataset's camera count, e.g. 6 for Market-1501) rejects higher ids.

    Raises:
        DatasetError: the name does not start with ``<pid>_c<camera>``, the camera is 0 or
            above ``max_camera``.
    """
    name = Path(filename).stem
    match = _NAME_RE.match(name)
    if match is None:
        raise DatasetError(
            f"bad image file name {str(filename)!r}: expected {EXPECTED_NAME_PATTERN}; rename the file or move it out of the split folder"
        )
    pid, camid = int(match.group(1)), int(match.group(2))
    if camid < 1:
        raise DatasetError(f"bad image file name {str(filename)!r}: camera ids are 1-based, got c{camid}; expected {EXPECTED_NAME_PATTERN}")
    if max_camera is not None and camid > max_camera:
        raise DatasetError(
            f"bad image file name {str(filename)!r}: camera c{camid} is above this dataset's "
            f"{max_camera} cameras; expected {EXPECTED_NAME_PATTERN}"
        )
    return pid, camid


def mask_path_for(root: str | Path, image_path: str | Path) -> Path:
    """Where the person mask of ``image_path`` lives: ``<root>/masks/<path under root>.png``.

    For a Market layout that is ``<root>/masks/<split folder>/<stem>.png``; for list-file
    layouts (MSMT17) the sub-folders under the split folder are kept.
    """
    root = Path(root)
    relative = Path(image_path).relative_to(root)
    return root / "masks" / relative.with_suffix(".png")


def keep_record(split: str, pid: int) -> bool:
    """The protocol: junk (-1) is dropped everywhere; distractors (0) only stay in the gallery."""
    return _keep(split, pid)


def scan_market_folder(folder: str | Path, max_camera: int | None = None) -> tuple[list[ImageRecord], list[Path]]:
    """Every image of one folder in Market naming, junk and distractors included.

    Returns ``(records sorted by file name, image files whose names do not parse)``; files that
    are not images (``Thumbs.db``) are ignored. ``mask_path`` is not set.
    """
    records: list[ImageRecord] = []
    bad: list[Path] = []
    broken: list[str] = []
    for path in sorted(Path(folder).iterdir(), key=lambda p: p.name):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if path.is_symlink() and not path.exists():  # is_file() alone would skip it without a word
            broken.append(describe_broken_link(path))
            continue
        if not path.is_file():
            continue
        try:
            pid, camid = parse_market_name(path.name, max_camera)
        except DatasetError:
            bad.append(path)
            continue
        records.append(ImageRecord(path=path, pid=pid, camid=camid))
    if broken:
        shown = "; ".join(broken[:5]) + (f" (and {len(broken) - 5} more)" if len(broken) > 5 else "")
        raise DatasetError(
            f"{folder}: {len(broken)} image(s) are symbolic links to no file: {shown}; point them at the images or remove them"
        )
    return records, bad


def describe_broken_link(path: Path) -> str:
    """``name -> target (missing)`` for a dangling link, ``name (a loop of links)`` for a looping one."""
    try:
        path.resolve(strict=True)
    except RuntimeError:  # Python 3.11 reports a loop so
        return f"{path.name} (a loop of links)"
    except OSError as err:
        import errno

        if err.errno == errno.ELOOP:
            return f"{path.name} (a loop of links)"
    return f"{path.name} -> {os.readlink(path)} (missing)"


def _keep(split: str, pid: int) -> bool:
    """Junk (-1) is dropped everywhere; distractors (0) are kept only in the gallery."""
    if pid == JUNK_PID:
        return False
    if pid == DISTRACTOR_PID:
        return split == "gallery"
    return True


def read_market_split(root: str | Path, split: str, max_camera: int | None = None) -> list[ImageRecord]:
    """List the images of one split of a Market-1501 style dataset, sorted by file name.

    Args:
        root: dataset root holding ``bounding_box_train``, ``query`` and ``bounding_box_test``.
        split: ``"train"``, ``"query"`` or ``"gallery"``.
        max_camera: reject camera ids above this (the dataset's camera count), if given.

    Returns:
        One :class:`ImageRecord` per kept image. ``mask_path`` is set where
        ``<root>/masks/<folder>/<stem>.png`` exists.

    Raises:
        DatasetError: unknown split, missing folder, or image files with bad names (all
            offenders are collected and the first few named).
    """
    if split not in SPLIT_FOLDERS:
        raise DatasetError(f"unknown split {split!r}: expected one of {sorted(SPLIT_FOLDERS)}")
    root = Path(root)
    folder = SPLIT_FOLDERS[split]
    split_dir = root / folder
    if not split_dir.is_dir():
        raise DatasetError(
            f"missing {split} folder {str(split_dir)!r}: a Market-1501 style dataset needs "
            f"{', '.join(SPLIT_FOLDERS.values())} under {str(root)!r}"
        )
    mask_dir = root / "masks" / folder
    mask_names = {p.name for p in mask_dir.iterdir() if p.suffix.lower() == ".png"} if mask_dir.is_dir() else set()

    records: list[ImageRecord] = []
    scanned, bad = scan_market_folder(split_dir, max_camera)
    for record in scanned:
        if not _keep(split, record.pid):
            continue
        mask_name = f"{record.path.stem}.png"
        mask_path = mask_dir / mask_name if mask_name in mask_names else None
        records.append(ImageRecord(path=record.path, pid=record.pid, camid=record.camid, mask_path=mask_path))

    if bad:
        raise DatasetError(
            f"bad image file names in {str(split_dir)!r}, {summarize_paths(bad, _BAD_NAMES_SHOWN)}; expected {EXPECTED_NAME_PATTERN}"
        )
    return records


def relabel(pids: Iterable[int]) -> tuple[np.ndarray, dict[int, int]]:
    """Map person ids to contiguous training labels ``0..N-1`` in sorted pid order.

    Returns:
        ``(labels, mapping)``: ``labels`` is an int64 array aligned with ``pids``;
        ``mapping`` maps each original pid to its label.
    """
    pid_array = np.asarray(list(pids) if not isinstance(pids, np.ndarray) else pids)
    pid_array = pid_array.astype(np.int64, copy=False)
    unique = np.unique(pid_array)
    mapping = {int(pid): label for label, pid in enumerate(unique.tolist())}
    labels = np.searchsorted(unique, pid_array).astype(np.int64)
    return labels, mapping

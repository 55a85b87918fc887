"""The dataset adapter registry: one reader per dataset layout, looked up by name.

An adapter turns a folder as the dataset ships into three lists of
:class:`~trainables.data.market.ImageRecord` (train, query, gallery) with the protocol of
DESIGN.md "Metrics" applied: junk (pid -1) is dropped everywhere, distractors (pid 0) stay only
in the gallery. Adapters are registered with :func:`register_adapter` (a duplicate name is an
error) and found with :func:`get_adapter` (an unknown name lists the known ones), like timm's
``register_model`` / ``create_model``.

Person masks follow one convention for every layout: the mask of ``<root>/<path>.jpg`` is
``<root>/masks/<path>.png`` (see :func:`~trainables.data.market.mask_path_for`), where
``root`` is the *layout root* the adapter resolved (e.g. ``.../Market-1501-v15.09.15`` or
``.../cuhk03-np/detected``), so masks always sit beside the images they describe.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search_spaces.registry import Registry
from search_spaces.trial_config import DATASETS
from trainables.data.errors import DatasetError, summarize_paths
from trainables.data.market import JUNK_PID, SPLIT_FOLDERS, ImageRecord, keep_record

__all__ = [
    "SPLITS",
    "Adapter",
    "DatasetRecords",
    "adapter_names",
    "find_layout_root",
    "get_adapter",
    "make_records",
    "raise_bad_names",
    "read_dataset",
    "register_adapter",
]

SPLITS: tuple[str, ...] = tuple(SPLIT_FOLDERS)


@dataclass(frozen=True)
class DatasetRecords:
    """The images of one dataset, split and filtered by the protocol.

    Attributes:
        name: the adapter name (``market1501``, ``msmt17``, ...).
        root: the layout root: images and ``masks/`` live under it.
        train, query, gallery: kept records, in a stable order.
        dropped: per split, how many junk images and out-of-gallery distractors were left out.
    """

    name: str
    root: Path
    train: list[ImageRecord]
    query: list[ImageRecord]
    gallery: list[ImageRecord]
    dropped: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    def split(self, name: str) -> list[ImageRecord]:
        if name not in SPLITS:
            raise DatasetError(f"unknown split {name!r}: expected one of {list(SPLITS)}")
        return getattr(self, name)


@dataclass(frozen=True)
class Adapter:
    """A registered reader: ``read(root, **options) -> DatasetRecords``."""

    name: str
    read: Callable[..., DatasetRecords]
    description: str
    options: tuple[str, ...] = ()


_ADAPTERS: Registry[Adapter] = Registry("dataset", error=DatasetError)


def register_adapter(name: str, *, description: str, options: Sequence[str] = ()) -> Callable:
    """Decorator registering ``fn(root: Path, **options) -> DatasetRecords`` under ``name``.

    Raises:
        DatasetError: ``name`` is already registered (two readers for one name is a bug).
    """

    def decorate(fn: Callable[..., DatasetRecords]) -> Callable[..., DatasetRecords]:
        _ADAPTERS.add(name, Adapter(name, fn, description, tuple(options)))
        if name not in DATASETS:  # a plugin's reader: dataset.name accepts it from now on
            DATASETS.add(name, name)
        return fn

    return decorate


def adapter_names() -> list[str]:
    """Registered adapter names, sorted."""
    return _ADAPTERS.names()


def get_adapter(name: str) -> Adapter:
    """The adapter registered as ``name``; an unknown name is a :class:`DatasetError` listing the
    known ones."""
    return _ADAPTERS.get(name)


def read_dataset(name: str, root: str | Path, **options: Any) -> DatasetRecords:
    """Read dataset ``name`` at ``root`` with its adapter. Options an adapter does not take are
    an error naming the ones it does take."""
    adapter = get_adapter(name)
    unknown = sorted(set(options) - set(adapter.options))
    if unknown:
        takes = ", ".join(adapter.options) or "none"
        raise DatasetError(f"dataset {name!r} takes no option(s) {unknown}; its options: {takes}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"dataset {name!r}: folder not found: {root}")
    return adapter.read(root, **options)


def find_layout_root(root: Path, name: str, is_layout: Callable[[Path], bool], subfolders: Iterable[str], expected: str) -> Path:
    """``root`` itself, or the first of its known sub-folders (as the archive unpacks, e.g.
    ``Market-1501-v15.09.15``), that passes ``is_layout``.

    Raises:
        DatasetError: none does; ``expected`` describes what was looked for.
    """
    candidates = [root] + [root / sub for sub in subfolders]
    for candidate in candidates:
        if candidate.is_dir() and is_layout(candidate):
            return candidate
    looked = ", ".join(str(c) for c in candidates if c.is_dir())
    raise DatasetError(f"dataset {name!r}: {expected} under {str(root)!r} (looked in: {looked})")


def _existing_masks(root: Path) -> set[str]:
    """Paths (relative to ``root/masks``, POSIX style) of every mask file under it."""
    mask_root = root / "masks"
    found: set[str] = set()
    if not mask_root.is_dir():
        return found
    for folder, _, files in os.walk(mask_root):
        rel = Path(folder).relative_to(mask_root)
        for name in files:
            if name.lower().endswith(".png"):
                found.add((rel / name).as_posix())
    return found


def make_records(name: str, root: Path, scanned: Mapping[str, Sequence[ImageRecord]], *, apply_protocol: bool = True) -> DatasetRecords:
    """Apply the protocol to every split's records, count what was dropped and attach masks.

    Args:
        apply_protocol: False for datasets without junk or distractors (MSMT17), whose
            records keep every image.
    """
    masks = _existing_masks(root)
    kept: dict[str, list[ImageRecord]] = {}
    dropped: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        out: list[ImageRecord] = []
        counts = {"junk": 0, "distractors": 0}
        for record in scanned.get(split, ()):
            if apply_protocol and not keep_record(split, record.pid):
                counts["junk" if record.pid == JUNK_PID else "distractors"] += 1
                continue
            rel = Path(record.path).relative_to(root).with_suffix(".png").as_posix()
            mask_path = root / "masks" / rel if rel in masks else None
            out.append(ImageRecord(record.path, record.pid, record.camid, mask_path))
        kept[split] = out
        dropped[split] = counts
    empty = [split for split in SPLITS if not kept[split]]
    if empty:
        raise DatasetError(
            f"dataset {name!r} at {str(root)!r}: no usable images in split(s) {', '.join(empty)} "
            "(after leaving out junk and distractors); the dataset is incomplete"
        )
    return DatasetRecords(name, root, kept["train"], kept["query"], kept["gallery"], dropped)


def raise_bad_names(name: str, root: Path, bad: Sequence[Path], expected: str) -> None:
    """One error for every badly named file of a dataset (the first few named, and the count)."""
    if bad:
        raise DatasetError(f"dataset {name!r}: bad image file names under {str(root)!r}, {summarize_paths(list(bad))}; expected {expected}")

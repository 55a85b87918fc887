"""Adapters for datasets that ship in Market-1501 layout and naming.

Layout (:mod:`trainables.data.market`)::

    <root>/bounding_box_train/0002_c1s1_000451_03.jpg
    <root>/query/0001_c1s1_001051_00.jpg
    <root>/bounding_box_test/-1_c3s2_000123_01.jpg

- ``market1501``: Market-1501 (Zheng et al., ICCV 2015), 6 cameras; ``root`` may be the
  folder the archive unpacks to (``Market-1501-v15.09.15``) or its parent. Junk (``-1_``) and
  distractors (``0000_``) are in ``bounding_box_test``.
- ``dukemtmc``: DukeMTMC-reID (Zheng et al., ICCV 2017), 8 cameras, names like
  ``0001_c2_f0046182.jpg``; ``root`` may be ``DukeMTMC-reID`` or its parent. No junk.
- ``cuhk03np``: CUHK03-NP, the new protocol of Zhong et al. (CVPR 2017): ``detected/`` and
  ``labeled/`` each in Market layout (``0001_c1_1.png``); ``subset`` picks one.
- ``folder``: any folder in Market layout and naming, read as it is (no camera limit).
- ``synthetic``: the embedded synthetic dataset (:mod:`trainables.data.synthetic`).

All image files with a bad name, in every split, are reported in one error.
"""

from __future__ import annotations

from pathlib import Path

from trainables.data.adapters._registry import (
    DatasetRecords,
    find_layout_root,
    make_records,
    raise_bad_names,
    register_adapter,
)
from trainables.data.errors import DatasetError
from trainables.data.market import EXPECTED_NAME_PATTERN, SPLIT_FOLDERS, ImageRecord, scan_market_folder

__all__ = ["CUHK03_SUBSETS", "read_market_layout"]

CUHK03_SUBSETS: tuple[str, ...] = ("detected", "labeled")


def _has_market_folders(path: Path) -> bool:
    return any((path / folder).is_dir() for folder in SPLIT_FOLDERS.values())


def read_market_layout(name: str, root: Path, *, max_camera: int | None = None, subfolders: tuple[str, ...] = ()) -> DatasetRecords:
    """Read a Market-layout dataset at ``root`` (or in one of its known ``subfolders``)."""
    layout = find_layout_root(
        root,
        name,
        _has_market_folders,
        subfolders,
        f"no Market-1501 layout ({', '.join(SPLIT_FOLDERS.values())})",
    )
    missing = [folder for folder in SPLIT_FOLDERS.values() if not (layout / folder).is_dir()]
    if missing:
        raise_missing(name, layout, missing)
    scanned: dict[str, list[ImageRecord]] = {}
    bad: list[Path] = []
    for split, folder in SPLIT_FOLDERS.items():
        scanned[split], bad_here = scan_market_folder(layout / folder, max_camera)
        bad.extend(bad_here)
    raise_bad_names(name, layout, bad, EXPECTED_NAME_PATTERN)
    return make_records(name, layout, scanned)


def raise_missing(name: str, layout: Path, missing: list[str]) -> None:
    raise DatasetError(
        f"dataset {name!r}: missing folder(s) {', '.join(missing)} in {str(layout)!r}; a "
        f"Market-1501 layout needs {', '.join(SPLIT_FOLDERS.values())}"
    )


@register_adapter("market1501", description="Market-1501 (6 cameras; junk -1 and distractors 0 in the gallery)")
def read_market1501(root: Path) -> DatasetRecords:
    return read_market_layout(
        "market1501",
        root,
        max_camera=6,
        subfolders=("Market-1501-v15.09.15", "Market-1501", "market1501", "Market1501"),
    )


@register_adapter("dukemtmc", description="DukeMTMC-reID (8 cameras, Market layout and naming)")
def read_dukemtmc(root: Path) -> DatasetRecords:
    return read_market_layout(
        "dukemtmc",
        root,
        max_camera=8,
        subfolders=("DukeMTMC-reID", "dukemtmc-reid", "dukemtmcreid", "DukeMTMC"),
    )


@register_adapter("folder", description="any folder in Market-1501 layout and naming")
def read_folder(root: Path) -> DatasetRecords:
    return read_market_layout("folder", root)


@register_adapter("synthetic", description="the embedded synthetic dataset (Market layout, masks included)")
def read_synthetic(root: Path) -> DatasetRecords:
    return read_market_layout("synthetic", root)


@register_adapter("cuhk03np", description="CUHK03-NP: detected/ or labeled/, each in Market layout", options=("subset",))
def read_cuhk03np(root: Path, subset: str = "detected") -> DatasetRecords:
    if subset not in CUHK03_SUBSETS:
        raise DatasetError(f"dataset 'cuhk03np': subset must be one of {list(CUHK03_SUBSETS)}, got {subset!r}")
    base = find_layout_root(
        root,
        "cuhk03np",
        lambda p: (p / "detected").is_dir() or (p / "labeled").is_dir(),
        ("cuhk03-np", "CUHK03-NP", "cuhk03_np", "cuhk03np"),
        "no CUHK03-NP layout (detected/ and labeled/ folders)",
    )
    if not (base / subset).is_dir():
        raise DatasetError(
            f"dataset 'cuhk03np': missing folder {str(base / subset)!r} for subset {subset!r}; "
            f"CUHK03-NP ships detected/ and labeled/, each in Market layout"
        )
    return read_market_layout("cuhk03np", base / subset)

"""Tiny generated datasets in each real layout, as they ship (junk and distractors included).

Every image is a small solid-colour JPEG/PNG written with OpenCV; nothing is downloaded. Each
writer returns the root a user would pass (the parent of the folder the archive unpacks to,
where the real archive has one) and the expected counts.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

SIZE = (16, 8)  # (height, width) of the written images


def write_image(path: Path, seed: int, size: tuple[int, int] = SIZE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    img = np.empty((*size, 3), dtype=np.uint8)
    img[:] = rng.integers(0, 256, 3)
    assert cv2.imwrite(str(path), img)


def write_mask(path: Path, size: tuple[int, int] = SIZE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    mask = np.zeros(size, dtype=np.uint8)
    mask[3:14, 2:6] = 255
    assert cv2.imwrite(str(path), mask)


def _write_market_folders(layout: Path, names: dict[str, list[str]], suffix: str = ".jpg") -> None:
    for i, (folder, files) in enumerate(names.items()):
        for j, name in enumerate(files):
            write_image(layout / folder / f"{name}{suffix}", seed=100 * i + j)


MARKET_NAMES = {
    "bounding_box_train": [
        "0002_c1s1_000451_03",
        "0002_c2s1_000551_01",
        "0007_c3s3_015476_04",
        "0007_c6s4_002202_01",
        "0011_c4s2_004911_02",
    ],
    "query": ["0001_c1s1_001051_00", "0003_c5s1_001501_00"],
    "bounding_box_test": [
        "0001_c2s1_000301_01",
        "0003_c6s1_002201_02",
        "0000_c1s1_000012_00",
        "0000_c3s2_000151_04",
        "-1_c1s1_000021_01",
        "-1_c2s1_000211_03",
    ],
}


def make_market1501(base: Path, with_masks: bool = True) -> Path:
    """``base/Market-1501-v15.09.15/`` with 3 train ids, 2 test ids, 2 distractors, 2 junk."""
    layout = base / "Market-1501-v15.09.15"
    _write_market_folders(layout, MARKET_NAMES)
    (layout / "bounding_box_test" / "Thumbs.db").write_bytes(b"not an image")
    (layout / "gt_bbox").mkdir()  # shipped, not used
    if with_masks:
        for name in MARKET_NAMES["bounding_box_train"]:
            write_mask(layout / "masks" / "bounding_box_train" / f"{name}.png")
    return base


DUKE_NAMES = {
    "bounding_box_train": ["0001_c2_f0046182", "0001_c5_f0051341", "0005_c8_f0073416", "0005_c7_f0128013"],
    "query": ["0012_c1_f0057703", "0019_c4_f0102184"],
    "bounding_box_test": ["0012_c3_f0063012", "0019_c8_f0101211", "0023_c2_f0046412"],
}


def make_dukemtmc(base: Path) -> Path:
    """``base/DukeMTMC-reID/``: Market layout, Duke naming, 8 cameras, no junk."""
    _write_market_folders(base / "DukeMTMC-reID", DUKE_NAMES)
    return base


CUHK_NAMES = {
    "bounding_box_train": ["0001_c1_1", "0001_c2_6", "0004_c1_2", "0004_c2_7"],
    "query": ["1368_c1_1", "1370_c2_6"],
    "bounding_box_test": ["1368_c2_7", "1370_c1_2", "1371_c1_3"],
}


def make_cuhk03np(base: Path) -> Path:
    """``base/cuhk03-np/{detected,labeled}/``, PNG images; labeled has one extra train image."""
    for subset in ("detected", "labeled"):
        names = {k: list(v) for k, v in CUHK_NAMES.items()}
        if subset == "labeled":
            names["bounding_box_train"].append("0009_c1_3")
        _write_market_folders(base / "cuhk03-np" / subset, names, suffix=".png")
    return base


MSMT_LISTS = {
    # split -> lines (path under the split folder, pid as in the list file: 0-based)
    "train": [
        ("0000/0000_000_01_0303morning_0015_0.jpg", 0),
        ("0000/0000_001_05_0303morning_0030_1.jpg", 0),
        ("0001/0001_000_07_0303noon_0120_0.jpg", 1),
        ("0001/0001_001_15_0303afternoon_0042_0.jpg", 1),
    ],
    "val": [("0002/0002_000_03_0303morning_0701_0.jpg", 2), ("0002/0002_001_04_0303morning_0702_0.jpg", 2)],
    "query": [("0000/0000_000_02_0304morning_0011_0.jpg", 0), ("0003/0003_000_09_0304noon_0211_0.jpg", 3)],
    "gallery": [
        ("0000/0000_001_03_0304morning_0021_0.jpg", 0),
        ("0003/0003_001_10_0304noon_0301_0.jpg", 3),
        ("0004/0004_000_11_0304noon_0400_1.jpg", 4),
    ],
}


def make_msmt17(base: Path, version: str = "MSMT17_V1") -> Path:
    """``base/<version>/`` with list files; V1 folders train/ test/, V2 mask_train_v2/ mask_test_v2/."""
    layout = base / version
    train_dir, test_dir = ("train", "test") if version == "MSMT17_V1" else ("mask_train_v2", "mask_test_v2")
    for k, (split, lines) in enumerate(MSMT_LISTS.items()):
        folder = layout / (train_dir if split in ("train", "val") else test_dir)
        for j, (rel, _) in enumerate(lines):
            write_image(folder / rel, seed=1000 + 10 * k + j)
        (layout / f"list_{split}.txt").write_text("".join(f"{rel} {pid}\n" for rel, pid in lines))
    return base


def make_folder(base: Path) -> Path:
    """A plain folder in Market naming with cameras beyond Market's six (c9, c12)."""
    _write_market_folders(
        base,
        {
            "bounding_box_train": ["0001_c9_0", "0001_c12_1", "0002_c9_2", "0002_c1_3"],
            "query": ["0010_c12_0"],
            "bounding_box_test": ["0010_c9_1", "0000_c1_2", "-1_c9_3"],
        },
    )
    return base

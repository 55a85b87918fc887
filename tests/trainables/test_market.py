"""Market-1501 name parsing, split reading and decoding into arrays (hand-made folders)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from trainables.data.arrays import SplitArrays, load_market_dataset, load_split
from trainables.data.errors import DatasetError
from trainables.data.market import (
    ImageRecord,
    parse_market_name,
    read_market_split,
    relabel,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("0002_c1s1_000451_03.jpg", (2, 1)),
        ("1501_c6s4_001877_02.jpg", (1501, 6)),
        ("-1_c3s2_000123_01.jpg", (-1, 3)),
        ("0000_c5s1_000000_00.jpg", (0, 5)),
        ("0001_c2_f0046182.jpg", (1, 2)),  # DukeMTMC-reID naming
        ("0042_c12s1_000001_00.png", (42, 12)),
        ("/data/market/query/0007_c4s1_000100_00.jpg", (7, 4)),
    ],
)
def test_parse_market_name(name: str, expected: tuple[int, int]) -> None:
    assert parse_market_name(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "Thumbs.jpg",
        "abc_c1s1_000451_03.jpg",
        "0002_x1s1_000451_03.jpg",
        "-2_c1s1_0_0.jpg",
        "0002c1s1.jpg",
        "0002_c0s1_000451_03.jpg",
        "0002_c.jpg",
        "x.jpg",
    ],
)
def test_parse_market_name_rejects_bad_names(name: str) -> None:
    with pytest.raises(DatasetError) as info:
        parse_market_name(Path("/some/dir") / name)
    message = str(info.value)
    assert name in message
    assert "0002_c1s1_000451_03.jpg" in message  # the expected pattern is shown


def _write_jpg(path: Path, rgb: tuple[int, int, int], size: tuple[int, int] = (16, 8)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.zeros((*size, 3), dtype=np.uint8)
    img[:] = rgb[::-1]  # BGR on disk
    assert cv2.imwrite(str(path), img)


def _write_mask(path: Path, size: tuple[int, int] = (16, 8)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    mask = np.zeros(size, dtype=np.uint8)
    mask[4:12, 2:6] = 255
    assert cv2.imwrite(str(path), mask)


@pytest.fixture()
def market_root(tmp_path: Path) -> Path:
    """A tiny Market-style dataset with junk, distractors, a Thumbs.db and some masks."""
    root = tmp_path / "market"
    names = {
        "bounding_box_train": [
            "0003_c2s1_000010_00.jpg",
            "0001_c1s1_000001_00.jpg",
            "0001_c3s1_000002_00.jpg",
            "-1_c1s1_000003_00.jpg",
            "0000_c1s1_000004_00.jpg",
        ],
        "query": ["0005_c1s1_000020_00.jpg", "0006_c2s1_000021_00.jpg", "-1_c1s1_000022_00.jpg", "0000_c1s1_000023_00.jpg"],
        "bounding_box_test": ["0005_c2s1_000030_00.jpg", "0006_c1s1_000031_00.jpg", "0000_c3s1_000032_00.jpg", "-1_c1s1_000033_00.jpg"],
    }
    for folder, files in names.items():
        for name in files:
            _write_jpg(root / folder / name, (200, 30, 10))
        (root / folder / "Thumbs.db").write_bytes(b"not an image")
    _write_mask(root / "masks" / "bounding_box_train" / "0001_c1s1_000001_00.png")
    return root


def test_read_market_split_protocol(market_root: Path) -> None:
    train = read_market_split(market_root, "train")
    query = read_market_split(market_root, "query")
    gallery = read_market_split(market_root, "gallery")
    # sorted by file name; junk dropped everywhere; distractors only in the gallery
    assert [r.path.name for r in train] == ["0001_c1s1_000001_00.jpg", "0001_c3s1_000002_00.jpg", "0003_c2s1_000010_00.jpg"]
    assert [(r.pid, r.camid) for r in train] == [(1, 1), (1, 3), (3, 2)]
    assert [r.pid for r in query] == [5, 6]
    assert sorted(r.pid for r in gallery) == [0, 5, 6]
    assert all(r.pid != -1 for r in train + query + gallery)
    # masks: found where they exist, None elsewhere
    assert train[0].mask_path == market_root / "masks/bounding_box_train/0001_c1s1_000001_00.png"
    assert all(r.mask_path is None for r in train[1:] + query + gallery)
    assert isinstance(train[0], ImageRecord)
    with pytest.raises(AttributeError):
        train[0].pid = 7  # type: ignore[misc]  # frozen


def test_read_market_split_missing_folder(market_root: Path) -> None:
    (market_root / "query" / "Thumbs.db").unlink()
    for f in (market_root / "query").iterdir():
        f.unlink()
    (market_root / "query").rmdir()
    with pytest.raises(DatasetError) as info:
        read_market_split(market_root, "query")
    assert str(market_root / "query") in str(info.value)


def test_read_market_split_unknown_split(market_root: Path) -> None:
    with pytest.raises(DatasetError, match="gallery"):
        read_market_split(market_root, "test")


def test_read_market_split_collects_bad_names(market_root: Path) -> None:
    for i in range(7):
        _write_jpg(market_root / "query" / f"bad{i}.jpg", (0, 0, 0))
    with pytest.raises(DatasetError) as info:
        read_market_split(market_root, "query")
    message = str(info.value)
    assert "7 file(s)" in message and "bad0.jpg" in message and "2 more" in message
    assert "0002_c1s1_000451_03.jpg" in message


def test_relabel() -> None:
    labels, mapping = relabel([7, 3, 7, 12, 3])
    assert labels.dtype == np.int64
    assert labels.tolist() == [1, 0, 1, 2, 0]
    assert mapping == {3: 0, 7: 1, 12: 2}
    labels, mapping = relabel(np.array([5, 5], dtype=np.int32))
    assert labels.tolist() == [0, 0] and mapping == {5: 0}


def test_load_split_shapes_dtypes_and_rgb(market_root: Path) -> None:
    records = read_market_split(market_root, "train")
    arrays = load_split(records, 32, 16)
    assert isinstance(arrays, SplitArrays) and len(arrays) == 3
    assert arrays.images.shape == (3, 32, 16, 3) and arrays.images.dtype == np.uint8
    assert arrays.pids.dtype == np.int64 and arrays.pids.tolist() == [1, 1, 3]
    assert arrays.camids.dtype == np.int64 and arrays.camids.tolist() == [1, 3, 2]
    assert arrays.masks is None
    assert arrays.paths == [str(r.path) for r in records]
    red, green, blue = arrays.images[..., 0].mean(), arrays.images[..., 1].mean(), arrays.images[..., 2].mean()
    assert red > 180 and green < 60 and blue < 40  # RGB order, not BGR


def test_load_split_masks(market_root: Path) -> None:
    records = read_market_split(market_root, "train")[:1]
    arrays = load_split(records, 32, 16, with_masks=True)
    assert arrays.masks is not None and arrays.masks.shape == (1, 32, 16)
    assert arrays.masks.dtype == np.uint8 and set(np.unique(arrays.masks)) == {0, 1}
    assert arrays.masks[0, 8:24, 4:12].all() and arrays.masks[0].sum() == 16 * 8
    with pytest.raises(DatasetError, match="0003_c2s1_000010_00.jpg"):
        load_split(read_market_split(market_root, "train"), 32, 16, with_masks=True)


@pytest.mark.parametrize("corruption", ["garbage", "truncated", "empty"])
def test_load_split_corrupt_image(market_root: Path, corruption: str) -> None:
    records = read_market_split(market_root, "gallery")
    victim = records[1].path
    data = victim.read_bytes()
    victim.write_bytes({"garbage": b"\x00not a jpeg" * 20, "truncated": data[: len(data) // 2], "empty": b""}[corruption])
    with pytest.raises(DatasetError) as info:
        load_split(records, 16, 8)
    assert str(victim) in str(info.value) and "1 file(s)" in str(info.value)


def test_load_market_dataset(market_root: Path) -> None:
    data = load_market_dataset(market_root, 16, 8)
    assert set(data) == {"train", "query", "gallery"}
    assert [len(data[s]) for s in ("train", "query", "gallery")] == [3, 2, 3]
    assert 0 in data["gallery"].pids.tolist()


def test_max_camera_and_mask_paths(market_root: Path) -> None:
    from trainables.data.market import mask_path_for, scan_market_folder

    assert parse_market_name("0001_c6s1_000001_00.jpg", max_camera=6) == (1, 6)
    with pytest.raises(DatasetError, match="above this dataset's 6 cameras"):
        parse_market_name("0001_c7s1_000001_00.jpg", max_camera=6)
    records, bad = scan_market_folder(market_root / "bounding_box_test")
    assert sorted(r.pid for r in records) == [-1, 0, 5, 6] and bad == []  # junk kept by a scan
    image = market_root / "bounding_box_train" / "0001_c1s1_000001_00.jpg"
    assert mask_path_for(market_root, image) == market_root / "masks/bounding_box_train/0001_c1s1_000001_00.png"

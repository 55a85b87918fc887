"""The synthetic ReID dataset: layout, protocol, masks, determinism, camera nuisances, safety."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import asdict, replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from trainables.data import synthetic
from trainables.data.arrays import load_market_dataset
from trainables.data.errors import DatasetError
from trainables.data.market import read_market_split
from trainables.data.synthetic import (
    CAMERA_NUISANCES,
    HARD_CAMERA_NUISANCE,
    SYNTHETIC_VERSION,
    SyntheticSpec,
    camera_nuisances,
    default_cache_dir,
    ensure_synthetic_dataset,
    generate_synthetic_dataset,
    spec_hash,
)

SMALL = SyntheticSpec(
    num_train_ids=8,
    num_test_ids=6,
    num_cameras=6,
    cameras_per_id=4,
    images_per_camera=2,
    num_distractors=5,
    num_junk=3,
    height=64,
    width=32,
    seed=3,
    hard_camera=6,
)
SPLITS = ("train", "query", "gallery")


@pytest.fixture(scope="module")
def small_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_synthetic_dataset(tmp_path_factory.mktemp("synth") / "small", SMALL)


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_counts_and_identity_protocol(small_root: Path) -> None:
    recs = {s: read_market_split(small_root, s) for s in SPLITS}
    per_id_cams = SMALL.cameras_per_id
    assert len(recs["train"]) == SMALL.num_train_ids * per_id_cams * SMALL.images_per_camera
    assert len(recs["query"]) == SMALL.num_test_ids * per_id_cams
    assert len(recs["gallery"]) == (
        SMALL.num_test_ids * per_id_cams * SMALL.images_per_camera + SMALL.num_distractors
    )  # junk dropped on reading
    train_ids = {r.pid for r in recs["train"]}
    query_ids = {r.pid for r in recs["query"]}
    gallery_ids = {r.pid for r in recs["gallery"]}
    assert len(train_ids) == SMALL.num_train_ids and len(query_ids) == SMALL.num_test_ids
    assert not train_ids & query_ids
    assert gallery_ids == query_ids | {0}  # distractors only in the gallery
    assert 0 not in train_ids | query_ids
    assert sum(r.pid == 0 for r in recs["gallery"]) == SMALL.num_distractors
    # junk is on disk (gallery folder only) but never read
    junk_files = sorted((small_root / "bounding_box_test").glob("-1_c*.jpg"))
    assert len(junk_files) == SMALL.num_junk
    assert not list((small_root / "bounding_box_train").glob("-1_*"))
    assert not list((small_root / "query").glob("-1_*"))
    # every identity is seen by exactly cameras_per_id cameras; camera ids are 1..num_cameras
    cams = defaultdict(set)
    for r in recs["train"] + recs["query"]:
        cams[r.pid].add(r.camid)
    assert all(len(c) == per_id_cams for c in cams.values())
    assert {r.camid for s in SPLITS for r in recs[s]} <= set(range(1, SMALL.num_cameras + 1))
    # every query has a valid positive: same pid in another camera
    gallery_pairs = {(r.pid, r.camid) for r in recs["gallery"]}
    for q in recs["query"]:
        assert any(pid == q.pid and cam != q.camid for pid, cam in gallery_pairs), q.path


def test_meta_json(small_root: Path) -> None:
    meta = json.loads((small_root / "meta.json").read_text())
    assert meta["version"] == SYNTHETIC_VERSION
    assert meta["spec"] == asdict(SMALL)
    assert meta["counts"]["train"]["files"] == 64
    assert meta["counts"]["gallery"]["junk"] == SMALL.num_junk
    assert meta["counts"]["gallery"]["distractors"] == SMALL.num_distractors
    assert meta["cameras"]["6"] == json.loads(json.dumps(asdict(HARD_CAMERA_NUISANCE)))
    assert set(meta["cameras"]) == {str(c) for c in range(1, 7)}
    for split in SPLITS:
        folder = meta["counts"][split]["folder"]
        assert len(list((small_root / folder).glob("*.jpg"))) == meta["counts"][split]["files"]


def test_masks_exist_and_are_reasonable(small_root: Path) -> None:
    data = load_market_dataset(small_root, SMALL.height, SMALL.width, with_masks=True)
    for split, arrays in data.items():
        assert arrays.images.shape == (len(arrays), 64, 32, 3)
        assert arrays.masks is not None and arrays.masks.shape == (len(arrays), 64, 32)
        assert set(np.unique(arrays.masks)) <= {0, 1}
        area = arrays.masks.reshape(len(arrays), -1).mean(axis=1)
        assert (area > 0.08).all() and (area < 0.7).all(), split
        # the person is roughly centred horizontally and stands on the ground
        cols = arrays.masks.any(axis=1).mean(axis=0)
        assert cols[12:20].mean() > 0.9
        assert arrays.masks[:, -6:].any(axis=(1, 2)).all()
    for path in (small_root / "masks").rglob("*.png"):
        mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert mask.ndim == 2 and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 255}


def test_mask_is_exactly_the_drawn_person(monkeypatch: pytest.MonkeyPatch) -> None:
    """Render on a magenta background with a clean camera: non-magenta pixels == mask."""

    def magenta(style, base_rgb, height, width, rng):  # noqa: ANN001, ARG001
        img = np.zeros((height, width, 3), dtype=np.float32)
        img[..., 0] = img[..., 2] = 230.0
        return img

    monkeypatch.setattr(synthetic, "_background", magenta)
    clean = synthetic.CameraNuisance("clean", 1.0, 1.0, (1.0, 1.0, 1.0), 0.0, 0.0, 0.9, "pavement", (0, 0, 0))
    for pid in range(1, 13):
        ident = synthetic._sample_identity(np.random.default_rng([0, 0, pid, 0, 0]))
        rgb, mask = synthetic._render_image(ident, clean, np.random.default_rng([pid, 1]), 128, 64)
        background = (rgb[..., 1] == 0) & (rgb[..., 0] == rgb[..., 2]) & (rgb[..., 0] > 180)
        assert np.array_equal(mask == 255, ~background), pid
        assert 0.1 < (mask > 0).mean() < 0.6


def test_masks_align_with_image_edges(small_root: Path) -> None:
    """In every camera, image gradients peak on the mask boundary, not on a shifted one."""
    data = load_market_dataset(small_root, 64, 32, with_masks=True)["train"]
    shifts = [(0, 0), (1, 0), (-1, 0), (1, 1), (-1, -1), (0, 3), (0, -3)]
    for cam in range(1, SMALL.num_cameras + 1):
        sel = data.camids == cam
        assert sel.sum() >= 4
        scores = defaultdict(list)
        for img, mask in zip(data.images[sel], data.masks[sel], strict=True):
            gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
            grad = np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
            boundary = mask ^ cv2.erode(mask, np.ones((3, 3), np.uint8))
            for dx, dy in shifts:
                moved = np.roll(boundary, (dy, dx), axis=(0, 1)).astype(bool)
                scores[(dx, dy)].append(grad[moved].mean())
        aligned = np.mean(scores[(0, 0)])
        best_shifted = max(np.mean(scores[s]) for s in shifts[1:])
        assert aligned > 1.1 * best_shifted, (cam, aligned, best_shifted)


def test_generation_is_deterministic(small_root: Path, tmp_path: Path) -> None:
    again = generate_synthetic_dataset(tmp_path / "again", SMALL)
    first, second = _hashes(small_root), _hashes(again)
    assert len(first) > 100
    assert first == second


def test_different_seed_differs(small_root: Path, tmp_path: Path) -> None:
    other = generate_synthetic_dataset(tmp_path / "other", replace(SMALL, seed=4))
    first, second = _hashes(small_root), _hashes(other)
    common = set(first) & set(second)
    assert sum(first[k] != second[k] for k in common) > 0.9 * len(common)


def test_hard_camera_is_darker_and_blurrier(small_root: Path) -> None:
    stats: dict[int, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for split in SPLITS:
        for r in read_market_split(small_root, split):
            gray = cv2.imread(str(r.path), cv2.IMREAD_GRAYSCALE).astype(np.float32)
            stats[r.camid][0].append(gray.mean())
            stats[r.camid][1].append(cv2.Laplacian(gray, cv2.CV_32F).var())
    brightness = {c: np.mean(b) for c, (b, _) in stats.items()}
    sharpness = {c: np.median(s) for c, (_, s) in stats.items()}
    hard = SMALL.hard_camera
    others = [c for c in brightness if c != hard]
    assert len(others) == SMALL.num_cameras - 1
    assert brightness[hard] < 0.6 * min(brightness[c] for c in others)
    assert sharpness[hard] < 0.5 * min(sharpness[c] for c in others)


def test_camera_table() -> None:
    assert set(CAMERA_NUISANCES) == set(range(1, 7))
    assert CAMERA_NUISANCES[6] is HARD_CAMERA_NUISANCE
    assert HARD_CAMERA_NUISANCE not in [CAMERA_NUISANCES[c] for c in range(1, 6)]
    hard = HARD_CAMERA_NUISANCE
    for cam in range(1, 6):
        normal = CAMERA_NUISANCES[cam]
        assert hard.gain < normal.gain and hard.blur_sigma > normal.blur_sigma
        assert hard.person_scale < normal.person_scale
    moved = camera_nuisances(replace(SMALL, hard_camera=2))
    assert moved[2] is HARD_CAMERA_NUISANCE and moved[6] is not HARD_CAMERA_NUISANCE
    assert HARD_CAMERA_NUISANCE not in camera_nuisances(replace(SMALL, hard_camera=0)).values()


@pytest.mark.parametrize(
    ("field", "value"),
    [("cameras_per_id", 1), ("cameras_per_id", 7), ("hard_camera", 7), ("num_train_ids", 0), ("seed", -1), ("height", 8)],
)
def test_spec_validation(field: str, value: int) -> None:
    with pytest.raises(DatasetError, match=field):
        replace(SMALL, **{field: value})


def test_complete_dataset_is_reused(small_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args, **kwargs):  # noqa: ANN002, ANN003
        raise AssertionError("regenerated a complete dataset")

    monkeypatch.setattr(synthetic, "_write_dataset", boom)
    assert generate_synthetic_dataset(small_root, SMALL) == small_root


def test_existing_foreign_folder_is_an_error(small_root: Path, tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="foreign"):
        generate_synthetic_dataset(foreign, SMALL)
    assert (foreign / "notes.txt").read_text() == "mine"
    # a complete dataset of another spec is not silently accepted either
    with pytest.raises(DatasetError):
        generate_synthetic_dataset(small_root, replace(SMALL, seed=99))


def test_failure_midway_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real = synthetic._render_image

    def flaky(*args, **kwargs):  # noqa: ANN002, ANN003
        calls["n"] += 1
        if calls["n"] > 10:
            raise RuntimeError("disk on fire")
        return real(*args, **kwargs)

    monkeypatch.setattr(synthetic, "_render_image", flaky)
    parent = tmp_path / "cache"
    with pytest.raises(RuntimeError, match="disk on fire"):
        generate_synthetic_dataset(parent / "ds", SMALL)
    assert calls["n"] == 11
    assert not (parent / "ds").exists()
    assert list(parent.iterdir()) == []  # no temporary folder left behind either


def test_losing_a_generation_race_keeps_the_winner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process finishes while we write: our rename fails and we use its copy."""
    out = tmp_path / "ds"
    real_write = synthetic._write_dataset
    state = {"raced": False}

    def racing_write(root, spec, progress):  # noqa: ANN001
        real_write(root, spec, progress)
        if not state["raced"]:
            state["raced"] = True
            generate_synthetic_dataset(out, spec)  # the "other process" wins

    monkeypatch.setattr(synthetic, "_write_dataset", racing_write)
    assert generate_synthetic_dataset(out, SMALL) == out
    assert state["raced"]
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]
    assert len(read_market_split(out, "query")) == 24


def test_ensure_synthetic_dataset_uses_cache_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REID_ORCH_CACHE", str(tmp_path / "cache"))
    assert default_cache_dir() == tmp_path / "cache"
    messages: list[str] = []
    root = ensure_synthetic_dataset(spec=SMALL, progress=messages.append)
    assert root == tmp_path / "cache" / f"synthetic-v{SYNTHETIC_VERSION}-{spec_hash(SMALL)}"
    assert (root / "meta.json").is_file() and messages
    assert ensure_synthetic_dataset(spec=SMALL) == root
    monkeypatch.delenv("REID_ORCH_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "reid-orchestrator"
    assert spec_hash(SMALL) != spec_hash(replace(SMALL, seed=4))


def test_synthetic_adapter_ships_masks_for_every_image(small_root: Path) -> None:
    from trainables.data.adapters import read_dataset
    from trainables.data.check import check_dataset

    records = read_dataset("synthetic", small_root)
    assert all(r.mask_path is not None for split in SPLITS for r in records.split(split))
    report = check_dataset("synthetic", small_root)  # every image and mask decodes
    assert all(row.masks == row.images for row in report.splits)

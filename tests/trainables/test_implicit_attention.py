"""The implicit-attention composite: constraints, backgrounds, the torch op, the albumentations
transform, the on-disk cache and the wiring into datasets and trials."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from search_spaces import TrialConfig
from search_spaces.hashing import config_hash
from search_spaces.trial_config import AugmentConfig, DatasetConfig, ImplicitAttentionConfig
from trainables.data import implicit_attention as ia
from trainables.data.adapters import read_dataset
from trainables.data.augment import BatchAugmenter, CompositeTensors, implicit_attention_composite, to_normalized_float
from trainables.data.datasets import dataset_key, load_reid_data
from trainables.data.errors import DatasetError
from trainables.data.implicit_attention import (
    SHAPE_GRID,
    CompositeBank,
    CompositeParams,
    build_bank,
    compatible_partners,
    inpaint_background,
    load_or_build_bank,
    roi_masks,
    shape_grid,
)

H, W = 32, 16


def box_masks(boxes: list[tuple[int, int, int, int]]) -> np.ndarray:
    """(N, H, W) uint8 masks, one filled rectangle (top, left, bottom, right) each."""
    masks = np.zeros((len(boxes), H, W), dtype=np.uint8)
    for k, (t, l, b, r) in enumerate(boxes):
        masks[k, t:b, l:r] = 1
    return masks


def random_images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, H, W, 3), dtype=np.uint8)


# ------------------------------------------------------------------ masks and constraints


def test_upper_body_roi_keeps_the_top_fraction_of_the_person():
    masks = box_masks([(10, 4, 30, 12), (0, 0, 0, 0)])
    roi = roi_masks(masks, "upper_body", 0.5)
    assert roi[0, 10:20, 4:12].all() and not roi[0, 20:].any() and roi[0].sum() == 10 * 8
    assert not roi[1].any()  # an empty mask stays empty
    assert np.array_equal(roi_masks(masks, "full_body"), masks)


def brute_force_compatible(rois, area_ratio, mask_iou, viewpoints=None):
    areas = rois.reshape(len(rois), -1).sum(1).astype(float)
    small = shape_grid(rois, SHAPE_GRID)
    ok = set()
    for i in range(len(rois)):
        for j in range(len(rois)):
            if i == j or areas[i] == 0 or areas[j] == 0:
                continue
            union = (small[i] | small[j]).sum()
            iou = (small[i] & small[j]).sum() / union if union else 0.0
            ratio = min(areas[i], areas[j]) / max(areas[i], areas[j])
            same = viewpoints is None or viewpoints[i] == viewpoints[j]
            if ratio >= area_ratio and iou >= mask_iou and same:
                ok.add((i, j))
    return ok


box = st.tuples(st.integers(0, 20), st.integers(0, 8), st.integers(1, 12), st.integers(1, 8)).map(
    lambda t: (t[0], t[1], min(H, t[0] + t[2]), min(W, t[1] + t[3]))
)


@settings(max_examples=25, deadline=None)
@given(
    boxes=st.lists(box, min_size=2, max_size=9),
    area_ratio=st.sampled_from([0.0, 0.5, 0.8]),
    mask_iou=st.sampled_from([0.0, 0.3, 0.6]),
    views=st.booleans(),
)
def test_partners_are_exactly_the_pairs_meeting_every_constraint(boxes, area_ratio, mask_iou, views):
    rois = box_masks(boxes)
    viewpoints = np.arange(len(boxes)) % 2 if views else None
    offsets, partners = compatible_partners(rois, area_ratio=area_ratio, mask_iou=mask_iou, viewpoints=viewpoints, max_partners=64)
    got = {(i, int(j)) for i in range(len(boxes)) for j in partners[offsets[i] : offsets[i + 1]]}
    assert got == brute_force_compatible(rois, area_ratio, mask_iou, viewpoints)
    for i in range(len(boxes)):
        row = partners[offsets[i] : offsets[i + 1]]
        assert list(row) == sorted(row)


def test_the_size_constraint_keeps_similar_sizes_together():
    # Areas 64, 60 (ratio 0.94) and 16 (ratio 0.25): only the first two pair at T_s = 0.8.
    rois = box_masks([(8, 4, 24, 8), (8, 4, 23, 8), (8, 4, 12, 8)])
    offsets, partners = compatible_partners(rois, area_ratio=0.8, mask_iou=0.0)
    assert [list(partners[offsets[i] : offsets[i + 1]]) for i in range(3)] == [[1], [0], []]


def test_max_partners_keeps_a_fixed_random_subset():
    rois = box_masks([(4, 2, 28, 14)] * 40)
    offsets, partners = compatible_partners(rois, area_ratio=0.8, mask_iou=0.5, max_partners=5)
    assert np.all(np.diff(offsets) == 5)
    assert all(i not in partners[offsets[i] : offsets[i + 1]] for i in range(40))
    again = compatible_partners(rois, area_ratio=0.8, mask_iou=0.5, max_partners=5)
    assert np.array_equal(again[1], partners)
    assert len(set(partners.tolist())) > 20  # not always the same few


# ------------------------------------------------------------------ backgrounds


def test_background_is_the_telea_inpainting_of_the_7x7_dilated_roi():
    image = random_images(1)[0]
    roi = box_masks([(8, 4, 24, 12)])[0]
    background = inpaint_background(image, roi, dilation=7, radius=3.0)
    dilated = cv2.dilate(roi * 255, np.ones((7, 7), np.uint8))
    assert np.array_equal(background, cv2.inpaint(image, dilated, 3.0, cv2.INPAINT_TELEA))
    assert np.array_equal(background[dilated == 0], image[dilated == 0])  # only the hole changes
    assert not np.array_equal(background[dilated > 0], image[dilated > 0])
    assert dilated.astype(bool).sum() == (16 + 6) * (8 + 6)  # 3 pixels each side
    empty = np.zeros_like(roi)
    assert np.array_equal(inpaint_background(image, empty), image)


# ------------------------------------------------------------------ the composite


@pytest.fixture()
def bank() -> CompositeBank:
    boxes = [(4, 2, 28, 14), (5, 2, 28, 14), (4, 3, 28, 14), (4, 2, 27, 13), (0, 0, 3, 3)]  # last: no partner
    masks = box_masks(boxes)
    return build_bank(random_images(len(boxes)), masks, CompositeParams(area_ratio=0.8, mask_iou=0.5))


def check_composite(out: np.ndarray, index: int, images: np.ndarray, bank: CompositeBank) -> int:
    """Assert out = where(roi_i, image_i, background_j) for some partner j; return j."""
    roi = bank.roi_masks[index].astype(bool)
    assert np.array_equal(out[roi], images[index][roi])  # ROI pixels come from image i
    for j in bank.partners_of(index):
        if np.array_equal(out[~roi], bank.backgrounds[j][~roi]):  # the rest from j's background
            return int(j)
    raise AssertionError(f"sample {index}: the non-ROI pixels match no partner's background")


def test_torch_composite_takes_roi_from_i_and_the_rest_from_js_background(bank):
    images = random_images(len(bank), seed=1)
    # training images are the bank's own images in practice; any aligned images work
    tensors = CompositeTensors.from_bank(bank)
    index = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])
    batch = torch.from_numpy(images)[index]
    generator = torch.Generator().manual_seed(0)
    out = implicit_attention_composite(batch, index, tensors, p=1.0, generator=generator).numpy()
    partners_used = set()
    for b, i in enumerate(index.tolist()):
        if len(bank.partners_of(i)) == 0:
            assert np.array_equal(out[b], images[i])  # no compatible partner: left as it is
            continue
        partners_used.add(check_composite(out[b], i, images, bank))
    assert len(partners_used) > 1
    assert implicit_attention_composite(batch, index, tensors, p=0.0, generator=generator) is batch


def test_torch_composite_paths_agree(bank):
    tensors = CompositeTensors.from_bank(bank)
    index = torch.tensor([0, 1, 2, 3, 4, 3, 2, 1, 0])
    batch = torch.from_numpy(random_images(len(bank), seed=6))[index]
    kept = batch.clone()
    outs = [implicit_attention_composite(batch, index, tensors, 0.6, torch.Generator().manual_seed(3), vectorized=v) for v in (False, True)]
    assert torch.equal(outs[0], outs[1]) and not torch.equal(outs[0], batch)
    assert torch.equal(batch, kept)  # the input is not modified


def test_torch_composite_probability(bank):
    tensors = CompositeTensors.from_bank(bank)
    index = torch.zeros(2000, dtype=torch.long)
    batch = torch.from_numpy(random_images(1, seed=2))[index]
    out = implicit_attention_composite(batch, index, tensors, p=0.3, generator=torch.Generator().manual_seed(1))
    changed = (out != batch).flatten(1).any(1).float().mean().item()
    assert 0.25 < changed < 0.35


def test_batch_augmenter_composites_first_and_keeps_the_batch_order(bank):
    images = torch.from_numpy(random_images(len(bank), seed=3))
    index = torch.tensor([3, 0, 4, 1])
    augmenter = BatchAugmenter(flip=False, pad=0, composite=CompositeTensors.from_bank(bank), composite_p=1.0, seed=5)
    out = augmenter(images[index], index)
    again = implicit_attention_composite(images[index], index, CompositeTensors.from_bank(bank), 1.0, torch.Generator().manual_seed(5))
    assert torch.equal(out, to_normalized_float(again))
    # Sample b is built on image index[b]: the label of index[b] is the right label for it.
    for b, i in enumerate(index.tolist()):
        roi = torch.from_numpy(bank.roi_masks[i]).bool()
        assert torch.equal(again[b][roi], images[i][roi])
    with pytest.raises(ValueError, match="index"):
        augmenter(images[index])
    plain = BatchAugmenter(flip=False, pad=0, composite=CompositeTensors.from_bank(bank), composite_p=0.0)
    assert torch.equal(plain(images[index], index), to_normalized_float(images[index]))


def test_albumentations_transform(bank):
    import albumentations as A

    from trainables.data.implicit_attention_transform import ImplicitAttention

    images = random_images(len(bank), seed=4)
    always = A.Compose([ImplicitAttention(bank, p=1.0)], seed=0)
    used = set()
    for _ in range(10):
        out = always(image=images[1], sample_index=1, label=7)
        assert out["label"] == 7  # the label of i is kept
        used.add(check_composite(out["image"], 1, images, bank))
    assert len(used) > 1
    assert np.array_equal(always(image=images[4], sample_index=4)["image"], images[4])  # no partner
    never = A.Compose([ImplicitAttention(bank, p=0.0), A.HorizontalFlip(p=0.0)], seed=0)
    assert np.array_equal(never(image=images[2], sample_index=2)["image"], images[2])
    with pytest.raises(ValueError, match="sample_index"):
        always(image=images[0])


@pytest.mark.gpu
def test_torch_composite_on_cuda(bank):
    images = random_images(len(bank), seed=1)
    tensors = CompositeTensors.from_bank(bank, "cuda")
    index = torch.tensor([0, 1, 2, 3], device="cuda")
    batch = torch.from_numpy(images).cuda()[index]
    out = implicit_attention_composite(batch, index, tensors, 1.0, torch.Generator(device="cuda").manual_seed(0))
    for b, i in enumerate(index.tolist()):
        check_composite(out[b].cpu().numpy(), i, images, bank)


# ------------------------------------------------------------------ cache


def test_cache_is_reused_and_keyed_by_the_parameters(tmp_path, monkeypatch):
    images, masks = random_images(6), box_masks([(4, 2, 28, 14), (5, 2, 28, 14), (4, 3, 28, 14)] * 2)
    params = CompositeParams(area_ratio=0.8, mask_iou=0.5)
    first = load_or_build_bank(images, masks, params, root=tmp_path, fingerprint="f1")
    files = sorted(p.name for p in (tmp_path / ".reid-cache" / "implicit_attention").iterdir())
    assert len(files) == 2 and files[0].startswith("backgrounds-") and files[1].startswith("partners-")

    def forbidden(*args, **kwargs):
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(ia, "inpaint_backgrounds", forbidden)
    monkeypatch.setattr(ia, "compatible_partners", forbidden)
    second = load_or_build_bank(images, masks, params, root=tmp_path, fingerprint="f1")
    assert np.array_equal(second.backgrounds, first.backgrounds) and np.array_equal(second.partners, first.partners)
    # New thresholds: backgrounds are reused, partners recomputed.
    monkeypatch.setattr(ia, "compatible_partners", lambda rois, **kw: (np.zeros(len(rois) + 1, np.int64), np.zeros(0, np.int64)))
    third = load_or_build_bank(images, masks, CompositeParams(area_ratio=0.9, mask_iou=0.5), root=tmp_path, fingerprint="f1")
    assert third.partners.size == 0
    with pytest.raises(AssertionError, match="recomputed"):
        load_or_build_bank(images, masks, params, root=tmp_path, fingerprint="f2")  # data changed


def test_cache_falls_back_to_the_user_cache_when_the_dataset_is_read_only(tmp_path, monkeypatch):
    monkeypatch.setenv("REID_ORCH_CACHE", str(tmp_path / "user-cache"))
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    (dataset / ".reid-cache").write_text("a file where the cache folder would go")
    load_or_build_bank(random_images(2), box_masks([(4, 2, 28, 14)] * 2), CompositeParams(), root=dataset, fingerprint="x")
    assert len(list((tmp_path / "user-cache" / "implicit_attention").rglob("*.np*"))) == 2


# ------------------------------------------------------------------ config, datasets, trials


def test_config_axes_and_conditional_resets():
    off = AugmentConfig(implicit_attention={"p": 0.1, "roi": "upper_body"})
    assert off == AugmentConfig()
    full = ImplicitAttentionConfig(enabled=True, roi="full_body", upper_fraction=0.3)
    assert full.upper_fraction == 0.5  # only meaningful for upper_body
    assert ImplicitAttentionConfig(enabled=True, roi="upper_body", upper_fraction=0.3).upper_fraction == 0.3
    a = TrialConfig.model_validate({"augment": {"implicit_attention": {"enabled": False, "p": 0.9}}})
    assert config_hash(a) == config_hash(TrialConfig())
    with pytest.raises(ValueError):
        ImplicitAttentionConfig(p=1.5)


def test_dataset_key_names_the_precomputation_but_not_p():
    dataset = DatasetConfig()
    on = lambda **kw: AugmentConfig(implicit_attention={"enabled": True, **kw})  # noqa: E731
    assert dataset_key(dataset, AugmentConfig()) == dataset_key(dataset)
    assert dataset_key(dataset, on(p=0.1)) == dataset_key(dataset, on(p=0.9)) != dataset_key(dataset)
    assert dataset_key(dataset, on(roi="upper_body")) != dataset_key(dataset, on())
    assert dataset_key(dataset, on(area_ratio=0.7)) != dataset_key(dataset, on())


def market_config(root) -> DatasetConfig:
    return DatasetConfig(name="market1501", root=str(root), height=64, width=32)


def test_load_reid_data_adds_masks_and_the_bank_only_when_asked(tiny_market):
    config = market_config(tiny_market)
    plain = load_reid_data(config)
    assert plain.composite is None and plain.train.masks is None
    augment = AugmentConfig(implicit_attention={"enabled": True, "roi": "upper_body"})
    data = load_reid_data(config, augment=augment)
    assert data.train.images is plain.train.images  # decoded once, shared
    bank = data.composite
    assert bank is not None and len(bank) == len(data.train)
    assert bank.backgrounds.shape == data.train.images.shape and data.train.masks.shape == data.train.images.shape[:3]
    assert (bank.partner_counts > 0).mean() > 0.9
    assert bank.roi_masks.sum() < data.train.masks.sum()  # upper body only


def test_missing_masks_point_to_the_masks_command(tmp_path):
    from tests.trainables import layouts

    root = layouts.make_market1501(tmp_path, with_masks=False)
    config = DatasetConfig(name="market1501", root=str(root), height=16, width=8)
    with pytest.raises(DatasetError, match="orchestrator data masks --dataset market1501"):
        load_reid_data(config, augment=AugmentConfig(implicit_attention={"enabled": True}))


def test_viewpoint_labels(tmp_path, tiny_market):
    from tests.trainables import layouts

    root = layouts.make_market1501(tmp_path)
    layout = root / "Market-1501-v15.09.15"
    config = DatasetConfig(name="market1501", root=str(root), height=16, width=8)
    augment = AugmentConfig(implicit_attention={"enabled": True, "same_viewpoint": True, "area_ratio": 0.0, "mask_iou": 0.0})
    with pytest.raises(DatasetError, match="viewpoints.txt"):
        load_reid_data(config, augment=augment)
    names = sorted(p.name for p in (layout / "bounding_box_train").iterdir())
    (layout / "viewpoints.txt").write_text("".join(f"bounding_box_train/{n} {'front' if k % 2 else 'back'}\n" for k, n in enumerate(names)))
    bank = load_reid_data(config, augment=augment).composite
    for i in range(len(bank)):
        assert all((j - i) % 2 == 0 for j in bank.partners_of(i))
    # The synthetic dataset draws everyone facing the camera: one viewpoint for all.
    records = read_dataset("synthetic", tiny_market)
    assert ia.read_viewpoints(records.train, records.root, synthetic=True).tolist() == [0] * len(records.train)


def test_a_trial_trains_with_the_composite(tiny_market):
    from trainables.trial import RuntimeOptions, run_trial

    config = TrialConfig.model_validate(
        {
            "dataset": {"name": "market1501", "root": str(tiny_market), "height": 64, "width": 32},
            "augment": {"implicit_attention": {"enabled": True, "p": 0.5}},
            "train": {"epochs": 1, "ids_per_batch": 4, "images_per_id": 4, "warmup_epochs": 0, "lr_steps": [], "eval_every": 1},
        }
    )
    # Plain data, as a caller that does not know about the composite passes it: the trial
    # loads the bank itself.
    final = run_trial(config, load_reid_data(config.dataset), report=lambda m: None, runtime=RuntimeOptions(threads=1))
    assert np.isfinite(final["loss"]) and 0 <= final["mAP"] <= 1

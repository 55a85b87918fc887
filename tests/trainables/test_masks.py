"""Person masks with Mask R-CNN from a local weights file (no real weights: a random init)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from tests.trainables import layouts
from trainables.data.adapters import read_dataset
from trainables.data.errors import DatasetError
from trainables.data.market import mask_path_for
from trainables.data.masks import MaskWeightsError, compute_masks, load_mask_rcnn, person_masks


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(MaskWeightsError, match="weights not found.*never downloaded") as info:
        load_mask_rcnn(tmp_path / "maskrcnn.pth")
    assert isinstance(info.value, DatasetError)  # the CLI maps it to exit status 2


def test_weights_with_wrong_keys_or_content(tmp_path):
    wrong = tmp_path / "wrong.pth"
    torch.save({"backbone.fc.weight": torch.zeros(2, 2), "head.bias": torch.zeros(2)}, wrong)
    with pytest.raises(MaskWeightsError) as info:
        load_mask_rcnn(wrong)
    message = str(info.value)
    assert "not a maskrcnn_resnet50_fpn state dict" in message and "missing key(s) (e.g. backbone.body" in message
    assert "2 unexpected key(s) (e.g. backbone.fc.weight, head.bias)" in message
    not_a_dict = tmp_path / "list.pth"
    torch.save([1, 2, 3], not_a_dict)
    with pytest.raises(MaskWeightsError, match="does not hold a state dict"):
        load_mask_rcnn(not_a_dict)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(MaskWeightsError, match="cannot read"):
        load_mask_rcnn(garbage)


class FakeDetector(torch.nn.Module):
    """Returns fixed detections: a confident non-person, a person, a more confident person."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, images):
        outputs = []
        for img in images:
            h, w = img.shape[1:]
            masks = torch.zeros(3, 1, h, w)
            masks[0, 0, :4] = 0.9  # class 3 (car)
            masks[1, 0, 4:8] = 0.9  # person, score 0.6
            masks[2, 0, 8:] = 0.7  # person, score 0.8: the one kept
            outputs.append({"labels": torch.tensor([3, 1, 1]), "scores": torch.tensor([0.99, 0.6, 0.8]), "masks": masks})
        return outputs


def test_person_masks_keep_the_top_scoring_person():
    image = np.zeros((16, 8, 3), dtype=np.uint8)
    (mask,) = person_masks(FakeDetector(), [image])
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}
    assert mask[8:].all() and not mask[:8].any()
    (none,) = person_masks(FakeDetector(), [image], score_threshold=0.9)
    assert not none.any()  # no person that confident: an empty mask


def test_compute_masks_writes_beside_the_dataset_and_reuses(tmp_path):
    root = layouts.make_msmt17(tmp_path)
    records = read_dataset("msmt17", root)
    summary = compute_masks(records, FakeDetector(), splits=["train", "query"], batch_size=3)
    assert (summary.computed, summary.reused) == (6, 0)
    target = mask_path_for(records.root, records.train[0].path)
    assert target == records.root / "masks" / "train" / "0000" / "0000_000_01_0303morning_0015_0.png"
    assert cv2.imread(str(target), cv2.IMREAD_GRAYSCALE).shape == layouts.SIZE
    again = read_dataset("msmt17", root)
    assert all(r.mask_path is not None for r in again.train + again.query)
    assert all(r.mask_path is None for r in again.gallery)
    summary = compute_masks(again, FakeDetector(), splits=["train"])
    assert (summary.computed, summary.reused) == (0, 4)
    with pytest.raises(DatasetError, match="unknown split"):
        compute_masks(again, FakeDetector(), splits=["test"])


def test_full_pipeline_with_a_random_mask_rcnn(tmp_path):
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    weights = tmp_path / "maskrcnn_random.pth"
    torch.manual_seed(0)
    torch.save({"model": maskrcnn_resnet50_fpn(weights=None, weights_backbone=None).state_dict()}, weights)
    model = load_mask_rcnn(weights, min_size=32, max_size=64, detections_per_img=3)
    root = layouts.make_market1501(tmp_path / "data", with_masks=False)
    records = read_dataset("market1501", root)
    summary = compute_masks(records, model, splits=["train"], batch_size=5, score_threshold=0.0)
    assert summary.computed == len(records.train) == 5
    for record in records.train:
        mask = cv2.imread(str(mask_path_for(records.root, record.path)), cv2.IMREAD_UNCHANGED)
        assert mask.shape == layouts.SIZE and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
    assert compute_masks(read_dataset("market1501", root), model, splits=["train"]).reused == 5

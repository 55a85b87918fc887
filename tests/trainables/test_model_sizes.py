"""Model sizes, counted one way (trainables.models.size: no identity classifier), against the
papers' figures. Gaps above 5% are explained in trainables/models/robust_reid.py."""

from __future__ import annotations

import pytest

import trainables.models.robust_reid as robust_reid_module
from trainables.models import ReIDModel
from trainables.models.size import parameter_count

MARKET_TRAIN_IDS = 751

# backbone, the paper's count, the gap our count has (documented in the model's docstring)
PAPER_SIZES = [
    ("robust_reid_1x", 2.9e6, -0.19),  # Robust-ReID Table 1, 1x
    ("robust_reid_2x", 6.4e6, -0.25),  # Robust-ReID Table 1, 2x ("deeper & wider")
    ("hacnn", 2.7e6, +0.08),  # HA-CNN (Li et al.), quoted in Robust-ReID section 2
]


@pytest.mark.parametrize("backbone, paper, gap", PAPER_SIZES)
def test_sizes_against_the_papers(backbone, paper, gap):
    model = ReIDModel(backbone=backbone, num_classes=MARKET_TRAIN_IDS, neck="l2norm", pooling="gem")
    count = parameter_count(model)
    assert (count - paper) / paper == pytest.approx(gap, abs=0.01), count
    assert abs(gap) <= 0.05 or f"({gap:+.0%})" in robust_reid_module.__doc__  # the gap is explained there


@pytest.mark.parametrize("backbone", ["robust_reid_1x", "robust_reid_2x", "hacnn", "resnet18"])
def test_the_count_ignores_the_classifier_and_only_it(backbone):
    small = ReIDModel(backbone=backbone, num_classes=10)
    large = ReIDModel(backbone=backbone, num_classes=MARKET_TRAIN_IDS)
    assert parameter_count(small) == parameter_count(large)
    total = sum(p.numel() for p in large.parameters())
    assert total - parameter_count(large) == large.classifier.weight.numel()


def test_table_1_totals_land_only_with_the_classifier():
    """The reading behind the Robust-ReID gaps: with the 751-id classifier the counts are
    within 6% of Table 1."""
    for backbone, paper in (("robust_reid_1x", 2.9e6), ("robust_reid_2x", 6.4e6)):
        model = ReIDModel(backbone=backbone, num_classes=MARKET_TRAIN_IDS, neck="l2norm", pooling="gem")
        with_classifier = sum(p.numel() for p in model.parameters())
        assert abs(with_classifier - paper) / paper < 0.06

"""The implicit-attention trial reports its effective composite rate (item: p x partner share)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from search_spaces.metrics import COMPOSITE_PARTNER_SHARE, COMPOSITE_RATE
from trainables.data.augment import BatchAugmenter, CompositeTensors, to_normalized_float


def bank(partners_of: list[list[int]], size: int = 8) -> CompositeTensors:
    n = len(partners_of)
    offsets = np.cumsum([0] + [len(p) for p in partners_of])
    partners = np.array([j for p in partners_of for j in p], dtype=np.int64)
    roi = np.zeros((n, size, size), dtype=np.uint8)
    roi[:, : size // 2] = 1
    backgrounds = np.full((n, size, size, 3), 7, dtype=np.uint8)
    return CompositeTensors.from_arrays(roi, backgrounds, offsets, partners)


@pytest.mark.parametrize("p", [1.0, 0.5])
def test_rate_is_p_times_the_share_of_images_with_a_partner(p):
    composite = bank([[1], [], [3], []])  # images 0 and 2 have a partner: share 0.5
    augmenter = BatchAugmenter(flip=False, pad=0, composite=composite, composite_p=p, seed=0)
    index = torch.arange(4).repeat(500)
    images = torch.zeros(len(index), 8, 8, 3, dtype=torch.uint8)
    out = augmenter(images, index)
    plain = to_normalized_float(images[:1])  # the augmenter returns normalised NCHW floats
    composited = int((out != plain).flatten(1).any(1).sum())  # a composite shows the partner's background
    stats = augmenter.composite_stats()
    assert stats[COMPOSITE_PARTNER_SHARE] == 0.5
    assert stats[COMPOSITE_RATE] == composited / len(index)
    assert stats[COMPOSITE_RATE] == pytest.approx(p * 0.5, abs=0.03)
    assert augmenter.composite_stats()[COMPOSITE_RATE] == 0.0  # counts restart after each read
    assert BatchAugmenter(flip=False, pad=0).composite_stats() == {}

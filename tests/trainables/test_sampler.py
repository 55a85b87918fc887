import numpy as np
import pytest

from trainables.data.sampler import PKSampler


def test_batches_hold_p_identities_with_k_images_each():
    labels = np.repeat(np.arange(10), [3, 5, 8, 2, 4, 4, 6, 7, 1, 9])
    sampler = PKSampler(labels, ids_per_batch=4, images_per_id=4, seed=0)
    batches = sampler.epoch(0)
    assert batches
    for batch in batches:
        assert len(batch) == 16
        ids, counts = np.unique(labels[batch], return_counts=True)
        assert len(ids) == 4 and (counts == 4).all()


def test_same_seed_and_epoch_give_the_same_batches_and_epochs_differ():
    labels = np.repeat(np.arange(12), 6)
    a, b = PKSampler(labels, 4, 2, seed=1), PKSampler(labels, 4, 2, seed=1)
    assert all((x == y).all() for x, y in zip(a.epoch(3), b.epoch(3)))
    assert any((x != y).any() for x, y in zip(a.epoch(0), a.epoch(1)))


def test_every_image_of_identities_with_k_or_more_is_seen_once_per_epoch_at_most():
    labels = np.repeat(np.arange(8), 4)
    batches = PKSampler(labels, 2, 4, seed=0).epoch(0)
    seen = np.concatenate(batches)
    assert len(seen) == len(set(seen.tolist())) == 32


def test_too_few_identities_is_a_clear_error():
    with pytest.raises(ValueError, match="lower train.ids_per_batch"):
        PKSampler(np.array([0, 0, 1, 1]), ids_per_batch=3, images_per_id=2)

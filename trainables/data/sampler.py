"""P x K identity sampling: each batch holds P identities with K images each.

The triplet loss needs positives and negatives inside every batch (Hermans et al. 2017).
Each epoch every identity's images are shuffled and cut into groups of K (an identity with
fewer than K images is topped up by sampling with replacement); groups are shuffled and dealt
into batches of P groups of distinct identities. Deterministic for a given seed and epoch.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np


class PKSampler:
    """Yields index arrays of length ``P * K`` per batch for one epoch at a time."""

    def __init__(self, labels: np.ndarray, ids_per_batch: int, images_per_id: int, seed: int = 0):
        labels = np.asarray(labels)
        by_label: dict[int, list[int]] = defaultdict(list)
        for index, label in enumerate(labels.tolist()):
            by_label[label].append(index)
        if len(by_label) < ids_per_batch:
            raise ValueError(
                f"a batch needs {ids_per_batch} identities (ids_per_batch) but the training set has "
                f"only {len(by_label)}; lower train.ids_per_batch"
            )
        self.groups_by_label = {label: np.asarray(idx) for label, idx in sorted(by_label.items())}
        self.ids_per_batch = ids_per_batch
        self.images_per_id = images_per_id
        self.seed = seed

    def epoch(self, epoch: int) -> list[np.ndarray]:
        """The batches of ``epoch`` (0-based), each an int64 array of P*K dataset indices."""
        rng = np.random.default_rng([self.seed, epoch])
        k = self.images_per_id
        pending: list[tuple[int, np.ndarray]] = []
        for label, indices in self.groups_by_label.items():
            if len(indices) < k:
                indices = rng.choice(indices, size=k, replace=True)
            else:
                indices = rng.permutation(indices)
            for start in range(0, len(indices) - k + 1, k):
                pending.append((label, indices[start : start + k]))
        order = rng.permutation(len(pending))
        queues: dict[int, list[np.ndarray]] = defaultdict(list)
        for position in order:
            label, group = pending[position]
            queues[label].append(group)
        batches: list[np.ndarray] = []
        while sum(1 for q in queues.values() if q) >= self.ids_per_batch:
            available = [label for label, q in queues.items() if q]
            chosen = rng.choice(available, size=self.ids_per_batch, replace=False)
            batches.append(np.concatenate([queues[label].pop() for label in chosen]).astype(np.int64))
        return batches

    def __len__(self) -> int:
        return len(self.epoch(0))

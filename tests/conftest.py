"""Shared fixtures: small generated datasets, so no test downloads anything."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Keep Ray, MLflow and the dataset cache inside the test session's temporary folders.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def pytest_collection_modifyitems(config, items):
    """Skip tests marked ``gpu`` where no CUDA device is present (CI never has one)."""
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_market(tmp_path_factory) -> Path:
    """A tiny synthetic dataset in Market-1501 layout: 12 train ids, 8 test ids, 6 cameras."""
    from trainables.data.synthetic import SyntheticSpec, generate_synthetic_dataset

    spec = SyntheticSpec(num_train_ids=12, num_test_ids=8, num_distractors=6, num_junk=3, height=64, width=32, seed=5)
    return generate_synthetic_dataset(tmp_path_factory.mktemp("tiny_market") / "market", spec)


@pytest.fixture(scope="session")
def tiny_duke(tmp_path_factory) -> Path:
    """A second tiny dataset, another seed: DukeMTMC-reID's layout and 8 cameras (camera 3 the
    hard one), for evaluation targets (``eval.targets``) of studies trained on ``tiny_market``."""
    from trainables.data.synthetic import SyntheticSpec, generate_synthetic_dataset

    spec = SyntheticSpec(
        num_train_ids=4, num_test_ids=8, num_cameras=8, num_distractors=4, num_junk=2, height=64, width=32, seed=11, hard_camera=3
    )
    return generate_synthetic_dataset(tmp_path_factory.mktemp("tiny_duke") / "duke", spec)

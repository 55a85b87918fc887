"""Turn a dataset config into decoded arrays: the train, query and gallery splits.

Decoding happens once per dataset and image size; the orchestrator shares the result with all
trials on a node through Ray's object store, and a standalone trial decodes it itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from search_spaces.trial_config import DatasetConfig
from trainables.data.arrays import SplitArrays, load_market_dataset
from trainables.data.errors import DatasetError
from trainables.data.synthetic import ensure_synthetic_dataset


@dataclass
class ReIDData:
    """Decoded splits of one dataset at one image size."""

    train: SplitArrays
    query: SplitArrays
    gallery: SplitArrays


def dataset_key(config: DatasetConfig) -> str:
    """Identifies a decoded dataset: trials with the same key share the same arrays."""
    return f"{config.name}|{config.root or ''}|{config.height}x{config.width}"


def resolve_dataset_root(config: DatasetConfig, progress: Callable[[str], None] | None = None) -> Path:
    """The folder holding the dataset; generates the synthetic one on first use."""
    if config.name == "synthetic":
        return ensure_synthetic_dataset(cache_dir=config.root, progress=progress)
    root = Path(config.root or "").expanduser()
    if not root.is_dir():
        raise DatasetError(f"dataset '{config.name}': folder not found: {root}")
    return root


def load_reid_data(config: DatasetConfig, progress: Callable[[str], None] | None = None) -> ReIDData:
    """Decode all three splits at the configured size."""
    root = resolve_dataset_root(config, progress)
    splits = load_market_dataset(root, config.height, config.width)
    return ReIDData(train=splits["train"], query=splits["query"], gallery=splits["gallery"])

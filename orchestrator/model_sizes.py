"""Each row's model size for the ablation table: parameters and multiply-adds at the study's
input size (:func:`trainables.models.size.model_size`), one model per variant.

A row that swaps the backbone, widens the network or inserts a module changes what it costs to
run; a paper's table says so beside the accuracy (Robust-ReID Table 1, Fig. 1). Sizes are counted
in the driver (no Ray, no training) from the planned trials' configs; a variant whose model
cannot be built here (a plugin that is not importable in this process) is left out of the
mapping and shows '-'.
"""

from __future__ import annotations

from typing import Iterable

from analysis.settings import ModelSize
from search_spaces import PlannedTrial


def variant_model_sizes(trials: Iterable[PlannedTrial]) -> dict[str, ModelSize]:
    """variant -> its model's size, from its first planned trial (seeds do not change a size)."""
    from trainables.models.size import model_size

    sizes: dict[str, ModelSize] = {}
    for trial in trials:
        if trial.variant in sizes:
            continue
        try:
            params, macs = model_size(trial.config)
        except Exception:  # noqa: BLE001 - no size is better than no table
            continue
        sizes[trial.variant] = ModelSize(params, None if macs is None else macs / 1e9)
    return sizes

"""Adaptive seeds: the ``ablation.adaptive`` block and the seed schedule it implies.

``adaptive: {max_seeds: N, smallest_effect: D}`` makes ``ablation.seeds`` the first wave. After
each wave every comparison of a row with its contrast on the study metric is decided (an
effect, or no effect larger than D points) or gets the next wave of seeds, up to N
(:mod:`analysis.sequential` decides; :mod:`orchestrator.adaptive_waves` runs the waves).

The seeds after the first wave continue after the largest one written (``seeds: [0, 1, 2]``,
``max_seeds: 7``: then 3, 4, 5, 6), ``seeds_per_wave`` at a time, so every look is at a seed
count fixed in advance: 3, 5, 7 with the default 2 per wave. Trials of a later wave are the
same configs a fixed study with those seeds would run (same hashes), and every trial row
carries the schedule (``variant_meta["adaptive"]``) so a study's decisions can be recomputed
from its result store alone.

No torch; the block is validated with the rest of the spec.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

from pydantic import BaseModel, ConfigDict, Field

#: Seeds each later wave adds (``seeds_per_wave``). Two: in ``benchmarks/adaptive_seeds.py`` one
#: seed a wave saved a little more (at N = 8: 9.5% of the trials against 7.5%) but runs twice the
#: waves, one after the other, and its error for a single comparison sat at the limit (0.0515,
#: SE 0.0016, against 0.0504 for two); three a wave saved less (at N = 10: 10.2% against 11.2%).
DEFAULT_SEEDS_PER_WAVE = 2
#: The first wave's fewest seeds: no comparison is decided on fewer than 3 pairs (as no
#: difference in the table is starred from fewer).
FIRST_WAVE_MIN = 3
ALPHA = 0.05
META_KEY = "adaptive"


class AdaptiveSpec(BaseModel):
    """``ablation.adaptive``: seeds in waves until each comparison is decided."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_seeds: int = Field(description="N: the most seeds any row runs (ablation.seeds are the first wave).")
    smallest_effect: float = Field(
        gt=0,
        allow_inf_nan=False,
        description="D, in points of the study metric (percent): a comparison whose interval lies inside (-D, D) "
        "is decided as 'no effect larger than D'.",
    )
    seeds_per_wave: int = Field(DEFAULT_SEEDS_PER_WAVE, ge=1, description="Seeds each later wave adds to the comparisons still open.")


@dataclass(frozen=True)
class SeedSchedule:
    """Every seed a row may run, in order, and how many of them each look has seen."""

    seeds: tuple[int, ...]
    looks: tuple[int, ...]

    @property
    def max_seeds(self) -> int:
        return len(self.seeds)


def seed_schedule(first_wave: Sequence[int], adaptive: AdaptiveSpec) -> SeedSchedule:
    """The first wave, then new seeds after the largest one, ``seeds_per_wave`` per look."""
    seeds = list(first_wave)
    nxt = max(seeds) + 1
    while len(seeds) < adaptive.max_seeds:
        seeds.append(nxt)
        nxt += 1
    looks = [len(first_wave)]
    while looks[-1] < adaptive.max_seeds:
        looks.append(min(adaptive.max_seeds, looks[-1] + adaptive.seeds_per_wave))
    return SeedSchedule(tuple(seeds), tuple(looks))


def adaptive_problem(first_wave: Sequence[int], adaptive: AdaptiveSpec, design: str, compared: int) -> tuple[str, str] | None:
    """What is wrong with an adaptive block, as ``(key under ablation.adaptive, message)``, or
    None. ``compared`` is the number of rows that have a contrast."""
    if design == "optuna":
        return "", "adaptive seeds decide comparisons of planned rows; design 'optuna' samples its rows: remove 'adaptive'"
    if len(first_wave) < FIRST_WAVE_MIN:
        return "", (
            f"adaptive seeds need a first wave of at least {FIRST_WAVE_MIN} seeds (ablation.seeds), "
            f"got {len(first_wave)}: no comparison is decided on fewer pairs"
        )
    if adaptive.max_seeds <= len(first_wave):
        return "max_seeds", (f"max_seeds must exceed the first wave's {len(first_wave)} seeds (ablation.seeds), got {adaptive.max_seeds}")
    if compared == 0:
        return "", "adaptive seeds decide comparisons, and no row of this study is compared with another (compare_to)"
    return None


def adaptive_meta(schedule: SeedSchedule, adaptive: AdaptiveSpec, metric: str) -> dict[str, Any]:
    """What every trial row of an adaptive study carries (``variant_meta["adaptive"]``)."""
    return {
        "metric": metric,
        "seeds": list(schedule.seeds),
        "looks": list(schedule.looks),
        "smallest_effect": adaptive.smallest_effect,
        "alpha": ALPHA,
    }


def with_meta(trials: Sequence[Any], meta: dict[str, Any]) -> list[Any]:
    """``trials`` (planned trials) with ``meta`` in their ``variant_meta`` under
    :data:`META_KEY`; their configs and hashes are unchanged."""
    return [dataclasses.replace(t, variant_meta={**t.variant_meta, META_KEY: meta}) for t in trials]

"""How many trials a study plans, counted from the ablation block without expanding it.

A grid's size is the product of its axes' lengths times its seeds; expanding a 10^6-trial grid
just to find that out would take minutes and gigabytes. ``check_study_size`` refuses studies
above a limit (``--max-trials`` on the command line) before anything is expanded.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from orchestrator.errors import SpecError

if TYPE_CHECKING:  # the CLI reads DEFAULT_MAX_TRIALS at import: keep this module light
    from search_spaces import AblationSpec

DEFAULT_MAX_TRIALS = 2000
# Above this many trials, expanding takes long enough to say so first. Per trial, planning costs
# about 0.5 ms of CPU and 6 KB (benchmarks/plan_size.py: 10^5 trials, 49 s and 663 MB).
LARGE_STUDY = 20_000
SECONDS_PER_TRIAL = 0.0005
BYTES_PER_TRIAL = 6_000


def announce_large_study(count: int) -> None:
    """One line on stderr before a long expansion, so that a large grid does not look like a hang."""
    import sys

    seconds, gigabytes = count * SECONDS_PER_TRIAL, count * BYTES_PER_TRIAL / 1e9
    took = f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"
    print(f"planning {count:,} trials: about {took} of CPU and {gigabytes:.1f} GB", file=sys.stderr, flush=True)


def planned_trial_count(ablation: "AblationSpec") -> int:
    """Trials the design will plan (an upper bound: configs that resolve alike merge later)."""
    from search_spaces.designs import SEARCH_DESIGNS

    seeds = len(ablation.seeds)
    if ablation.design in SEARCH_DESIGNS and ablation.search is not None:
        return ablation.search.num_samples + ablation.search.repeat_best * (seeds - 1)
    axes = [len(values) for values in ablation.axes.values()]
    variants = len(ablation.variants)
    if ablation.design == "grid":
        return math.prod(axes) * seeds if axes else 0
    if ablation.design == "one_at_a_time":
        return (1 + sum(axes) + variants) * seeds
    if ablation.design == "leave_one_out":
        return (1 + variants) * seeds
    # "list" and any registered design that plans from its variants.
    return max(variants, 1) * seeds


def check_study_size(path: str, line_of_ablation: int | None, ablation: "AblationSpec", max_trials: int | None) -> None:
    """Raise a :class:`SpecError` when the study plans more than ``max_trials`` trials."""
    if max_trials is None:
        return
    count = planned_trial_count(ablation)
    if max_trials >= count > LARGE_STUDY:
        announce_large_study(count)
    if count > max_trials:
        raise SpecError(
            f"this study plans {count:,} trials, more than the limit of {max_trials:,}; "
            f"shrink the design, or pass --max-trials {count} to run it anyway",
            file=path,
            line=line_of_ablation,
            key="ablation",
        )

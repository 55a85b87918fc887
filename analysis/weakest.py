"""The study's weakest camera, chosen on data that does not favour it.

APRA (Ang et al., section 4) judges a module by how it lifts the camera served worst: the
camera with the lowest query-mAP. Choosing that camera on the reference row, on the same seeds
whose differences are then tested, favours the claim: at the chosen camera the reference's
values are low partly by chance, so every variant seems to lift it (regression to the mean; in
the A/A simulation of ``tests/analysis/test_aa_simulation.py`` a variant that does nothing gains
+1.8 points there).

Here the camera is chosen on a statistic that, when no row differs from another, is independent
of every difference the table tests: the mean q-mAP of each camera **pooled over every row and
seed** of the table. For two trials with the same spread, their sum and their difference are
uncorrelated, and independent when jointly normal (``X + Y`` and ``X - Y`` of independent
normals with one variance; Casella & Berger, "Statistical Inference", 2nd ed., section 4.3);
every trial outside a comparison is independent
of it, and a seed effect shared by the rows cancels in the difference. So, under no effect, the
paired differences read at the chosen camera keep their distribution and the paired t-test its
level (the simulation: 5.0% of A/A comparisons rejected at 5%, bias 0.001 points). A choice
cross-fitted seed by seed (each seed's camera chosen on the reference's other seeds) is unbiased
too, but each seed then both chooses for the others and is tested, which correlates the per-seed
differences positively and lifts the rate to 6.4% in the same simulation: not used
(``python benchmarks/weakest_camera_rules.py`` compares the three rules).

The pooled choice is still "the camera the study's models serve worst", and with a camera that
is hard by nature (the synthetic dataset's camera 6) it is the same camera as the baseline's.
A spec can declare the camera instead (``report.weakest_camera``): then nothing is chosen.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Mapping

CameraValues = Mapping[int, float]  # camera -> value of one trial
POOLED, REFERENCE, DECLARED = "pooled", "reference", "declared"


@dataclass(frozen=True)
class WeakestCamera:
    """The weakest camera and how it was chosen: ``pooled`` (lowest q-mAP over every row and
    seed), ``declared`` (the spec's), or ``reference`` (the reference row's lowest, in sample:
    biased, kept for the simulation that shows it)."""

    camera: int
    rule: str = POOLED
    reference: str | None = None

    @property
    def declared(self) -> bool:
        return self.rule == DECLARED

    def camera_for(self, seed: int) -> int:
        return self.camera

    def describe(self) -> str:
        """Where the camera comes from, for a table's footnote."""
        if self.rule == DECLARED:
            return f"c{self.camera}, declared in the spec (report.weakest_camera)"
        if self.rule == REFERENCE:
            return f"c{self.camera}, the lowest q-mAP of {self.reference} (chosen on the seeds it tests: biased)"
        return (
            f"c{self.camera}, the camera with the lowest q-mAP over every row and seed of the table; chosen on the rows' pooled "
            "values, which under no effect are independent of every paired difference tested, so the choice does not lift its "
            "own camera by regression to the mean"
        )


def lowest_camera(trials: list[CameraValues]) -> int | None:
    """The camera with the lowest mean over ``trials`` (ties: the lowest camera id); None when
    there are no camera values."""
    pooled: dict[int, list[float]] = {}
    for values in trials:
        for camera, value in values.items():
            pooled.setdefault(camera, []).append(value)
    if not pooled:
        return None
    return min(sorted(pooled), key=lambda camera: statistics.fmean(pooled[camera]))


def choose_weakest(
    rows_q: Mapping[str, Mapping[int, CameraValues]], reference: str | None, declared: int | None = None, *, rule: str = POOLED
) -> WeakestCamera | None:
    """The weakest camera from every row's per-seed q-mAP (``{row: {seed: {camera: value}}}``),
    or the ``declared`` one. ``rule="reference"`` chooses on the reference row alone (the
    biased in-sample rule, for the simulation)."""
    if declared is not None:
        return WeakestCamera(int(declared), DECLARED, reference)
    if rule == REFERENCE:
        trials = list(rows_q.get(reference, {}).values()) if reference is not None else []
    else:
        trials = [values for seeds in rows_q.values() for values in seeds.values()]
    camera = lowest_camera(trials)
    return None if camera is None else WeakestCamera(camera, rule, reference)

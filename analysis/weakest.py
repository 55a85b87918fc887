"""The study's weakest camera, chosen on seeds that do not test it.

APRA (Ang et al., section 4) judges a module by how it lifts the camera the baseline serves
worst: the camera with the lowest query-mAP of the reference row. Choosing that camera on the
same seeds whose differences are then tested favours the claim: at the chosen camera the
reference's values are low partly by chance, so a variant's gain there is biased upwards
(regression to the mean; the simulation in ``tests/analysis/test_aa_simulation.py`` shows the
inflated false-positive rate). Hence *cross-fitting* (Chernozhukov et al. 2018, "Double/
debiased machine learning", section 3, with one fold per seed): for each seed ``s`` the camera
is chosen on the reference row's other seeds, and seed ``s``'s values of every row are read at
that camera. The choice never sees the noise of the seed it is applied to, so the per-seed
differences are unbiased and the paired test keeps its level.

A spec can instead declare the camera (``report.weakest_camera``), e.g. one known to be hard in
advance (the synthetic dataset's camera 6); then nothing is chosen from the data.

With a single reference seed nothing is left out to choose on: the camera is chosen on that
seed (in sample) and said so; a single seed gives no test anyway.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Mapping

CameraValues = Mapping[int, float]  # camera -> value of one trial


@dataclass(frozen=True)
class WeakestCamera:
    """Which camera is "the weakest" for each seed.

    ``overall`` is the camera chosen on all of the reference row's seeds (shown in headers,
    and used for seeds the reference row does not have); ``per_seed`` maps a reference seed to
    the camera chosen on the reference's other seeds; ``declared`` says the spec named it.
    """

    overall: int
    reference: str
    per_seed: dict[int, int] = field(default_factory=dict)
    declared: bool = False
    in_sample: bool = False  # one reference seed only: chosen on the seed it is applied to

    def camera_for(self, seed: int) -> int:
        return self.per_seed.get(seed, self.overall)

    @property
    def varies(self) -> bool:
        """Whether some seed reads another camera than :attr:`overall`."""
        return any(camera != self.overall for camera in self.per_seed.values())

    def describe(self) -> str:
        """Where the camera comes from, for a table's footnote."""
        if self.declared:
            return f"c{self.overall}, declared in the spec (report.weakest_camera)"
        if self.in_sample:
            return f"c{self.overall}, the lowest q-mAP of {self.reference} (one seed: chosen on the seed itself, untested)"
        text = (
            f"the camera with the lowest q-mAP of {self.reference}, cross-fitted: each seed's values are read at the camera "
            f"that is lowest on the mean of {self.reference}'s other seeds, so the choice never sees the seed it tests"
        )
        counts: dict[int, int] = {}
        for camera in self.per_seed.values():
            counts[camera] = counts.get(camera, 0) + 1
        spread = ", ".join(f"c{camera} at {n} seed{'s' if n != 1 else ''}" for camera, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        return f"{text} ({spread}; c{self.overall} on all seeds)"


def lowest_camera(per_seed: Mapping[int, CameraValues], seeds: list[int]) -> int | None:
    """The camera with the lowest mean over ``seeds`` (ties: the lowest camera id); None when
    those seeds have no camera values."""
    pooled: dict[int, list[float]] = {}
    for seed in seeds:
        for camera, value in per_seed.get(seed, {}).items():
            pooled.setdefault(camera, []).append(value)
    if not pooled:
        return None
    return min(sorted(pooled), key=lambda camera: statistics.fmean(pooled[camera]))


def choose_weakest(reference: str, reference_q: Mapping[int, CameraValues], declared: int | None = None, *, cross_fit: bool = True) -> WeakestCamera | None:
    """The weakest camera from the reference row's per-seed q-mAP (``{seed: {camera: value}}``),
    or the ``declared`` one. ``cross_fit=False`` chooses on all seeds for every seed (the biased
    in-sample rule, kept for the simulation that shows the bias)."""
    if declared is not None:
        return WeakestCamera(int(declared), reference, declared=True)
    seeds = sorted(seed for seed, values in reference_q.items() if values)
    overall = lowest_camera(reference_q, seeds)
    if overall is None:
        return None
    if len(seeds) < 2:
        return WeakestCamera(overall, reference, in_sample=True)
    if not cross_fit:
        return WeakestCamera(overall, reference, {seed: overall for seed in seeds})
    per_seed = {seed: lowest_camera(reference_q, [other for other in seeds if other != seed]) for seed in seeds}
    return WeakestCamera(overall, reference, {seed: camera for seed, camera in per_seed.items() if camera is not None})

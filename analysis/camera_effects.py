"""Per-camera effects of an ablation: does a module lift the weak camera, and most of all?

APRA (section 4, Table 2) reads an ablation per camera: query-mAP and gallery-mAP of each camera,
and claims that its module helps the weakest camera most. Here, for every variant and camera,
the paired difference to the variant's *contrast row* in q-mAP and g-mAP
(:func:`analysis.stats.paired_effect` over shared seeds), and the claim made checkable:

    weakest-camera advantage, per seed s:  a_s = gain_s(w_s) - gain_s(c*_s),

where ``w_s`` is the study's weakest camera for seed ``s`` (cross-fitted, chosen on the
reference row's other seeds: :mod:`analysis.weakest`, so the choice does not favour the claim by
regression to the mean) and ``c*_s`` the other camera with the largest mean gain over the shared
seeds. The competitor is chosen on the same data, so it is the luckiest one and the difference
leans against the claim. The claim has one direction, so the test does too: one-sided
(H1: mean of ``a_s`` > 0, :func:`analysis.stats.upper_tailed`), which the downward lean makes
conservative; a negative difference is no finding ("gains least" would be the luckiest
competitor's doing). The interval shown is the two-sided 95% one.

Multiple testing, named in the table's footnote: the cameras x metrics (q-mAP, g-mAP) of one
variant are one Holm family (a variant's 12 per-camera tests on six cameras); the advantages of
all variants and both metrics are another.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Mapping

from analysis.stats import Effect, effect_of_differences, paired_effect, upper_tailed, with_holm
from analysis.weakest import WeakestCamera
from search_spaces.metrics import G_MAP, Q_MAP

CAMERA_EFFECT_METRICS = (Q_MAP, G_MAP)
Values = Mapping[tuple[int, str], float]  # (camera, metric) -> value of one trial


@dataclass
class WeakestAdvantage:
    """``gain(weakest) - gain(other)`` with its paired interval; ``other`` is ``c*`` (the one
    chosen at most seeds)."""

    other: int
    effect: Effect


@dataclass
class CameraEffects:
    """Per (variant, metric): {camera: Effect} against the variant's contrast, and the
    weakest-camera advantage."""

    contrasts: dict[str, str]  # variant -> its contrast row, for every compared variant
    weakest: WeakestCamera | None
    cameras: list[int]
    variants: list[str]  # every compared row, in table order
    effects: dict[tuple[str, str], dict[int, Effect]] = field(default_factory=dict)
    advantage: dict[tuple[str, str], WeakestAdvantage] = field(default_factory=dict)
    means: dict[tuple[str, str], dict[int, float]] = field(default_factory=dict)  # every variant, references included

    @property
    def weakest_camera(self) -> int | None:
        return None if self.weakest is None else self.weakest.camera

    def contrast_of(self, variant: str) -> str:
        return self.contrasts[variant]


def _per_seed(seeds: Mapping[int, Values], camera: int, metric: str) -> dict[int, float]:
    return {seed: values[(camera, metric)] for seed, values in seeds.items() if (camera, metric) in values}


def camera_effects(
    variants: Mapping[str, Mapping[int, Values]],
    contrasts: Mapping[str, str | None],
    weakest: WeakestCamera | None,
    *,
    bootstrap: bool = False,
) -> CameraEffects:
    """``variants``: variant -> {seed: {(camera, metric): value}} of its completed trials, in
    table order; ``contrasts``: variant -> the row it is compared with (None: a reference)."""
    cameras = sorted({camera for seeds in variants.values() for values in seeds.values() for camera, _ in values})
    compared = {v: c for v, c in contrasts.items() if c is not None and v in variants and c in variants}
    order = [v for v in variants if v in compared]
    result = CameraEffects(compared, weakest, cameras, order)
    for variant, seeds in variants.items():
        for metric in CAMERA_EFFECT_METRICS:
            means = {c: statistics.fmean(v) for c in cameras if (v := list(_per_seed(seeds, c, metric).values()))}
            if means:
                result.means[(variant, metric)] = means
    for variant in order:
        base, mine = variants[compared[variant]], variants[variant]
        keys = [(metric, camera) for metric in CAMERA_EFFECT_METRICS for camera in cameras]
        family = with_holm([paired_effect(_per_seed(base, c, m), _per_seed(mine, c, m), bootstrap=bootstrap) for m, c in keys])
        for (metric, camera), effect in zip(keys, family):
            if effect is not None:
                result.effects.setdefault((variant, metric), {})[camera] = effect
    if weakest is not None:
        found = {}
        for variant in order:
            for metric in CAMERA_EFFECT_METRICS:
                advantage = _weakest_advantage(variants[compared[variant]], variants[variant], weakest, metric, cameras)
                if advantage is not None:
                    found[(variant, metric)] = advantage
        corrected = with_holm([a.effect for a in found.values()])
        result.advantage = {key: WeakestAdvantage(a.other, e) for (key, a), e in zip(found.items(), corrected)}
    return result


def _weakest_advantage(
    base: Mapping[int, Values], mine: Mapping[int, Values], weakest: WeakestCamera, metric: str, cameras: list[int]
) -> WeakestAdvantage | None:
    shared = sorted(set(base) & set(mine))

    def gain(seed: int, camera: int) -> float | None:
        v, r = mine[seed].get((camera, metric)), base[seed].get((camera, metric))
        return None if v is None or r is None else v - r

    mean_gain = {}
    for camera in cameras:
        gains = [g for s in shared if (g := gain(s, camera)) is not None]
        if gains:
            mean_gain[camera] = statistics.fmean(gains)
    gaps, chosen = [], []
    for seed in shared:
        w = weakest.camera_for(seed)
        competitors = {c: g for c, g in mean_gain.items() if c != w}
        if not competitors:
            continue
        other = max(sorted(competitors), key=competitors.__getitem__)
        at_weakest, at_other = gain(seed, w), gain(seed, other)
        if at_weakest is None or at_other is None:
            continue
        gaps.append(at_weakest - at_other)
        chosen.append(other)
    if not gaps:
        return None
    modal = max(sorted(set(chosen)), key=chosen.count)
    return WeakestAdvantage(modal, upper_tailed(effect_of_differences(gaps)))

"""Per-camera effects of an ablation: does a module lift the weak camera, and most of all?

APRA (section 4, Table 2) reads an ablation per camera: query-mAP and gallery-mAP of each camera,
and claims that its module helps the weakest camera most. Here, for every variant and camera,
the paired difference to the reference row in q-mAP and g-mAP (:func:`analysis.stats.
paired_effect` over shared seeds, Holm-corrected across the variants per camera and metric), and
the claim made checkable:

    weakest-camera advantage = gain(weakest camera) - gain(c*),

where ``c*`` is the other camera with the largest mean gain, computed per seed and given a
paired t interval over seeds. A positive interval supports "the weakest camera gains most". The
choice of ``c*`` from the same data makes the comparison lean against the claim (it picks the
luckiest competitor), so a positive result is conservative. The weakest camera is the study's
one definition (:mod:`analysis.summary`): lowest reference q-mAP, mean over seeds.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Mapping

from analysis.stats import Effect, paired_effect, with_holm
from search_spaces.metrics import G_MAP, Q_MAP

CAMERA_EFFECT_METRICS = (Q_MAP, G_MAP)
Values = Mapping[tuple[int, str], float]  # (camera, metric) -> value of one trial


@dataclass
class WeakestAdvantage:
    """``gain(weakest) - gain(other)`` with its paired interval; ``other`` is ``c*``."""

    other: int
    effect: Effect


@dataclass
class CameraEffects:
    """Per (variant, metric): {camera: Effect}, and the weakest-camera advantage."""

    reference: str
    weakest: int | None
    cameras: list[int]
    variants: list[str]  # every row but the reference, in table order
    effects: dict[tuple[str, str], dict[int, Effect]] = field(default_factory=dict)
    advantage: dict[tuple[str, str], WeakestAdvantage] = field(default_factory=dict)
    means: dict[tuple[str, str], dict[int, float]] = field(default_factory=dict)  # every variant, incl. the reference


def _per_seed(seeds: Mapping[int, Values], camera: int, metric: str) -> dict[int, float]:
    return {seed: values[(camera, metric)] for seed, values in seeds.items() if (camera, metric) in values}


def camera_effects(variants: Mapping[str, Mapping[int, Values]], reference: str, weakest: int | None, *, bootstrap: bool = False) -> CameraEffects:
    """``variants``: variant -> {seed: {(camera, metric): value}} of its completed trials."""
    cameras = sorted({camera for seeds in variants.values() for values in seeds.values() for camera, _ in values})
    others = [v for v in variants if v != reference]
    result = CameraEffects(reference, weakest, cameras, others)
    base = variants.get(reference, {})
    for variant, seeds in variants.items():
        for metric in CAMERA_EFFECT_METRICS:
            means = {c: statistics.fmean(v) for c in cameras if (v := list(_per_seed(seeds, c, metric).values()))}
            if means:
                result.means[(variant, metric)] = means
    for metric in CAMERA_EFFECT_METRICS:
        for camera in cameras:
            reference_values = _per_seed(base, camera, metric)
            effects = with_holm([paired_effect(reference_values, _per_seed(variants[v], camera, metric), bootstrap=bootstrap) for v in others])
            for variant, effect in zip(others, effects):
                if effect is not None:
                    result.effects.setdefault((variant, metric), {})[camera] = effect
    if weakest is not None:
        for variant in others:
            for metric in CAMERA_EFFECT_METRICS:
                advantage = _weakest_advantage(base, variants[variant], result.effects.get((variant, metric), {}), weakest, metric)
                if advantage is not None:
                    result.advantage[(variant, metric)] = advantage
    return result


def _weakest_advantage(base: Mapping[int, Values], mine: Mapping[int, Values], effects: Mapping[int, Effect], weakest: int, metric: str) -> WeakestAdvantage | None:
    competitors = {c: e.mean for c, e in effects.items() if c != weakest}
    if weakest not in effects or not competitors:
        return None
    other = max(sorted(competitors), key=competitors.__getitem__)
    shared = sorted(set(base) & set(mine))

    def gap(values: Mapping[int, Values], seed: int) -> float | None:
        w, o = values[seed].get((weakest, metric)), values[seed].get((other, metric))
        return None if w is None or o is None else w - o

    # gain(w) - gain(o) = (variant_w - variant_o) - (reference_w - reference_o): paired per seed.
    reference_gap = {s: g for s in shared if (g := gap(base, s)) is not None}
    variant_gap = {s: g for s in shared if (g := gap(mine, s)) is not None}
    effect = paired_effect(reference_gap, variant_gap)
    return None if effect is None else WeakestAdvantage(other, effect)

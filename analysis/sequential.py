"""Group-sequential decisions on paired seeds: when a comparison has seen enough seeds.

An adaptive study (``ablation.adaptive``) runs its seeds in waves and, after each wave (a
*look*), decides every comparison of a row with its contrast on the study metric:

* **effect** when its repeated confidence interval (RCI) excludes 0;
* **no effect larger than D** when its RCI lies inside (-D, D) (an equivalence conclusion, as
  the two one-sided tests of a fixed-n study draw it);
* otherwise it needs more seeds, up to N; still open at N it is **undecided at N**.

The statistics, each piece with its source:

* Error spending (Lan & DeMets 1983, "Discrete sequential boundaries for clinical trials",
  Biometrika 70:659-663): at information fraction ``t = n_k / N`` (pairs seen over the most the
  study can run) each side of the two-sided test has spent the O'Brien-Fleming-type
  ``a(t) = 2 - 2 Phi(z_{1-a/2} / sqrt(t))`` of its half ``a = alpha/2`` of the error, the
  convention of DeMets & Lan 1994 ("Interim analysis: the alpha spending function approach",
  Statistics in Medicine 13:1341-1352) and of gsDesign/rpact for symmetric two-sided designs
  (:func:`obf_spending`). (Spending ``2 - 2 Phi(z_{1-alpha/2}/sqrt(t))`` of the whole two-sided
  ``alpha`` instead would give 3.39, 2.41, 2.02 below; 3.47, 2.45, 2.00 are the original
  O'Brien-Fleming test's, J&T Table 2.3, not a spending function's.)
* Boundaries (:func:`two_sided_boundaries`): for the z statistic under independent increments
  (``Z_k = S_k / sqrt(t_k)``, ``S`` a Brownian motion on the information scale) the ``c_k`` with
  ``P(|Z_j| < c_j for j < k, |Z_k| >= c_k) = alpha(t_k) - alpha(t_{k-1})``, by the numerical
  recursion of Armitage, McPherson & Rowe (1969) as Jennison & Turnbull, "Group Sequential
  Methods with Applications to Clinical Trials" (2000), section 19.2 describe it. At two-sided
  0.05 it gives 4.88, 3.36, 2.68, 2.29, 2.03 for five equally spaced looks (DeMets & Lan 1994,
  Table I) and 3.71, 2.51, 1.99 for three (``tests/analysis/test_sequential.py`` checks both,
  the second against scipy's multivariate normal).
* Repeated confidence intervals (Jennison & Turnbull 2000, ch. 9): ``d̄_k ± c_k se_k`` covers the
  true mean difference at every look at once with probability ``1 - alpha``, so a decision may
  be taken at any look. The paired *t* statistic is used with the z boundary's nominal p-value:
  ``t_{1 - p_k/2, n_k - 1}`` with ``p_k = 2 (1 - Phi(c_k))`` (the usual small-sample
  approximation, J&T section 3.8; ``benchmarks/adaptive_seeds.py`` checks the error it keeps).
* Many comparisons (Maurer & Bretz 2013, "Multiple testing in group sequential trials using
  graphical approaches", Statistics in Biopharmaceutical Research 5:311-320): each comparison
  runs its own design at level ``alpha / m``; when one finds an effect its level passes in equal
  parts to the comparisons not yet found to have one (Holm's graph), which are tested again at
  the same look with boundaries recomputed at their new level. This holds the family-wise error
  of effect claims at ``alpha`` across all looks and comparisons.
* "No effect larger than D" is read from the RCI at the comparison's *first* level ``alpha / m``
  (never the raised one), so by Bonferroni and the RCIs' simultaneous coverage the
  family-wise error of these claims is at most ``alpha`` as well.

Stopping for "no effect" is non-binding (it can only lower the error of the effect claims). A
comparison with fewer than :data:`MIN_PAIRS` pairs, or with no spread at all, decides nothing
(the table's significance rule: no star from fewer than 3 paired seeds or zero spread), except
that identical results on every seed (all differences 0) show no effect.

Pure functions of per-seed differences: no Ray, no store (:mod:`analysis.seed_decisions` reads
the store).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Hashable, Mapping, Sequence

import numpy as np

ALPHA = 0.05
MIN_PAIRS = 3
GRID_POINTS = 1201  # odd, for Simpson's rule: boundaries to about 1e-5

EFFECT, NO_EFFECT, OPEN, UNDECIDED = "effect", "no effect", "open", "undecided"


def obf_spending(t: float, alpha: float = ALPHA) -> float:
    """Lan-DeMets O'Brien-Fleming-type spending: the two-sided error spent by information
    fraction ``t``, both sides together (all of ``alpha`` from ``t = 1`` on)."""
    from scipy.stats import norm

    if t <= 0:
        return 0.0
    if t >= 1:
        return alpha
    side = alpha / 2  # each side spends its half (DeMets & Lan 1994; gsDesign's sfLDOF, sides=2)
    return float(2 * (2 - 2 * norm.cdf(norm.ppf(1 - side / 2) / math.sqrt(t))))


def _simpson_weights(count: int, width: float) -> np.ndarray:
    weights = np.ones(count)
    weights[1:-1:2], weights[2:-1:2] = 4, 2
    return weights * width / (3 * (count - 1))


def two_sided_boundaries(times: Sequence[float], alpha: float = ALPHA) -> tuple[float, ...]:
    """The z boundaries ``c_1..c_K`` at information fractions ``times`` (strictly increasing,
    in (0, 1]) that spend :func:`obf_spending` two-sided; see the module docstring."""
    return _boundaries(tuple(float(t) for t in times), round(float(alpha), 15))


@functools.lru_cache(maxsize=4096)
def _boundaries(times: tuple[float, ...], alpha: float) -> tuple[float, ...]:
    from scipy.optimize import brentq
    from scipy.stats import norm

    if not times or any(b <= a for a, b in zip(times, times[1:])) or times[0] <= 0 or times[-1] > 1 + 1e-12:
        raise ValueError(f"information fractions must increase within (0, 1], got {list(times)}")
    spent = [obf_spending(t, alpha) for t in times]
    first = norm.isf(spent[0] / 2) if spent[0] > 0 else math.inf
    bounds = [float(first)]
    # Density of the score S_1 = Z_1 sqrt(t_1) on the region where the study went on.
    edge = first * math.sqrt(times[0]) if math.isfinite(first) else 12 * math.sqrt(times[0])
    grid = np.linspace(-edge, edge, GRID_POINTS)
    density = norm.pdf(grid, scale=math.sqrt(times[0]))
    for k in range(1, len(times)):
        step = math.sqrt(times[k] - times[k - 1])
        mass = density * _simpson_weights(GRID_POINTS, 2 * edge)
        target = spent[k] - spent[k - 1]

        def exit_probability(b: float) -> float:
            return float(mass @ (norm.cdf((-b - grid) / step) + norm.sf((b - grid) / step)))

        if target <= 0:
            bound = math.inf
            score_edge = 12 * math.sqrt(times[k])
        else:
            score_edge = brentq(lambda b: exit_probability(b) - target, 1e-9, 40 * math.sqrt(times[k]), xtol=1e-12)
            bound = score_edge / math.sqrt(times[k])
        bounds.append(float(bound))
        next_grid = np.linspace(-score_edge, score_edge, GRID_POINTS)
        density = norm.pdf((next_grid[:, None] - grid[None, :]) / step) @ mass / step
        grid, edge = next_grid, score_edge
    return tuple(bounds)


def nominal_p(boundary: float) -> float:
    """The two-sided p-value a z statistic on ``boundary`` has."""
    from scipy.stats import norm

    return float(2 * norm.sf(boundary))


@functools.lru_cache(maxsize=65536)
def t_boundary(boundary: float, pairs: int) -> float:
    """The paired-t critical value with the z boundary's nominal p-value (df = pairs - 1)."""
    from scipy.stats import t

    return float(t.isf(nominal_p(boundary) / 2, pairs - 1))


@dataclass(frozen=True)
class Interval:
    """A repeated confidence interval of the mean paired difference at one look."""

    mean: float
    low: float
    high: float
    pairs: int


def repeated_interval(differences: Sequence[float], boundary: float) -> Interval:
    """``d̄ ± t_crit s/sqrt(n)`` with ``t_crit`` matched to the z ``boundary`` (:func:`t_boundary`)."""
    values = np.asarray(differences, dtype=float)
    n = len(values)
    mean = float(values.mean())
    half = t_boundary(boundary, n) * float(values.std(ddof=1)) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


@dataclass
class Decision:
    """Where one comparison stands: ``outcome`` (EFFECT, NO_EFFECT, OPEN, UNDECIDED), the pairs
    it was decided at (or has so far), the look, and the RCI at that look (at the comparison's
    level then; for NO_EFFECT the one at its first level, which decided it)."""

    outcome: str = OPEN
    pairs: int = 0
    look: int = 0
    interval: Interval | None = None
    level: float = 0.0

    @property
    def decided(self) -> bool:
        return self.outcome in (EFFECT, NO_EFFECT)


@dataclass
class SequentialTests:
    """The comparisons of one study through its looks (module docstring).

    ``keys`` name the comparisons, ``max_pairs`` is N, ``smallest_effect`` D (in the units of
    the differences). Feed each look's paired differences, all pairs so far, to :meth:`look`."""

    keys: Sequence[Hashable]
    max_pairs: int
    smallest_effect: float
    alpha: float = ALPHA
    decisions: dict[Hashable, Decision] = field(init=False)
    levels: dict[Hashable, float] = field(init=False)
    times: dict[Hashable, list[float]] = field(init=False)
    looks: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.keys = list(self.keys)
        share = self.alpha / max(1, len(self.keys))
        self.decisions = {key: Decision(level=share) for key in self.keys}
        self.levels = {key: share for key in self.keys}
        self.times = {key: [] for key in self.keys}
        self.first_level = share

    @property
    def open(self) -> list[Hashable]:
        return [key for key in self.keys if self.decisions[key].outcome == OPEN]

    def look(self, differences: Mapping[Hashable, Sequence[float]], *, final: bool = False) -> None:
        """One look: test every open comparison on its pairs so far; with ``final`` (the study
        ran its last planned seed), what stays open is undecided."""
        self.looks += 1
        tested: dict[Hashable, list[float]] = {}
        for key in self.open:
            values = [float(v) for v in differences.get(key, ())]
            decision = self.decisions[key]
            decision.pairs, decision.look = len(values), self.looks
            t = min(1.0, len(values) / self.max_pairs)
            if len(values) < MIN_PAIRS or (self.times[key] and t <= self.times[key][-1]):
                continue  # too few pairs, or nothing new since the last look: no error spent
            self.times[key].append(t)
            tested[key] = values
        rejected = True
        while rejected:  # Holm's graph: a rejection raises the others' level, test again
            rejected = False
            for key in [k for k in tested if self.decisions[k].outcome == OPEN]:
                interval = self._interval(key, tested[key], self.levels[key])
                if interval is not None and (interval.low > 0 or interval.high < 0):
                    self._decide(key, EFFECT, interval, self.levels[key])
                    self._pass_level(key)
                    rejected = True
        for key in [k for k in tested if self.decisions[k].outcome == OPEN]:
            interval = self._interval(key, tested[key], self.first_level)
            if interval is not None and -self.smallest_effect < interval.low and interval.high < self.smallest_effect:
                self._decide(key, NO_EFFECT, interval, self.first_level)
            else:
                self.decisions[key].interval = interval
                self.decisions[key].level = self.levels[key]
        if final:
            for key in self.open:
                self.decisions[key].outcome = UNDECIDED

    def _interval(self, key: Hashable, values: list[float], level: float) -> Interval | None:
        if len(values) < MIN_PAIRS:
            return None
        spread = float(np.std(values, ddof=1))
        if spread == 0:
            mean = float(np.mean(values))
            # Identical differences: no test, but all-zero differences show no effect.
            return Interval(0.0, 0.0, 0.0, len(values)) if mean == 0 else None
        bound = two_sided_boundaries(self.times[key], level)[-1]
        return repeated_interval(values, bound)

    def _decide(self, key: Hashable, outcome: str, interval: Interval, level: float) -> None:
        decision = self.decisions[key]
        decision.outcome, decision.interval, decision.level = outcome, interval, level

    def _pass_level(self, key: Hashable) -> None:
        """Holm's graph (Maurer & Bretz 2013): the level of a comparison found to have an effect
        goes in equal parts to every comparison not found to have one (decided or not)."""
        others = [k for k in self.keys if self.decisions[k].outcome != EFFECT]
        if others:
            share = self.levels[key] / len(others)
            for other in others:
                self.levels[other] += share

"""Statistics of an ablation table: paired effects, their intervals, Holm's correction, and how
many seeds a study needs.

Trials of two variants that share a seed are *paired*: the same seed gives the same data order
(the PK sampler's own generator) and the same initialisation of every module the two variants
share (:mod:`trainables.models.seeding`). So the effect of a variant is estimated from the
per-seed differences ``d_s = variant_s - reference_s`` over the seeds both have:

* mean ``d̄``, standard deviation ``s_d`` (n - 1 in the denominator), ``se = s_d / sqrt(n)``;
* the 95% interval ``d̄ ± t_{0.975, n-1} se`` and the two-sided p-value of ``t = d̄ / se``
  (Student's paired t-test);
* from 5 pairs up, optionally, a percentile bootstrap interval of ``d̄`` instead (fewer
  pairs give too few distinct resamples for percentiles to mean anything);
* seeds only one of the two has (a failed or pruned trial) are left out and counted;
* with no shared seed at all but two or more seeds each, Welch's unequal-variance t-test
  (DESIGN.md); with fewer, no interval is possible.

**What noise cannot earn.** A difference is *tested* (may be marked significant) only from
:data:`MIN_TEST_PAIRS` = 3 paired seeds up, and only when the paired differences have a spread:
with 2 pairs the t distribution has one degree of freedom and its p-value rests on a single
estimate of the spread; differences that are all equal (zero spread) give ``se = 0`` and a
t statistic of infinity, a "p = 0" that says nothing about seed noise. Such effects keep their
mean (and, with 2 pairs, their wide interval) but carry no p-value into a correction and never a
star; :attr:`Effect.untested` says why.

The p-values of one family (the caller names it: e.g. the comparisons of the study metric) are
corrected with Holm's step-down procedure (Holm 1979), which controls the family-wise error rate
without assuming independence; only tested effects belong to a family.

:func:`seeds_needed` sizes a study: from an upper confidence bound of the paired standard
deviation (chi-square; Browne 1995: a pilot's observed SD is too optimistic), the smallest
number of seeds whose two-sided paired t-test at alpha = 0.05 has 80% power for a difference of
delta, the power computed exactly with the noncentral t distribution.

Values are in whatever unit the caller gives (the summary passes the store's fractions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import numpy as np

CONFIDENCE = 0.95
ALPHA = 0.05
MIN_BOOTSTRAP_PAIRS = 5
MIN_TEST_PAIRS = 3
BOOTSTRAP_RESAMPLES = 10_000

PAIRED_T, WELCH, NONE = "paired t", "Welch t", "none"


@dataclass(frozen=True)
class Effect:
    """The difference ``variant - reference`` of one metric.

    ``low``/``high`` bound the interval (None when none is possible), ``p`` is the two-sided
    p-value and ``p_adjusted`` the Holm-corrected one (set by :func:`with_holm`). ``pairs`` is
    the number of shared seeds used, ``unpaired`` the seeds left out because only one of the
    two variants has them, ``sd`` the standard deviation of the paired differences.
    """

    mean: float
    low: float | None = None
    high: float | None = None
    p: float | None = None
    p_adjusted: float | None = None
    pairs: int = 0
    unpaired: int = 0
    sd: float | None = None
    test: str = NONE
    interval: str = "t"  # t | bootstrap
    untested: str | None = None  # why no test is made (too few pairs, no spread); None when tested

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    @property
    def tested(self) -> bool:
        """Whether the difference is tested at all (:data:`MIN_TEST_PAIRS` pairs and a spread)."""
        return self.untested is None and self.p is not None

    @property
    def significant(self) -> bool:
        """Tested, and its p-value corrected within its family (:func:`with_holm`) is below 0.05.
        An effect no family has corrected is never significant: a raw p-value earns no star."""
        return self.tested and self.p_adjusted is not None and self.p_adjusted < ALPHA


def _t_quantile(df: float) -> float:
    # Student's t quantile and tail through the special functions scipy.stats.t evaluates
    # itself (stdtrit, stdtr): the same numbers without the distribution object's overhead
    # (~0.5 ms a call), which the A/A simulation's thousands of tables would feel.
    from scipy.special import stdtrit

    return float(stdtrit(df, 0.5 + CONFIDENCE / 2))


def _t_p_value(statistic: float, df: float) -> float:
    from scipy.special import stdtr

    return float(2 * stdtr(df, -abs(statistic)))


def _t_test(mean: float, se: float, df: float) -> tuple[float, float, float]:
    """(low, high, p) of a t statistic (``se`` > 0)."""
    half = _t_quantile(df) * se
    return mean - half, mean + half, _t_p_value(mean / se, df)


NO_SPREAD = "no spread"
#: Paired differences whose SD is below this (in the store's units, fractions) have no spread:
#: float rounding leaves ~1e-17 where the differences are equal, which would give p ~ 1e-30.
SPREAD_TOLERANCE = 1e-9


def _too_few(pairs: int) -> str | None:
    return f"{pairs} paired seed{'s' if pairs != 1 else ''}" if pairs < MIN_TEST_PAIRS else None


def bootstrap_interval(differences: Sequence[float], *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of the mean of ``differences`` (Efron & Tibshirani
    1993, ch. 13): resample the pairs with replacement, take the 2.5% and 97.5% quantiles of
    the resampled means. A fixed generator seed makes the table reproducible."""
    values = np.asarray(differences, dtype=float)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def paired_effect(reference: Mapping[int, float], variant: Mapping[int, float], *, bootstrap: bool = False) -> Effect | None:
    """The effect of ``variant`` against ``reference``, both ``{seed: value}``.

    Paired over the shared seeds (Student t; with ``bootstrap`` and at least
    :data:`MIN_BOOTSTRAP_PAIRS` pairs, a percentile bootstrap interval); Welch when no seed is
    shared; None when either side has no value.
    """
    if not reference or not variant:
        return None
    shared = sorted(set(reference) & set(variant))
    unpaired = len(set(reference) ^ set(variant))
    if not shared:
        return welch_effect(list(reference.values()), list(variant.values()))
    differences = [variant[s] - reference[s] for s in shared]
    return effect_of_differences(differences, unpaired=unpaired, bootstrap=bootstrap)


def effect_of_differences(differences: Sequence[float], *, unpaired: int = 0, bootstrap: bool = False) -> Effect:
    """The paired effect from the per-seed differences themselves (one-sample t on them)."""
    n = len(differences)
    mean = math.fsum(differences) / n
    if n == 1:
        return Effect(mean, pairs=1, unpaired=unpaired, untested=_too_few(1))
    sd = float(np.std(differences, ddof=1))
    if sd < SPREAD_TOLERANCE:
        return Effect(mean, pairs=n, unpaired=unpaired, sd=sd, test=PAIRED_T, untested=NO_SPREAD)
    low, high, p = _t_test(mean, sd / math.sqrt(n), n - 1)
    kind = "t"
    if bootstrap and n >= MIN_BOOTSTRAP_PAIRS:
        low, high = bootstrap_interval(differences)
        kind = "bootstrap"
    return Effect(mean, low, high, p, pairs=n, unpaired=unpaired, sd=sd, test=PAIRED_T, interval=kind, untested=_too_few(n))


def upper_tailed(effect: Effect) -> Effect:
    """The effect tested one-sided, H1: mean > 0 (the two-sided interval kept): the upper-tail
    p-value of the same t statistic, ``p/2`` above zero and ``1 - p/2`` below. For a claim that
    has one direction only ("the weakest camera gains most"), where a significant difference the
    other way would be no finding at all."""
    if effect.p is None:
        return effect
    upper = effect.p / 2 if effect.mean > 0 else 1 - effect.p / 2
    return replace(effect, p=upper)


def welch_effect(reference: Sequence[float], variant: Sequence[float]) -> Effect:
    """Difference of means with Welch's t interval and p-value (unequal variances; the
    Welch-Satterthwaite degrees of freedom). Fewer than two values on a side: no interval."""
    a, b = np.asarray(reference, dtype=float), np.asarray(variant, dtype=float)
    mean = float(b.mean() - a.mean())
    fewest = min(len(a), len(b))
    if fewest < 2:
        return Effect(mean, unpaired=len(a) + len(b), untested=f"{fewest} seed on a side")
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se < SPREAD_TOLERANCE:
        return Effect(mean, unpaired=len(a) + len(b), test=WELCH, untested=NO_SPREAD)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    low, high, p = _t_test(mean, se, df)
    untested = f"{fewest} seeds on a side" if fewest < MIN_TEST_PAIRS else None
    return Effect(mean, low, high, p, unpaired=len(a) + len(b), test=WELCH, untested=untested)


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (None entries are skipped and stay None).

    Sorted ascending, ``p_(i)`` becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``.
    """
    present = [(p, i) for i, p in enumerate(p_values) if p is not None]
    adjusted: list[float | None] = [None] * len(p_values)
    m = len(present)
    running = 0.0
    for rank, (p, index) in enumerate(sorted(present)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[index] = running
    return adjusted


def with_holm(effects: Sequence[Effect | None]) -> list[Effect | None]:
    """One family's effects with Holm-corrected p-values; untested effects stay out of the
    family (their ``p_adjusted`` is None) and do not count in its size."""
    adjusted = holm([e.p if e is not None and e.tested else None for e in effects])
    return [None if e is None else replace(e, p_adjusted=a) for e, a in zip(effects, adjusted)]


def family_size(effects: Sequence[Effect | None]) -> int:
    """How many tested effects a family holds (the m of Holm's correction)."""
    return sum(1 for e in effects if e is not None and e.tested)


# -- how many seeds ------------------------------------------------------------------------
@dataclass(frozen=True)
class SeedsNeeded:
    """Per metric: the pooled paired SD, its degrees of freedom and upper confidence bound, and
    the seeds needed to detect ``delta`` (None when the SD cannot be estimated)."""

    metric: str
    delta: float
    sd: float | None
    df: int
    sd_upper: float | None
    seeds: int | None
    notes: list[str] = field(default_factory=list)


def pooled_sd(effects: Sequence[Effect | None]) -> tuple[float | None, int]:
    """The paired differences' SD pooled over variants: ``sqrt(sum (n_i-1) s_i^2 / sum (n_i-1))``."""
    used = [(e.pairs - 1, e.sd) for e in effects if e is not None and e.test == PAIRED_T and e.sd is not None and e.pairs > 1]
    df = sum(d for d, _ in used)
    if not df:
        return None, 0
    return math.sqrt(sum(d * s * s for d, s in used) / df), df


def sd_upper_bound(sd: float, df: int, confidence: float = 0.8) -> float:
    """One-sided ``confidence`` upper bound of a standard deviation from ``df`` degrees of
    freedom: ``s sqrt(df / chi2_{1-confidence, df})`` (the chi-square interval of a variance)."""
    from scipy.stats import chi2

    return sd * math.sqrt(df / chi2.ppf(1 - confidence, df))


def paired_t_power(n: int, delta: float, sd: float, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t-test with ``n`` pairs against a true mean difference
    ``delta``: ``P(|T| > t_{1-alpha/2, n-1})`` with ``T`` noncentral t, ``df = n - 1``,
    noncentrality ``delta sqrt(n) / sd``."""
    from scipy.stats import nct, t

    df = n - 1
    critical = t.ppf(1 - alpha / 2, df)
    noncentrality = abs(delta) * math.sqrt(n) / sd
    return float(nct.sf(critical, df, noncentrality) + nct.cdf(-critical, df, noncentrality))


def seeds_for_power(delta: float, sd: float, *, power: float = 0.8, alpha: float = ALPHA, limit: int = 10_000) -> int | None:
    """The smallest number of paired seeds (at least 2) with ``power`` to detect ``delta``;
    None if even ``limit`` seeds are not enough."""
    if sd == 0:
        return 2
    n = 2
    while n <= limit:
        if paired_t_power(n, delta, sd, alpha) >= power:
            return n
        n += 1
    return None


def seeds_needed(metric: str, effects: Sequence[Effect | None], delta: float, *, confidence: float = 0.8) -> SeedsNeeded:
    """Seeds a variant needs to detect ``delta`` in ``metric`` at 80% power (two-sided paired
    t, alpha 0.05), planned on the ``confidence`` upper bound of the pooled paired SD."""
    sd, df = pooled_sd(effects)
    if sd is None:
        return SeedsNeeded(metric, delta, None, 0, None, None, ["needs two or more seeds shared with the reference row"])
    upper = sd_upper_bound(sd, df, confidence)
    return SeedsNeeded(metric, delta, sd, df, upper, seeds_for_power(delta, upper))

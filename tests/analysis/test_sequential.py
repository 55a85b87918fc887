"""Group-sequential boundaries, repeated confidence intervals and the decisions built on them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import multivariate_normal, norm, t as student_t

from analysis.sequential import (
    EFFECT,
    NO_EFFECT,
    OPEN,
    UNDECIDED,
    SequentialTests,
    obf_spending,
    repeated_interval,
    two_sided_boundaries,
)


def crossing_probability(times, bounds) -> float:
    """P(|Z_k| >= c_k at some look) for the z statistic under independent increments:
    corr(Z_i, Z_j) = sqrt(t_i / t_j), integrated by scipy's multivariate normal (Genz)."""
    times, bounds = np.asarray(times), np.asarray(bounds)
    cov = np.sqrt(np.minimum.outer(times, times) / np.maximum.outer(times, times))
    inside = multivariate_normal(mean=np.zeros(len(times)), cov=cov).cdf(bounds, lower_limit=-bounds)
    return 1 - float(inside)


def test_five_equally_spaced_looks_give_demets_and_lans_published_boundaries():
    # DeMets & Lan 1994, Statistics in Medicine 13:1341, Table I: O'Brien-Fleming-type
    # spending function, K = 5 equally spaced analyses, two-sided alpha = 0.05.
    bounds = two_sided_boundaries([0.2, 0.4, 0.6, 0.8, 1.0], 0.05)
    assert [round(b, 2) for b in bounds] == [4.88, 3.36, 2.68, 2.29, 2.03]


def test_three_looks_spend_the_error_the_spending_function_allots():
    times = [1 / 3, 2 / 3, 1.0]
    bounds = two_sided_boundaries(times, 0.05)
    assert bounds == pytest.approx((3.710, 2.511, 1.993), abs=1e-3)  # gsDesign sfLDOF, K = 3
    for k in range(1, 4):
        assert crossing_probability(times[:k], bounds[:k]) == pytest.approx(obf_spending(times[k - 1], 0.05), abs=2e-5)


def test_unequal_looks_and_small_levels_match_the_multivariate_normal():
    times = [3 / 10, 5 / 10, 7 / 10, 9 / 10, 1.0]
    bounds = two_sided_boundaries(times, 0.0125)
    assert crossing_probability(times, bounds) == pytest.approx(0.0125, abs=2e-5)
    assert crossing_probability(times[:3], bounds[:3]) == pytest.approx(obf_spending(0.7, 0.0125), abs=2e-5)


def test_one_look_is_the_fixed_sample_test_and_spending_ends_at_alpha():
    assert two_sided_boundaries([1.0], 0.05) == pytest.approx((norm.isf(0.025),))
    assert obf_spending(1.0, 0.05) == 0.05 and obf_spending(0.0, 0.05) == 0.0
    assert 0 < obf_spending(0.3, 0.05) < obf_spending(0.6, 0.05) < 0.05


def test_looks_must_move_forward():
    with pytest.raises(ValueError, match="increase"):
        two_sided_boundaries([0.5, 0.5, 1.0])


def test_the_repeated_interval_is_a_t_interval_at_the_boundarys_nominal_level():
    differences = [0.02, 0.05, -0.01, 0.04, 0.03]
    bound = 2.6
    interval = repeated_interval(differences, bound)
    p = 2 * norm.sf(bound)
    half = student_t.isf(p / 2, 4) * np.std(differences, ddof=1) / math.sqrt(5)
    assert interval.mean == pytest.approx(0.026)
    assert (interval.low, interval.high) == pytest.approx((0.026 - half, 0.026 + half))


def shifted(values, mean):
    values = np.asarray(values, dtype=float)
    return list(values - values.mean() + mean)


NOISE = [0.8, -1.1, 0.3, -0.4, 1.2, -0.6, 0.1, -0.3]  # sd about 0.76


def test_a_large_effect_stops_early_a_null_goes_to_the_last_look():
    tests = SequentialTests(["big", "none"], max_pairs=8, smallest_effect=0.1)
    big, none = shifted(NOISE, 6.0), shifted(NOISE, 0.0)
    tests.look({"big": big[:3], "none": none[:3]})
    assert tests.decisions["big"].outcome == OPEN  # at 3 of 8 pairs the boundary is far out
    tests.look({"big": big[:5], "none": none[:5]})
    assert tests.decisions["big"].outcome == EFFECT and tests.decisions["big"].pairs == 5
    assert tests.open == ["none"]
    tests.look({"none": none[:8]}, final=True)
    assert tests.decisions["none"].outcome == UNDECIDED  # D = 0.1 is far below the noise


def test_no_effect_larger_than_d_when_the_interval_lies_inside():
    tests = SequentialTests(["small"], max_pairs=8, smallest_effect=3.0)
    values = shifted(NOISE, 0.05)
    tests.look({"small": values[:5]})
    decision = tests.decisions["small"]
    assert decision.outcome == NO_EFFECT and decision.pairs == 5
    assert -3.0 < decision.interval.low < 0 < decision.interval.high < 3.0


def test_too_few_pairs_or_no_spread_decide_nothing_but_identical_results_show_no_effect():
    tests = SequentialTests(["two", "flat", "same"], max_pairs=6, smallest_effect=1.0)
    tests.look({"two": [5.0, 5.2], "flat": [2.0, 2.0, 2.0], "same": [0.0, 0.0, 0.0]})
    assert tests.decisions["two"].outcome == OPEN
    assert tests.decisions["flat"].outcome == OPEN  # a constant difference: no spread, no test
    assert tests.decisions["same"].outcome == NO_EFFECT


def interval_half_width(times, level, values):
    bound = two_sided_boundaries(times, level)[-1]
    interval = repeated_interval(values, bound)
    return interval


def test_an_effect_passes_its_level_on_holms_graph():
    # "mid" is chosen so that at 6 of 6 pairs its interval excludes 0 at the full level 0.05
    # but not at 0.025, the level each of two comparisons starts with.
    times = [0.5, 1.0]
    base = shifted(NOISE[:6], 0.0)
    mean = None
    for candidate in np.arange(0.3, 3.0, 0.01):
        values = shifted(base, candidate)
        if interval_half_width(times, 0.05, values).low > 0 and interval_half_width(times, 0.025, values).low <= 0:
            mean = candidate
            break
    assert mean is not None
    mid = shifted(base, mean)
    huge, null = shifted(base, 40.0), shifted(base, 0.0)

    with_effect = SequentialTests(["huge", "mid"], max_pairs=6, smallest_effect=0.01)
    with_effect.look({"huge": huge[:3], "mid": mid[:3]})
    with_effect.look({"huge": huge, "mid": mid}, final=True)
    assert with_effect.decisions["huge"].outcome == EFFECT
    assert with_effect.decisions["mid"].outcome == EFFECT  # at the level "huge" passed on
    assert with_effect.decisions["mid"].level == pytest.approx(0.05)

    without = SequentialTests(["null", "mid"], max_pairs=6, smallest_effect=0.01)
    without.look({"null": null[:3], "mid": mid[:3]})
    without.look({"null": null, "mid": mid}, final=True)
    assert without.decisions["mid"].outcome == UNDECIDED
    assert without.decisions["null"].outcome == UNDECIDED

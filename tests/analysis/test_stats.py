"""The table's statistics against scipy.stats on fixed data, Holm against its definition, and the
seeds-needed estimate against published sample sizes."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from analysis.stats import (
    PAIRED_T,
    WELCH,
    bootstrap_interval,
    holm,
    paired_effect,
    paired_t_power,
    pooled_sd,
    sd_upper_bound,
    seeds_for_power,
    seeds_needed,
    with_holm,
)

REFERENCE = {0: 0.412, 1: 0.398, 2: 0.431, 3: 0.405}
VARIANT = {0: 0.437, 1: 0.409, 2: 0.466, 3: 0.420, 4: 0.5}  # seed 4: the reference's trial failed


def test_paired_effect_equals_scipys_paired_t_test_over_the_shared_seeds():
    effect = paired_effect(REFERENCE, VARIANT)
    seeds = [0, 1, 2, 3]
    expected = scipy_stats.ttest_rel([VARIANT[s] for s in seeds], [REFERENCE[s] for s in seeds])
    interval = expected.confidence_interval(0.95)
    assert effect.test == PAIRED_T and effect.pairs == 4 and effect.unpaired == 1
    assert effect.mean == pytest.approx(np.mean([VARIANT[s] - REFERENCE[s] for s in seeds]), abs=1e-15)
    assert effect.p == pytest.approx(expected.pvalue, rel=1e-12)
    assert (effect.low, effect.high) == pytest.approx((interval.low, interval.high), rel=1e-12)
    # p = 0.028 raw: no star until a family has corrected it; alone in its family, Holm keeps it.
    assert expected.pvalue == pytest.approx(0.02804, abs=1e-5)
    assert effect.tested and not effect.significant
    (corrected,) = with_holm([effect])
    assert corrected.p_adjusted == pytest.approx(expected.pvalue) and corrected.significant


def test_equal_differences_have_no_spread_and_no_test():
    # The case: two seeds, both -0.6 points: the old table printed -0.6 [-0.6, -0.6]*.
    effect = paired_effect({0: 0.400, 1: 0.500}, {0: 0.394, 1: 0.494})
    assert effect.mean == pytest.approx(-0.006) and effect.sd < 1e-15
    assert not effect.has_interval and effect.p is None and effect.untested == "no spread"
    three = paired_effect({0: 0.4, 1: 0.5, 2: 0.6}, {0: 0.41, 1: 0.51, 2: 0.61})
    assert three.untested == "no spread" and not with_holm([three])[0].significant


def test_two_pairs_give_a_wide_interval_but_no_test_and_stay_out_of_the_family():
    two = paired_effect({0: 0.40, 1: 0.42}, {0: 0.45, 1: 0.48})
    expected = scipy_stats.ttest_rel([0.45, 0.48], [0.40, 0.42])
    assert two.p == pytest.approx(expected.pvalue) and two.untested == "2 paired seeds"
    assert (two.low, two.high) == pytest.approx(tuple(expected.confidence_interval()))  # t with 1 df: wide
    tested = paired_effect(REFERENCE, VARIANT)
    corrected_two, corrected_tested = with_holm([two, tested])
    # The family holds one test: the tested effect's p is not doubled by the untested one.
    assert corrected_two.p_adjusted is None and not corrected_two.significant
    assert corrected_tested.p_adjusted == pytest.approx(tested.p)


def test_no_shared_seed_falls_back_to_welch_as_scipy_computes_it():
    reference = {0: 0.40, 1: 0.43, 2: 0.38}
    variant = {5: 0.47, 6: 0.45, 7: 0.52, 8: 0.49}
    effect = paired_effect(reference, variant)
    expected = scipy_stats.ttest_ind(list(variant.values()), list(reference.values()), equal_var=False)
    interval = expected.confidence_interval(0.95)
    assert effect.test == WELCH
    assert effect.p == pytest.approx(expected.pvalue, rel=1e-10)
    assert (effect.low, effect.high) == pytest.approx((interval.low, interval.high), rel=1e-10)


def test_one_seed_gives_a_difference_but_no_interval():
    effect = paired_effect({0: 0.4}, {0: 0.45})
    assert effect.mean == pytest.approx(0.05) and not effect.has_interval and effect.p is None
    assert not effect.significant
    assert paired_effect({0: 0.4}, {}) is None


def test_the_bootstrap_is_offered_from_five_pairs_up_and_agrees_with_scipy():
    four = paired_effect(REFERENCE, VARIANT, bootstrap=True)
    assert four.interval == "t"  # four pairs: the t interval stays
    rng = np.random.default_rng(3)
    reference = {s: 0.4 + 0.02 * rng.standard_normal() for s in range(8)}
    variant = {s: reference[s] + 0.01 + 0.015 * rng.standard_normal() for s in range(8)}
    effect = paired_effect(reference, variant, bootstrap=True)
    assert effect.interval == "bootstrap" and effect.pairs == 8
    differences = [variant[s] - reference[s] for s in range(8)]
    expected = scipy_stats.bootstrap((differences,), np.mean, method="percentile", n_resamples=20_000, random_state=1).confidence_interval
    # Monte Carlo on both sides: equal within a small share of the interval's width.
    width = expected.high - expected.low
    assert effect.low == pytest.approx(expected.low, abs=0.05 * width)
    assert effect.high == pytest.approx(expected.high, abs=0.05 * width)
    assert bootstrap_interval(differences) == bootstrap_interval(differences)  # reproducible


def holm_by_definition(p_values):
    """Holm as closed testing of Bonferroni tests (Marcus, Peritz & Gabriel 1976): hypothesis i
    is rejected at level a when every intersection S containing i is, i.e. when
    |S| * min_{j in S} p_j <= a for all such S; its adjusted p-value is the largest of those."""
    m = len(p_values)
    adjusted = []
    for i in range(m):
        worst = 0.0
        for size in range(1, m + 1):
            for subset in itertools.combinations(range(m), size):
                if i in subset:
                    worst = max(worst, min(1.0, size * min(p_values[j] for j in subset)))
        adjusted.append(worst)
    return adjusted


def test_holm_matches_its_definition_and_a_worked_example():
    p = [0.01, 0.04, 0.03, 0.005]
    # Worked by hand: sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 -> 0.02, 0.03, 0.06, 0.04 -> monotone 0.06.
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    rng = np.random.default_rng(0)
    for _ in range(50):
        values = list(rng.uniform(0, 0.2, size=rng.integers(1, 7)))
        assert holm(values) == pytest.approx(holm_by_definition(values))
    assert holm([None, 0.02, None, 0.04]) == [None, pytest.approx(0.04), None, pytest.approx(0.04)]
    corrected = with_holm([paired_effect(REFERENCE, VARIANT), None])
    assert corrected[0].p_adjusted == pytest.approx(corrected[0].p) and corrected[1] is None
    # Two tested effects: the smaller p doubled (0.028 -> 0.056: no longer significant).
    other = paired_effect(REFERENCE, {s: v + 0.05 + 0.01 * (-1) ** s for s, v in REFERENCE.items()})
    first, second = with_holm([paired_effect(REFERENCE, VARIANT), other])
    assert second.p < first.p
    assert second.p_adjusted == pytest.approx(2 * second.p) and first.p_adjusted == pytest.approx(max(first.p, 2 * second.p))


@pytest.mark.parametrize(("effect_size", "published"), [(0.5, 34), (1.0, 10)])
def test_seeds_for_power_matches_published_one_sample_t_sample_sizes(effect_size, published):
    # G*Power / Cohen (1988): two-sided one-sample (paired) t, alpha 0.05, power 0.80.
    assert seeds_for_power(effect_size, 1.0) == published
    assert paired_t_power(published, effect_size, 1.0) >= 0.8 > paired_t_power(published - 1, effect_size, 1.0)


def test_power_equals_a_simulated_paired_t_test():
    rng = np.random.default_rng(7)
    n, delta, sd = 6, 1.0, 1.0
    samples = rng.normal(delta, sd, size=(20_000, n))
    t = samples.mean(axis=1) / (samples.std(axis=1, ddof=1) / math.sqrt(n))
    simulated = np.mean(np.abs(t) > scipy_stats.t.ppf(0.975, n - 1))
    assert paired_t_power(n, delta, sd) == pytest.approx(simulated, abs=0.01)


def test_seeds_needed_plans_on_the_upper_bound_of_the_pooled_paired_sd():
    effects = [paired_effect(REFERENCE, VARIANT), paired_effect(REFERENCE, {s: v + 0.01 * (-1) ** s for s, v in REFERENCE.items()})]
    sd, df = pooled_sd(effects)
    s1, s2 = effects[0].sd, effects[1].sd
    assert df == 6 and sd == pytest.approx(math.sqrt((3 * s1**2 + 3 * s2**2) / 6))
    upper = sd_upper_bound(sd, df)
    # The 80% one-sided bound: P(chi2_df < df s^2 / sigma^2) = 0.2 at sigma = upper.
    assert scipy_stats.chi2.cdf(df * sd**2 / upper**2, df) == pytest.approx(0.2)
    plan = seeds_needed("mAP", effects, 0.01)
    assert plan.sd_upper == pytest.approx(upper) and plan.seeds == seeds_for_power(0.01, upper)
    assert plan.seeds > seeds_for_power(0.01, sd)  # the bound is more cautious than the estimate
    assert seeds_needed("mAP", [paired_effect({0: 0.1}, {0: 0.2})], 0.01).seeds is None


def test_every_pair_of_seed_sets_counts_what_it_leaves_out():
    for left, right in itertools.product([(0, 1, 2), (0, 1), (1, 2, 3)], repeat=2):
        effect = paired_effect({s: 0.1 * s for s in left}, {s: 0.1 * s + 0.01 for s in right})
        assert effect.pairs == len(set(left) & set(right))
        assert effect.unpaired == len(set(left) ^ set(right))

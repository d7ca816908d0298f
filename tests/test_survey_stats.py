"""survey.stats against textbook values: Wilson, exact binomial test, d', Fleiss' kappa, the two-way bootstrap,
the boundary fallback (Wilson on an effective n, the score test), MOVER differences and Holm's adjustment."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from survey.stats import (
    TwoWayBootstrap,
    binomial_test,
    difference_interval,
    dprime,
    effective_wilson_interval,
    fleiss_kappa,
    holm_adjust,
    inverted_p_value,
    score_test,
    wilson_interval,
)


# Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table II, method 3 (score).
@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)],
)
def test_wilson_interval_matches_newcombe_1998(k, n, low, high):
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=1e-4)
    assert hi == pytest.approx(high, abs=1e-4)


def test_wilson_interval_edge_cases():
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    lo, hi = wilson_interval(20, 20)
    assert hi == 1.0 and 0.8 < lo < 0.85
    narrow, wide = wilson_interval(50, 100, confidence=0.8), wilson_interval(50, 100, confidence=0.99)
    assert wide[0] < narrow[0] < 0.5 < narrow[1] < wide[1]
    with pytest.raises(ValueError):
        wilson_interval(5, 4)


def test_binomial_test_known_values():
    # 7 of 10 against 1/2: P(X >= 7) + P(X <= 3) = 2 * 176 / 1024
    assert binomial_test(7, 10) == pytest.approx(0.34375, abs=1e-12)
    assert binomial_test(5, 10) == pytest.approx(1.0)
    assert binomial_test(0, 10) == pytest.approx(2 / 1024)
    assert math.isnan(binomial_test(0, 0))


def test_dprime_known_cases():
    # Hit rate Phi(1), false-alarm rate Phi(-1): d' = 2 exactly.
    assert dprime(norm.cdf(1.0), 1, norm.cdf(-1.0), 1, correction=None) == pytest.approx(2.0)
    # Perfect observer, 10 trials each: log-linear rates 10.5/11 and 0.5/11 (Hautus 1995).
    assert dprime(10, 10, 0, 10) == pytest.approx(2 * norm.ppf(10.5 / 11), abs=1e-12)
    assert dprime(10, 10, 0, 10) == pytest.approx(3.3812, abs=1e-4)
    assert math.isinf(dprime(10, 10, 0, 10, correction=None))
    # Chance performance gives 0, and the correction is applied to every cell, not just 0/1 ones.
    assert dprime(30, 40, 30, 40) == pytest.approx(0.0)
    assert dprime(30, 40, 10, 40) == pytest.approx(norm.ppf(30.5 / 41) - norm.ppf(10.5 / 41))
    expected = norm.ppf(30.5 / 41) - norm.ppf(10.5 / 41)
    assert np.allclose(dprime(np.array([30, 10]), 40, np.array([10, 30]), 40), [expected, -expected])
    assert math.isnan(dprime(3, 0, 1, 10))


WIKIPEDIA_FLEISS = [  # https://en.wikipedia.org/wiki/Fleiss%27_kappa worked example: 10 items, 14 raters, 5 categories
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def test_fleiss_kappa_wikipedia_example():
    assert fleiss_kappa(WIKIPEDIA_FLEISS) == pytest.approx(0.210, abs=5e-4)


def test_fleiss_kappa_unequal_raters_and_degenerate_tables():
    # Items rated once are dropped; they carry no agreement information.
    with_singletons = WIKIPEDIA_FLEISS + [[1, 0, 0, 0, 0], [0, 0, 0, 1, 0]]
    assert fleiss_kappa(with_singletons) == pytest.approx(fleiss_kappa(WIKIPEDIA_FLEISS))
    # Unequal counts, by hand: P_i = (2*1 + 0)/(2*1) = 1, (3*2 + 1*0)/(4*3) = 0.5, (1*0 + 2*1)/(3*2) = 1/3;
    # p = (2+3+1, 0+1+2)/9 = (2/3, 1/3); P_e = 5/9.
    p_bar, p_e = (1 + 0.5 + 1 / 3) / 3, 5 / 9
    assert fleiss_kappa([[2, 0], [3, 1], [1, 2]]) == pytest.approx((p_bar - p_e) / (1 - p_e))
    assert fleiss_kappa([[3, 0], [0, 3], [2, 0]]) == pytest.approx(1.0)
    assert math.isnan(fleiss_kappa([[3, 0], [4, 0]]))  # one category only: kappa undefined
    assert math.isnan(fleiss_kappa([[1, 0], [0, 1]]))  # nobody rated twice
    with pytest.raises(ValueError):
        fleiss_kappa([1, 2, 3])


def _crossed(rng, people=30, images=20, rate=0.3):
    p, i = np.meshgrid(np.arange(people), np.arange(images), indexing="ij")
    y = (rng.random(p.shape) < rate).astype(float)
    return np.column_stack([np.ones(y.size), y.ravel()]), p.ravel(), i.ravel()


def test_two_way_bootstrap_removes_the_triple_counted_noise():
    rng = np.random.default_rng(1)
    values, people, images = _crossed(rng)
    boot = TwoWayBootstrap(values, people, images, n_boot=800, seed=0)
    result = boot.interval(lambda s: s[..., 1] / s[..., 0], bounds=(0, 1))
    binomial_se = math.sqrt(result.estimate * (1 - result.estimate) / len(people))
    # Independent answers: the product resampling's variance is ~3x the binomial one; the corrected one ~1x.
    assert 2.2 < (result.se_pigeonhole / binomial_se) ** 2 < 4.0
    assert 0.75 < result.se / binomial_se < 1.3
    assert result.low < result.estimate < result.high
    assert result.reps_used == 800


def test_two_way_bootstrap_is_reproducible_and_refuses_one_cluster():
    rng = np.random.default_rng(2)
    values, people, images = _crossed(rng, people=5, images=6)
    stat = lambda s: s[..., 1] / s[..., 0]  # noqa: E731
    a = TwoWayBootstrap(values, people, images, n_boot=200, seed=3).interval(stat)
    b = TwoWayBootstrap(values, people, images, n_boot=200, seed=3).interval(stat)
    assert a == b
    one = TwoWayBootstrap(values[:6], people[:6], images[:6], n_boot=200, seed=3).interval(stat)
    assert np.all(people[:6] == 0)
    assert math.isnan(one.low) and math.isnan(one.high) and not math.isnan(one.estimate)


def test_wilson_bounds_are_exact_at_zero_and_all_successes():
    from survey.stats import wilson_interval

    assert wilson_interval(0, 7)[0] == 0.0
    assert wilson_interval(7, 7)[1] == 1.0


def test_fooling_rate_figure_draws_a_zero_rate():
    import pandas as pd

    from survey.report import fooling_rate_figure
    from survey.stats import wilson_interval

    low, high = wilson_interval(0, 12)
    table = pd.DataFrame(
        {
            "method": ["m"], "stimulus": ["fake"], "mode": ["pair"], "rate": [0.0], "n_trials": [12],
            "wilson_low": [low], "wilson_high": [high], "boot_low": [1e-17], "boot_high": [0.2],
        }
    )
    figure = fooling_rate_figure(table)
    bars = [segment[:, 1] for container in figure.axes[0].containers for segment in container.lines[2][0].get_segments()]
    # both intervals drawn from the zero rate up; the bootstrap's bound a hair above it is drawn flat
    assert sorted((round(low, 6), round(high, 6)) for low, high in bars) == sorted([(0.0, round(high, 6)), (0.0, 0.2)])


# -- the boundary fallback, clustered p-values and multiple comparisons (issue 15) ---------------


def test_effective_wilson_interval_is_wilson_on_fewer_trials_and_keeps_its_width_at_the_boundary():
    assert effective_wilson_interval(0, 100, 25) == pytest.approx(wilson_interval(0, 25))
    assert effective_wilson_interval(40, 100, 50) == pytest.approx(wilson_interval(20, 50))
    low, high = effective_wilson_interval(100, 100, 40)
    assert high == 1.0 and low == pytest.approx(wilson_interval(40, 40)[0]) and low < wilson_interval(100, 100)[0]
    assert effective_wilson_interval(0, 100, 100) == wilson_interval(0, 100)
    assert all(math.isnan(v) for v in effective_wilson_interval(0, 0, 1))
    with pytest.raises(ValueError):
        effective_wilson_interval(3, 10, 11)


@pytest.mark.parametrize(("k", "n", "n_eff"), [(3, 40, 40), (0, 60, 20), (31, 50, 12.5), (50, 50, 30)])
def test_score_test_is_the_test_the_wilson_interval_inverts(k, n, n_eff):
    for p0 in np.linspace(0.02, 0.98, 49):
        low, high = effective_wilson_interval(k, n, n_eff)
        p = score_test(k, n, p=p0, effective_trials=n_eff)
        if abs(p - 0.05) > 1e-9:
            assert (p < 0.05) == (not low <= p0 <= high), (p0, p, low, high)
    wilson_p = inverted_p_value(lambda c: effective_wilson_interval(k, n, n_eff, confidence=c), 0.5)
    assert wilson_p == pytest.approx(score_test(k, n, p=0.5, effective_trials=n_eff), abs=1e-6)
    assert math.isnan(score_test(0, 0))


# Newcombe (1998), "Interval estimation for the difference between independent proportions",
# Table II, method 10 (the hybrid score interval: MOVER with Wilson intervals).
@pytest.mark.parametrize(
    ("a", "m", "b", "n", "low", "high"),
    [(56, 70, 48, 80, 0.0524, 0.3339), (9, 10, 3, 10, 0.1705, 0.8090), (6, 7, 2, 7, 0.0582, 0.8062), (5, 56, 0, 29, -0.0381, 0.1926)],
)
def test_difference_interval_matches_newcombe_1998_method_10(a, m, b, n, low, high):
    lo, hi = difference_interval(a / m, wilson_interval(a, m), b / n, wilson_interval(b, n))
    assert (lo, hi) == pytest.approx((low, high), abs=1e-4)


def test_difference_interval_keeps_width_when_both_rates_sit_at_the_boundary():
    lo, hi = difference_interval(1.0, wilson_interval(30, 30), 0.0, wilson_interval(0, 30))
    assert hi == pytest.approx(1.0) and 0.8 < lo < 0.95


def test_holm_adjust_textbook_and_nan():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06
    assert holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adjusted = holm_adjust([0.02, math.nan, 0.5])
    assert adjusted[0] == pytest.approx(0.04) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.5)
    assert holm_adjust([0.6, 0.7]) == pytest.approx([1.0, 1.0])
    assert holm_adjust([]).shape == (0,)


def test_bootstrap_p_value_inverts_its_own_interval():
    rng = np.random.default_rng(4)
    values, people, images = _crossed(rng, people=20, images=15, rate=0.4)
    boot = TwoWayBootstrap(values, people, images, n_boot=2000, seed=1)
    stat = lambda s: s[..., 1] / s[..., 0]  # noqa: E731
    for null in np.linspace(0.25, 0.55, 31):
        result = boot.interval(stat, bounds=(0, 1), null=null)
        if abs(result.p_value - 0.05) > 2 / boot.n_boot:  # away from the resolution of the replicates
            assert (result.p_value < 0.05) == (not result.low <= null <= result.high), (null, result)
    assert math.isnan(boot.interval(stat).p_value)  # no null, no p-value
    never = TwoWayBootstrap(np.column_stack([np.ones(30), np.zeros(30)]), np.arange(30) % 5, np.arange(30) % 6, n_boot=100)
    collapsed = never.interval(stat, bounds=(0, 1))
    assert collapsed.collapsed and (collapsed.low, collapsed.high) == (0.0, 0.0)

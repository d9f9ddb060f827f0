"""The guardrails' one-sided degradation tests against statsmodels and scipy (never against our own formulas).

A guardrail vetoes a variant only when its degradation beyond the allowed margin is significant; these pin the
three tests that decide it: rates (error, guardrail), means (cost per request) and the latency P95.
"""

import math

import numpy as np
import pytest
from scipy import stats
from scipy.stats import mstats
from statsmodels.stats import proportion as sm_proportion
from statsmodels.stats import weightstats

from experiments.stats import (
    StatsError,
    mean_degradation_test,
    quantile_degradation_test,
    quantile_standard_error,
    rate_degradation_test,
)


@pytest.mark.parametrize(("x_a", "n_a", "x_b", "n_b", "margin"), [
    (20, 1000, 40, 1000, 0.005),
    (20, 1000, 26, 1000, 0.005),  # beyond the margin by the point estimates, not significantly
    (5, 400, 3, 500, 0.0),
    (150, 2000, 260, 2500, 0.02),
    (0, 300, 4, 300, 0.001),
])
def test_absolute_rate_degradation_is_statsmodels_wald_test_larger(x_a, n_a, x_b, n_b, margin):
    expected = sm_proportion.test_proportions_2indep(x_b, n_b, x_a, n_a, value=margin, method="wald", compare="diff", alternative="larger")

    result = rate_degradation_test(x_a, n_a, x_b, n_b, margin)

    assert result.statistic == pytest.approx(expected.statistic, rel=1e-9)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    assert result.significant is bool(expected.pvalue < 0.05)
    assert result.degradation == pytest.approx(x_b / n_b - x_a / n_a, rel=1e-12)
    assert result.excess == pytest.approx(x_b / n_b - x_a / n_a - margin, rel=1e-12, abs=1e-15)


def test_a_rate_beyond_the_margin_by_chance_is_not_significant_and_a_large_one_is():
    small = rate_degradation_test(20, 1000, 26, 1000, 0.005)
    large = rate_degradation_test(20, 10_000, 60, 10_000, 0.001)

    assert small.excess > 0 and not small.significant
    assert large.excess > 0 and large.significant


def test_relative_rate_degradation_is_the_wald_test_of_the_contrast():
    # H0: p_b <= 1.2 p_a. The contrast p_b - 1.2 p_a with its unpooled variance, computed here from the counts.
    x_a, n_a, x_b, n_b = 100, 5000, 150, 5000
    p_a, p_b = x_a / n_a, x_b / n_b
    se = math.sqrt(p_b * (1 - p_b) / n_b + 1.2**2 * p_a * (1 - p_a) / n_a)
    z = (p_b - 1.2 * p_a) / se

    result = rate_degradation_test(x_a, n_a, x_b, n_b, 0.2, relative=True)

    assert result.statistic == pytest.approx(z, rel=1e-12)
    assert result.p_value == pytest.approx(stats.norm.sf(z), rel=1e-12)
    assert result.degradation == pytest.approx(0.5, rel=1e-12)
    # the relative test at margin 0 is the absolute one at margin 0
    assert rate_degradation_test(x_a, n_a, x_b, n_b, 0.0, relative=True).p_value == pytest.approx(
        sm_proportion.test_proportions_2indep(x_b, n_b, x_a, n_a, value=0, method="wald", compare="diff", alternative="larger").pvalue, rel=1e-9)


@pytest.mark.parametrize(("margin", "relative", "k", "shift"), [(0.0002, False, 1.0, 0.0002), (0.1, True, 1.1, 0.0), (0.0, False, 1.0, 0.0)])
def test_mean_degradation_is_statsmodels_welch_test_larger_of_b_against_k_times_a(margin, relative, k, shift):
    rng = np.random.default_rng(7)
    a, b = rng.gamma(2.0, 0.001, 800), rng.gamma(2.0, 0.00115, 650)
    statistic, p_value, df = weightstats.ttest_ind(b, k * a, value=shift, alternative="larger", usevar="unequal")

    result = mean_degradation_test(a.mean(), a.var(ddof=1), a.size, b.mean(), b.var(ddof=1), b.size, margin, relative=relative)

    assert result.statistic == pytest.approx(statistic, rel=1e-9)
    assert result.p_value == pytest.approx(p_value, rel=1e-9)
    assert result.df == pytest.approx(df, rel=1e-9)
    assert result.significant is bool(p_value < 0.05)


def test_mean_degradation_needs_two_values_per_arm():
    with pytest.raises(StatsError, match="n_a"):
        mean_degradation_test(1.0, 0.1, 1, 1.0, 0.1, 10, 0.1)


@pytest.mark.parametrize(("n", "q", "seed"), [(50, 0.95, 1), (1000, 0.95, 2), (1000, 0.5, 3), (20_000, 0.95, 4), (200_000, 0.99, 5)])
def test_quantile_standard_error_is_scipys_maritz_jarrett(n, q, seed):
    values = np.random.default_rng(seed).gamma(4.0, 50.0, n)

    assert quantile_standard_error(values, q) == pytest.approx(float(mstats.mjci(values, prob=[q])[0]), rel=1e-6)  # scipy sums uncentred: a few digits fewer


def test_quantile_standard_error_is_the_same_in_any_order_and_with_ties():
    values = np.round(np.random.default_rng(11).gamma(4.0, 50.0, 5000), -1)  # heavy ties

    shuffled = np.random.default_rng(12).permutation(values)

    expected = float(mstats.mjci(values, prob=[0.95])[0])
    assert quantile_standard_error(shuffled, 0.95) == pytest.approx(expected, rel=1e-7)


def test_quantile_standard_error_needs_values_on_both_sides_of_the_quantile():
    with pytest.raises(StatsError, match="more values are needed"):
        quantile_standard_error([1.0, 2.0, 3.0], 0.95)


@pytest.mark.parametrize(("margin", "relative"), [(0.1, True), (5.0, False)])
def test_quantile_degradation_is_a_z_test_of_the_p95s_with_maritz_jarrett_errors(margin, relative):
    rng = np.random.default_rng(21)
    a, b = rng.gamma(4.0, 50.0, 4000), rng.gamma(4.0, 60.0, 3000)
    q_a, q_b = np.percentile(a, 95), np.percentile(b, 95)
    se_a, se_b = (float(mstats.mjci(x, prob=[0.95])[0]) for x in (a, b))
    k, shift = (1 + margin, 0.0) if relative else (1.0, margin)
    z = (q_b - k * q_a - shift) / math.sqrt(se_b**2 + k**2 * se_a**2)

    result = quantile_degradation_test(a, b, margin, relative=relative)

    assert (result.value_a, result.value_b) == (pytest.approx(q_a, rel=1e-12), pytest.approx(q_b, rel=1e-12))
    assert result.statistic == pytest.approx(z, rel=1e-6)
    assert result.p_value == pytest.approx(stats.norm.sf(z), rel=1e-5, abs=1e-300)


def test_no_spread_makes_the_difference_exact():
    over = rate_degradation_test(0, 500, 500, 500, 0.01)
    within = rate_degradation_test(0, 500, 0, 500, 0.01)
    constant = mean_degradation_test(1.0, 0.0, 10, 1.2, 0.0, 10, 0.1)

    assert (over.statistic, over.p_value, over.significant) == (None, 0.0, True)
    assert (within.statistic, within.p_value, within.significant) == (None, 1.0, False)
    assert (constant.statistic, constant.p_value, constant.df) == (None, 0.0, 18.0)


@pytest.mark.parametrize("call", [
    lambda: rate_degradation_test(1, 10, 2, 10, -0.1),
    lambda: rate_degradation_test(1, 10, 2, 10, float("nan")),
    lambda: rate_degradation_test(11, 10, 2, 10, 0.1),
    lambda: mean_degradation_test(1.0, -1.0, 10, 1.0, 1.0, 10, 0.1),
    lambda: quantile_degradation_test([1.0] * 100, [1.0] * 100, 0.1, alpha=1.5),
])
def test_bad_input_is_refused(call):
    with pytest.raises(StatsError):
        call()


def refused(call) -> str:
    with pytest.raises(StatsError) as caught:
        call()
    return str(caught.value)


NAN = float("nan")
A, B = [1.0, 2.0, 3.0, 4.0], [2.0, 3.0, 4.0, 5.0]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: rate_degradation_test(1, 10, 2, 10, 0.1, alpha=0), "alpha must be in (0, 1), got 0.0"),
        (lambda: rate_degradation_test(1, 10, 2, 10, NAN), "margin must be finite, got nan"),
        (lambda: rate_degradation_test(1, 10, 2, 10, -0.1), "margin must be >= 0, got -0.1"),
        (lambda: rate_degradation_test(11, 10, 2, 10, 0.1), "successes_a (11) exceeds total_a (10)"),
        (lambda: mean_degradation_test(1.0, 0.1, 1, 1.0, 0.1, 10, 0.1), "n_a must be >= 2, got 1"),
        (lambda: mean_degradation_test(1.0, 0.1, 10, 1.0, 0.1, 1, 0.1), "n_b must be >= 2, got 1"),
        (lambda: mean_degradation_test(NAN, 0.1, 10, 1.0, 0.1, 10, 0.1), "mean_a must be finite, got nan"),
        (lambda: mean_degradation_test(1.0, 0.1, 10, NAN, 0.1, 10, 0.1), "mean_b must be finite, got nan"),
        (lambda: mean_degradation_test(1.0, -1.0, 10, 1.0, 0.1, 10, 0.1), "var_a must be >= 0, got -1.0"),
        (lambda: mean_degradation_test(1.0, 0.1, 10, 1.0, -1.0, 10, 0.1), "var_b must be >= 0, got -1.0"),
        (lambda: mean_degradation_test(1.0, 0.1, 10, 1.0, 0.1, 10, 0.1, alpha=1.5), "alpha must be in (0, 1), got 1.5"),
        (lambda: quantile_degradation_test([1.0], B, 0.1), "a needs at least 2 values, got 1"),
        (lambda: quantile_degradation_test(A, [1.0], 0.1), "b needs at least 2 values, got 1"),
        (lambda: quantile_degradation_test(A, B, 0.1, alpha=1.5), "alpha must be in (0, 1), got 1.5"),
        (lambda: quantile_degradation_test(A, B, 0.1, q=1.0), "q must be in (0, 1), got 1.0"),
        (lambda: quantile_standard_error([1.0, 2.0, 3.0], 0.95), "the 0.95 quantile of 3 values has no Maritz-Jarrett standard error: more values are needed"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_bad_input_is_refused_with_a_message_naming_the_argument_and_the_rule(call, message):
    # given input outside a function's contract (in each case)

    # when
    got = refused(call)

    # then
    assert got == message


def test_the_smallest_mean_arms_of_two_values_are_statsmodels_welch_test():
    # given two values per arm: A = [0.5, 1.5] (mean 1, variance 0.5), B = [2, 3] (mean 2.5, variance 0.5)
    statistic, p_value, df = weightstats.ttest_ind([2.0, 3.0], [0.5, 1.5], value=0.5, alternative="larger", usevar="unequal")

    result = mean_degradation_test(1.0, 0.5, 2, 2.5, 0.5, 2, 0.5)

    assert (result.statistic, result.p_value, result.df) == (pytest.approx(statistic, rel=1e-12), pytest.approx(p_value, rel=1e-12), pytest.approx(df, rel=1e-12))


def test_the_result_states_the_margin_the_kind_of_margin_and_the_standard_error():
    # given 20 errors in 1,000 requests against 40 in 1,000, margin 0.005 absolute, then 10 % relative
    se = math.sqrt(0.02 * 0.98 / 1000 + 0.04 * 0.96 / 1000)
    se_relative = math.sqrt(0.04 * 0.96 / 1000 + 1.1**2 * 0.02 * 0.98 / 1000)

    absolute = rate_degradation_test(20, 1000, 40, 1000, 0.005)
    relative = rate_degradation_test(20, 1000, 40, 1000, 0.1, relative=True)
    means = mean_degradation_test(1.0, 0.5, 2, 2.5, 0.5, 2, 0.2, relative=True)
    latency = quantile_degradation_test(np.arange(100.0), np.arange(100.0) + 5, 3.0)

    assert (absolute.margin, absolute.relative, absolute.se) == (0.005, False, pytest.approx(se, rel=1e-12))
    assert (relative.margin, relative.relative, relative.se) == (0.1, True, pytest.approx(se_relative, rel=1e-12))
    assert (relative.excess, relative.degradation) == (pytest.approx(0.04 - 1.1 * 0.02, rel=1e-12), pytest.approx(1.0, rel=1e-12))
    assert (means.margin, means.relative) == (0.2, True)
    assert (latency.margin, latency.relative, latency.excess) == (3.0, False, pytest.approx(2.0, rel=1e-12))


def test_a_margin_is_absolute_unless_said_relative():
    # given latencies and costs with a margin of 0.1 and no word on its kind
    rng = np.random.default_rng(31)
    a, b = rng.gamma(2.0, 1.0, 400), rng.gamma(2.0, 1.1, 300)
    statistic, _, _ = weightstats.ttest_ind(b, a, value=0.1, alternative="larger", usevar="unequal")

    means = mean_degradation_test(a.mean(), a.var(ddof=1), a.size, b.mean(), b.var(ddof=1), b.size, 0.1)
    latency = quantile_degradation_test(a, b, 0.1)

    assert (means.relative, means.statistic) == (False, pytest.approx(statistic, rel=1e-9))
    assert latency.relative is False
    assert latency.excess == pytest.approx(np.percentile(b, 95) - np.percentile(a, 95) - 0.1, rel=1e-12)


def test_relative_degradation_is_b_over_a_minus_one_and_none_when_a_is_zero():
    # given A's mean exactly 1 (the degradation is B - 1), and an error rate of A at 0
    mean_of_one = mean_degradation_test(1.0, 0.5, 2, 2.5, 0.5, 2, 0.1, relative=True)
    rate_from_zero = rate_degradation_test(0, 100, 5, 100, 0.1, relative=True)

    assert mean_of_one.degradation == 1.5
    assert rate_from_zero.degradation is None
    assert rate_from_zero.excess == 0.05


def test_no_errors_in_either_arm_with_no_margin_is_no_degradation():
    # given 0 % against 0 %: no spread, B - A - margin exactly 0

    result = rate_degradation_test(0, 100, 0, 100, 0.0)

    assert (result.excess, result.statistic, result.p_value, result.significant) == (0.0, None, 1.0, False)


def test_significant_means_a_p_value_below_alpha_not_equal_to_it():
    # given a test's p-value, then that p-value as alpha
    p_value = rate_degradation_test(20, 1000, 40, 1000, 0.005).p_value

    at_alpha = rate_degradation_test(20, 1000, 40, 1000, 0.005, alpha=p_value)
    above = rate_degradation_test(20, 1000, 40, 1000, 0.005, alpha=p_value * 1.001)

    assert at_alpha.significant is False
    assert above.significant is True


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: quantile_standard_error([1.0], 0.5), "values needs at least 2 values, got 1"),
        (lambda: quantile_standard_error([1.0, 2.0, 3.0, 4.0], 1.0), "q must be in (0, 1), got 1.0"),
        (lambda: quantile_standard_error([1.0, 2.0, 3.0, 4.0], 0.3), "the 0.3 quantile of 4 values has no Maritz-Jarrett standard error: more values are needed"),
        (lambda: quantile_standard_error([1.0, 2.0, 3.0, 4.0], 0.9), "the 0.9 quantile of 4 values has no Maritz-Jarrett standard error: more values are needed"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_quantile_standard_error_refuses_bad_input_with_a_message(call, message):
    # given input outside the contract: m = int(q n + 0.5) must lie in [2, n - 1] (0.3 of 4: m = 1; 0.9 of 4: m = 4)

    # when
    got = refused(call)

    # then
    assert got == message


@pytest.mark.parametrize("q", [0.5, 0.75])
def test_quantile_standard_error_of_four_values_at_both_ends_of_its_range_is_scipys(q):
    # given 4 values: q = 0.5 gives m = 2 (the lowest allowed), q = 0.75 gives m = 3 = n - 1 (the highest)
    values = np.array([3.0, 1.0, 4.0, 1.5])

    se = quantile_standard_error(values, q)

    assert se == pytest.approx(float(mstats.mjci(values, prob=[q])[0]), rel=1e-12)


def test_quantile_standard_error_keeps_its_digits_far_from_zero_and_below_one():
    # given latencies of about 0.2 s stored as seconds since an epoch a billion seconds ago: the standard error
    # does not depend on the offset, so scipy on the offset-free values (exact: Sterbenz) is the reference
    noise = np.random.default_rng(41).gamma(4.0, 0.05, 3000)
    values = 1e9 + noise

    se = quantile_standard_error(values, 0.95)

    expected = float(mstats.mjci(values - 1e9, prob=[0.95])[0])
    assert expected < 0.01
    assert se == pytest.approx(expected, rel=1e-6)


def test_a_missing_value_among_the_latencies_is_refused_as_not_finite():
    # given a None among the values (a missing latency), not NaN

    got = refused(lambda: quantile_degradation_test([1.0, None, 3.0, 4.0], B, 0.1))

    assert got == "a contains NaN or inf"

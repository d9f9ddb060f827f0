"""experiments/stats.py against independent references: statsmodels, scipy, gbstats, hashlib and
hand-computed worked examples. Never against its own formulas.

gbstats 0.8.0 pins numpy<2 and pandas<2 in its metadata while the project needs numpy>=2, so pip
cannot resolve it beside requirements.txt (see requirements-dev.txt). Its answers are therefore
kept here as literals (generated once with gbstats 0.8.0, whose code runs fine on numpy 2), and the
live randomized comparison runs against gbstats itself, which the Makefile installs with --no-deps.
"""

import hashlib
import math
import warnings

import numpy as np
import pytest
from scipy import stats
from statsmodels.api import OLS, add_constant
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_effectsize, proportions_ztest
from statsmodels.stats.weightstats import CompareMeans
from statsmodels.tools.sm_exceptions import ConvergenceWarning

from experiments.stats import (
    ArmSummary,
    CovariateSums,
    StatsError,
    always_valid_means,
    always_valid_proportions,
    bucket,
    bucket_ranges,
    buckets,
    cuped,
    cuped_from_sums,
    expected_duration_days,
    in_share,
    sample_size_per_arm,
    sample_size_per_arm_means,
    srm_check,
    two_proportion_ztest,
    variant_index,
    variant_indices,
    welch_ttest,
    welch_ttest_from_stats,
)

REL = 1e-9
# Bounds of an interval can sit near 0, where a relative tolerance alone means nothing.
ABS = 1e-13


def close(expected: float, rel: float = REL):
    return pytest.approx(expected, rel=rel, abs=ABS)


def statsmodels_sample_size(effect_size: float, alpha: float, power: float) -> int:
    with warnings.catch_warnings():
        # An unconverged statsmodels answer must not pass as a reference (its search may also probe
        # negative nobs on the way, which only warns).
        warnings.simplefilter("error", ConvergenceWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        n = NormalIndPower().solve_power(effect_size=effect_size, alpha=alpha, power=power, ratio=1, alternative="two-sided")
    return math.ceil(n)


def random_proportion_cases(seed: int, count: int = 200):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        n_a, n_b = (int(v) for v in rng.integers(10, 100_000, 2))
        rate = rng.uniform(0.001, 0.8)
        x_a = int(rng.binomial(n_a, rate))
        x_b = int(rng.binomial(n_b, min(rate * rng.uniform(0.8, 1.25), 1.0)))
        yield x_a, n_a, x_b, n_b, float(rng.choice([0.01, 0.05, 0.1, 0.2]))


# --- two-proportion z-test ----------------------------------------------------------------------


def test_two_proportion_ztest_worked_example_matches_statsmodels():
    # given 200/2000 conversions in A and 250/2000 in B
    z_ref, p_ref = proportions_ztest([250, 200], [2000, 2000])
    low_ref, high_ref = confint_proportions_2indep(250, 2000, 200, 2000, method="wald", compare="diff", alpha=0.05)

    # when
    result = two_proportion_ztest(200, 2000, 250, 2000)

    # then B is better, significantly at 5 %, with the unpooled Wald interval
    assert result.rate_a == 0.1 and result.rate_b == 0.125
    assert result.lift == close(0.25)
    assert result.diff == close(0.025)
    assert result.z_score == close(z_ref) and result.z_score > 0
    assert result.p_value == close(p_ref)
    assert result.significant is True
    assert (result.ci_low, result.ci_high) == (close(low_ref), close(high_ref))
    # hand-computed: 0.025 +- 1.959964 x sqrt(0.1 x 0.9 / 2000 + 0.125 x 0.875 / 2000)
    assert (result.ci_high - result.ci_low) / 2 == pytest.approx(0.019569, abs=5e-7)


def test_two_proportion_ztest_z_is_negative_when_b_is_worse():
    # given B converts less than A
    z_ref, p_ref = proportions_ztest([180, 220], [2000, 2000])

    # when
    result = two_proportion_ztest(220, 2000, 180, 2000)

    # then
    assert result.z_score < 0
    assert result.z_score == close(z_ref)
    assert result.p_value == close(p_ref)
    assert result.ci_high < 0 or result.ci_low < 0 < result.ci_high
    assert result.lift == close((0.09 - 0.11) / 0.11)


def test_two_proportion_ztest_random_cases_match_statsmodels():
    # given 200 seeded random experiments
    for x_a, n_a, x_b, n_b, alpha in random_proportion_cases(seed=11):
        if x_a + x_b in (0, n_a + n_b):
            continue
        z_ref, p_ref = proportions_ztest([x_b, x_a], [n_b, n_a])
        low_ref, high_ref = confint_proportions_2indep(x_b, n_b, x_a, n_a, method="wald", compare="diff", alpha=alpha)

        # when
        result = two_proportion_ztest(x_a, n_a, x_b, n_b, alpha=alpha)

        # then
        assert result.z_score == close(z_ref)
        assert result.p_value == close(p_ref)
        assert result.ci_low == close(low_ref)
        assert result.ci_high == close(high_ref)
        assert result.significant == (p_ref < alpha)


def test_two_proportion_ztest_significant_is_strict_at_alpha():
    # given a result's own p-value used as alpha
    p = two_proportion_ztest(200, 2000, 250, 2000).p_value

    # when
    at_alpha = two_proportion_ztest(200, 2000, 250, 2000, alpha=p)
    just_above = two_proportion_ztest(200, 2000, 250, 2000, alpha=np.nextafter(p, 1.0))

    # then p < alpha, not p <= alpha
    assert at_alpha.significant is False
    assert just_above.significant is True


def test_two_proportion_ztest_no_conversions_anywhere_is_no_evidence():
    # given both arms at 0 % (and both at 100 %): the pooled SE is 0

    # when
    none = two_proportion_ztest(0, 500, 0, 700)
    every = two_proportion_ztest(500, 500, 700, 700)

    # then a defined "no difference" result, never NaN
    assert (none.z_score, none.p_value, none.significant, none.ci_low, none.ci_high) == (0.0, 1.0, False, 0.0, 0.0)
    assert none.lift is None
    assert (every.z_score, every.p_value, every.significant) == (0.0, 1.0, False)
    assert every.lift == 0.0


def test_two_proportion_ztest_zero_control_rate_has_no_lift_but_a_test():
    # given A never converted, B did
    z_ref, p_ref = proportions_ztest([9, 0], [400, 400])
    low_ref, high_ref = confint_proportions_2indep(9, 400, 0, 400, method="wald", compare="diff")

    # when
    result = two_proportion_ztest(0, 400, 9, 400)

    # then
    assert result.lift is None
    assert result.z_score == close(z_ref)
    assert result.p_value == close(p_ref)
    assert (result.ci_low, result.ci_high) == (close(low_ref), close(high_ref))


@pytest.mark.parametrize(
    "args, message",
    [
        ((1, 0, 1, 10), "total_a"),
        ((1, 10, 1, -5), "total_b"),
        ((11, 10, 1, 10), "exceeds total_a"),
        ((1, 10, 12, 10), "exceeds total_b"),
        ((-1, 10, 1, 10), "successes_a"),
        ((0.1, 10, 1, 10), "whole count"),
        ((float("nan"), 10, 1, 10), "finite"),
        ((1, float("inf"), 1, 10), "finite"),
        (("many", 10, 1, 10), "number"),
    ],
)
def test_two_proportion_ztest_rejects_bad_counts(args, message):
    # given counts no experiment can have

    # when / then
    with pytest.raises(StatsError, match=message):
        two_proportion_ztest(*args)


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.05, 1.5, float("nan")])
def test_two_proportion_ztest_rejects_alpha_outside_unit_interval(alpha):
    # given an alpha outside (0, 1)

    # when / then
    with pytest.raises(StatsError, match="alpha"):
        two_proportion_ztest(10, 100, 12, 100, alpha=alpha)


def test_two_proportion_ztest_as_dict_has_the_contract_fields():
    # given
    result = two_proportion_ztest(10, 100, 12, 100)

    # when
    data = result.as_dict()

    # then
    for field in ("rate_a", "rate_b", "lift", "z_score", "p_value", "significant", "ci_low", "ci_high"):
        assert data[field] == getattr(result, field)


# --- Welch's t-test -----------------------------------------------------------------------------


def test_welch_ttest_matches_scipy_and_statsmodels():
    # given two arms with different spreads and sizes
    rng = np.random.default_rng(3)
    a, b = rng.normal(10.0, 2.0, 40), rng.normal(11.0, 4.0, 65)
    ref = stats.ttest_ind(b, a, equal_var=False)
    low_ref, high_ref = CompareMeans.from_data(b, a).tconfint_diff(alpha=0.05, usevar="unequal")

    # when
    result = welch_ttest(a, b)

    # then
    assert result.t == close(ref.statistic) and result.t > 0
    assert result.p_value == close(ref.pvalue)
    assert result.df == close(ref.df)
    assert (result.ci_low, result.ci_high) == (close(low_ref), close(high_ref))
    assert result.diff == close(b.mean() - a.mean())
    assert (result.mean_a, result.mean_b, result.n_a, result.n_b) == (close(a.mean()), close(b.mean()), 40, 65)
    assert result.lift == close((b.mean() - a.mean()) / a.mean())
    assert result.significant == (ref.pvalue < 0.05)


def test_welch_ttest_hand_computed_example():
    # given a = [1, 2, 3, 4], b = [2, 4, 6, 8]: means 2.5 and 5, variances 5/3 and 20/3
    se2 = 5 / 3 / 4 + 20 / 3 / 4  # = 25/12
    df = se2**2 / ((5 / 12) ** 2 / 3 + (20 / 12) ** 2 / 3)  # = 3 x 625 / 425

    # when
    result = welch_ttest([1, 2, 3, 4], [2, 4, 6, 8])

    # then
    assert result.diff == 2.5
    assert result.t == close(2.5 / math.sqrt(25 / 12))
    assert result.df == close(1875 / 425)
    assert result.df == close(df)
    assert result.lift == close(1.0)


def test_welch_ttest_from_stats_random_cases_match_scipy_and_statsmodels():
    rng = np.random.default_rng(5)
    for _ in range(200):
        # given arms of random size, mean and spread, summarised as SQL would
        n_a, n_b = (int(v) for v in rng.integers(2, 300, 2))
        a = rng.normal(rng.uniform(-50, 50), rng.uniform(0.1, 30), n_a)
        b = rng.normal(rng.uniform(-50, 50), rng.uniform(0.1, 30), n_b)
        alpha = float(rng.choice([0.01, 0.05, 0.1]))
        ref = stats.ttest_ind_from_stats(b.mean(), b.std(ddof=1), n_b, a.mean(), a.std(ddof=1), n_a, equal_var=False)
        low_ref, high_ref = CompareMeans.from_data(b, a).tconfint_diff(alpha=alpha, usevar="unequal")

        # when
        result = welch_ttest_from_stats(a.mean(), a.var(ddof=1), n_a, b.mean(), b.var(ddof=1), n_b, alpha=alpha)

        # then
        assert result.t == close(ref.statistic)
        assert result.p_value == close(ref.pvalue)
        assert result.ci_low == close(low_ref)
        assert result.ci_high == close(high_ref)
        assert result.significant == (ref.pvalue < alpha)


def test_welch_ttest_significant_is_strict_at_alpha():
    # given the result's own p-value as alpha
    p = welch_ttest_from_stats(10.0, 4.0, 50, 11.0, 9.0, 60).p_value

    # when
    at_alpha = welch_ttest_from_stats(10.0, 4.0, 50, 11.0, 9.0, 60, alpha=p)
    just_above = welch_ttest_from_stats(10.0, 4.0, 50, 11.0, 9.0, 60, alpha=np.nextafter(p, 1.0))

    # then
    assert at_alpha.significant is False
    assert just_above.significant is True


def test_welch_ttest_one_constant_arm_matches_scipy():
    # given A constant, B varying
    a, b = np.full(12, 3.0), np.array([1.0, 4.0, 2.0, 5.0, 3.5, 6.0, 2.5])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy's "nearly identical data" note about A
        ref = stats.ttest_ind(b, a, equal_var=False)

    # when
    result = welch_ttest(a, b)

    # then Welch's df falls back to n_b - 1
    assert result.t == close(ref.statistic)
    assert result.p_value == close(ref.pvalue)
    assert result.df == close(6.0)


def test_welch_ttest_no_variance_and_no_difference_is_no_evidence():
    # given both arms constant at the same value

    # when
    result = welch_ttest([2.0, 2.0, 2.0], [2.0, 2.0])

    # then
    assert (result.t, result.p_value, result.significant, result.ci_low, result.ci_high) == (0.0, 1.0, False, 0.0, 0.0)
    assert result.df == 3.0


def test_welch_ttest_no_variance_with_a_difference_raises():
    # given both arms constant at different values

    # when / then
    with pytest.raises(StatsError, match="no variance"):
        welch_ttest([2.0, 2.0, 2.0], [3.0, 3.0])


@pytest.mark.parametrize(
    "a, b, message",
    [
        ([1.0], [1.0, 2.0], "at least 2"),
        ([], [1.0, 2.0], "at least 2"),
        ([1.0, float("nan")], [1.0, 2.0], "NaN"),
        ([1.0, 2.0], [1.0, float("inf")], "NaN or inf"),
        ([[1.0, 2.0], [3.0, 4.0]], [1.0, 2.0], "one-dimensional"),
    ],
)
def test_welch_ttest_rejects_bad_samples(a, b, message):
    # given samples a t-test cannot use

    # when / then
    with pytest.raises(StatsError, match=message):
        welch_ttest(a, b)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_a": 1}, "n_a"),
        ({"var_b": -1.0}, "var_b"),
        ({"mean_a": float("inf")}, "mean_a"),
        ({"alpha": 1.0}, "alpha"),
    ],
)
def test_welch_ttest_from_stats_rejects_bad_summaries(kwargs, message):
    # given one bad summary figure
    args = {"mean_a": 1.0, "var_a": 1.0, "n_a": 10, "mean_b": 2.0, "var_b": 1.0, "n_b": 10} | kwargs

    # when / then
    with pytest.raises(StatsError, match=message):
        welch_ttest_from_stats(**args)


def test_arm_summary_from_sums_matches_numpy():
    # given per-unit values and their SQL aggregates
    values = np.random.default_rng(8).normal(40.0, 7.0, 500)

    # when
    arm = ArmSummary.from_sums(values.size, values.sum(), (values**2).sum())

    # then
    assert arm.n == 500
    assert arm.mean == close(values.mean())
    assert arm.variance == close(values.var(ddof=1), rel=1e-8)


def test_arm_summary_from_sums_rejects_inconsistent_sums():
    # given a sum of squares below sum^2 / n (impossible for real values)

    # when / then
    with pytest.raises(StatsError, match="inconsistent"):
        ArmSummary.from_sums(10, 100.0, 500.0)


# --- sample size --------------------------------------------------------------------------------


def test_sample_size_per_arm_worked_example():
    # given baseline 10 %, +2 points, alpha 0.05, power 0.8 (the worked example of the docs)

    # when
    n = sample_size_per_arm(0.10, 0.02)

    # then
    assert n == 3835
    assert n == statsmodels_sample_size(proportion_effectsize(0.12, 0.10), 0.05, 0.8)


def test_sample_size_per_arm_negative_mde_matches_statsmodels():
    # given a drop of two points

    # when
    n = sample_size_per_arm(0.10, -0.02)

    # then
    assert n == statsmodels_sample_size(proportion_effectsize(0.08, 0.10), 0.05, 0.8)
    assert n == 3205


def test_sample_size_per_arm_keeps_the_far_tail_at_low_power():
    # given low power, where rejecting in the wrong direction adds visible power
    # (the textbook closed form 2 ((z_{1-a/2} + z_power) / h)^2 says 40, and 109 for power 0.2)

    # when
    low = sample_size_per_arm(0.10, 0.05, alpha=0.05, power=0.1)
    lowish = sample_size_per_arm(0.10, 0.05, alpha=0.05, power=0.2)

    # then
    assert low == statsmodels_sample_size(proportion_effectsize(0.15, 0.10), 0.05, 0.1) == 37
    assert lowish == statsmodels_sample_size(proportion_effectsize(0.15, 0.10), 0.05, 0.2) == 108


def test_sample_size_per_arm_random_cases_match_statsmodels():
    rng = np.random.default_rng(21)
    for _ in range(100):
        # given a random baseline, effect, alpha and power
        baseline = rng.uniform(0.01, 0.9)
        mde = rng.uniform(0.05, 0.5) * min(baseline, 1 - baseline) * rng.choice([-1, 1])
        alpha = rng.uniform(0.001, 0.2)
        power = rng.uniform(alpha + 0.02, 0.99)

        # when
        n = sample_size_per_arm(baseline, mde, alpha=alpha, power=power)

        # then
        assert n == statsmodels_sample_size(proportion_effectsize(baseline + mde, baseline), alpha, power)


@pytest.mark.parametrize(("std", "mde"), [(1.0, 3.0), (1.0, 5.0), (2.0, -8.0)])
def test_sample_size_per_arm_means_of_an_effect_of_several_stds_is_the_smallest_n_with_the_power(std, mde):
    # given an effect of 3 to 5 standard deviations: statsmodels' solver gives up below n = 2, its power function does not

    # when
    n = sample_size_per_arm_means(std, mde)

    # then n has power >= 0.8 and n - 1 (or half a unit, for n = 1) has less
    power = NormalIndPower().power
    assert power(effect_size=abs(mde) / std, nobs1=n, alpha=0.05, ratio=1) >= 0.8
    assert power(effect_size=abs(mde) / std, nobs1=max(n - 1, 0.5), alpha=0.05, ratio=1) < 0.8


def test_sample_size_per_arm_means_matches_statsmodels():
    # given std 10, mde 1 (d = 0.1) and random cases
    rng = np.random.default_rng(22)
    cases = [(10.0, 1.0, 0.05, 0.8), (4.0, -1.0, 0.01, 0.9)]
    for _ in range(60):
        # effects up to one std: beyond about 2, statsmodels' solver fails to converge (n < 2)
        std = rng.uniform(0.1, 100)
        cases.append((std, std * rng.uniform(0.02, 1.0) * rng.choice([-1, 1]), rng.uniform(0.001, 0.2), rng.uniform(0.3, 0.99)))

    for std, mde, alpha, power in cases:
        # when
        n = sample_size_per_arm_means(std, mde, alpha=alpha, power=power)

        # then
        assert n == statsmodels_sample_size(mde / std, alpha, power)
    assert sample_size_per_arm_means(10.0, 1.0) == 1570
    assert sample_size_per_arm_means(4.0, -1.0, alpha=0.01, power=0.9) == 477


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mde": 0.0}, "mde"),
        ({"baseline": 0.95, "mde": 0.05}, r"baseline \+ mde"),
        ({"baseline": 0.05, "mde": -0.06}, r"baseline \+ mde"),
        ({"baseline": 0.0}, "baseline"),
        ({"power": 1.0}, "power"),
        ({"power": 0.0}, "power"),
        ({"power": 0.05, "alpha": 0.05}, "exceed alpha"),
        ({"alpha": 0.0}, "alpha"),
        ({"mde": float("nan")}, "mde"),
    ],
)
def test_sample_size_per_arm_rejects_bad_input(kwargs, message):
    # given
    args = {"baseline": 0.1, "mde": 0.02} | kwargs

    # when / then
    with pytest.raises(StatsError, match=message):
        sample_size_per_arm(**args)


@pytest.mark.parametrize("std, mde", [(0.0, 1.0), (-1.0, 1.0), (1.0, 0.0), (float("inf"), 1.0)])
def test_sample_size_per_arm_means_rejects_bad_input(std, mde):
    # given a spread or effect no sample size exists for

    # when / then
    with pytest.raises(StatsError):
        sample_size_per_arm_means(std, mde)


def test_expected_duration_days_divides_units_by_traffic():
    # given 3835 per arm, 2 arms, 1000 units a day

    # when
    days = expected_duration_days(3835, 2, 1000)

    # then
    assert days == close(7.67)
    assert expected_duration_days(3835, 3, 500.0) == close(23.01)


def test_expected_duration_days_is_none_without_traffic():
    # given no units entering

    # when
    days = expected_duration_days(3835, 2, 0)

    # then
    assert days is None


@pytest.mark.parametrize("args", [(-1, 2, 100), (100, 0, 100), (100, 2, -1), (100, 2, float("nan"))])
def test_expected_duration_days_rejects_bad_input(args):
    # given

    # when / then
    with pytest.raises(StatsError):
        expected_duration_days(*args)


# --- sample ratio mismatch ----------------------------------------------------------------------


def test_srm_check_hand_computed_example():
    # given 5000 vs 5200 on a 50/50 plan: expected 5100 each, chi2 = 2 x 100^2 / 5100

    # when
    result = srm_check([5000, 5200], [50, 50])

    # then
    assert result.chi2 == close(20000 / 5100)
    assert result.p_value == close(stats.chi2.sf(20000 / 5100, 1))
    assert result.flagged is False
    assert result.expected == (5100.0, 5100.0)


def test_srm_check_random_cases_match_scipy_chisquare():
    rng = np.random.default_rng(31)
    for _ in range(200):
        # given a random plan of 2 to 5 arms and counts drawn from a possibly different split
        k = int(rng.integers(2, 6))
        weights = rng.uniform(1, 100, k)
        drawn = rng.dirichlet(np.ones(k)) if rng.random() < 0.3 else weights / weights.sum()
        observed = rng.multinomial(int(rng.integers(10, 200_000)), drawn)
        ref = stats.chisquare(observed, observed.sum() * weights / weights.sum())

        # when
        result = srm_check(observed, weights)

        # then
        assert result.chi2 == close(ref.statistic)
        assert result.p_value == close(ref.pvalue)
        assert result.flagged == (ref.pvalue < 0.001)


def test_srm_check_flags_a_clear_mismatch():
    # given 10,000 units split 5,300 / 4,700 on a 50/50 plan

    # when
    result = srm_check([5300, 4700], [50, 50])

    # then
    assert result.flagged is True
    assert result.p_value == close(stats.chisquare([5300, 4700]).pvalue)


def test_srm_check_threshold_is_strict():
    # given the result's own p-value as the threshold
    p = srm_check([5080, 4920], [50, 50]).p_value

    # when
    at = srm_check([5080, 4920], [50, 50], threshold=p)
    above = srm_check([5080, 4920], [50, 50], threshold=np.nextafter(p, 1.0))

    # then
    assert at.flagged is False
    assert above.flagged is True


def test_srm_check_no_units_is_not_a_mismatch():
    # given no units yet

    # when
    result = srm_check([0, 0, 0], [20, 30, 50])

    # then
    assert (result.chi2, result.p_value, result.flagged) == (0.0, 1.0, False)


@pytest.mark.parametrize(
    "observed, weights, message",
    [
        ([10, 20], [50, 0], "weights"),
        ([10, 20], [50, -50], "weights"),
        ([10, -1], [50, 50], "whole counts"),
        ([10, 2.5], [50, 50], "whole counts"),
        ([10, 20, 30], [50, 50], "arms"),
        ([10], [100], "at least 2"),
        ([10, float("nan")], [50, 50], "NaN"),
    ],
)
def test_srm_check_rejects_bad_input(observed, weights, message):
    # given

    # when / then
    with pytest.raises(StatsError, match=message):
        srm_check(observed, weights)


# --- assignment ---------------------------------------------------------------------------------


def test_bucket_literal_values():
    # given values computed once with coreutils (printf 'exp-1:user-42' | sha256sum, first 16 hex
    # digits as an integer, mod 10000)

    # when / then
    assert bucket("exp-1", "user-42") == 9770
    assert bucket("exp-1", "user-43") == 138
    assert bucket("checkout-button", "7f3c9a") == 7372
    assert bucket("canary-llm-v2", "ü-id") == 7295


def test_bucket_matches_hashlib_prefix():
    # given a handful of keys and ids
    for key, unit in [("exp-1", "user-42"), ("k", "17"), ("salt with spaces", "a:b"), ("ünï", "ċøðé")]:
        digest = hashlib.sha256(f"{key}:{unit}".encode()).hexdigest()

        # when / then
        assert bucket(key, unit) == int(digest[:16], 16) % 10_000


def test_buckets_equals_bucket_per_id_in_order():
    # given string and integer ids (integers are hashed as their decimal text)
    ids = [f"user-{i}" for i in range(500)] + [7, 8]

    # when
    result = buckets("exp-9", ids)

    # then
    assert result.dtype == np.int64
    assert result.tolist() == [int(hashlib.sha256(f"exp-9:{u}".encode()).hexdigest()[:16], 16) % 10_000 for u in ids]
    assert result[-1] == bucket("exp-9", "8")


def test_buckets_spread_evenly():
    # given 20,000 ids

    # when
    values = buckets("exp-uniform", (f"u{i}" for i in range(20_000)))

    # then ten equal slices hold about 2,000 each (chi-square far from a mismatch)
    counts = np.bincount(values // 1000, minlength=10)
    assert stats.chisquare(counts).pvalue > 1e-4
    assert values.min() >= 0 and values.max() <= 9999


def test_bucket_ranges_are_contiguous_in_listed_order():
    # given splits with fractional percentages and an empty variant

    # when
    halves = bucket_ranges([50, 50])
    thirds = bucket_ranges([33.33, 33.33, 33.34])
    ramp = bucket_ranges([0, 12.5, 87.5])

    # then
    assert halves == ((0, 5000), (5000, 10000))
    assert thirds == ((0, 3333), (3333, 6666), (6666, 10000))
    assert ramp == ((0, 0), (0, 1250), (1250, 10000))


def test_variant_index_boundaries():
    # given a 50/50 and a 10/20/70 split

    # when / then, the last bucket of a range and the first of the next
    assert [variant_index(b, [50, 50]) for b in (0, 4999, 5000, 9999)] == [0, 0, 1, 1]
    assert [variant_index(b, [10, 20, 70]) for b in (999, 1000, 2999, 3000, 9999)] == [0, 1, 1, 2, 2]
    assert [variant_index(b, [0, 0.01, 99.99]) for b in (0, 1)] == [1, 2]


def test_variant_indices_give_each_variant_its_share_of_buckets():
    # given every bucket once
    every = np.arange(10_000)

    # when
    assigned = variant_indices(every, [12.34, 50, 37.66])

    # then 100 buckets per percent, contiguous
    assert np.bincount(assigned).tolist() == [1234, 5000, 3766]
    assert (np.diff(assigned) >= 0).all()


def test_variant_index_raising_the_last_share_only_adds_units():
    # given a candidate listed last, raised from 5 % to 25 % to 50 %
    every = np.arange(10_000)

    # when
    at_5 = set(every[variant_indices(every, [95, 5]) == 1])
    at_25 = set(every[variant_indices(every, [75, 25]) == 1])
    at_50 = set(every[variant_indices(every, [50, 50]) == 1])

    # then
    assert len(at_5) == 500 and len(at_25) == 2500 and len(at_50) == 5000
    assert at_5 <= at_25 <= at_50


def test_in_share_boundaries():
    # given

    # when / then
    assert in_share(499, 5) is True
    assert in_share(500, 5) is False
    assert in_share(0, 0) is False
    assert in_share(9999, 100) is True
    assert in_share(6, 0.07) is True
    assert in_share(7, 0.07) is False


def test_in_share_is_monotonic_and_agrees_with_variant_index():
    # given shares a canary goes through, and every bucket
    every = np.arange(10_000)
    previous: set[int] = set()

    for percent in (0, 5, 25, 50, 100):
        # when
        members = {int(b) for b in every if in_share(int(b), percent)}

        # then raising the share only adds units, and the share is the first variant's range
        assert len(members) == percent * 100
        assert previous <= members
        assert members == set(every[variant_indices(every, [percent, 100 - percent]) == 0].tolist())
        previous = members


@pytest.mark.parametrize(
    "weights, message",
    [
        ([50, 49], "sum to 100"),
        ([50, 50.000001], "sum to 100"),
        ([33.333, 66.667], "2 decimals"),
        ([110, -10], ">= 0"),
        ([], "at least 1"),
    ],
)
def test_bucket_ranges_rejects_bad_weights(weights, message):
    # given

    # when / then
    with pytest.raises(StatsError, match=message):
        bucket_ranges(weights)


@pytest.mark.parametrize("value", [-1, 10_000, 1.5, float("nan")])
def test_variant_index_rejects_buckets_out_of_range(value):
    # given

    # when / then
    with pytest.raises(StatsError):
        variant_index(value, [50, 50])


@pytest.mark.parametrize("percent", [-1, 100.5, 12.345])
def test_in_share_rejects_bad_percent(percent):
    # given

    # when / then
    with pytest.raises(StatsError):
        in_share(10, percent)


# --- always-valid intervals ---------------------------------------------------------------------

# Generated once with gbstats 0.8.0: SequentialTwoSidedTTest(ProportionStatistic(sum=x, n=n), ...,
# SequentialConfig(difference_type="absolute", sequential_tuning_parameter=tuning, alpha=alpha))
GBSTATS_PROPORTIONS = [
    # (x_a, n_a, x_b, n_b, alpha, tuning, ci_low, ci_high, p_value)
    (57023, 95018, 22132, 37944, 0.01, 5000.0, -0.028417829786142712, -0.005277715508343328, 2.3195493984731406e-06),
    (2132, 5511, 77804, 187254, 0.1, 5000.0, 0.007425468426856614, 0.049848859668705156, 0.0015652145819077784),
    (26295, 47634, 15984, 25638, 0.05, 1000.0, 0.058100029928509225, 0.08475577377505798, 2.0052202783302898e-76),
    (29958, 163072, 13751, 64387, 0.05, 5000.0, 0.023373729223824444, 0.03634165740243342, 3.654441859550959e-54),
    (6055, 115218, 5063, 98355, 0.05, 5000.0, -0.004393672082919667, 0.0022421534757048564, 1.0),
    (51138, 97348, 72187, 138224, 0.1, 1000.0, -0.010279611099729299, 0.004150099037358076, 1.0),
    (2023, 5048, 64121, 139851, 0.1, 20000.0, 0.03709774326048822, 0.07838693529954731, 3.0006482746946875e-14),
    (84809, 180001, 9393, 18443, 0.2, 20000.0, 0.027751453017956527, 0.048529401853868816, 1.362322354010517e-20),
    (19044, 44144, 24650, 58236, 0.01, 5000.0, -0.020116314460279724, 0.0038590964827417383, 0.527145168959497),
    (10399, 86827, 21177, 196539, 0.2, 5000.0, -0.015895917767500517, -0.008138653909632835, 7.422083820970065e-18),
    (1485, 62383, 1351, 59672, 0.05, 5000.0, -0.004065055179880821, 0.0017367996483895242, 1.0),
    (39738, 93849, 38735, 82108, 0.05, 5000.0, 0.04022191968949099, 0.05644177496938571, 3.5493016675237566e-89),
]
# Same with SampleMeanStatistic(n=n, sum=sum, sum_squares=sum_squares).
GBSTATS_MEANS = [
    # (n_a, sum_a, sum_squares_a, n_b, sum_b, sum_squares_b, alpha, tuning, ci_low, ci_high, p_value)
    (249, 6454.305, 168703.41056499997, 1975, 52710.369000000006, 1424475.165825, 0.01, 20000.0, 0.07034030208646591, 1.4654413297573736, 0.0034541553608517838),
    (2548, -8700.887999999999, 674809.0544080001, 4286, -2016.1420000000003, 2128866.0107380003, 0.05, 20000.0, 1.4774817425281421, 4.411297128624037, 7.864998872051031e-07),
    (1205, 42136.937, 1480091.713177, 955, 33606.461, 1188473.975241, 0.01, 5000.0, -0.15962215084074483, 0.6028202912244022, 0.38141771321252943),
    (3046, 17487.561999999998, 270593.87565, 2357, 10528.417, 179793.904761, 0.1, 5000.0, -1.8424372172685644, -0.7061315817238878, 1.4705903314702537e-07),
    (3287, 116899.613, 4487940.468083, 4674, 162634.35, 6546315.197551999, 0.1, 1000.0, -1.5565117642781, 0.019136768915743896, 0.12275627366732038),
    (1497, 6552.464, 76393.70271, 3511, 9882.377, 227190.311445, 0.05, 5000.0, -2.150007461141592, -0.974739225814395, 8.221457085114579e-13),
    (966, 17885.136000000002, 509370.39072, 2650, 51898.936, 1982382.183252, 0.05, 5000.0, -0.676530001596529, 2.8162712227379707, 0.5895891192233184),
    (1187, 17556.85, 341039.01983599993, 804, 12379.557, 277818.854261, 0.01, 5000.0, -0.9958010876158763, 2.2088318877013817, 1.0),
    (1033, 31543.388, 1217520.592002, 3405, 100977.52600000001, 3954115.193478, 0.01, 5000.0, -2.9054420040305877, 1.145345009831812, 1.0),
    (77, -183.26600000000002, 3977.2085899999997, 2208, -7197.394, 105895.951348, 0.05, 20000.0, -3.825992244204687, 2.0667694651721256, 1.0),
    (2530, 6843.206, 68145.57185000001, 1036, 2458.2200000000003, 18283.020384, 0.01, 20000.0, -0.877279705281551, 0.2132291490222994, 0.2576570866850788),
    (3091, 123030.902, 5587756.17426, 2228, 87766.683, 4426386.761818999, 0.1, 1000.0, -1.909073059766787, 1.088356953122546, 1.0),
]
# gbstats RegressionAdjustedStatistic (CUPED, theta pooled by gbstats' compute_theta) in the same test.
GBSTATS_CUPED = [
    # ((n, sum_y, sum_y2, sum_x, sum_x2, sum_xy) of A, same of B, alpha, tuning, ci_low, ci_high, p_value)
    ((2882, 54822.509999999995, 1114201.1509, 57682.03, 1225484.0855, 1154105.8291), (1616, 30419.870000000003, 612209.5639, 32428.579999999998, 688802.7568000001, 641296.1202), 0.01, 1000.0, -0.5821612413741883, 0.10113833805784456, 0.2776410641428823),
    ((1339, 25082.230000000003, 503590.43389999995, 26435.730000000003, 555084.7076999999, 522046.48459999997), (2739, 52113.630000000005, 1062476.8103, 55009.119999999995, 1173827.1542000002, 1102726.8024), 0.1, 5000.0, -0.26019699657782763, 0.29600347525781484, 1.0),
    ((1437, 27156.48, 550267.5114000001, 28624.38, 606504.3302, 570383.0658), (462, 8559.66, 169372.0496, 9178.269999999999, 192866.9415, 178481.1772), 0.1, 1000.0, -0.7712215669405321, 0.11590356357802245, 0.5099302150801508),
    ((1911, 36319.97, 737667.2063, 38246.369999999995, 811996.6129000001, 764261.5638), (1226, 21744.5, 415013.15060000005, 24373.829999999998, 515120.6233, 456338.44499999995), 0.01, 1000.0, -1.5563583586296215, -0.7705534719661618, 2.307692630387933e-24),
]
GBSTATS_CUPED_THETAS = [0.8041647202401264, 0.811573801195005, 0.8084965256823525, 0.797980983830788]


def test_always_valid_proportions_worked_example():
    # given 200/2000 vs 250/2000 at alpha 0.05 (gbstats gives [-0.005356194113322242, 0.05535619411332223])

    # when
    result = always_valid_proportions(200, 2000, 250, 2000)
    fixed = two_proportion_ztest(200, 2000, 250, 2000)

    # then wider than the fixed-horizon interval, and it does not exclude 0
    assert result.half_width == pytest.approx(0.030356, abs=5e-7)
    assert (result.ci_low, result.ci_high) == (pytest.approx(-0.005356, abs=5e-7), pytest.approx(0.055356, abs=5e-7))
    assert (result.ci_low, result.ci_high) == (close(-0.005356194113322242), close(0.05535619411332223))
    assert result.p_value == close(0.18069333777375365)
    assert result.diff == close(0.025)
    assert result.significant is False
    assert (fixed.ci_high - fixed.ci_low) / 2 == pytest.approx(0.019569, abs=5e-7)
    assert fixed.significant is True


def test_always_valid_proportions_hand_computed_half_width():
    # given N = 4000, N* = 5000, alpha = 0.05 and the unpooled SE of 200/2000 vs 250/2000
    alpha, big_n = 0.05, 4000
    rho2 = (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / 5000
    se = math.sqrt(0.1 * 0.9 / 2000 + 0.125 * 0.875 / 2000)
    expected = se * math.sqrt(big_n) * math.sqrt(2 * (big_n * rho2 + 1) / (big_n**2 * rho2) * math.log(math.sqrt(big_n * rho2 + 1) / alpha))

    # when
    result = always_valid_proportions(200, 2000, 250, 2000, alpha=alpha, tuning=5000)

    # then
    assert result.half_width == close(expected)


@pytest.mark.parametrize("case", GBSTATS_PROPORTIONS)
def test_always_valid_proportions_matches_gbstats(case):
    # given a case gbstats 0.8.0 computed
    x_a, n_a, x_b, n_b, alpha, tuning, low_ref, high_ref, p_ref = case

    # when
    result = always_valid_proportions(x_a, n_a, x_b, n_b, alpha=alpha, tuning=tuning)

    # then
    assert result.ci_low == close(low_ref)
    assert result.ci_high == close(high_ref)
    assert result.p_value == close(p_ref)
    assert result.significant == (low_ref > 0 or high_ref < 0)
    assert result.significant == (p_ref < alpha)


@pytest.mark.parametrize("case", GBSTATS_MEANS)
def test_always_valid_means_matches_gbstats(case):
    # given a case gbstats 0.8.0 computed from SQL-style sums
    n_a, s_a, ss_a, n_b, s_b, ss_b, alpha, tuning, low_ref, high_ref, p_ref = case
    arm_a, arm_b = ArmSummary.from_sums(n_a, s_a, ss_a), ArmSummary.from_sums(n_b, s_b, ss_b)

    # when
    result = always_valid_means(arm_a.mean, arm_a.variance, n_a, arm_b.mean, arm_b.variance, n_b, alpha=alpha, tuning=tuning)

    # then
    assert result.ci_low == close(low_ref)
    assert result.ci_high == close(high_ref)
    assert result.p_value == close(p_ref)
    assert result.significant == (low_ref > 0 or high_ref < 0)


def test_always_valid_intervals_match_live_gbstats_on_random_cases():
    # gbstats is installed by the Makefile (--no-deps, see requirements-dev.txt): a missing oracle fails, never skips.
    import gbstats.frequentist.tests as gb
    import gbstats.models.statistics as gb_stats

    rng = np.random.default_rng(41)
    for x_a, n_a, x_b, n_b, alpha in random_proportion_cases(seed=41):
        if x_a in (0, n_a) or x_b in (0, n_b):
            continue  # gbstats gives up on a zero control rate or a zero-variance arm
        # given a random proportion experiment, and a random continuous one
        tuning = float(rng.choice([1000, 5000, 20000]))
        config = gb.SequentialConfig(difference_type="absolute", sequential_tuning_parameter=tuning, alpha=alpha)
        with np.errstate(over="ignore"):  # gbstats' e-value overflows to inf on huge effects (p = 0)
            ref = gb.SequentialTwoSidedTTest(gb_stats.ProportionStatistic(sum=x_a, n=n_a), gb_stats.ProportionStatistic(sum=x_b, n=n_b), config).compute_result()
        a, b = rng.normal(5.0, 2.0, int(rng.integers(2, 400))), rng.normal(5.3, 3.0, int(rng.integers(2, 400)))
        ref_means = gb.SequentialTwoSidedTTest(
            gb_stats.SampleMeanStatistic(n=a.size, sum=a.sum(), sum_squares=(a * a).sum()),
            gb_stats.SampleMeanStatistic(n=b.size, sum=b.sum(), sum_squares=(b * b).sum()),
            config,
        ).compute_result()

        # when
        result = always_valid_proportions(x_a, n_a, x_b, n_b, alpha=alpha, tuning=tuning)
        means = always_valid_means(a.mean(), a.var(ddof=1), a.size, b.mean(), b.var(ddof=1), b.size, alpha=alpha, tuning=tuning)

        # then
        assert (result.ci_low, result.ci_high, result.p_value) == (close(ref.ci[0]), close(ref.ci[1]), close(ref.p_value))
        assert (means.ci_low, means.ci_high) == (close(ref_means.ci[0], rel=1e-8), close(ref_means.ci[1], rel=1e-8))


def test_always_valid_proportions_is_wider_than_the_wald_interval():
    for x_a, n_a, x_b, n_b, alpha in random_proportion_cases(seed=51, count=50):
        if x_a + x_b in (0, n_a + n_b):
            continue
        # given statsmodels' fixed-horizon Wald interval
        low_ref, high_ref = confint_proportions_2indep(x_b, n_b, x_a, n_a, method="wald", compare="diff", alpha=alpha)

        # when
        result = always_valid_proportions(x_a, n_a, x_b, n_b, alpha=alpha)

        # then same centre, wider
        assert result.diff == close((low_ref + high_ref) / 2, rel=1e-8)
        assert result.half_width > (high_ref - low_ref) / 2


def test_always_valid_significant_only_when_the_interval_strictly_excludes_zero():
    # given a difference exactly equal to the half-width (which does not depend on the difference)
    h = always_valid_means(0.0, 4.0, 300, 0.0, 9.0, 200).half_width

    # when
    touching_up = always_valid_means(0.0, 4.0, 300, h, 9.0, 200)
    touching_down = always_valid_means(0.0, 4.0, 300, -h, 9.0, 200)
    beyond = always_valid_means(0.0, 4.0, 300, np.nextafter(h, 1.0), 9.0, 200)

    # then an interval ending on 0 still contains it
    assert touching_up.ci_low == 0.0 and touching_up.significant is False
    assert touching_down.ci_high == 0.0 and touching_down.significant is False
    assert beyond.ci_low > 0 and beyond.significant is True


def test_always_valid_proportions_degenerate_cases():
    # given no conversions in either arm, and 0 % against 100 %

    # when
    none = always_valid_proportions(0, 100, 0, 300)

    # then
    assert (none.ci_low, none.ci_high, none.half_width, none.p_value, none.significant) == (0.0, 0.0, 0.0, 1.0, False)
    with pytest.raises(StatsError, match="degenerate"):
        always_valid_proportions(0, 10, 10, 10)


def test_always_valid_proportions_computes_where_gbstats_gives_up():
    # given a control that has not converted yet: one arm's variance is 0, the combined SE is not
    se = math.sqrt(0.03 * 0.97 / 400)
    low_ref, high_ref = confint_proportions_2indep(12, 400, 0, 400, method="wald", compare="diff")

    # when
    result = always_valid_proportions(0, 400, 12, 400)

    # then an interval around 0.03, wider than the Wald one
    assert result.diff == close(0.03)
    assert result.half_width > (high_ref - low_ref) / 2 == close(stats.norm.isf(0.025) * se)


@pytest.mark.parametrize("kwargs", [{"alpha": 0.0}, {"alpha": 1.0}, {"tuning": 0.0}, {"tuning": -5.0}, {"tuning": float("inf")}])
def test_always_valid_rejects_bad_alpha_and_tuning(kwargs):
    # given

    # when / then
    with pytest.raises(StatsError):
        always_valid_proportions(10, 100, 12, 100, **kwargs)
    with pytest.raises(StatsError):
        always_valid_means(1.0, 1.0, 10, 2.0, 1.0, 10, **kwargs)


# --- CUPED --------------------------------------------------------------------------------------


def cuped_data(seed: int, n: int = 2_000):
    rng = np.random.default_rng(seed)
    x = rng.normal(20.0, 5.0, n)
    y = 3.0 + 0.8 * x + rng.normal(0.0, 3.0, n)
    return y, x


def test_cuped_theta_is_the_ols_slope():
    # given a metric that follows its pre-period value
    y, x = cuped_data(61)
    slope = OLS(y, add_constant(x)).fit().params[1]

    # when
    result = cuped(y, x)

    # then
    assert result.theta == close(slope)


def test_cuped_adjusted_values_and_variance_reduction_match_numpy():
    # given
    y, x = cuped_data(62)
    slope = OLS(y, add_constant(x)).fit().params[1]
    explicit = y - slope * (x - x.mean())

    # when
    result = cuped(y, x)

    # then
    np.testing.assert_allclose(result.adjusted, explicit, rtol=REL)
    assert result.variance_reduction == close(1 - explicit.var() / y.var())
    assert result.variance_reduction == close(np.corrcoef(x, y)[0, 1] ** 2)
    assert 0.5 < result.variance_reduction < 0.9


def test_cuped_from_sums_equals_the_array_form():
    # given two arms of per-unit values and their SQL aggregates
    y, x = cuped_data(63, n=3_000)
    y[1_800:] += 0.4  # a treatment effect in B
    split = slice(0, 1_800), slice(1_800, None)
    sums = [
        CovariateSums(n=y[s].size, sum_y=y[s].sum(), sum_y2=(y[s] ** 2).sum(), sum_x=x[s].sum(), sum_x2=(x[s] ** 2).sum(), sum_xy=(x[s] * y[s]).sum())
        for s in split
    ]
    explicit = y - OLS(y, add_constant(x)).fit().params[1] * (x - x.mean())

    # when
    summary = cuped_from_sums(sums)
    arrays = cuped(y, x)

    # then
    assert summary.theta == close(arrays.theta, rel=1e-8)
    assert summary.variance_reduction == close(arrays.variance_reduction, rel=1e-8)
    for arm, s in zip(summary.arms, split, strict=True):
        assert arm.n == explicit[s].size
        assert arm.mean == close(explicit[s].mean(), rel=1e-8)
        assert arm.variance == close(explicit[s].var(ddof=1), rel=1e-7)


def test_cuped_from_sums_feeds_welch_like_the_adjusted_arrays():
    # given
    y, x = cuped_data(64, n=1_000)
    y[600:] += 0.5
    a, b = slice(0, 600), slice(600, None)
    sums = [
        CovariateSums(n=y[s].size, sum_y=y[s].sum(), sum_y2=(y[s] ** 2).sum(), sum_x=x[s].sum(), sum_x2=(x[s] ** 2).sum(), sum_xy=(x[s] * y[s]).sum())
        for s in (a, b)
    ]
    explicit = y - OLS(y, add_constant(x)).fit().params[1] * (x - x.mean())
    ref = stats.ttest_ind(explicit[b], explicit[a], equal_var=False)

    # when
    arm_a, arm_b = cuped_from_sums(sums).arms
    result = welch_ttest_from_stats(arm_a.mean, arm_a.variance, arm_a.n, arm_b.mean, arm_b.variance, arm_b.n)

    # then the adjusted test is the t-test of the adjusted values, and tighter than the raw one
    assert result.t == close(ref.statistic, rel=1e-7)
    assert result.p_value == close(ref.pvalue, rel=1e-6)
    assert abs(result.t) > abs(stats.ttest_ind(y[b], y[a], equal_var=False).statistic)


@pytest.mark.parametrize("index", range(len(GBSTATS_CUPED)))
def test_cuped_from_sums_matches_gbstats_regression_adjustment(index):
    # given a CUPED case gbstats 0.8.0 computed (RegressionAdjustedStatistic, sequential test)
    sums_a, sums_b, alpha, tuning, low_ref, high_ref, p_ref = GBSTATS_CUPED[index]

    # when
    summary = cuped_from_sums([CovariateSums(*sums_a), CovariateSums(*sums_b)])
    arm_a, arm_b = summary.arms
    result = always_valid_means(arm_a.mean, arm_a.variance, arm_a.n, arm_b.mean, arm_b.variance, arm_b.n, alpha=alpha, tuning=tuning)

    # then
    assert summary.theta == close(GBSTATS_CUPED_THETAS[index])
    assert result.ci_low == close(low_ref, rel=1e-8)
    assert result.ci_high == close(high_ref, rel=1e-8)
    assert result.p_value == close(p_ref, rel=1e-8)


def test_cuped_without_covariate_variance_changes_nothing():
    # given a constant covariate
    y = np.array([1.0, 4.0, 2.0, 8.0])

    # when
    result = cuped(y, np.full(4, 3.0))
    summary = cuped_from_sums([CovariateSums(n=2, sum_y=5.0, sum_y2=17.0, sum_x=6.0, sum_x2=18.0, sum_xy=15.0),
                               CovariateSums(n=2, sum_y=10.0, sum_y2=68.0, sum_x=6.0, sum_x2=18.0, sum_xy=30.0)])

    # then
    assert result.theta == 0.0 and result.variance_reduction == 0.0
    np.testing.assert_array_equal(result.adjusted, y)
    assert summary.theta == 0.0 and summary.variance_reduction == 0.0
    assert [(arm.mean, arm.variance) for arm in summary.arms] == [(2.5, 4.5), (5.0, 18.0)]


@pytest.mark.parametrize(
    "y, x, message",
    [
        ([1.0, 2.0, 3.0], [1.0, 2.0], "x has 2"),
        ([1.0], [1.0], "at least 2"),
        ([1.0, float("nan")], [1.0, 2.0], "NaN"),
    ],
)
def test_cuped_rejects_bad_arrays(y, x, message):
    # given

    # when / then
    with pytest.raises(StatsError, match=message):
        cuped(y, x)


def test_cuped_from_sums_rejects_no_arms_and_tiny_arms():
    # given

    # when / then
    with pytest.raises(StatsError, match="at least one arm"):
        cuped_from_sums([])
    with pytest.raises(StatsError, match="n must be >= 2"):
        cuped_from_sums([CovariateSums(n=1, sum_y=1.0, sum_y2=1.0, sum_x=1.0, sum_x2=1.0, sum_xy=1.0)])


# --- bad input, refused by name -----------------------------------------------------------------
# A caller (the analysis, the API's design form) shows these messages as they are: each names the
# argument it refuses and the rule it breaks.


def refused(call) -> str:
    with pytest.raises(StatsError) as caught:
        call()
    return str(caught.value)


def arms_with(**bad) -> list[CovariateSums]:
    good = {"n": 2, "sum_y": 4.0, "sum_y2": 10.0, "sum_x": 4.0, "sum_x2": 10.0, "sum_xy": 10.0}
    return [CovariateSums(**(good | bad)), CovariateSums(**good)]


NAN, INF = float("nan"), float("inf")
WELCH = {"mean_a": 1.0, "var_a": 1.0, "n_a": 10, "mean_b": 2.0, "var_b": 1.0, "n_b": 10}


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: ArmSummary.from_sums(1, 1.0, 1.0), "n must be >= 2, got 1"),
        (lambda: ArmSummary.from_sums(2, NAN, 1.0), "sum must be finite, got nan"),
        (lambda: ArmSummary.from_sums(2, 1.0, "lots"), "sum_squares must be a number, got 'lots'"),
        (lambda: ArmSummary.from_sums(10, 100.0, 500.0), "sum_squares is smaller than sum^2 / n: the aggregates are inconsistent"),
        (lambda: ArmSummary.from_values([3.0]), "values needs at least 2 values, got 1"),
        (lambda: two_proportion_ztest(1, 0, 1, 10), "total_a must be >= 1, got 0"),
        (lambda: two_proportion_ztest(1, 10, 1, 0), "total_b must be >= 1, got 0"),
        (lambda: two_proportion_ztest(1, NAN, 1, 10), "total_a must be finite, got nan"),
        (lambda: two_proportion_ztest(-1, 10, 1, 10), "successes_a must be >= 0, got -1"),
        (lambda: two_proportion_ztest(1, 10, -1, 10), "successes_b must be >= 0, got -1"),
        (lambda: two_proportion_ztest(1, 10, 0.5, 10), "successes_b must be a whole count, got 0.5"),
        (lambda: two_proportion_ztest(11, 10, 1, 10), "successes_a (11) exceeds total_a (10)"),
        (lambda: two_proportion_ztest(1, 10, 12, 10), "successes_b (12) exceeds total_b (10)"),
        (lambda: two_proportion_ztest(1, 10, 1, 10, alpha=0), "alpha must be in (0, 1), got 0.0"),
        (lambda: welch_ttest_from_stats(**WELCH | {"n_a": 1}), "n_a must be >= 2, got 1"),
        (lambda: welch_ttest_from_stats(**WELCH | {"n_b": 1}), "n_b must be >= 2, got 1"),
        (lambda: welch_ttest_from_stats(**WELCH | {"mean_a": INF}), "mean_a must be finite, got inf"),
        (lambda: welch_ttest_from_stats(**WELCH | {"mean_b": INF}), "mean_b must be finite, got inf"),
        (lambda: welch_ttest_from_stats(**WELCH | {"var_a": -1}), "var_a must be >= 0, got -1.0"),
        (lambda: welch_ttest_from_stats(**WELCH | {"var_a": NAN}), "var_a must be finite, got nan"),
        (lambda: welch_ttest_from_stats(**WELCH | {"var_b": -1}), "var_b must be >= 0, got -1.0"),
        (lambda: welch_ttest_from_stats(**WELCH | {"alpha": 1}), "alpha must be in (0, 1), got 1.0"),
        (lambda: welch_ttest_from_stats(**WELCH | {"var_a": 0, "var_b": 0}),
         "no variance in either arm but different means: the t statistic is infinite"),
        (lambda: welch_ttest([1.0], [1.0, 2.0]), "a needs at least 2 values, got 1"),
        (lambda: welch_ttest([1.0, 2.0], [[1.0, 2.0]]), "b must be one-dimensional, got shape (1, 2)"),
        (lambda: always_valid_proportions(1, 10, 1, 10, alpha=0), "alpha must be in (0, 1), got 0.0"),
        (lambda: always_valid_proportions(1, 10, 1, 10, tuning=INF), "tuning must be finite, got inf"),
        (lambda: always_valid_proportions(1, 10, 1, 10, tuning=0), "tuning must be > 0, got 0.0"),
        (lambda: always_valid_proportions(0, 10, 10, 10), "no variance in either arm but different values: the interval is degenerate"),
        (lambda: always_valid_means(**WELCH | {"n_a": 1}), "n_a must be >= 2, got 1"),
        (lambda: always_valid_means(**WELCH | {"n_b": 1}), "n_b must be >= 2, got 1"),
        (lambda: always_valid_means(**WELCH | {"mean_a": NAN}), "mean_a must be finite, got nan"),
        (lambda: always_valid_means(**WELCH | {"mean_b": NAN}), "mean_b must be finite, got nan"),
        (lambda: always_valid_means(**WELCH | {"var_a": -2}), "var_a must be >= 0, got -2.0"),
        (lambda: always_valid_means(**WELCH | {"var_b": -2}), "var_b must be >= 0, got -2.0"),
        (lambda: sample_size_per_arm(0.1, 0.02, alpha=0), "alpha must be in (0, 1), got 0.0"),
        (lambda: sample_size_per_arm(0.1, 0.02, power=1), "power must be in (0, 1), got 1.0"),
        (lambda: sample_size_per_arm(0.1, 0.02, alpha=0.2, power=0.2),
         "power (0.2) must exceed alpha (0.2): with no units the test already rejects alpha of the time"),
        (lambda: sample_size_per_arm(0, 0.02), "baseline must be in (0, 1), got 0.0"),
        (lambda: sample_size_per_arm(0.1, NAN), "mde must be finite, got nan"),
        (lambda: sample_size_per_arm(0.1, 0), "mde must not be 0: no sample detects a zero effect"),
        (lambda: sample_size_per_arm(0.1, -0.1), "baseline + mde must be in (0, 1), got 0.0"),
        (lambda: sample_size_per_arm(0.9, 0.1), "baseline + mde must be in (0, 1), got 1.0"),
        (lambda: sample_size_per_arm_means(INF, 1.0), "std must be finite, got inf"),
        (lambda: sample_size_per_arm_means(1.0, NAN), "mde must be finite, got nan"),
        (lambda: sample_size_per_arm_means(0, 1.0), "std must be > 0, got 0.0"),
        (lambda: sample_size_per_arm_means(1.0, 0), "mde must not be 0: no sample detects a zero effect"),
        (lambda: expected_duration_days(NAN, 2, 100), "units_needed_per_arm must be finite, got nan"),
        (lambda: expected_duration_days(-1, 2, 100), "units_needed_per_arm must be >= 0, got -1.0"),
        (lambda: expected_duration_days(100, 0, 100), "arms must be >= 1, got 0"),
        (lambda: expected_duration_days(100, NAN, 100), "arms must be finite, got nan"),
        (lambda: expected_duration_days(100, 2, INF), "units_per_day must be finite, got inf"),
        (lambda: expected_duration_days(100, 2, -1), "units_per_day must be >= 0, got -1.0"),
        (lambda: srm_check([10], [50, 50]), "observed needs at least 2 values, got 1"),
        (lambda: srm_check([10, -1], [50, 50]), "observed must be whole counts >= 0"),
        (lambda: srm_check([10, 20], [100]), "weights needs at least 2 values, got 1"),
        (lambda: srm_check([10, 20, 30], [50, 50]), "observed has 3 arms but weights has 2"),
        (lambda: srm_check([10, 20], [100, 0]), "weights must all be > 0"),
        (lambda: srm_check([10, 20], [50, 50], threshold=0), "threshold must be in (0, 1), got 0.0"),
        (lambda: cuped([1.0], [1.0, 2.0]), "y needs at least 2 values, got 1"),
        (lambda: cuped([1.0, 2.0], [NAN, 2.0]), "x contains NaN or inf"),
        (lambda: cuped([1.0, 2.0, 3.0], [1.0, 2.0]), "y has 3 values but x has 2"),
        (lambda: cuped_from_sums([]), "cuped_from_sums needs at least one arm"),
        (lambda: cuped_from_sums(arms_with(n=1)), "n must be >= 2, got 1"),
        (lambda: cuped_from_sums(arms_with(sum_y=NAN)), "sum_y must be finite, got nan"),
        (lambda: cuped_from_sums(arms_with(sum_y2=NAN)), "sum_y2 must be finite, got nan"),
        (lambda: cuped_from_sums(arms_with(sum_x=NAN)), "sum_x must be finite, got nan"),
        (lambda: cuped_from_sums(arms_with(sum_x2=NAN)), "sum_x2 must be finite, got nan"),
        (lambda: cuped_from_sums(arms_with(sum_xy=NAN)), "sum_xy must be finite, got nan"),
        # y = [1, 3] and [1, 3] pooled: sum_y2 = 20, sum_y^2 / N = 16; with sum_y2 = 12 it cannot be
        (lambda: cuped_from_sums(arms_with(sum_y2=2.0)), "sum_y2 is smaller than sum^2 / n: the aggregates are inconsistent"),
        (lambda: cuped_from_sums(arms_with(sum_x2=2.0)), "sum_x2 is smaller than sum^2 / n: the aggregates are inconsistent"),
        # each arm's own sums fine for y and x, but x and y of arm A covary more than they vary:
        # var_x = var_y = 2, cov = 6; theta = 1 pooled, so A's adjusted variance is 2 + 2 - 12 < 0
        (lambda: cuped_from_sums([CovariateSums(n=2, sum_y=4.0, sum_y2=10.0, sum_x=4.0, sum_x2=10.0, sum_xy=14.0),
                                  CovariateSums(n=2, sum_y=2.0, sum_y2=4.0, sum_x=2.0, sum_x2=4.0, sum_xy=0.0)]),
         "sums is smaller than sum^2 / n: the aggregates are inconsistent"),
        (lambda: variant_index(-1, [50, 50]), "buckets are whole numbers in [0, 10000)"),
        (lambda: variant_index(NAN, [50, 50]), "bucket must be finite, got nan"),
        (lambda: variant_indices([[1, 2]], [50, 50]), "buckets must be one-dimensional, got shape (1, 2)"),
        (lambda: bucket_ranges([33.333, 66.667]), "percentages have at most 2 decimals (10,000 buckets)"),
        (lambda: bucket_ranges([50, 49]), "weights must sum to 100, got 99.0"),
        (lambda: bucket_ranges([110, -10]), "weights must be >= 0"),
        (lambda: bucket_ranges([]), "weights needs at least 1 values, got 0"),
        (lambda: in_share(-1, 5), "buckets are whole numbers in [0, 10000)"),
        (lambda: in_share(10_000, 5), "buckets are whole numbers in [0, 10000)"),
        (lambda: in_share(2.5, 5), "buckets are whole numbers in [0, 10000)"),
        (lambda: in_share(NAN, 5), "bucket must be finite, got nan"),
        (lambda: in_share(10, NAN), "percent must be finite, got nan"),
        (lambda: in_share(10, -1), "percent must be in [0, 100], got -1.0"),
        (lambda: in_share(10, 12.345), "percentages have at most 2 decimals (10,000 buckets)"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_bad_input_is_refused_with_a_message_naming_the_argument_and_the_rule(call, message):
    # given input outside a function's contract (in each case)

    # when
    got = refused(call)

    # then
    assert got == message


# --- edges the tests above leave open ------------------------------------------------------------


def test_arm_summary_from_sums_of_the_smallest_arm():
    # given the values 1 and 2 as SQL sums: n = 2, sum = 3, sum of squares = 5

    # when
    arm = ArmSummary.from_sums(2, 3.0, 5.0)

    # then mean 1.5, variance ((-0.5)^2 + 0.5^2) / 1
    assert (arm.n, arm.mean, arm.variance) == (2, 1.5, 0.5)


def test_arm_summary_from_sums_takes_a_rounding_negative_within_1e_12_of_sum_squares_over_n_minus_1_as_0():
    # given n = 5 and sum = 10 (sum^2 / n = 20): the sum of squares a hair below 20 leaves a negative
    # variance of about -4e-12, within 1e-12 x 20 / 4 = 5e-12; -1e-11 is beyond it
    within, beyond = 20.0 - 1.6e-11, 20.0 - 4e-11
    # a metric in thousandths: n = 2, sum = 0.002, sum^2 / n = 2e-6; the tolerance is relative
    # (1e-12 x 2e-6), so -1e-15 is far beyond it
    small = 2e-6 - 1e-15

    # when
    arm = ArmSummary.from_sums(5, 10.0, within)

    # then
    assert (arm.mean, arm.variance) == (2.0, 0.0)
    assert refused(lambda: ArmSummary.from_sums(5, 10.0, beyond)).endswith("the aggregates are inconsistent")
    assert refused(lambda: ArmSummary.from_sums(2, 0.002, small)).endswith("the aggregates are inconsistent")


def test_two_proportion_ztest_one_unit_per_arm_matches_statsmodels():
    # given one unit in each arm, the one in B converted
    z_ref, p_ref = proportions_ztest([1, 0], [1, 1])

    # when
    result = two_proportion_ztest(0, 1, 1, 1)

    # then
    assert (result.rate_a, result.rate_b, result.diff) == (0.0, 1.0, 1.0)
    assert result.z_score == close(z_ref)
    assert result.p_value == close(p_ref)


def test_welch_ttest_no_variance_and_no_difference_gives_every_field():
    # given two constant arms with the same value, of 10 and 12 units

    # when
    result = welch_ttest_from_stats(5.0, 0.0, 10, 5.0, 0.0, 12)

    # then no evidence, with the pooled df 10 + 12 - 2 and a lift of 0 / 5
    assert result.as_dict() == {
        "mean_a": 5.0, "mean_b": 5.0, "n_a": 10, "n_b": 12, "diff": 0.0, "lift": 0.0, "t": 0.0, "df": 20.0,
        "p_value": 1.0, "significant": False, "ci_low": 0.0, "ci_high": 0.0,
    }


def test_welch_ttest_on_arrays_uses_the_alpha_given():
    # given
    rng = np.random.default_rng(17)
    a, b = rng.normal(10.0, 2.0, 30), rng.normal(10.6, 3.0, 45)
    low_ref, high_ref = CompareMeans.from_data(b, a).tconfint_diff(alpha=0.2, usevar="unequal")
    p_ref = stats.ttest_ind(b, a, equal_var=False).pvalue

    # when
    result = welch_ttest(a, b, alpha=0.2)

    # then
    assert (result.ci_low, result.ci_high) == (close(low_ref), close(high_ref))
    assert result.significant == (p_ref < 0.2)


def test_always_valid_degenerate_result_has_no_difference():
    # given no variance and equal means

    # when
    result = always_valid_means(3.0, 0.0, 10, 3.0, 0.0, 10)

    # then
    assert result.as_dict() == {"diff": 0.0, "ci_low": 0.0, "ci_high": 0.0, "half_width": 0.0, "p_value": 1.0, "significant": False}


def test_always_valid_intervals_with_tuning_1_and_two_units_per_arm_match_live_gbstats():
    import gbstats.frequentist.tests as gb
    import gbstats.models.statistics as gb_stats

    # given the smallest tuning the sequential test allows here (any > 0) and the smallest arms
    config = gb.SequentialConfig(difference_type="absolute", sequential_tuning_parameter=1.0, alpha=0.05)
    ref = gb.SequentialTwoSidedTTest(gb_stats.ProportionStatistic(sum=30, n=100), gb_stats.ProportionStatistic(sum=45, n=100), config).compute_result()
    a, b = np.array([2.0, 4.0]), np.array([5.0, 9.0])
    ref_means = gb.SequentialTwoSidedTTest(
        gb_stats.SampleMeanStatistic(n=2, sum=a.sum(), sum_squares=(a * a).sum()),
        gb_stats.SampleMeanStatistic(n=2, sum=b.sum(), sum_squares=(b * b).sum()),
        config,
    ).compute_result()

    # when
    result = always_valid_proportions(30, 100, 45, 100, tuning=1.0)
    means = always_valid_means(a.mean(), a.var(ddof=1), 2, b.mean(), b.var(ddof=1), 2, tuning=1.0)

    # then
    assert (result.ci_low, result.ci_high, result.p_value) == (close(ref.ci[0]), close(ref.ci[1]), close(ref.p_value))
    assert (means.ci_low, means.ci_high, means.p_value) == (close(ref_means.ci[0]), close(ref_means.ci[1]), close(ref_means.p_value))


def test_expected_duration_days_of_nothing_needed_and_of_one_arm():
    # given

    # when / then: nothing to enrol takes no days; one arm of 100 units at 50 a day takes 2
    assert expected_duration_days(0, 2, 100) == 0.0
    assert expected_duration_days(100, 1, 50) == 2.0


def test_srm_check_takes_weights_as_fractions():
    # given a planned 25/75 split written as fractions
    ref = stats.chisquare([30, 70], f_exp=[25.0, 75.0])

    # when
    result = srm_check([30, 70], [0.25, 0.75])

    # then
    assert result.expected == (25.0, 75.0)
    assert (result.chi2, result.p_value) == (close(ref.statistic), close(ref.pvalue))


# A metric and covariate in tenths: every sum of squares is below 1.
SMALL_Y = np.array([0.05, 0.12, 0.31, 0.33, 0.52, 0.18])
SMALL_X = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.15])


def covariate_sums(y: np.ndarray, x: np.ndarray) -> CovariateSums:
    return CovariateSums(n=y.size, sum_y=y.sum(), sum_y2=(y * y).sum(), sum_x=x.sum(), sum_x2=(x * x).sum(), sum_xy=(x * y).sum())


def test_cuped_on_a_small_scale_metric_matches_ols_and_the_correlation():
    # given
    slope = OLS(SMALL_Y, add_constant(SMALL_X)).fit().params[1]
    r2 = np.corrcoef(SMALL_X, SMALL_Y)[0, 1] ** 2

    # when
    result = cuped(SMALL_Y, SMALL_X)
    summary = cuped_from_sums([covariate_sums(SMALL_Y[:3], SMALL_X[:3]), covariate_sums(SMALL_Y[3:], SMALL_X[3:])])

    # then
    assert result.theta == close(slope) and summary.theta == close(slope)
    assert result.variance_reduction == close(r2) and summary.variance_reduction == close(r2)
    assert 0.8 < r2 < 1


def test_cuped_of_a_constant_metric_removes_no_variance():
    # given y constant in both arms, x not
    y, x = np.array([2.0, 2.0, 2.0, 2.0]), np.array([1.0, 2.0, 4.0, 5.0])

    # when
    result = cuped(y, x)
    summary = cuped_from_sums([covariate_sums(y[:2], x[:2]), covariate_sums(y[2:], x[2:])])

    # then
    assert (result.theta, result.variance_reduction) == (0.0, 0.0)
    np.testing.assert_array_equal(result.adjusted, y)
    assert (summary.theta, summary.variance_reduction) == (0.0, 0.0)


def test_cuped_from_sums_of_a_metric_the_covariate_explains_exactly():
    # given y = 3 x + 1.5 in both arms (these x make the float sums give r^2 a few ulps above 1)
    x = np.array([6.9, 3.9, 1.4, 7.2, 5.3, 3.1])
    y = 3 * x + 1.5

    # when
    summary = cuped_from_sums([covariate_sums(y[:3], x[:3]), covariate_sums(y[3:], x[3:])])

    # then all the variance is removed, never more: both arms become the constant 3 mean(x) + 1.5
    assert summary.theta == close(3.0)
    assert summary.variance_reduction == 1.0
    assert [arm.variance for arm in summary.arms] == [0.0, 0.0]
    assert [arm.mean for arm in summary.arms] == [close(3 * x.mean() + 1.5), close(3 * x.mean() + 1.5)]


def test_variant_indices_of_no_buckets_is_empty():
    # given no units

    # when
    indices = variant_indices([], [50, 50])

    # then
    assert indices.tolist() == []

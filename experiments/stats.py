"""A/B test statistics, exactly as docs/metrics.md defines them. numpy/scipy only: no Django.

Every function takes plain numbers or arrays and returns a frozen dataclass (``.as_dict()`` for
JSON). The analysis aggregates in SQL, so each test has a summary-statistic form: per arm the count
``n``, the sum and the sum of squares (``ArmSummary.from_sums``), plus the cross sums for CUPED.

Proportions (conversions)
    two_proportion_ztest      pooled z-test, unpooled Wald interval of p_b - p_a (fixed horizon)
    always_valid_proportions  GrowthBook's asymptotic confidence sequence (safe to peek daily)
    sample_size_per_arm       statsmodels' NormalIndPower on Cohen's h, rounded up
Means (continuous metrics)
    welch_ttest, welch_ttest_from_stats, always_valid_means, sample_size_per_arm_means
    cuped, cuped_from_sums    variance reduction with a pre-experiment covariate
Guardrails (is B worse than A by more than the allowed margin? one-sided)
    rate_degradation_test     z test of p_b - p_a beyond the margin, unpooled SE (error rate, guardrail rate)
    mean_degradation_test     Welch t test of mean_b - mean_a beyond the margin (cost per request)
    quantile_degradation_test z test of the P95s beyond the margin, Maritz-Jarrett standard errors (latency)
Health and assignment
    srm_check                 chi-square goodness of fit of the observed split, flag at p < 0.001
    bucket, buckets, bucket_ranges, variant_index, variant_indices, in_share
    expected_duration_days

Bad input (a count above its total, alpha outside (0, 1), a non-finite value...) raises
``StatsError``; nothing returns NaN or inf. Degenerate but valid input (no variance anywhere and
no difference) returns a defined "no evidence" result, documented on each function.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize, stats

BUCKETS = 10_000
SRM_THRESHOLD = 0.001
SEQUENTIAL_TUNING = 5_000.0
# Weights are percentages with at most 2 decimals (10,000 buckets = 0.01 % resolution); a product of
# such a weight and 100 lands within a few ulps of an integer, anything further had more decimals.
_WEIGHT_DECIMALS_TOL = 1e-6
_WEIGHT_SUM_TOL = 1e-9
_DECIMALS_MESSAGE = "percentages have at most 2 decimals (10,000 buckets)"
_BUCKET_MESSAGE = f"buckets are whole numbers in [0, {BUCKETS})"


class StatsError(ValueError):
    """Input the A/B statistics cannot use (a count above its total, alpha outside (0, 1), NaN...)."""


@dataclass(frozen=True, slots=True)
class _Result:
    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class ProportionTest(_Result):
    """``two_proportion_ztest``: rates, diff = rate_b - rate_a, relative lift, z, two-sided p, interval of diff."""

    rate_a: float
    rate_b: float
    diff: float
    lift: float | None
    z_score: float
    p_value: float
    significant: bool
    ci_low: float
    ci_high: float


@dataclass(frozen=True, slots=True)
class WelchTest(_Result):
    """``welch_ttest``: means, diff = mean_b - mean_a, relative lift, t, Welch df, p, interval of diff."""

    mean_a: float
    mean_b: float
    n_a: int
    n_b: int
    diff: float
    lift: float | None
    t: float
    df: float
    p_value: float
    significant: bool
    ci_low: float
    ci_high: float


@dataclass(frozen=True, slots=True)
class AlwaysValidInterval(_Result):
    """``always_valid_*``: diff (B - A), its confidence-sequence bounds, half-width, always-valid p."""

    diff: float
    ci_low: float
    ci_high: float
    half_width: float
    p_value: float
    significant: bool


@dataclass(frozen=True, slots=True)
class DegradationTest(_Result):
    """``*_degradation_test``: is B worse than A by more than the allowed margin (higher is worse)?

    value_a, value_b: each arm's figure (rate, mean or quantile); degradation: B - A, or (B - A) / A when
    relative (None when A is 0); excess: the estimate of B - A - margin, or B - (1 + margin) A when relative,
    in the metric's units (> 0: beyond the margin); se: its standard error; statistic: z or t (None when
    se = 0); df: Welch's degrees of freedom (t tests only); p_value: one-sided; significant: p_value < alpha.
    """

    value_a: float
    value_b: float
    degradation: float | None
    margin: float
    relative: bool
    excess: float
    se: float
    statistic: float | None
    df: float | None
    p_value: float
    significant: bool


@dataclass(frozen=True, slots=True)
class SrmResult(_Result):
    """``srm_check``: chi-square statistic, p-value, flagged, and the expected count per arm."""

    chi2: float
    p_value: float
    flagged: bool
    expected: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class ArmSummary(_Result):
    """One arm of a continuous metric: count, mean and sample variance (ddof=1)."""

    n: int
    mean: float
    variance: float

    @classmethod
    def from_sums(cls, n: int, total: float, sum_squares: float) -> ArmSummary:
        """From SQL aggregates: mean = sum / n, variance = (sum_sq - sum^2 / n) / (n - 1).

        The textbook one-pass formula loses digits when |mean| >> std; the metrics an experiment
        tracks (revenue, latency, counts) stay far from that regime at float64.
        """
        n = _count("n", n, minimum=2)
        total, sum_squares = _finite("sum", total), _finite("sum_squares", sum_squares)
        variance = _clamped_variance((sum_squares - total * total / n) / (n - 1), sum_squares / (n - 1), "sum_squares")
        return cls(n=n, mean=total / n, variance=variance)

    @classmethod
    def from_values(cls, values: ArrayLike) -> ArmSummary:
        """From per-unit values (at least 2, finite): numpy mean and var(ddof=1)."""
        arr = _sample("values", values)
        return cls(n=int(arr.size), mean=float(arr.mean()), variance=float(arr.var(ddof=1)))


@dataclass(frozen=True, slots=True)
class CovariateSums(_Result):
    """SQL aggregates of one arm for CUPED: y the metric, x the pre-experiment covariate."""

    n: int
    sum_y: float
    sum_y2: float
    sum_x: float
    sum_x2: float
    sum_xy: float


@dataclass(frozen=True, slots=True)
class CupedResult(_Result):
    """``cuped``: adjusted per-unit values (input order), theta, share of variance removed."""

    adjusted: np.ndarray
    theta: float
    variance_reduction: float


@dataclass(frozen=True, slots=True)
class CupedSummary(_Result):
    """``cuped_from_sums``: theta, share of variance removed, and each arm's adjusted n, mean, variance."""

    theta: float
    variance_reduction: float
    arms: tuple[ArmSummary, ...]


# --- input checks -----------------------------------------------------------------------------


def _finite(name: str, value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise StatsError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise StatsError(f"{name} must be finite, got {out}")
    return out


def _count(name: str, value: Any, minimum: int = 0) -> int:
    # A rate passed where a count belongs (0.1 instead of 120) is the classic slip: reject fractions.
    out = _finite(name, value)
    if out != math.floor(out):
        raise StatsError(f"{name} must be a whole count, got {out}")
    if out < minimum:
        raise StatsError(f"{name} must be >= {minimum}, got {int(out)}")
    return int(out)


def _probability(name: str, value: Any) -> float:
    out = _finite(name, value)
    if not 0.0 < out < 1.0:
        raise StatsError(f"{name} must be in (0, 1), got {out}")
    return out


def _variance(name: str, value: Any) -> float:
    out = _finite(name, value)
    if out < 0:
        raise StatsError(f"{name} must be >= 0, got {out}")
    return out


def _clamped_variance(value: float, scale: float, name: str) -> float:
    # Rounding in sum_sq - sum^2/n can leave a tiny negative for a constant metric; a large one
    # means the sums do not belong together.
    if value >= 0:
        return value
    if -value <= 1e-12 * max(abs(scale), 1e-300):
        return 0.0
    raise StatsError(f"{name} is smaller than sum^2 / n: the aggregates are inconsistent")


def _sample(name: str, values: ArrayLike, minimum: int = 2) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise StatsError(f"{name} must be numeric") from None
    if arr.ndim != 1:
        raise StatsError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size < minimum:
        raise StatsError(f"{name} needs at least {minimum} values, got {arr.size}")
    if not np.isfinite(arr).all():
        raise StatsError(f"{name} contains NaN or inf")
    return arr


def _proportion_arms(successes_a: Any, total_a: Any, successes_b: Any, total_b: Any) -> tuple[int, int, int, int]:
    n_a, n_b = _count("total_a", total_a, minimum=1), _count("total_b", total_b, minimum=1)
    x_a, x_b = _count("successes_a", successes_a), _count("successes_b", successes_b)
    if x_a > n_a:
        raise StatsError(f"successes_a ({x_a}) exceeds total_a ({n_a})")
    if x_b > n_b:
        raise StatsError(f"successes_b ({x_b}) exceeds total_b ({n_b})")
    return x_a, n_a, x_b, n_b


def _lift(diff: float, base: float) -> float | None:
    return None if base == 0 else diff / base


# --- fixed-horizon tests ----------------------------------------------------------------------


def two_proportion_ztest(successes_a: int, total_a: int, successes_b: int, total_b: int, alpha: float = 0.05) -> ProportionTest:
    """Two-sided pooled two-proportion z-test of B against A, with the unpooled Wald interval.

    p_a = x_a / n_a, p_b = x_b / n_b, p = (x_a + x_b) / (n_a + n_b),
    SE = sqrt(p (1 - p) (1/n_a + 1/n_b)), z = (p_b - p_a) / SE (positive: B better),
    p-value = 2 norm.sf(|z|), significant = p-value < alpha, lift = (p_b - p_a) / p_a (None if p_a = 0).
    Interval: (p_b - p_a) +- z_{1-alpha/2} sqrt(p_a (1 - p_a) / n_a + p_b (1 - p_b) / n_b).
    Same as statsmodels ``proportions_ztest([x_b, x_a], [n_b, n_a])`` and
    ``confint_proportions_2indep(x_b, n_b, x_a, n_a, method="wald", compare="diff")``.

    Degenerate: when no unit or every unit converted in both arms, SE = 0; the result is then
    z = 0, p-value = 1, not significant, interval [0, 0] (no evidence of a difference).
    """
    x_a, n_a, x_b, n_b = _proportion_arms(successes_a, total_a, successes_b, total_b)
    alpha = _probability("alpha", alpha)
    p_a, p_b = x_a / n_a, x_b / n_b
    diff = p_b - p_a
    pooled = (x_a + x_b) / (n_a + n_b)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se_pooled == 0:
        z, p_value = 0.0, 1.0
    else:
        z = diff / se_pooled
        p_value = float(2 * stats.norm.sf(abs(z)))
    # The test pools (the null says the rates are equal); the interval cannot assume that.
    se_unpooled = math.sqrt(p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b)
    half = float(stats.norm.isf(alpha / 2)) * se_unpooled
    return ProportionTest(
        rate_a=p_a, rate_b=p_b, diff=diff, lift=_lift(diff, p_a), z_score=z, p_value=p_value,
        significant=p_value < alpha, ci_low=diff - half, ci_high=diff + half,
    )


def welch_ttest_from_stats(
    mean_a: float, var_a: float, n_a: int, mean_b: float, var_b: float, n_b: int, alpha: float = 0.05
) -> WelchTest:
    """Welch's two-sided t-test of B minus A from per-arm means and sample variances (ddof=1).

    SE^2 = var_a / n_a + var_b / n_b, t = (mean_b - mean_a) / SE,
    df = SE^4 / ((var_a / n_a)^2 / (n_a - 1) + (var_b / n_b)^2 / (n_b - 1))  (Welch-Satterthwaite),
    p-value = 2 t.sf(|t|, df), interval diff +- t.ppf(1 - alpha/2, df) SE, significant = p-value < alpha.
    Same as ``scipy.stats.ttest_ind_from_stats(..., equal_var=False)`` with B first, and
    statsmodels ``CompareMeans.tconfint_diff(usevar="unequal")``. Needs n >= 2 per arm.

    Degenerate: no variance in either arm and equal means gives t = 0, p-value = 1, interval
    [0, 0], df = n_a + n_b - 2 (Welch's df is 0/0 there; the pooled df stands in). No variance
    with different means has an infinite t and raises StatsError: the metric is constant per arm,
    which is an instrumentation problem, not a result.
    """
    n_a, n_b = _count("n_a", n_a, minimum=2), _count("n_b", n_b, minimum=2)
    mean_a, mean_b = _finite("mean_a", mean_a), _finite("mean_b", mean_b)
    var_a, var_b = _variance("var_a", var_a), _variance("var_b", var_b)
    alpha = _probability("alpha", alpha)
    diff = mean_b - mean_a
    va, vb = var_a / n_a, var_b / n_b
    se2 = va + vb
    if se2 == 0:
        if diff != 0:
            raise StatsError("no variance in either arm but different means: the t statistic is infinite")
        return WelchTest(
            mean_a=mean_a, mean_b=mean_b, n_a=n_a, n_b=n_b, diff=0.0, lift=_lift(0.0, mean_a), t=0.0,
            df=float(n_a + n_b - 2), p_value=1.0, significant=False, ci_low=0.0, ci_high=0.0,
        )
    se = math.sqrt(se2)
    df = se2 * se2 / (va * va / (n_a - 1) + vb * vb / (n_b - 1))
    t = diff / se
    p_value = float(2 * stats.t.sf(abs(t), df))
    half = float(stats.t.isf(alpha / 2, df)) * se
    return WelchTest(
        mean_a=mean_a, mean_b=mean_b, n_a=n_a, n_b=n_b, diff=diff, lift=_lift(diff, mean_a), t=t, df=df,
        p_value=p_value, significant=p_value < alpha, ci_low=diff - half, ci_high=diff + half,
    )


def welch_ttest(a: ArrayLike, b: ArrayLike, alpha: float = 0.05) -> WelchTest:
    """Welch's t-test of B minus A on per-unit values; see ``welch_ttest_from_stats``.

    Same as ``scipy.stats.ttest_ind(b, a, equal_var=False)``. Each arm needs >= 2 finite values.
    """
    arm_a, arm_b = ArmSummary.from_values(_sample("a", a)), ArmSummary.from_values(_sample("b", b))
    return welch_ttest_from_stats(arm_a.mean, arm_a.variance, arm_a.n, arm_b.mean, arm_b.variance, arm_b.n, alpha)


# --- always-valid (sequential) intervals --------------------------------------------------------


def _always_valid(diff: float, se2: float, n_total: int, alpha: float, tuning: float) -> AlwaysValidInterval:
    alpha = _probability("alpha", alpha)
    tuning = _finite("tuning", tuning)
    if tuning <= 0:
        raise StatsError(f"tuning must be > 0, got {tuning}")
    if se2 == 0:
        if diff != 0:
            raise StatsError("no variance in either arm but different values: the interval is degenerate")
        return AlwaysValidInterval(diff=0.0, ci_low=0.0, ci_high=0.0, half_width=0.0, p_value=1.0, significant=False)
    rho2 = (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning
    big_n = float(n_total)
    n_rho2_1 = big_n * rho2 + 1
    sigma = math.sqrt(se2 * big_n)
    half = sigma * math.sqrt(2 * n_rho2_1 / (big_n * big_n * rho2) * math.log(math.sqrt(n_rho2_1) / alpha))
    # The always-valid p-value (Waudby-Smith et al. eq. 155, as gbstats) is 1 / e-value, in log
    # space so a huge effect gives 0 instead of overflowing; it is below alpha exactly when the
    # interval excludes 0.
    log_evalue = rho2 * diff * diff * big_n / se2 / (2 * n_rho2_1) - 0.5 * math.log(n_rho2_1)
    p_value = math.exp(-log_evalue) if log_evalue > 0 else 1.0
    low, high = diff - half, diff + half
    return AlwaysValidInterval(
        diff=diff, ci_low=low, ci_high=high, half_width=half, p_value=p_value, significant=low > 0 or high < 0
    )


def always_valid_proportions(
    successes_a: int, total_a: int, successes_b: int, total_b: int, alpha: float = 0.05, tuning: float = SEQUENTIAL_TUNING
) -> AlwaysValidInterval:
    """Always-valid interval of p_b - p_a: GrowthBook's asymptotic confidence sequence.

    Waudby-Smith et al. (2023, arXiv:2103.06476, eq. 9) with tuning N* (default 5,000):
    N = n_a + n_b, rho = sqrt((-2 ln(alpha) + ln(-2 ln(alpha) + 1)) / N*),
    SE = sqrt(p_a (1 - p_a) / n_a + p_b (1 - p_b) / n_b) (unpooled), sigma = SE sqrt(N),
    half-width = sigma sqrt(2 (N rho^2 + 1) / (N^2 rho^2) ln(sqrt(N rho^2 + 1) / alpha)).
    significant = the interval excludes 0. Also the always-valid p-value min(1, 1 / e-value),
    e-value = exp(rho^2 diff^2 N / SE^2 / (2 (N rho^2 + 1))) / sqrt(N rho^2 + 1) (eq. 155).
    Matches gbstats ``SequentialTwoSidedTTest`` on ``ProportionStatistic`` with
    ``difference_type="absolute"`` wherever gbstats computes one; gbstats gives up ([0, 0],
    p = 1) when the control rate or either arm's variance is 0, while this computes the interval
    whenever the combined SE > 0, like the fixed-horizon Wald interval it is shown beside.

    Degenerate: SE = 0 with equal rates gives [0, 0], p = 1, not significant; SE = 0 with
    different rates (0 % against 100 %) raises StatsError.
    """
    x_a, n_a, x_b, n_b = _proportion_arms(successes_a, total_a, successes_b, total_b)
    p_a, p_b = x_a / n_a, x_b / n_b
    se2 = p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b
    return _always_valid(p_b - p_a, se2, n_a + n_b, alpha, tuning)


def always_valid_means(
    mean_a: float, var_a: float, n_a: int, mean_b: float, var_b: float, n_b: int,
    alpha: float = 0.05, tuning: float = SEQUENTIAL_TUNING,
) -> AlwaysValidInterval:
    """Always-valid interval of mean_b - mean_a; the formula of ``always_valid_proportions`` with
    SE = sqrt(var_a / n_a + var_b / n_b), variances with ddof=1 (gbstats' ``SampleMeanStatistic``:
    (sum_sq - sum^2 / n) / (n - 1)). Needs n >= 2 per arm; degenerate cases as there.
    """
    n_a, n_b = _count("n_a", n_a, minimum=2), _count("n_b", n_b, minimum=2)
    mean_a, mean_b = _finite("mean_a", mean_a), _finite("mean_b", mean_b)
    var_a, var_b = _variance("var_a", var_a), _variance("var_b", var_b)
    return _always_valid(mean_b - mean_a, var_a / n_a + var_b / n_b, n_a + n_b, alpha, tuning)


# --- guardrails: one-sided tests of a degradation beyond the allowed margin ----------------------------------


def _margin(margin: Any, relative: bool) -> tuple[float, float, float]:
    """(margin, k, shift): the null is B - k A - shift <= 0, with k = 1 + margin and shift = 0 when relative,
    k = 1 and shift = margin when absolute."""
    margin = _finite("margin", margin)
    if margin < 0:
        raise StatsError(f"margin must be >= 0, got {margin}")
    return (margin, 1.0 + margin, 0.0) if relative else (margin, 1.0, margin)


def _degradation(value_a: float, value_b: float, margin: float, relative: bool, k: float, shift: float, var_a: float,
                 var_b: float, alpha: float, df: float | None, dist) -> DegradationTest:
    # var_a, var_b: the variances of each arm's estimate; A's is scaled by k^2 with its value.
    excess = value_b - k * value_a - shift
    se = math.sqrt(k * k * var_a + var_b)
    if se == 0:
        # No spread in either arm: the difference is exact, beyond the margin or not.
        statistic, p_value = None, (0.0 if excess > 0 else 1.0)
    else:
        statistic = excess / se
        p_value = float(dist.sf(statistic)) if df is None else float(dist.sf(statistic, df))
    degradation = (value_b - value_a) / value_a if relative and value_a != 0 else (None if relative else value_b - value_a)
    return DegradationTest(
        value_a=value_a, value_b=value_b, degradation=degradation, margin=margin, relative=relative, excess=excess, se=se,
        statistic=statistic, df=df, p_value=p_value, significant=p_value < alpha,
    )


def rate_degradation_test(
    successes_a: int, total_a: int, successes_b: int, total_b: int, margin: float, relative: bool = False, alpha: float = 0.05
) -> DegradationTest:
    """One-sided z test that B's rate (errors, guardrail triggers: higher is worse) exceeds A's by more than the margin.

    H0: p_b - p_a <= margin (absolute), or p_b - p_a <= margin x p_a (relative); H1: beyond it.
    With k = 1 + margin (relative) or 1 (absolute) and shift = 0 (relative) or margin (absolute):
    excess = p_b - k p_a - shift, SE = sqrt(p_b (1 - p_b) / n_b + k^2 p_a (1 - p_a) / n_a) (unpooled: the null
    is not "equal rates"), z = excess / SE, p-value = norm.sf(z), significant = p-value < alpha.
    Absolute: statsmodels ``test_proportions_2indep(x_b, n_b, x_a, n_a, value=margin, method="wald",
    compare="diff", alternative="larger")``; relative: the same Wald test of the contrast p_b - k p_a.

    Degenerate: SE = 0 (each arm at 0 % or 100 %) makes the difference exact: p-value 0 when it is beyond
    the margin, else 1; the statistic is None. ``degradation`` is None when relative and p_a = 0.
    """
    x_a, n_a, x_b, n_b = _proportion_arms(successes_a, total_a, successes_b, total_b)
    alpha = _probability("alpha", alpha)
    margin, k, shift = _margin(margin, relative)
    p_a, p_b = x_a / n_a, x_b / n_b
    return _degradation(p_a, p_b, margin, relative, k, shift, p_a * (1 - p_a) / n_a, p_b * (1 - p_b) / n_b, alpha, None, stats.norm)


def mean_degradation_test(
    mean_a: float, var_a: float, n_a: int, mean_b: float, var_b: float, n_b: int, margin: float, relative: bool = False,
    alpha: float = 0.05,
) -> DegradationTest:
    """One-sided Welch t test that B's mean (cost per request: higher is worse) exceeds A's by more than the margin.

    H0: mean_b - mean_a <= margin (absolute), or mean_b <= (1 + margin) mean_a (relative).
    With k and shift as in ``rate_degradation_test`` and sample variances (ddof=1):
    excess = mean_b - k mean_a - shift, v_a = k^2 var_a / n_a, v_b = var_b / n_b, SE = sqrt(v_a + v_b),
    t = excess / SE, df = SE^4 / (v_a^2 / (n_a - 1) + v_b^2 / (n_b - 1)) (Welch-Satterthwaite),
    p-value = t.sf(t, df), significant = p-value < alpha. Same as statsmodels
    ``ttest_ind(b, k * a, value=shift, alternative="larger", usevar="unequal")`` (A's values scaled by k).
    Needs n >= 2 per arm. Degenerate: SE = 0 (both arms constant): the difference is exact, p-value 0 beyond
    the margin, else 1; the statistic is None and df the pooled n_a + n_b - 2.
    """
    n_a, n_b = _count("n_a", n_a, minimum=2), _count("n_b", n_b, minimum=2)
    mean_a, mean_b = _finite("mean_a", mean_a), _finite("mean_b", mean_b)
    var_a, var_b = _variance("var_a", var_a), _variance("var_b", var_b)
    alpha = _probability("alpha", alpha)
    margin, k, shift = _margin(margin, relative)
    va, vb = k * k * var_a / n_a, var_b / n_b
    df = (va + vb) ** 2 / (va * va / (n_a - 1) + vb * vb / (n_b - 1)) if va + vb > 0 else float(n_a + n_b - 2)
    return _degradation(mean_a, mean_b, margin, relative, k, shift, var_a / n_a, vb, alpha, df, stats.t)


# Beyond this many standard deviations of Beta(m - 1, n - m) its weights are below 1e-30: Maritz-Jarrett needs
# only the order statistics around the quantile, so a million latencies cost a partition, not a sort.
_MJ_TAIL = 1e-30


def quantile_standard_error(values: ArrayLike, q: float) -> float:
    """Maritz-Jarrett standard error of the sample q-quantile (Maritz and Jarrett 1978): with the sorted values
    x_(1) <= ... <= x_(n) and m = int(q n + 0.5), W_i = B(i / n) - B((i - 1) / n) for B the Beta(m - 1, n - m)
    distribution function, C1 = sum W_i x_(i), C2 = sum W_i x_(i)^2, SE = sqrt(C2 - C1^2). Equals
    ``scipy.stats.mstats.mjci(values, prob=[q])``; only the order statistics where W_i > 1e-30 are read (sorted
    after a partition), centred on one of them so that C2 - C1^2 loses no digits. Needs m >= 2 and m <= n - 1.
    """
    x = _sample("values", values)
    q = _probability("q", q)
    n = x.size
    m = int(q * n + 0.5)
    if m < 2 or m > n - 1:
        raise StatsError(f"the {q:g} quantile of {n} values has no Maritz-Jarrett standard error: more values are needed")
    dist = stats.beta(m - 1, n - m)
    lo = max(1, math.floor(float(dist.ppf(_MJ_TAIL)) * n))  # 1-based ranks of the window
    hi = min(n, math.ceil(float(dist.isf(_MJ_TAIL)) * n) + 1)
    window = np.sort(np.partition(x, [lo - 1, hi - 1])[lo - 1 : hi])
    ranks = np.arange(lo, hi + 1, dtype=float)
    weights = dist.cdf(ranks / n) - dist.cdf((ranks - 1) / n)
    centred = window - window[window.size // 2]
    c1 = float(weights @ centred)
    c2 = float(weights @ (centred * centred))
    return math.sqrt(max(0.0, c2 - c1 * c1))


def quantile_degradation_test(
    a: ArrayLike, b: ArrayLike, margin: float, relative: bool = False, q: float = 0.95, alpha: float = 0.05
) -> DegradationTest:
    """One-sided test that B's q-quantile (latency P95: higher is worse) exceeds A's by more than the margin.

    Each arm's quantile is ``np.percentile(x, 100 q)`` (linear), its standard error Maritz-Jarrett's
    (``quantile_standard_error``); with k and shift as in ``rate_degradation_test``:
    excess = Q_b - k Q_a - shift, SE = sqrt(se_b^2 + k^2 se_a^2), z = excess / SE, p-value = norm.sf(z),
    significant = p-value < alpha: a two-sample z test on the quantiles, valid for large samples of a
    continuous metric (the sample quantile is asymptotically normal). Degenerate: SE = 0 (no spread around
    either quantile, heavy ties) makes the difference exact: p-value 0 beyond the margin, else 1.
    """
    arm_a, arm_b = _sample("a", a), _sample("b", b)
    alpha = _probability("alpha", alpha)
    q = _probability("q", q)
    margin, k, shift = _margin(margin, relative)
    se_a, se_b = quantile_standard_error(arm_a, q), quantile_standard_error(arm_b, q)
    value_a, value_b = float(np.percentile(arm_a, 100 * q)), float(np.percentile(arm_b, 100 * q))
    return _degradation(value_a, value_b, margin, relative, k, shift, se_a * se_a, se_b * se_b, alpha, None, stats.norm)


# --- sample size --------------------------------------------------------------------------------


def _normal_ind_power_nobs(effect_size: float, alpha: float, power: float) -> int:
    alpha, power = _probability("alpha", alpha), _probability("power", power)
    if power <= alpha:
        raise StatsError(f"power ({power}) must exceed alpha ({alpha}): with no units the test already rejects alpha of the time")
    d = abs(effect_size)
    crit = float(stats.norm.isf(alpha / 2))

    def power_gap(n: float) -> float:
        # statsmodels NormalIndPower, two-sided, ratio 1: effective nobs = 1 / (1/n + 1/n) = n / 2.
        # The second term is the far tail (rejecting in the wrong direction); leaving it out moves
        # the answer by one unit at low power, so it stays.
        shift = d * math.sqrt(n / 2)
        return float(stats.norm.sf(crit - shift) + stats.norm.cdf(-crit - shift)) - power

    # Without the far tail the root is the textbook closed form; the far tail only adds power,
    # so the true root lies below it and the closed form brackets it from above.
    upper = 2 * ((crit + float(stats.norm.ppf(power))) / d) ** 2
    # Rounding can leave the closed form a hair short when the far tail underflows; nudge it up.
    for _ in range(64):
        if power_gap(upper) >= 0:
            break
        upper *= 1 + 1e-9
    if power_gap(upper) == 0:
        return math.ceil(upper)
    root = optimize.brentq(power_gap, upper * 1e-12, upper, xtol=1e-12, rtol=4 * np.finfo(float).eps, maxiter=200)
    return math.ceil(root)


def sample_size_per_arm(baseline: float, mde: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Units per arm to detect an ABSOLUTE change ``mde`` of a conversion rate (0.02 = two points).

    Cohen's h = 2 asin(sqrt(baseline + mde)) - 2 asin(sqrt(baseline)); n solves
    norm.sf(c - |h| sqrt(n/2)) + norm.cdf(-c - |h| sqrt(n/2)) = power with c = norm.isf(alpha/2),
    rounded up: statsmodels ``NormalIndPower().solve_power(effect_size=proportion_effectsize(
    baseline + mde, baseline), alpha=alpha, power=power, ratio=1, alternative="two-sided")``.
    Baseline 0.10, mde 0.02, alpha 0.05, power 0.8 gives 3835. A negative mde (a drop) is allowed;
    baseline and baseline + mde must lie in (0, 1), power must exceed alpha.
    """
    baseline, mde = _probability("baseline", baseline), _finite("mde", mde)
    if mde == 0:
        raise StatsError("mde must not be 0: no sample detects a zero effect")
    target = baseline + mde
    if not 0.0 < target < 1.0:
        raise StatsError(f"baseline + mde must be in (0, 1), got {target}")
    h = 2 * math.asin(math.sqrt(target)) - 2 * math.asin(math.sqrt(baseline))
    return _normal_ind_power_nobs(h, alpha, power)


def sample_size_per_arm_means(std: float, mde: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Units per arm to detect an absolute change ``mde`` of a mean (in the metric's units).

    Effect size d = mde / std, then the equation of ``sample_size_per_arm``, rounded up: statsmodels
    ``NormalIndPower().solve_power(effect_size=d, alpha=alpha, power=power, ratio=1)``.
    """
    std, mde = _finite("std", std), _finite("mde", mde)
    if std <= 0:
        raise StatsError(f"std must be > 0, got {std}")
    if mde == 0:
        raise StatsError("mde must not be 0: no sample detects a zero effect")
    return _normal_ind_power_nobs(mde / std, alpha, power)


def expected_duration_days(units_needed_per_arm: float, arms: int, units_per_day: float) -> float | None:
    """Days to enrol ``units_needed_per_arm x arms`` units at ``units_per_day`` entering the experiment
    (equal split). None when there is no traffic (0 units per day): the test would never finish.
    """
    needed = _finite("units_needed_per_arm", units_needed_per_arm)
    if needed < 0:
        raise StatsError(f"units_needed_per_arm must be >= 0, got {needed}")
    arms = _count("arms", arms, minimum=1)
    per_day = _finite("units_per_day", units_per_day)
    if per_day < 0:
        raise StatsError(f"units_per_day must be >= 0, got {per_day}")
    if per_day == 0:
        return None
    return needed * arms / per_day


# --- sample ratio mismatch ----------------------------------------------------------------------


def srm_check(observed: ArrayLike, weights: ArrayLike, threshold: float = SRM_THRESHOLD) -> SrmResult:
    """Sample ratio mismatch: chi-square goodness of fit of the observed counts per arm against
    the planned split, expected_i = total x w_i / sum(w), chi2 = sum((o - e)^2 / e) with k - 1
    degrees of freedom (``scipy.stats.chisquare``); flagged when p-value < threshold (0.001).

    Weights are any positive numbers (percentages are fine); an arm planned at 0 % has no
    expected count, so leave it out. No units at all is not a mismatch: chi2 = 0, p = 1.
    """
    obs = _sample("observed", observed, minimum=2)
    if (obs < 0).any() or (obs != np.floor(obs)).any():
        raise StatsError("observed must be whole counts >= 0")
    w = _sample("weights", weights, minimum=2)
    if w.size != obs.size:
        raise StatsError(f"observed has {obs.size} arms but weights has {w.size}")
    if (w <= 0).any():
        raise StatsError("weights must all be > 0")
    threshold = _probability("threshold", threshold)
    total = obs.sum()
    expected = total * w / w.sum()
    if total == 0:
        return SrmResult(chi2=0.0, p_value=1.0, flagged=False, expected=tuple(expected.tolist()))
    chi2 = float(((obs - expected) ** 2 / expected).sum())
    p_value = float(stats.chi2.sf(chi2, obs.size - 1))
    return SrmResult(chi2=chi2, p_value=p_value, flagged=p_value < threshold, expected=tuple(expected.tolist()))


# --- CUPED --------------------------------------------------------------------------------------


def cuped(y: ArrayLike, x: ArrayLike) -> CupedResult:
    """CUPED on per-unit values of both arms pooled (the caller keeps its own arm labels; the
    adjusted array is in the same order).

    theta = cov(X, Y) / var(X) over all units, Y' = Y - theta (X - mean(X)),
    variance_reduction = 1 - var(Y') / var(Y) (= corr(X, Y)^2). theta is the OLS slope of Y on X.
    Centring on the pooled mean(X) keeps each arm's mean comparable with the unadjusted one.
    No variance in X (nothing to learn from) gives theta = 0; none in Y gives a reduction of 0.
    """
    y_arr, x_arr = _sample("y", y), _sample("x", x)
    if y_arr.size != x_arr.size:
        raise StatsError(f"y has {y_arr.size} values but x has {x_arr.size}")
    xc = x_arr - x_arr.mean()
    yc = y_arr - y_arr.mean()
    sxx = float(xc @ xc)
    theta = float(xc @ yc) / sxx if sxx > 0 else 0.0
    adjusted = y_arr - theta * xc
    var_y = float(yc @ yc)
    reduction = 0.0
    if var_y > 0:
        adj_c = adjusted - adjusted.mean()
        reduction = max(0.0, 1.0 - float(adj_c @ adj_c) / var_y)
    return CupedResult(adjusted=adjusted, theta=theta, variance_reduction=reduction)


def cuped_from_sums(arms: Sequence[CovariateSums]) -> CupedSummary:
    """CUPED from per-arm SQL aggregates (n, sum y, sum y^2, sum x, sum x^2, sum xy).

    theta = S_xy / S_xx over all arms pooled (S_xy = sum xy - sum x sum y / N, same for S_xx);
    per arm, with the pooled mean of x, mean' = mean_y - theta (mean_x - mean_x_pooled) and
    var' = var_y + theta^2 var_x - 2 theta cov_xy (ddof=1 within the arm), which equal the mean and
    variance of the adjusted values of ``cuped``; feed them to ``welch_ttest_from_stats`` or
    ``always_valid_means``. variance_reduction = S_xy^2 / (S_xx S_yy). Degenerate cases as ``cuped``.
    The same pooled theta as gbstats' ``compute_theta`` (RegressionAdjustedStatistic).
    """
    if not arms:
        raise StatsError("cuped_from_sums needs at least one arm")
    rows = np.array(
        [
            [_count("n", a.n, minimum=2), _finite("sum_y", a.sum_y), _finite("sum_y2", a.sum_y2),
             _finite("sum_x", a.sum_x), _finite("sum_x2", a.sum_x2), _finite("sum_xy", a.sum_xy)]
            for a in arms
        ]
    )
    n, sy, syy, sx, sxx, sxy = rows.T
    big_n = n.sum()
    s_yy = _clamped_variance(syy.sum() - sy.sum() ** 2 / big_n, syy.sum(), "sum_y2")
    s_xx = _clamped_variance(sxx.sum() - sx.sum() ** 2 / big_n, sxx.sum(), "sum_x2")
    s_xy = sxy.sum() - sx.sum() * sy.sum() / big_n
    theta = s_xy / s_xx if s_xx > 0 else 0.0
    reduction = min(1.0, s_xy * s_xy / (s_xx * s_yy)) if s_xx > 0 and s_yy > 0 else 0.0
    var_y = (syy - sy * sy / n) / (n - 1)
    var_x = (sxx - sx * sx / n) / (n - 1)
    cov_xy = (sxy - sx * sy / n) / (n - 1)
    var_adj = var_y + theta * theta * var_x - 2 * theta * cov_xy
    mean_adj = sy / n - theta * (sx / n - sx.sum() / big_n)
    summaries = tuple(
        ArmSummary(n=int(n[i]), mean=float(mean_adj[i]), variance=_clamped_variance(float(var_adj[i]), float(var_y[i]), "sums"))
        for i in range(len(arms))
    )
    return CupedSummary(theta=float(theta), variance_reduction=float(reduction), arms=summaries)


# --- assignment ---------------------------------------------------------------------------------


def bucket(key: str, unit_id: str | int) -> int:
    """Bucket in [0, 10,000) of a unit: first 8 bytes of sha256(f"{key}:{unit_id}" as UTF-8) as an
    unsigned big-endian integer, mod 10,000. Stable across processes and machines, unlike Python's
    ``hash()`` (salted per process). ``unit_id`` is formatted with ``str``: pass the id's text.
    """
    digest = hashlib.sha256(f"{key}:{unit_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def buckets(key: str, unit_ids: Iterable[str | int]) -> np.ndarray:
    """``bucket`` of many units at once, as an int64 array in input order."""
    # hashlib has no batch API; the per-id work is just the C digest, and the 8-byte prefixes
    # become one big-endian uint64 array instead of 10,000 Python ints.
    prefix = b"".join(hashlib.sha256(f"{key}:{uid}".encode()).digest()[:8] for uid in unit_ids)
    return (np.frombuffer(prefix, dtype=">u8") % BUCKETS).astype(np.int64)


def _percent_buckets(percents: np.ndarray) -> np.ndarray:
    scaled = percents * (BUCKETS / 100)
    counts = np.rint(scaled)
    if (np.abs(scaled - counts) > _WEIGHT_DECIMALS_TOL).any():
        raise StatsError(_DECIMALS_MESSAGE)
    return counts.astype(np.int64)


def _bucket_counts(weights: ArrayLike) -> np.ndarray:
    w = _sample("weights", weights, minimum=1)
    if (w < 0).any():
        raise StatsError("weights must be >= 0")
    if abs(w.sum() - 100.0) > _WEIGHT_SUM_TOL:
        raise StatsError(f"weights must sum to 100, got {float(w.sum())!r}")
    return _percent_buckets(w)


def bucket_ranges(weights: ArrayLike) -> tuple[tuple[int, int], ...]:
    """Half-open bucket ranges [start, end) of the variants, contiguous in listed order.

    ``weights`` are percentages with at most 2 decimals summing to 100: variant i gets
    100 x w_i buckets. [50, 50] gives ((0, 5000), (5000, 10000)). A 0 % variant gets an empty range.
    """
    counts = _bucket_counts(weights)
    ends = np.cumsum(counts)
    starts = ends - counts
    return tuple((int(s), int(e)) for s, e in zip(starts, ends, strict=True))


def _check_buckets(values: np.ndarray) -> np.ndarray:
    if (values != np.floor(values)).any() or (values < 0).any() or (values >= BUCKETS).any():
        raise StatsError(_BUCKET_MESSAGE)
    return values


def variant_indices(bucket_values: ArrayLike, weights: ArrayLike) -> np.ndarray:
    """Variant index of each bucket under ``bucket_ranges(weights)`` (vectorised)."""
    values = _check_buckets(_sample("buckets", bucket_values, minimum=0))
    ends = np.cumsum(_bucket_counts(weights))
    # side="right": a bucket equal to a range's end belongs to the next range (ranges are half-open),
    # and empty (0 %) ranges are skipped.
    return np.searchsorted(ends, values, side="right").astype(np.int64)


def variant_index(bucket_value: int, weights: ArrayLike) -> int:
    """Index of the variant whose range in ``bucket_ranges(weights)`` holds ``bucket_value``."""
    return int(variant_indices([_finite("bucket", bucket_value)], weights)[0])


def in_share(bucket_value: int, percent: float) -> bool:
    """Whether a bucket is in the first ``percent`` % of buckets: bucket < percent x 100.

    The share grows from bucket 0, so raising a canary from 5 % to 25 % only adds units.
    ``percent`` has at most 2 decimals, as the weights of ``bucket_ranges``.
    """
    # Plain floats, no numpy: a canary router asks this once per request.
    value = _finite("bucket", bucket_value)
    if value != math.floor(value) or not 0 <= value < BUCKETS:
        raise StatsError(_BUCKET_MESSAGE)
    percent = _finite("percent", percent)
    if not 0 <= percent <= 100:
        raise StatsError(f"percent must be in [0, 100], got {percent}")
    scaled = percent * (BUCKETS / 100)
    if abs(scaled - round(scaled)) > _WEIGHT_DECIMALS_TOL:
        raise StatsError(_DECIMALS_MESSAGE)
    return value < round(scaled)

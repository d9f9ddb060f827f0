"""monitoring/drift.py against independent references: scipy, numpy and hand-computed values."""

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon
from scipy.special import rel_entr

from monitoring import drift


def brief_psi(expected, actual):
    """The textbook PSI written with numpy, with the documented choices (deciles, left-closed bins, clip 0.001)."""
    cuts = np.unique(np.quantile(expected, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]))
    edges = np.concatenate(([-np.inf], cuts, [np.inf]))
    # np.histogram bins are [a, b) except the last; with +inf as the last edge that is exactly left-closed.
    e = np.histogram(expected, bins=edges)[0] / len(expected)
    a = np.histogram(actual, bins=edges)[0] / len(actual)
    e, a = np.clip(e, 0.001, None), np.clip(a, 0.001, None)
    return float(np.sum((a - e) * np.log(a / e))), e, a, edges


@pytest.fixture
def samples():
    rng = np.random.default_rng(1)
    return rng.normal(0, 1, 20_000), rng.normal(0.3, 1.2, 15_000)


def test_psi_matches_the_numpy_formula(samples):
    reference, current = samples

    expected, *_ = brief_psi(reference, current)

    assert drift.psi(reference, current) == pytest.approx(expected, rel=1e-9)


def test_psi_hand_computed_two_bins():
    # Reference with one distinct value: one cut at 1.0, bins (-inf, 1) and [1, inf).
    reference, current = np.ones(100), np.array([0.0] * 50 + [2.0] * 50)

    # r = (0.001, 1.0) after clipping, c = (0.5, 0.5)
    expected = (0.5 - 0.001) * np.log(0.5 / 0.001) + (0.5 - 1.0) * np.log(0.5 / 1.0)
    assert drift.psi(reference, current) == pytest.approx(expected, rel=1e-12)


def test_ks_and_wasserstein_equal_scipy_on_all_rows(samples):
    reference, current = samples
    report = drift.column_drift("x", drift.prepare_reference(reference), current)

    assert report.ks_statistic == stats.ks_2samp(reference, current).statistic
    assert report.wasserstein == pytest.approx(stats.wasserstein_distance(reference, current), rel=1e-12)
    assert report.wasserstein_norm == pytest.approx(stats.wasserstein_distance(reference, current) / np.std(reference), rel=1e-12)


def test_small_samples_get_scipys_own_p_value():
    rng = np.random.default_rng(2)
    reference, current = rng.normal(size=800), rng.normal(0.1, size=900)

    statistic, p_value = drift.ks_test(reference, current)

    reference_result = stats.ks_2samp(reference, current)
    assert (statistic, p_value) == (reference_result.statistic, reference_result.pvalue)


def test_large_samples_subsample_only_the_p_value(samples):
    reference, current = samples

    report = drift.column_drift("x", drift.prepare_reference(reference), current)

    assert report.pvalue_subsampled
    assert report.ks_statistic == stats.ks_2samp(reference, current).statistic
    assert 0 <= report.ks_pvalue <= 1


def test_js_and_kl_match_scipy_on_the_bin_proportions(samples):
    reference, current = samples
    _, e_clipped, a_clipped, edges = brief_psi(reference, current)
    p_ref = np.histogram(reference, bins=edges)[0] / len(reference)
    p_cur = np.histogram(current, bins=edges)[0] / len(current)

    report = drift.column_drift("x", drift.prepare_reference(reference), current)

    assert report.js == pytest.approx(jensenshannon(p_ref, p_cur), rel=1e-9)
    assert report.kl == pytest.approx(float(np.sum(rel_entr(a_clipped, e_clipped))), rel=1e-9)
    assert drift.js_distance(reference, current) == pytest.approx(jensenshannon(p_ref, p_cur), rel=1e-9)


def test_current_values_outside_the_reference_range_fall_in_the_end_bins():
    reference = np.arange(100.0)
    current = np.array([-1000.0, 1000.0])

    report = drift.column_drift("x", drift.prepare_reference(reference), current)

    assert report.current_share[0] == 0.5 and report.current_share[-1] == 0.5


def test_missing_and_invalid_values_are_counted_not_dropped_silently():
    reference = np.array([1.0, 2.0, 3.0, np.nan] * 25)
    current = [1.0, 2.0, float("inf"), None, "abc", 2.5, float("nan"), 3.0]

    report = drift.column_drift("x", drift.prepare_reference(reference), current)

    assert report.missing_reference == 0.25
    assert report.n_current == 4
    assert report.invalid_current == 2  # inf and "abc"
    assert report.missing_current == pytest.approx(2 / 8)


def test_empty_window_is_no_data_not_psi_zero():
    report = drift.column_drift("x", drift.prepare_reference(np.arange(10.0)), np.array([]))

    assert (report.severity, report.psi, report.drifted) == ("no_data", None, False)


def test_categorical_drift_uses_the_union_of_categories_and_chi_square():
    reference = ["a"] * 60 + ["b"] * 40
    current = ["a"] * 30 + ["b"] * 50 + ["c"] * 20

    report = drift.column_drift("cat", drift.prepare_reference(reference), current)

    p_ref, p_cur = np.array([0.6, 0.4, 0.0]), np.array([0.3, 0.5, 0.2])
    r, c = np.maximum(p_ref, 0.001), np.maximum(p_cur, 0.001)
    assert report.bins == ["a", "b", "c"]
    assert report.psi == pytest.approx(float(np.sum((c - r) * np.log(c / r))), rel=1e-12)
    assert report.js == pytest.approx(jensenshannon(p_ref, p_cur), rel=1e-12)
    chi2 = stats.chi2_contingency(np.array([[60, 40, 0], [30, 50, 20]])[:, [0, 1, 2]], correction=False)
    assert report.chi2_pvalue == pytest.approx(chi2.pvalue, rel=1e-9, abs=0)
    assert report.drifted


def test_report_decides_on_effect_size_and_names_odd_columns():
    rng = np.random.default_rng(3)
    reference = {"stable": rng.normal(size=5000), "shifted": rng.normal(size=5000), "gone": rng.normal(size=10)}
    current = {"stable": rng.normal(size=5000), "shifted": rng.normal(2, 1, size=5000), "new": rng.normal(size=10)}

    report = drift.drift_report(reference, current)

    assert report["stable"].severity == "none" and not report["stable"].drifted
    assert report["shifted"].drifted and report["shifted"].reason.startswith("PSI")
    assert report["gone"].reason == "column missing from the current data"
    assert report["new"].reason == "new column, not in the reference"


@pytest.mark.parametrize(("n1", "n2", "shift"), [(50, 70, 0.0), (800, 900, 0.1), (3000, 3000, 0.05), (9_000, 12_000, 0.02), (20_000, 15_000, 0.3)])
def test_ks_statistic_is_identical_to_scipy_at_every_size(n1, n2, shift):
    rng = np.random.default_rng(n1 + n2)
    reference, current = rng.normal(size=n1), rng.normal(shift, size=n2)

    report = drift.column_drift("x", drift.prepare_reference(reference), current)

    assert report.ks_statistic == stats.ks_2samp(reference, current).statistic


def test_ties_across_and_within_samples_match_scipy():
    rng = np.random.default_rng(5)
    reference = rng.integers(0, 20, size=3000).astype(float)
    current = rng.integers(2, 25, size=2500).astype(float)

    report = drift.column_drift("x", drift.prepare_reference(reference), current)

    assert report.ks_statistic == stats.ks_2samp(reference, current).statistic
    assert report.wasserstein == pytest.approx(stats.wasserstein_distance(reference, current), rel=1e-12)


def test_per_column_thresholds():
    rng = np.random.default_rng(9)
    base, shifted = rng.normal(size=5000), rng.normal(0.48, 1, size=5000)
    reference, current = {"f": base, "prediction": base}, {"f": shifted, "prediction": shifted}

    report = drift.drift_report(reference, current, thresholds={"prediction": 0.2})

    assert report["prediction"].psi == report["f"].psi and 0.2 < report["f"].psi < 0.25
    assert report["prediction"].drifted and not report["f"].drifted


# --- bins closed on the left, on tied data ---------------------------------------------------------


def psi_by_counting(reference, current) -> tuple[float, list[float]]:
    """The definition written out value by value: deciles (numpy linear) as cuts, equal cuts
    merged, a value equal to a cut counted in the bin to its right, shares clipped at 0.001."""
    cuts = sorted({float(q) for q in np.quantile(np.asarray(reference, float), [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])})

    def shares(values):
        counts = [0] * (len(cuts) + 1)
        for v in values:
            counts[sum(1 for cut in cuts if cut <= v)] += 1
        return [max(k / len(values), 0.001) for k in counts]

    r, c = shares(reference), shares(current)
    return sum((ci - ri) * math.log(ci / ri) for ri, ci in zip(r, c, strict=True)), cuts


def test_psi_hand_computed_where_a_value_on_a_cut_decides():
    # 75 ones and 26 twos: every decile is 1 or 2, so the cuts are [1, 2] and the bins
    # (-inf, 1), [1, 2), [2, inf). The 2.0s belong to the last bin, the 1.5s to the middle one.
    reference = np.array([1.0] * 75 + [2.0] * 26)
    current = np.array([1.5] * 50 + [2.0] * 50)

    report = drift.column_drift("x", drift.prepare_reference(reference), current)

    # r = (0.001, 75/101, 26/101), c = (0.001, 0.5, 0.5); the first bin adds nothing.
    expected = (0.5 - 75 / 101) * math.log(0.5 / (75 / 101)) + (0.5 - 26 / 101) * math.log(0.5 / (26 / 101))
    assert report.bins == [1.0, 2.0]
    assert report.reference_share == pytest.approx([0.0, 75 / 101, 26 / 101], abs=1e-15)
    assert report.current_share == [0.0, 0.5, 0.5]
    assert report.psi == pytest.approx(expected, rel=1e-12)
    assert drift.psi(reference, current) == pytest.approx(expected, rel=1e-12)


TIED = {
    # cuts fall between values: 0.9, 1.8, ..., 8.1
    "integers 0..9 repeated, shifted by one": (np.repeat(np.arange(10.0), 10), np.repeat(np.arange(1.0, 11.0), 10)),
    # cuts are the integers 1..9 themselves, and every current value sits on one of them
    "integers on the cuts": (np.repeat(np.arange(10.0), [5, 10, 10, 10, 10, 10, 10, 10, 10, 16]), np.repeat(np.arange(2.0, 12.0), [3, 9, 12, 7, 10, 10, 14, 5, 10, 10])),
    # a value tied across several deciles: the repeated cuts collapse into one
    "one heavy tie": (np.array([3.0] * 60 + list(range(4, 45))), np.array([3.0] * 20 + [4.0] * 30 + list(range(10, 60)))),
    "small counts": (np.random.default_rng(7).poisson(2, 700).astype(float), np.random.default_rng(8).poisson(2.6, 500).astype(float)),
    "integers 0..11": (np.random.default_rng(9).integers(0, 12, 1000).astype(float), np.random.default_rng(10).integers(1, 14, 800).astype(float)),
}


@pytest.mark.parametrize("name", list(TIED))
def test_psi_on_tied_integers_matches_counting_value_by_value(name):
    reference, current = TIED[name]
    expected, cuts = psi_by_counting(reference, current)

    report = drift.drift_report({"x": drift.prepare_reference(reference)}, {"x": current})["x"]

    assert report.bins == cuts
    assert report.psi == pytest.approx(expected, rel=1e-9)
    assert drift.psi(reference, current) == pytest.approx(expected, rel=1e-9)
    assert drift.column_drift("x", drift.prepare_reference(reference), current).psi == pytest.approx(expected, rel=1e-9)


def test_ties_at_a_decile_collapse_into_one_cut():
    # 101 values with 2.0 at sorted positions 20..30: the 0.2 and 0.3 deciles are both exactly 2.
    # np.linspace's 0.30000000000000004 would make a second cut a hair above 2, and 2.5 would
    # then fall in a bin of its own instead of [2, 3) with the reference's twos.
    reference = np.repeat(np.arange(10.0), [10, 10, 11, 10, 10, 10, 10, 10, 10, 10])
    current = np.array([2.5] * 60 + [7.0] * 40)
    expected, cuts = psi_by_counting(reference, current)

    report = drift.column_drift("x", drift.prepare_reference(reference), current)

    assert cuts == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    assert report.bins == cuts
    assert report.psi == pytest.approx(expected, rel=1e-9)


# --- every field of a report, edge sizes, the seeded p-value subsamples ---------------------------


def clipped_psi(p_ref, p_cur):
    r, c = np.maximum(p_ref, 0.001), np.maximum(p_cur, 0.001)
    return float(np.sum((c - r) * np.log(c / r)))


def test_categorical_report_fields_match_hand_counts_and_scipy():
    # 80 present values of 100 (10 None, 10 NaN); the current window has 35 of 40, no "b" and a "d" seen once.
    reference = ["a"] * 50 + ["b"] * 30 + [None] * 10 + [float("nan")] * 10
    current = np.array(["a"] * 10 + ["c"] * 24 + ["d"] + [None] * 3 + [float("nan")] * 2, dtype=object)

    report = drift.column_drift("cat", drift.prepare_reference(reference), current)

    p_ref, p_cur = np.array([50, 30, 0, 0]) / 80, np.array([10, 0, 24, 1]) / 35
    assert (report.column, report.kind, report.n_reference, report.n_current) == ("cat", "categorical", 80, 35)
    assert (report.missing_reference, report.missing_current, report.invalid_current) == (pytest.approx(0.2, abs=1e-15), 5 / 40, 0)
    assert report.bins == ["a", "b", "c", "d"]
    assert report.reference_share == pytest.approx(p_ref.tolist(), abs=1e-15)
    assert report.current_share == pytest.approx(p_cur.tolist(), abs=1e-15)
    assert report.psi == pytest.approx(clipped_psi(p_ref, p_cur), rel=1e-12)
    assert report.kl == pytest.approx(float(np.sum(rel_entr(np.maximum(p_cur, 0.001), np.maximum(p_ref, 0.001)))), rel=1e-12)
    assert report.js == pytest.approx(jensenshannon(p_ref, p_cur), rel=1e-12)
    table = np.array([[50, 30, 0, 0], [10, 0, 24, 1]])
    assert report.chi2_pvalue == pytest.approx(stats.chi2_contingency(table, correction=False).pvalue, rel=1e-9, abs=0)
    assert report.pvalue_subsampled is False
    assert (report.severity, report.drifted) == ("significant", True) and report.reason.startswith("PSI")


def test_categorical_p_value_of_two_categories_has_no_yates_correction():
    reference, current = ["a"] * 60 + ["b"] * 40, ["a"] * 45 + ["b"] * 55

    report = drift.column_drift("cat", drift.prepare_reference(reference), current)

    expected = stats.chi2_contingency(np.array([[60, 40], [45, 55]]), correction=False).pvalue
    assert report.chi2_pvalue == pytest.approx(expected, rel=1e-9, abs=0)
    assert expected != pytest.approx(stats.chi2_contingency(np.array([[60, 40], [45, 55]])).pvalue, rel=1e-3)


def test_categorical_reference_of_one_value_is_compared_not_no_data():
    report = drift.column_drift("cat", drift.prepare_reference(["a"]), ["a", "a"])

    assert (report.n_reference, report.n_current, report.psi, report.js) == (1, 2, 0.0, 0.0)
    assert report.chi2_pvalue == stats.chi2_contingency(np.array([[1], [2]]), correction=False).pvalue == 1.0
    assert (report.severity, report.drifted) == ("none", False)


@pytest.mark.parametrize(("current", "missing"), [([], 0.0), ([None, float("nan")], 1.0)])
def test_categorical_window_without_values_is_no_data_with_its_missing_share(current, missing):
    report = drift.column_drift("cat", drift.prepare_reference(["a", "b"]), current)

    assert (report.severity, report.reason, report.drifted, report.psi) == ("no_data", "no data in this window", False, None)
    assert (report.n_current, report.missing_current) == (0, missing)


@pytest.mark.parametrize(("current", "missing"), [(np.array([]), 0.0), ([None, float("nan")], 1.0), (np.array([np.nan, np.inf]), 0.5)])
def test_numeric_window_without_finite_values_is_no_data_with_its_counts(current, missing):
    report = drift.column_drift("x", drift.prepare_reference(np.arange(10.0)), current)

    assert (report.severity, report.reason, report.drifted, report.psi) == ("no_data", "no data in this window", False, None)
    assert (report.n_current, report.missing_current) == (0, missing)


def test_numeric_report_fields_match_hand_counts_and_scipy():
    # Exactly 5,000 reference rows: the p-value is still scipy's on all rows, not a subsample.
    rng = np.random.default_rng(11)
    reference = np.concatenate([rng.normal(size=5000), [np.nan] * 10])
    current = np.concatenate([rng.normal(1.0, 1.0, size=300), [np.nan, np.inf, -np.inf]])
    r, c = reference[np.isfinite(reference)], current[np.isfinite(current)]

    report = drift.column_drift("x", drift.prepare_reference(reference), current)

    assert (report.column, report.kind, report.n_reference, report.n_current) == ("x", "numeric", 5000, 300)
    assert (report.missing_reference, report.missing_current, report.invalid_current) == (10 / 5010, 1 / 303, 2)
    assert report.pvalue_subsampled is False
    assert report.ks_pvalue == pytest.approx(stats.ks_2samp(r, c).pvalue, rel=1e-9, abs=0)
    assert report.wasserstein_norm == pytest.approx(stats.wasserstein_distance(r, c) / np.std(r), rel=1e-12)
    assert (report.severity, report.drifted) == ("significant", True)


def test_numeric_reference_or_window_of_one_value():
    # One reference value: one cut at 5.0, bins (-inf, 5) and [5, inf); shares r = (0.001, 1) after clipping.
    expected = (0.5 - 0.001) * np.log(0.5 / 0.001) + (0.5 - 1.0) * np.log(0.5 / 1.0)

    report = drift.column_drift("x", drift.prepare_reference([5.0]), [4.0, 6.0])

    assert (report.n_reference, report.severity) == (1, "significant")
    assert report.psi == pytest.approx(expected, rel=1e-12)
    assert drift.psi([5.0], [4.0, 6.0]) == pytest.approx(expected, rel=1e-12)
    assert report.wasserstein == stats.wasserstein_distance([5.0], [4.0, 6.0])
    assert report.wasserstein_norm is None  # the reference's spread is 0
    # One current value: c = (0.001, ..., 1.0 in the top bin).
    reference = np.arange(100.0)
    p_ref = np.histogram(reference, bins=[-np.inf, *np.quantile(reference, np.arange(1, 10) / 10), np.inf])[0] / 100
    assert drift.psi(reference, [1000.0]) == pytest.approx(clipped_psi(p_ref, np.eye(10)[-1]), rel=1e-12)


def test_reference_preparation_counts_missing_values():
    numeric_empty = drift.prepare_reference(np.array([], dtype=float))
    categorical = drift.prepare_reference(["a", None, "b", float("nan"), "a", "a"])
    categorical_empty = drift.prepare_reference([], kind="categorical")

    assert (numeric_empty.kind, numeric_empty.n, numeric_empty.missing) == ("numeric", 0, 0.0)
    assert (categorical.kind, categorical.n, categorical.missing) == ("categorical", 4, pytest.approx(2 / 6, abs=1e-15))
    assert categorical.categories == ("a", "b") and categorical.counts.tolist() == [3, 1]
    assert (categorical_empty.kind, categorical_empty.n, categorical_empty.missing) == ("categorical", 0, 0.0)


def test_severity_boundaries_psi_equal_to_the_threshold_is_not_significant():
    rng = np.random.default_rng(9)
    reference, current = rng.normal(size=5000), rng.normal(0.4, 1, size=5000)
    prepared = drift.prepare_reference(reference)
    psi_value = drift.column_drift("x", prepared, current).psi

    at_threshold = drift.column_drift("x", prepared, current, psi_threshold=psi_value)
    below_threshold = drift.column_drift("x", prepared, current, psi_threshold=psi_value * 0.999)

    assert 0.1 <= psi_value < 0.25 and at_threshold.js < 0.3
    assert (at_threshold.severity, at_threshold.drifted) == ("moderate", False)
    assert at_threshold.reason.endswith(": investigate")
    assert (below_threshold.severity, below_threshold.drifted) == ("significant", True)


def test_report_of_a_column_on_one_side_only_says_what_it_knows():
    reference = {"gone": drift.prepare_reference(["a", "b", "a"]), "gone_raw": np.arange(5.0), "kept": np.arange(5.0)}
    current = {"new": np.arange(7.0), "kept": np.arange(5.0)}

    report = drift.drift_report(reference, current, workers=1)

    gone = dict(missing_reference=0.0, missing_current=1.0, invalid_current=0, severity="no_data")
    gone["reason"] = "column missing from the current data"
    assert report["gone"] == drift.ColumnDrift(column="gone", kind="categorical", n_reference=3, n_current=0, **gone)
    assert report["gone_raw"] == drift.ColumnDrift(column="gone_raw", kind="numeric", n_reference=0, n_current=0, **gone)
    assert report["new"] == drift.ColumnDrift(
        column="new", kind="unknown", n_reference=0, n_current=7, missing_reference=1.0, missing_current=0.0, invalid_current=0,
        severity="no_data", reason="new column, not in the reference",
    )  # fmt: skip


def test_ks_test_needs_values_on_both_sides_and_takes_single_ones():
    for reference, current in [([], [1.0, 2.0]), ([1.0, 2.0], []), ([], []), ([np.nan], [1.0])]:
        with pytest.raises(drift.DriftError):
            drift.ks_test(reference, current)

    for reference, current in [([1.0], [0.5, 2.0, 3.0]), ([0.0, 1.0, 2.0], [1.5])]:
        expected = stats.ks_2samp(reference, current)
        assert drift.ks_test(reference, current) == (expected.statistic, expected.pvalue)


def test_non_numeric_values_are_a_drift_error():
    with pytest.raises(drift.DriftError, match="numeric column expected"):
        drift.psi(["a", "b"], [1.0, 2.0])
    with pytest.raises(drift.DriftError, match="numeric column expected"):
        drift.ks_test([1.0, 2.0], ["x"])


def documented_subsample(sorted_values, rng):
    """At most 5,000 rows drawn without replacement, as docs/metrics.md says (seed 20240601, reference first)."""
    if sorted_values.size <= 5000:
        return sorted_values
    return np.sort(rng.choice(sorted_values, size=5000, replace=False))


def test_large_sample_p_values_come_from_the_documented_seeded_subsample():
    rng = np.random.default_rng(12)
    reference, current = rng.normal(size=8000), rng.normal(0.05, 1, size=6000)
    seeded = np.random.default_rng(20_240_601)
    expected = stats.ks_2samp(documented_subsample(np.sort(reference), seeded), documented_subsample(np.sort(current), seeded)).pvalue

    statistic, p_value = drift.ks_test(reference, current)
    report = drift.column_drift("x", drift.prepare_reference(reference), current)

    assert p_value == pytest.approx(expected, rel=1e-9, abs=0) and report.ks_pvalue == pytest.approx(expected, rel=1e-9, abs=0)
    assert report.pvalue_subsampled and statistic == stats.ks_2samp(reference, current).statistic
    assert p_value != pytest.approx(stats.ks_2samp(reference, current).pvalue, rel=1e-3)


def test_large_categorical_p_value_comes_from_seeded_hypergeometric_counts():
    reference = ["a"] * 4000 + ["b"] * 2500 + ["c"] * 500
    current = ["a"] * 2600 + ["b"] * 2600 + ["c"] * 800
    r_counts, c_counts = np.array([4000, 2500, 500]), np.array([2600, 2600, 800])
    scaled = [np.random.default_rng(20_240_601).multivariate_hypergeometric(counts, 5000) for counts in (r_counts, c_counts)]

    report = drift.column_drift("cat", drift.prepare_reference(reference), current)
    exactly_5000 = drift.column_drift("cat", drift.prepare_reference(reference[:5000]), current[:5000])

    assert report.pvalue_subsampled and not exactly_5000.pvalue_subsampled
    assert report.chi2_pvalue == pytest.approx(stats.chi2_contingency(np.vstack(scaled), correction=False).pvalue, rel=1e-9, abs=0)


@pytest.mark.parametrize(("n1", "n2"), [(10_000, 7_000), (10_001, 7_001)])
def test_ks_statistic_is_identical_to_scipy_on_both_sides_of_its_exact_path(n1, n2):
    # scipy snaps D to h / lcm(n1, n2) only while both sizes are <= 10,000.
    rng = np.random.default_rng(n1)
    reference, current = rng.normal(size=n1), rng.normal(0.02, size=n2)

    statistic, _ = drift.ks_test(reference, current)

    assert statistic == stats.ks_2samp(reference, current).statistic


def test_js_alone_can_make_a_column_significant():
    reference, current = np.arange(1000.0), np.arange(1000.0) + 2000

    report = drift.column_drift("x", drift.prepare_reference(reference), current, psi_threshold=100.0)

    assert report.psi < 100.0 and report.js > 0.3
    assert (report.severity, report.drifted) == ("significant", True) and report.reason.startswith("JS ")


def test_errors_say_what_is_wrong():
    with pytest.raises(drift.DriftError, match=r"^PSI uses the reference's deciles \(10 bins\); see docs/metrics\.md$"):
        drift.psi([1.0, 2.0], [1.0], bins=5)
    with pytest.raises(drift.DriftError, match=r"^the current sample has no finite values$"):
        drift.psi([1.0, 2.0], [np.nan])
    with pytest.raises(drift.DriftError, match=r"^the reference has no finite values$"):
        drift.psi([np.inf], [1.0])
    with pytest.raises(drift.DriftError, match=r"^both samples need finite values$"):
        drift.ks_test([], [1.0])


def test_a_reference_without_values_gives_no_data_whatever_the_window():
    numeric = drift.prepare_reference(np.array([np.nan, np.nan]))
    categorical = drift.prepare_reference([None, float("nan")], kind="categorical")

    numeric_report = drift.column_drift("x", numeric, [1.0, 2.0])
    categorical_report = drift.column_drift("cat", categorical, ["a"])

    assert numeric_report == drift.ColumnDrift(
        column="x", kind="numeric", n_reference=0, n_current=2, missing_reference=1.0, missing_current=0.0, invalid_current=0,
        severity="no_data", reason="the reference has no finite values",
    )  # fmt: skip
    assert categorical_report == drift.ColumnDrift(
        column="cat", kind="categorical", n_reference=0, n_current=1, missing_reference=1.0, missing_current=0.0, invalid_current=0,
        severity="no_data", reason="the reference has no values",
    )  # fmt: skip


def test_nan_in_a_categorical_column_of_text_is_missing_not_a_category():
    # given text columns where NaN (as pandas writes it) marks a missing value, and no None beside it
    reference = ["DE", float("nan"), "FR", "DE"]

    prepared = drift.prepare_reference(reference, kind="categorical")
    report = drift.column_drift("country", prepared, ["DE", float("nan"), "FR"])

    assert (prepared.n, prepared.missing, prepared.categories, prepared.counts.tolist()) == (3, 0.25, ("DE", "FR"), [2, 1])
    assert (report.n_current, report.missing_current, report.bins) == (2, pytest.approx(1 / 3, abs=1e-15), ["DE", "FR"])


def test_a_numeric_window_sent_as_a_list_of_numbers_and_text_keeps_its_numbers():
    # given a window with one text value among numbers (no None to make the list an object array)

    report = drift.column_drift("x", drift.prepare_reference([1.0, 2.0, 3.0]), [2.0, "oops", 3.0, 1])

    assert (report.n_current, report.invalid_current, report.missing_current) == (3, 1, 0.0)
    assert report.current_share == report.reference_share  # 1, 2 and 3 again


def test_categorical_p_value_counts_a_category_seen_once():
    reference, current = ["a"] * 30 + ["b"] * 30, ["a"] * 28 + ["b"] * 31 + ["c"]

    report = drift.column_drift("cat", drift.prepare_reference(reference), current)

    expected = stats.chi2_contingency(np.array([[30, 30, 0], [28, 31, 1]]), correction=False).pvalue
    assert report.chi2_pvalue == pytest.approx(expected, rel=1e-9, abs=0)
    assert 0.1 < expected < 0.9


def test_a_rare_category_the_subsample_leaves_out_leaves_the_chi_square_table():
    # 10,001 reference rows: the seeded subsample of 5,000 (seed 20240601) happens to hold no "z"
    r_counts, c_counts = np.array([5000, 5000, 1]), np.array([3000, 3000, 0])
    scaled = [np.random.default_rng(20_240_601).multivariate_hypergeometric(counts, 5000) for counts in (r_counts, c_counts)]
    assert scaled[0][2] == 0

    report = drift.column_drift("cat", drift.prepare_reference(["a"] * 5000 + ["b"] * 5000 + ["z"]), ["a"] * 3000 + ["b"] * 3000)

    expected = stats.chi2_contingency(np.vstack(scaled)[:, :2], correction=False).pvalue
    assert report.chi2_pvalue == pytest.approx(expected, rel=1e-9, abs=0)
    assert report.bins == ["a", "b", "z"]


def test_a_whole_number_beyond_int64_in_a_window_list_is_a_number():
    # given a window sent as a list of Python ints, one of them too large for int64 (JSON allows it)
    reference, current = [1.0, 2.0, 3.0, 4.0], [1, 2, 10**20]

    report = drift.column_drift("x", drift.prepare_reference(reference), current)

    as_floats = [1.0, 2.0, 1e20]
    assert (report.n_current, report.invalid_current, report.missing_current) == (3, 0, 0.0)
    assert report.ks_statistic == pytest.approx(stats.ks_2samp(reference, as_floats).statistic, rel=1e-12)
    assert report.wasserstein == pytest.approx(stats.wasserstein_distance(reference, as_floats), rel=1e-12)


def test_moderate_starts_at_the_moderate_psi_itself(monkeypatch):
    # given a column's PSI, and the moderate band set to start exactly there (the rule: moderate from 0.1)
    rng = np.random.default_rng(9)
    prepared, current = drift.prepare_reference(rng.normal(size=5000)), rng.normal(0.4, 1, size=5000)
    psi_value = drift.column_drift("x", prepared, current).psi
    monkeypatch.setattr(drift, "PSI_MODERATE", psi_value)

    report = drift.column_drift("x", prepared, current, psi_threshold=1.0)

    assert report.js < drift.JS_INVESTIGATE
    assert (report.severity, report.drifted) == ("moderate", False)


def test_js_equal_to_the_investigate_level_is_not_significant(monkeypatch):
    # given a column's JS distance, and the investigate level set exactly there (the rule: JS above 0.3)
    rng = np.random.default_rng(9)
    prepared, current = drift.prepare_reference(rng.normal(size=5000)), rng.normal(0.4, 1, size=5000)
    js_value = drift.column_drift("x", prepared, current).js
    monkeypatch.setattr(drift, "JS_INVESTIGATE", js_value)

    at_level = drift.column_drift("x", prepared, current, psi_threshold=1.0)
    monkeypatch.setattr(drift, "JS_INVESTIGATE", js_value * 0.999)
    below_level = drift.column_drift("x", prepared, current, psi_threshold=1.0)

    assert (at_level.severity, at_level.drifted) == ("moderate", False)
    assert (below_level.severity, below_level.drifted) == ("significant", True)
    assert below_level.reason.startswith("JS ")


def test_a_window_of_numpy_integers_is_numbers():
    # given a window of counts as an int64 array (not floats)
    reference, current = [1.0, 2.0, 3.0, 4.0], np.array([1, 2, 3, 5], dtype=np.int64)

    report = drift.column_drift("x", drift.prepare_reference(reference), current)

    assert (report.n_current, report.invalid_current, report.missing_current) == (4, 0, 0.0)
    assert report.ks_statistic == pytest.approx(stats.ks_2samp(reference, [1.0, 2.0, 3.0, 5.0]).statistic, rel=1e-12)

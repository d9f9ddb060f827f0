"""Drift statistics, exactly as defined below. numpy/scipy only: no Django.

Reference `r` (training or baseline window) and current `c` samples of one
column. Missing values (NaN, None) are excluded and counted; +-inf in a numeric
column is excluded and counted as invalid, never silently dropped.

Numeric columns
    cuts  = np.quantile(r, [0.1, ..., 0.9]) (linear), duplicates collapsed;
            edges [-inf, *cuts, +inf], bins closed on the left.
    PSI   = sum((c - r) * ln(c / r)), r = max(p_r, 0.001), c = max(p_c, 0.001), no renormalisation.
    KL    = sum(rel_entr(c, r)) on the same clipped proportions: KL(current || reference).
    JS    = scipy.spatial.distance.jensenshannon(p_r, p_c), unclipped, natural log.
    KS    = scipy.stats.ks_2samp(r, c): the statistic on all rows; the p-value too
            unless a side has more than 5,000 rows, then on a seeded subsample.
    W1    = scipy.stats.wasserstein_distance(r, c), and W1 / std(r).
Categorical columns
    proportions per category over the union of categories; PSI and JS as above;
    p-value of scipy.stats.chi2_contingency (no Yates correction), subsampled likewise.

Drift is DECIDED on effect sizes (PSI, JS), never on p-values: at large n
every tiny shift has p < 0.05. Each column is sorted once; KS, Wasserstein
and the bin counts all reuse that sort.
"""

from __future__ import annotations

import functools
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon
from scipy.special import rel_entr

QUANTILES = np.arange(1, 10) / 10  # exactly 0.1, ..., 0.9: linspace gives 0.30000000000000004, a second cut above a tie
CLIP = 0.001
PVALUE_SAMPLE = 5_000
SEED = 20_240_601
PSI_MODERATE, PSI_SIGNIFICANT = 0.1, 0.25
JS_INVESTIGATE = 0.3


class DriftError(ValueError):
    """Input the drift functions cannot use (wrong shapes or types)."""


class Severity(StrEnum):
    """How far a column drifted, most severe first (the report page lists columns in this order):
    significant PSI above the threshold or JS above 0.3 (drifted), moderate PSI from 0.1 (investigate),
    none below, no_data when one side has no values (or no such column)."""

    SIGNIFICANT = "significant"
    MODERATE = "moderate"
    NONE = "none"
    NO_DATA = "no_data"


# --- the single statistics --------------------------------------------------------------------


def _as_float(values) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float).ravel()
    except (TypeError, ValueError) as exc:
        raise DriftError(f"numeric column expected: {exc}") from None
    return arr


def _finite_sorted(values) -> np.ndarray:
    arr = _as_float(values)
    return np.sort(arr[np.isfinite(arr)], kind="quicksort")


def quantile_cuts(reference_sorted: np.ndarray) -> np.ndarray:
    """The inner bin edges: deciles of the reference, duplicates collapsed."""
    if reference_sorted.size == 0:
        raise DriftError("the reference has no finite values")
    return np.unique(np.quantile(reference_sorted, QUANTILES))


def bin_proportions(sorted_values: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Share of values in [-inf, c1), [c1, c2), ..., [ck, +inf), from an already sorted array."""
    below = np.searchsorted(sorted_values, cuts, side="left")
    counts = np.diff(np.concatenate(([0], below, [sorted_values.size])))
    return counts / sorted_values.size


def psi_from_proportions(p_ref: np.ndarray, p_cur: np.ndarray) -> float:
    """PSI = sum((c - r) * ln(c / r)) on proportions clipped below at 0.001, not renormalised."""
    r, c = np.maximum(p_ref, CLIP), np.maximum(p_cur, CLIP)
    return float(np.sum((c - r) * np.log(c / r)))


def kl_divergence(p, q) -> float:
    """KL(p || q) = sum(rel_entr(p, q)). For drift: p = current, q = reference, both clipped at 0.001."""
    return float(np.sum(rel_entr(np.asarray(p, float), np.asarray(q, float))))


def psi(reference, current, bins: int = 10) -> float:
    """PSI of a numeric column with the reference's decile bins (`bins` must be 10: the bins are pinned)."""
    if bins != 10:
        raise DriftError("PSI uses the reference's deciles (10 bins); see docs/metrics.md")
    r, c = _finite_sorted(reference), _finite_sorted(current)
    if c.size == 0:
        raise DriftError("the current sample has no finite values")
    cuts = quantile_cuts(r)
    return psi_from_proportions(bin_proportions(r, cuts), bin_proportions(c, cuts))


def js_distance(reference, current) -> float:
    """Jensen-Shannon distance (natural log) between the decile-bin proportions of two numeric samples."""
    r, c = _finite_sorted(reference), _finite_sorted(current)
    cuts = quantile_cuts(r)
    return float(jensenshannon(bin_proportions(r, cuts), bin_proportions(c, cuts)))


def _subsample(sorted_values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if sorted_values.size <= PVALUE_SAMPLE:
        return sorted_values
    return np.sort(rng.choice(sorted_values, size=PVALUE_SAMPLE, replace=False))


@dataclass(frozen=True)
class _Merged:
    """Two sorted samples merged once: the union in order and both ECDFs (counts <= x) at every point."""

    values: np.ndarray
    cdf_r: np.ndarray
    cdf_c: np.ndarray


def _merge(r: np.ndarray, c: np.ndarray) -> _Merged:
    """What scipy's ks_2samp and wasserstein_distance each compute with two binary searches per point.

    A stable argsort of two sorted runs is a linear merge; a running count of
    which side each value came from gives both ECDFs. Tied values take the
    count at the end of their tie group, as searchsorted(side="right") does, so
    the cdf arrays equal scipy's element for element.
    """
    n1, n2 = r.size, c.size
    joined = np.concatenate((r, c))
    order = np.argsort(joined, kind="stable")
    values = joined[order]
    from_c = np.cumsum(order >= n1, dtype=np.int64)
    from_r = np.arange(1, n1 + n2 + 1, dtype=np.int64) - from_c
    last_of_group = np.empty(values.size, dtype=bool)
    last_of_group[:-1] = values[1:] != values[:-1]
    last_of_group[-1] = True
    if not last_of_group.all():
        ends = np.flatnonzero(last_of_group)
        sizes = np.diff(np.concatenate(([-1], ends)))
        from_r, from_c = np.repeat(from_r[ends], sizes), np.repeat(from_c[ends], sizes)
    return _Merged(values=values, cdf_r=from_r / n1, cdf_c=from_c / n2)


def _ks_statistic_sorted(r: np.ndarray, c: np.ndarray, merged: _Merged | None = None) -> float:
    """The same arithmetic as scipy.stats.ks_2samp (defaults), on arrays sorted once.

    Where scipy takes its exact path (both sizes <= 10,000), it snaps D to the
    rational h / lcm(n1, n2); so do we, to return the identical number.
    """
    n1, n2 = r.size, c.size
    merged = merged or _merge(r, c)
    diffs = merged.cdf_r - merged.cdf_c
    min_s, max_s = np.clip(-diffs.min(), 0, 1), diffs.max()
    d = float(min_s if min_s > max_s else max_s)
    g = math.gcd(n1, n2)
    if max(n1, n2) <= 10_000 and n1 // g < np.iinfo(np.int32).max / (n2 // g):
        lcm = (n1 // g) * n2
        d = int(np.round(d * lcm)) * 1.0 / lcm
    return d


def ks_test(reference, current) -> tuple[float, float]:
    """(statistic, p-value) of scipy.stats.ks_2samp with its defaults; the p-value on a subsample above 5,000 rows."""
    r, c = _finite_sorted(reference), _finite_sorted(current)
    if r.size == 0 or c.size == 0:
        raise DriftError("both samples need finite values")
    statistic = _ks_statistic_sorted(r, c)
    rng = np.random.default_rng(SEED)
    p_value = float(stats.ks_2samp(_subsample(r, rng), _subsample(c, rng)).pvalue)
    return statistic, p_value


def _wasserstein_merged(merged: _Merged) -> float:
    """scipy.stats.wasserstein_distance's CDF integral, sum(|F_r - F_c| * dx), on the merged samples."""
    deltas = np.diff(merged.values)
    return float(np.sum(np.multiply(np.abs(merged.cdf_r[:-1] - merged.cdf_c[:-1]), deltas)))


# --- per-column results --------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    kind: str  # "numeric" or "categorical"
    n_reference: int
    n_current: int
    missing_reference: float  # share of missing values (NaN / None)
    missing_current: float
    invalid_current: int  # +-inf or non-numeric values in a numeric column
    psi: float | None = None
    kl: float | None = None
    js: float | None = None
    ks_statistic: float | None = None
    ks_pvalue: float | None = None
    wasserstein: float | None = None
    wasserstein_norm: float | None = None
    chi2_pvalue: float | None = None
    pvalue_subsampled: bool = False
    drifted: bool = False
    severity: Severity = Severity.NONE
    reason: str = ""
    bins: list = field(default_factory=list)  # bin labels (edges or categories)
    reference_share: list = field(default_factory=list)
    current_share: list = field(default_factory=list)


@dataclass(frozen=True)
class ReferenceColumn:
    """What drift needs from a reference column, computed once when the reference is set."""

    kind: str
    n: int
    missing: float
    sorted_values: np.ndarray | None = None  # numeric
    cuts: np.ndarray | None = None
    proportions: np.ndarray | None = None
    categories: tuple = ()  # categorical
    counts: np.ndarray | None = None
    std: float = 0.0


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def prepare_reference(values, kind: str | None = None) -> ReferenceColumn:
    """Sort (numeric) or count (categorical) a reference column once."""
    arr = np.asarray(values, dtype=object if kind == "categorical" else None)
    kind = kind or ("numeric" if arr.dtype.kind in "biuf" else "categorical")
    if kind == "numeric":
        floats = _as_float(arr)
        missing = float(np.isnan(floats).mean()) if floats.size else 0.0
        finite = np.sort(floats[np.isfinite(floats)])
        if finite.size == 0:
            return ReferenceColumn(kind=kind, n=0, missing=missing)
        cuts = quantile_cuts(finite)
        return ReferenceColumn(
            kind=kind, n=int(finite.size), missing=missing, sorted_values=finite, cuts=cuts,
            proportions=bin_proportions(finite, cuts), std=float(np.std(finite)),
        )
    present = [v for v in arr.tolist() if not _is_missing(v)]
    missing = 1 - len(present) / len(arr) if len(arr) else 0.0
    categories, counts = np.unique(np.asarray([str(v) for v in present], dtype=object), return_counts=True) if present else ([], [])
    return ReferenceColumn(kind="categorical", n=len(present), missing=missing, categories=tuple(categories), counts=np.asarray(counts))


def _severity(psi_value: float, js_value: float, psi_threshold: float) -> tuple[Severity, bool, str]:
    psi_value, js_value = float(psi_value), float(js_value)
    if psi_value > psi_threshold:
        return Severity.SIGNIFICANT, True, f"PSI {psi_value:.3f} > {psi_threshold}"
    if js_value > JS_INVESTIGATE:
        return Severity.SIGNIFICANT, True, f"JS {js_value:.3f} > {JS_INVESTIGATE}"
    if psi_value >= PSI_MODERATE:
        return Severity.MODERATE, False, f"PSI {psi_value:.3f} between {PSI_MODERATE} and {psi_threshold}: investigate"
    return Severity.NONE, False, f"PSI {psi_value:.3f} < {PSI_MODERATE}"


def column_drift(name: str, reference: ReferenceColumn, current, *, psi_threshold: float = PSI_SIGNIFICANT) -> ColumnDrift:
    """Drift of one column of `current` against a prepared reference column."""
    if reference.kind == "numeric":
        return _numeric_drift(name, reference, current, psi_threshold)
    return _categorical_drift(name, reference, current, psi_threshold)


def _numeric_drift(name: str, ref: ReferenceColumn, current, psi_threshold: float) -> ColumnDrift:
    raw = np.asarray(current, dtype=object).ravel() if not isinstance(current, np.ndarray) or current.dtype.kind not in "biuf" else current
    if isinstance(raw, np.ndarray) and raw.dtype.kind in "biuf":
        floats, not_numbers = raw.astype(float, copy=False), 0
    else:
        parsed = [v if isinstance(v, (int, float)) and not isinstance(v, bool) else (None if _is_missing(v) else "bad") for v in raw]
        not_numbers = sum(1 for v in parsed if v == "bad")
        floats = np.array([np.nan if v in (None, "bad") else v for v in parsed], dtype=float)
    n_all = floats.size
    nan_mask = np.isnan(floats)
    inf_count = int(np.isinf(floats).sum())
    c = np.sort(floats[np.isfinite(floats)])
    missing_current = float((nan_mask.sum() - not_numbers) / n_all) if n_all else 0.0
    base = dict(column=name, kind="numeric", n_reference=ref.n, n_current=int(c.size), missing_reference=ref.missing,
                missing_current=missing_current, invalid_current=inf_count + not_numbers)
    if ref.n == 0:
        return ColumnDrift(**base, severity=Severity.NO_DATA, reason="the reference has no finite values")
    if c.size == 0:
        return ColumnDrift(**base, severity=Severity.NO_DATA, reason="no data in this window")
    p_cur = bin_proportions(c, ref.cuts)
    r = ref.sorted_values
    merged = _merge(r, c)
    psi_value = psi_from_proportions(ref.proportions, p_cur)
    js_value = float(jensenshannon(ref.proportions, p_cur))
    w1 = _wasserstein_merged(merged)
    rng = np.random.default_rng(SEED)
    severity, drifted, reason = _severity(psi_value, js_value, psi_threshold)
    return ColumnDrift(
        **base,
        psi=psi_value,
        kl=kl_divergence(np.maximum(p_cur, CLIP), np.maximum(ref.proportions, CLIP)),
        js=js_value,
        ks_statistic=_ks_statistic_sorted(r, c, merged),
        ks_pvalue=float(stats.ks_2samp(_subsample(r, rng), _subsample(c, rng)).pvalue),
        wasserstein=w1,
        wasserstein_norm=w1 / ref.std if ref.std > 0 else None,
        pvalue_subsampled=bool(max(r.size, c.size) > PVALUE_SAMPLE),
        drifted=drifted, severity=severity, reason=reason,
        bins=[float(x) for x in ref.cuts], reference_share=ref.proportions.tolist(), current_share=p_cur.tolist(),
    )


def _categorical_drift(name: str, ref: ReferenceColumn, current, psi_threshold: float) -> ColumnDrift:
    values = list(np.asarray(current, dtype=object).ravel())
    present = [str(v) for v in values if not _is_missing(v)]
    base = dict(column=name, kind="categorical", n_reference=ref.n, n_current=len(present), missing_reference=ref.missing,
                missing_current=1 - len(present) / len(values) if values else 0.0, invalid_current=0)
    if ref.n == 0:
        return ColumnDrift(**base, severity=Severity.NO_DATA, reason="the reference has no values")
    if not present:
        return ColumnDrift(**base, severity=Severity.NO_DATA, reason="no data in this window")
    cur_categories, cur_counts = np.unique(np.asarray(present, dtype=object), return_counts=True)
    categories = sorted(set(ref.categories) | set(cur_categories.tolist()))
    ref_counts = dict(zip(ref.categories, ref.counts.tolist(), strict=True))
    cur_map = dict(zip(cur_categories.tolist(), cur_counts.tolist(), strict=True))
    r_counts = np.array([ref_counts.get(k, 0) for k in categories], dtype=float)
    c_counts = np.array([cur_map.get(k, 0) for k in categories], dtype=float)
    p_ref, p_cur = r_counts / r_counts.sum(), c_counts / c_counts.sum()
    psi_value = psi_from_proportions(p_ref, p_cur)
    js_value = float(jensenshannon(p_ref, p_cur))
    subsampled = bool(max(r_counts.sum(), c_counts.sum()) > PVALUE_SAMPLE)
    table = np.vstack([_scaled_counts(r_counts), _scaled_counts(c_counts)])
    table = table[:, table.sum(axis=0) > 0]
    chi2_p = float(stats.chi2_contingency(table, correction=False).pvalue) if table.shape[1] > 1 else 1.0
    severity, drifted, reason = _severity(psi_value, js_value, psi_threshold)
    return ColumnDrift(
        **base, psi=psi_value, kl=kl_divergence(np.maximum(p_cur, CLIP), np.maximum(p_ref, CLIP)), js=js_value,
        chi2_pvalue=chi2_p, pvalue_subsampled=subsampled, drifted=drifted, severity=severity, reason=reason,
        bins=categories, reference_share=p_ref.tolist(), current_share=p_cur.tolist(),
    )


def _scaled_counts(counts: np.ndarray) -> np.ndarray:
    """Counts of a seeded subsample of at most 5,000 rows (multivariate hypergeometric), for the p-value."""
    total = int(counts.sum())
    if total <= PVALUE_SAMPLE:
        return counts
    rng = np.random.default_rng(SEED)
    return rng.multivariate_hypergeometric(counts.astype(np.int64), PVALUE_SAMPLE).astype(float)


def _report_column(name: str, *, reference: dict, current: dict, psi_threshold: float, thresholds: dict[str, float]) -> ColumnDrift:
    if name not in current:
        ref = reference[name]
        return ColumnDrift(column=name, kind=getattr(ref, "kind", "numeric"), n_reference=getattr(ref, "n", 0), n_current=0,
                           missing_reference=0.0, missing_current=1.0, invalid_current=0, severity=Severity.NO_DATA,
                           reason="column missing from the current data")
    if name not in reference:
        return ColumnDrift(column=name, kind="unknown", n_reference=0, n_current=len(current[name]), missing_reference=1.0,
                           missing_current=0.0, invalid_current=0, severity=Severity.NO_DATA, reason="new column, not in the reference")
    ref = reference[name] if isinstance(reference[name], ReferenceColumn) else prepare_reference(reference[name])
    return column_drift(name, ref, current[name], psi_threshold=thresholds.get(name, psi_threshold))


def drift_report(
    reference: dict[str, object],
    current: dict[str, object],
    *,
    psi_threshold: float = PSI_SIGNIFICANT,
    thresholds: dict[str, float] | None = None,
    workers: int | None = None,
) -> dict[str, ColumnDrift]:
    """Per-column drift of `current` against `reference` (raw arrays or prepared ReferenceColumns).

    A column present in one side only is reported as `no_data` with the reason,
    not dropped. `thresholds` overrides the PSI threshold per column (the
    default prediction drift rule alerts above 0.2). Columns run on `workers` threads (default: the CPU count, at
    most 4): numpy's sorts and merges release the GIL.
    """
    names = sorted(set(reference) | set(current))
    run = functools.partial(_report_column, reference=reference, current=current, psi_threshold=psi_threshold, thresholds=thresholds or {})
    workers = workers or min(4, os.cpu_count() or 1)
    if workers > 1 and len(names) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(run, names))
    else:
        results = [run(name) for name in names]
    return dict(zip(names, results, strict=True))

"""The drift report of the monitoring bench: `data`, `drift-setup`, `drift-run`, `drift-inmem` and `evidently`
of monitoring_bench.py.

`evidently` runs in bench/.venv-evidently: this module imports only numpy and common.py at module level.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from common import REPO_DIR, django_setup, loadavg, mib, peak_rss_mb, write_json

EDITOR = "bench-editor"
DRIFT_MODEL = "bench-drift-model"
SEED = 20_240_601
BATCH_ROWS = 10_000  # rows per stored FeatureBatch, as one ingestion request of the maximum size stores them
WINDOW = timedelta(days=1)

# name -> (reference sampler, current sampler, what the current side does). Samplers take (rng, n).
COLUMNS: dict[str, tuple] = {
    "f00": (lambda g, n: g.normal(0, 1, n), lambda g, n: g.normal(0, 1, n), "normal, no drift"),
    "f01": (lambda g, n: g.normal(0, 1, n), lambda g, n: g.normal(0.02, 1, n), "mean +0.02 sd"),
    "f02": (lambda g, n: g.normal(0, 1, n), lambda g, n: g.normal(0.1, 1, n), "mean +0.1 sd"),
    "f03": (lambda g, n: g.normal(5, 2, n), lambda g, n: g.normal(5.5, 2, n), "mean +0.25 sd"),
    "f04": (lambda g, n: g.normal(0, 1, n), lambda g, n: g.normal(0.75, 1, n), "mean +0.75 sd"),
    "f05": (lambda g, n: g.normal(0, 1, n), lambda g, n: g.normal(0, 1.1, n), "scale x1.1"),
    "f06": (lambda g, n: g.normal(10, 3, n), lambda g, n: g.normal(10, 3.6, n), "scale x1.2"),
    "f07": (lambda g, n: g.normal(0, 1, n), lambda g, n: g.normal(0, 2, n), "scale x2"),
    "f08": (lambda g, n: g.lognormal(0, 0.5, n), lambda g, n: g.lognormal(0, 0.5, n), "lognormal, no drift"),
    "f09": (lambda g, n: g.lognormal(0, 0.5, n), lambda g, n: g.lognormal(0.3, 0.5, n), "lognormal, log-mean +0.3"),
    "f10": (lambda g, n: g.exponential(1, n), lambda g, n: g.exponential(1, n), "exponential, no drift"),
    "f11": (lambda g, n: g.exponential(1, n), lambda g, n: g.exponential(1.3, n), "exponential, scale x1.3"),
    "f12": (lambda g, n: g.poisson(3, n).astype(float), lambda g, n: g.poisson(3, n).astype(float), "Poisson(3) counts (ties), no drift"),
    "f13": (lambda g, n: g.poisson(3, n).astype(float), lambda g, n: g.poisson(4, n).astype(float), "Poisson 3 -> 4 (ties)"),
    "f14": (lambda g, n: g.uniform(0, 1, n), lambda g, n: g.uniform(0, 1, n), "uniform, no drift"),
    "f15": (lambda g, n: g.uniform(0, 1, n), lambda g, n: g.uniform(0.05, 1.05, n), "uniform, shifted +0.05"),
    "f16": (lambda g, n: g.gamma(2, 1, n), lambda g, n: g.gamma(2, 1, n), "gamma(2), no drift"),
    "f17": (lambda g, n: g.normal(100, 15, n), lambda g, n: g.normal(100, 15, n), "normal(100, 15), no drift"),
    "f18": (lambda g, n: g.standard_t(5, n), lambda g, n: g.standard_t(5, n), "Student t(5), no drift"),
    "f19": (lambda g, n: g.beta(2, 5, n), lambda g, n: g.beta(2, 5, n), "beta(2, 5), no drift"),
}


def load_arrays(data_dir: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    meta = json.loads((Path(data_dir) / "columns.json").read_text())
    return meta["names"], np.load(Path(data_dir) / "reference.npy"), np.load(Path(data_dir) / "current.npy")


def window(data_meta: dict) -> tuple[datetime, datetime]:
    start = datetime.fromisoformat(data_meta["window_start"])
    return start, start + WINDOW


# --- data ----------------------------------------------------------------------------------------


def cmd_data(args) -> None:
    """reference.npy and current.npy: shape (columns, rows), one contiguous float64 row per column."""
    names = sorted(COLUMNS)[: args.columns]
    started = time.perf_counter()
    ref = np.empty((len(names), args.rows))
    cur = np.empty((len(names), args.rows))
    for j, name in enumerate(names):
        ref_fn, cur_fn, _ = COLUMNS[name]
        ref[j] = ref_fn(np.random.default_rng([SEED, j, 0]), args.rows)
        cur[j] = cur_fn(np.random.default_rng([SEED, j, 1]), args.rows)
    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "reference.npy", ref)
    np.save(out / "current.npy", cur)
    # The current window: yesterday 00:00 UTC, one day; the rows are spread evenly over it.
    start = (datetime.now(UTC) - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
    meta = {"names": names, "rows": args.rows, "seed": SEED, "window_start": start.isoformat(),
            "construction": {n: COLUMNS[n][2] for n in names}, "seconds": round(time.perf_counter() - started, 2),
            "bytes_per_side": int(ref.nbytes)}
    write_json(out / "columns.json", meta)
    print(f"  data: {args.rows:,} rows x {len(names)} columns per side ({mib(ref.nbytes)} MiB each) in {meta['seconds']} s")


# --- drift-setup ---------------------------------------------------------------------------------


def cmd_drift_setup(args) -> None:
    """Reference set through the service (timed); current window stored as FeatureBatch rows; a pending DriftReport."""
    django_setup()
    from django.db import transaction

    from mlops_site.roles import user_set_role
    from monitoring import columnar, services
    from monitoring.models import DriftReport, FeatureBatch, ReferenceSource
    from registry.services import model_version_register

    names, ref, cur = load_arrays(args.data)
    meta = json.loads((Path(args.data) / "columns.json").read_text())
    editor = user_set_role(username=EDITOR, role="editor")
    version = model_version_register(model_name=DRIFT_MODEL, actor=editor, description="monitoring bench")

    started = time.perf_counter()
    reference = services.reference_set_from_columns(
        model_version=version, columns={name: ref[j] for j, name in enumerate(names)}, source=ReferenceSource.UPLOAD,
        description="bench reference", actor=editor,
    )
    reference_s = time.perf_counter() - started
    profile_bytes = len(reference.profile)

    # The current window, stored as ingestion stores it: one FeatureBatch per 10,000 rows, columns
    # built like columnar.build_batch and packed with columnar.encode. Writing the rows directly
    # (not 100 POSTs of 10,000 events) keeps this step short; the check below shows that the
    # arrays and kinds are what build_batch makes of the same events.
    rows = cur.shape[1]
    start, end = window(meta)
    step = WINDOW.total_seconds() / rows
    ts = start.timestamp() + np.arange(rows) * step
    kinds = {name: "numeric" for name in names}
    build_check = _build_batch_check(columnar, names, ts[:BATCH_ROWS], cur[:, :BATCH_ROWS], kinds)
    started = time.perf_counter()
    encode_s = 0.0
    stored_bytes = 0
    with transaction.atomic():
        for lo in range(0, rows, BATCH_ROWS):
            hi = min(lo + BATCH_ROWS, rows)
            t = time.perf_counter()
            data = columnar.encode({columnar.TS: ts[lo:hi], **{name: cur[j, lo:hi] for j, name in enumerate(names)}})
            encode_s += time.perf_counter() - t
            stored_bytes += len(data)
            FeatureBatch.objects.create(
                model_version=version, first_ts=datetime.fromtimestamp(ts[lo], UTC), last_ts=datetime.fromtimestamp(ts[hi - 1], UTC),
                rows=hi - lo, columns=kinds, data=data,
            )
    store_s = time.perf_counter() - started
    report = DriftReport.objects.create(model_version=version, window_start=start, window_end=end)
    out = {
        "model_version_id": version.pk, "report_id": report.pk, "rows": rows, "columns": len(names),
        "reference_set_s": round(reference_s, 2), "reference_profile_mb": mib(profile_bytes),
        "batches": math.ceil(rows / BATCH_ROWS), "batch_rows": BATCH_ROWS, "store_s": round(store_s, 2), "encode_s": round(encode_s, 2),
        "stored_mb": mib(stored_bytes), "build_batch_check": build_check,
        "window": [start.isoformat(), end.isoformat()], "peak_rss_mb": peak_rss_mb(),
    }
    write_json(args.out, out)
    print(f"  reference_set_from_columns ({rows:,} rows x {len(names)}): {reference_s:.2f} s (profile {out['reference_profile_mb']} MiB); "
          f"current window: {out['batches']} FeatureBatch rows ({out['stored_mb']} MiB) in {store_s:.2f} s "
          f"(encode {encode_s:.2f} s); build_batch check: {build_check}")


def _build_batch_check(columnar, names, ts, values, kinds) -> str:
    """The first batch as build_batch makes it from event dicts must equal the arrays written directly."""
    rows = [dict(zip(names, row, strict=True)) for row in values.T.tolist()]
    columns, built_kinds = columnar.build_batch(ts.tolist(), [None] * len(rows), [None] * len(rows), rows)
    direct = {columnar.TS: ts, **{name: values[j] for j, name in enumerate(names)}}
    same = built_kinds == kinds and set(columns) == set(direct) and all(np.array_equal(columns[k], direct[k]) for k in direct)
    if not same:
        raise SystemExit("the directly written FeatureBatch differs from columnar.build_batch of the same events")
    return "identical to columnar.build_batch of the same 10,000 events"


# --- drift-run -----------------------------------------------------------------------------------


def cmd_drift_run(args) -> None:
    """drift_report_run in this fresh process: its wall time and the process's peak RSS; then the parts, timed one by one."""
    django_setup()
    from monitoring import drift, selectors, services
    from monitoring.models import Reference

    rss_before = peak_rss_mb()
    started = time.perf_counter()
    report = services.drift_report_run(report_id=args.report_id)
    seconds = time.perf_counter() - started
    rss_peak = peak_rss_mb()
    if report is None or report.status != "done":
        raise SystemExit(f"drift_report_run did not finish: {report and (report.status, report.error)}")
    results = {r["column"]: r for r in report.results}
    from monitoring.models import AlertEvent

    alerts = [f"{e.rule.name}: {e.from_state} -> {e.to_state}" for e in AlertEvent.objects.filter(report_id=report.pk).select_related("rule")]

    # The same work again, part by part (after the peak RSS above was taken).
    parts = {}
    t = time.perf_counter()
    reference = Reference.objects.get(model_version_id=report.model_version_id)
    prepared = selectors.reference_columns(reference)
    parts["reference_columns_s"] = time.perf_counter() - t
    t = time.perf_counter()
    current = selectors.window_columns(model_version_id=report.model_version_id, start=report.window_start, end=report.window_end)
    parts["window_columns_s"] = time.perf_counter() - t
    t = time.perf_counter()
    drift.drift_report(prepared, current)
    parts["drift_report_s"] = time.perf_counter() - t
    out = {
        "seconds": round(seconds, 3), "peak_rss_mb": rss_peak, "rss_before_mb": rss_before, "rows": report.rows,
        "columns": len(results), "drifted_columns": report.drifted_columns, "max_psi": report.max_psi,
        "parts": {k: round(v, 3) for k, v in parts.items()}, "results": results,
        "threads": min(4, os.cpu_count() or 1), "alert_events": alerts, "loadavg": loadavg(),
    }
    write_json(args.out, out)
    print(f"  drift_report_run: {seconds:.2f} s, peak RSS {rss_peak:.0f} MB ({rss_before:.0f} MB after importing Django); "
          f"{report.rows:,} rows, {report.drifted_columns} drifted of {len(results)}; parts (re-run): "
          + ", ".join(f"{k[:-2]} {v:.2f} s" for k, v in parts.items()))


# --- drift-inmem ---------------------------------------------------------------------------------


def brief_psi(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    """The common calculate_psi recipe in numpy: deciles of `expected` (np.quantile, linear), np.histogram, clip at 0.001."""
    breakpoints = np.quantile(expected, np.linspace(0, 1, bins + 1))
    breakpoints[0] = -np.inf
    breakpoints[-1] = np.inf
    expected_counts = np.histogram(expected, bins=breakpoints)[0] / len(expected)
    actual_counts = np.histogram(actual, bins=breakpoints)[0] / len(actual)
    expected_counts = np.clip(expected_counts, 0.001, None)
    actual_counts = np.clip(actual_counts, 0.001, None)
    return float(np.sum((actual_counts - expected_counts) * np.log(actual_counts / expected_counts)))


def cmd_drift_inmem(args) -> None:
    """drift.drift_report on arrays in memory (reference prepared first), scipy's loop, and the checks."""
    sys.path.insert(0, str(REPO_DIR))
    from scipy import stats

    from monitoring import drift

    names, ref, cur = load_arrays(args.data)
    stored = json.loads(Path(args.stored).read_text())["results"]
    started = time.perf_counter()
    prepared = {name: drift.prepare_reference(ref[j]) for j, name in enumerate(names)}
    prepare_s = time.perf_counter() - started
    current = {name: cur[j] for j, name in enumerate(names)}
    runs, ours = [], {}
    for _ in range(args.repeat):
        started = time.perf_counter()
        ours = drift.drift_report(prepared, current)
        runs.append(time.perf_counter() - started)

    started = time.perf_counter()
    scipy_ks = {name: stats.ks_2samp(ref[j], cur[j]) for j, name in enumerate(names)}
    scipy_s = time.perf_counter() - started

    columns = []
    for j, name in enumerate(names):
        s = stored[name]
        sp = float(scipy_ks[name].statistic)
        psi_brief = brief_psi(ref[j], cur[j])
        rel = abs(s["psi"] - psi_brief) / max(abs(psi_brief), 1e-300)
        columns.append({
            "column": name, "psi": s["psi"], "psi_brief": psi_brief, "psi_rel_diff": rel, "js": s["js"],
            "ks_stored": s["ks_statistic"], "ks_inmem": ours[name].ks_statistic, "ks_scipy": sp,
            "ks_identical": s["ks_statistic"] == sp and ours[name].ks_statistic == sp,
            "ks_pvalue_stored": s["ks_pvalue"], "ks_pvalue_scipy_full": float(scipy_ks[name].pvalue),
            "wasserstein_norm": s["wasserstein_norm"], "drifted": s["drifted"], "severity": s["severity"],
        })
    psi_ok = all(c["psi_rel_diff"] <= 1e-9 for c in columns)
    out = {
        "prepare_reference_s": round(prepare_s, 3), "drift_report_s": [round(r, 3) for r in runs],
        "drift_report_median_s": round(statistics.median(runs), 3), "drift_report_min_s": round(min(runs), 3),
        "scipy_ks_loop_s": round(scipy_s, 3), "ks_identical": sum(c["ks_identical"] for c in columns), "columns": columns,
        "psi_max_rel_diff": max(c["psi_rel_diff"] for c in columns), "psi_within_1e9": psi_ok, "n_columns": len(columns),
        "peak_rss_mb": peak_rss_mb(), "loadavg": loadavg(),
    }
    write_json(args.out, out)
    print(f"  in memory: prepare_reference x {len(names)} {prepare_s:.2f} s; drift.drift_report {', '.join(f'{r:.2f}' for r in runs)} s; "
          f"scipy ks_2samp loop {scipy_s:.2f} s; KS identical to scipy (==) in {out['ks_identical']}/{len(columns)} columns; "
          f"PSI vs the numpy formula: max rel diff {out['psi_max_rel_diff']:.1e}")


# --- evidently -----------------------------------------------------------------------------------


def cmd_evidently(args) -> None:
    """Evidently's DataDriftPreset on the same arrays as pandas DataFrames. Runs in bench/.venv-evidently."""
    started = time.perf_counter()
    import evidently
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    import_s = time.perf_counter() - started
    rss_imported = peak_rss_mb()
    names, ref, cur = load_arrays(args.data)
    started = time.perf_counter()
    reference_df = pd.DataFrame({name: ref[j] for j, name in enumerate(names)})
    current_df = pd.DataFrame({name: cur[j] for j, name in enumerate(names)})
    del ref, cur
    frames_s = time.perf_counter() - started
    rss_frames = peak_rss_mb()
    started = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(current_df, reference_df)
    run_s = time.perf_counter() - started
    rss_peak = peak_rss_mb()
    started = time.perf_counter()
    summary = _evidently_summary(snapshot)
    dict_s = time.perf_counter() - started
    out = {
        "evidently_version": evidently.__version__, "pandas_version": pd.__version__, "seconds": round(run_s, 2),
        "peak_rss_mb": rss_peak, "rss_after_import_mb": rss_imported, "rss_with_frames_mb": rss_frames,
        "import_s": round(import_s, 2), "dataframes_s": round(frames_s, 2), "snapshot_dict_s": round(dict_s, 2),
        "call": "Report([DataDriftPreset()]).run(current_df, reference_df)", **summary, "loadavg": loadavg(),
    }
    write_json(args.out, out)
    print(f"  Evidently {evidently.__version__}: DataDriftPreset {run_s:.1f} s, peak RSS {rss_peak:.0f} MB "
          f"({rss_frames:.0f} MB with the two DataFrames); drifted columns: {summary.get('drifted_columns')}")


def _evidently_summary(snapshot) -> dict:
    """What Evidently decided, from its snapshot: drifted-column count and each column's method and score."""
    try:
        data = snapshot.dict()
    except Exception as exc:  # noqa: BLE001 - the timing stands even if the snapshot format changed
        return {"summary_error": repr(exc)[:300]}
    drifted, per_column = None, {}
    for metric in data.get("metrics", []):
        name = str(metric.get("metric_name") or metric.get("metric_id") or "")
        config = metric.get("config") or {}
        value = metric.get("value")
        if name.startswith("DriftedColumnsCount"):
            drifted = value.get("count") if isinstance(value, dict) else value
            drifted = int(drifted) if isinstance(drifted, float) and drifted.is_integer() else drifted
        elif name.startswith("ValueDrift") and config.get("column"):
            per_column[config["column"]] = {"method": config.get("method"), "threshold": config.get("threshold"), "score": value}
    return {"drifted_columns": drifted, "per_column": per_column}

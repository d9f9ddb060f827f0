"""Benchmark of monitoring: a drift report on 1,000,000 x 20 and event ingestion over HTTP.

Driven by the monitoring step of bench/run.sh (`BENCH_ONLY=monitoring make bench`). The issue's
figures: the drift report from stored data, against scipy's ks_2samp (identical KS statistics)
and Evidently's DataDriftPreset on the same arrays; and events per second through POST /api/v1/events.

Subcommands (each one step of run.sh, results as JSON files in a work folder):

  data          seeded reference and current arrays (columns x rows, float64) as .npy files
  drift-setup   editor and model version; reference_set_from_columns (timed); the current window
                stored as FeatureBatch rows of 10,000 rows; a pending DriftReport covering it
  drift-run     services.drift_report_run on that report, alone in this fresh process (wall time,
                peak RSS), then a breakdown of its parts
  drift-inmem   drift.drift_report on in-memory arrays with prepared references; scipy's ks_2samp
                loop; checks of the stored statistics against scipy and the brief's PSI formula
  evidently     Evidently's DataDriftPreset on the same arrays (runs in bench/.venv-evidently)
  ingest-setup  editor, API token and model version for the ingestion server
  ingest-http   POST batches of events to a running gunicorn; events/s per batch size
  profile       cProfile of drift_report_run and of one 10,000-event POST (when a goal is missed)
  report        merge the JSON files, print the table, write bench/results/monitoring.json

Only the Django steps import the project; `evidently` needs only numpy, pandas and evidently.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from registry_bench import BENCH_DIR, REPO_DIR, _loadavg, django_setup, percentile, write_json

EDITOR = "bench-editor"
DRIFT_MODEL = "bench-drift-model"
INGEST_MODEL = "bench-ingest-model"
SEED = 20_240_601
BATCH_ROWS = 10_000  # rows per stored FeatureBatch, as one ingestion request of the maximum size stores them
WINDOW = timedelta(days=1)
GOAL_REPORT_S = 3.0
GOAL_RATIO = 50.0
GOAL_EVENTS_PER_S = 20_000

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


def mib(n_bytes: float) -> float:
    return round(n_bytes / 1024 / 1024, 1)


def peak_rss_mb() -> float:
    """This process's peak resident set size so far (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


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

    from monitoring import columnar, services
    from monitoring.models import DriftReport, FeatureBatch, ReferenceSource
    from registry.roles_admin import user_set_role
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
    from monitoring import drift, services
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
    prepared = services.reference_columns(reference)
    parts["reference_columns_s"] = time.perf_counter() - t
    t = time.perf_counter()
    current = services.window_columns(model_version_id=report.model_version_id, start=report.window_start, end=report.window_end)
    parts["window_columns_s"] = time.perf_counter() - t
    t = time.perf_counter()
    drift.drift_report(prepared, current)
    parts["drift_report_s"] = time.perf_counter() - t
    out = {
        "seconds": round(seconds, 3), "peak_rss_mb": rss_peak, "rss_before_mb": rss_before, "rows": report.rows,
        "columns": len(results), "drifted_columns": report.drifted_columns, "max_psi": report.max_psi,
        "parts": {k: round(v, 3) for k, v in parts.items()}, "results": results,
        "threads": min(4, os.cpu_count() or 1), "alert_events": alerts, "loadavg": _loadavg(),
    }
    write_json(args.out, out)
    print(f"  drift_report_run: {seconds:.2f} s, peak RSS {rss_peak:.0f} MB ({rss_before:.0f} MB after importing Django); "
          f"{report.rows:,} rows, {report.drifted_columns} drifted of {len(results)}; parts (re-run): "
          + ", ".join(f"{k[:-2]} {v:.2f} s" for k, v in parts.items()))


# --- drift-inmem ---------------------------------------------------------------------------------


def brief_psi(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    """The brief's calculate_psi, verbatim: deciles of `expected` (np.quantile, linear), np.histogram, clip at 0.001."""
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
        "peak_rss_mb": peak_rss_mb(), "loadavg": _loadavg(),
    }
    write_json(args.out, out)
    print(f"  in memory: prepare_reference x {len(names)} {prepare_s:.2f} s; drift.drift_report {', '.join(f'{r:.2f}' for r in runs)} s; "
          f"scipy ks_2samp loop {scipy_s:.2f} s; KS identical to scipy (==) in {out['ks_identical']}/{len(columns)} columns; "
          f"PSI vs the brief's formula: max rel diff {out['psi_max_rel_diff']:.1e}")


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
        "call": "Report([DataDriftPreset()]).run(current_df, reference_df)", **summary, "loadavg": _loadavg(),
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


# --- ingest-setup / ingest-http ------------------------------------------------------------------


def cmd_ingest_setup(args) -> None:
    django_setup()
    from registry.roles_admin import user_set_role, user_token_refresh
    from registry.services import model_version_register

    editor = user_set_role(username=EDITOR, role="editor")
    version = model_version_register(model_name=INGEST_MODEL, actor=editor, description="monitoring bench")
    write_json(args.out, {"user": EDITOR, "token": user_token_refresh(user=editor), "model": INGEST_MODEL, "version": version.version})


def make_events(prefix: str, start: int, count: int, model: str, version: int, features: int, rng: np.random.Generator) -> list[dict]:
    """`count` events with `features` numeric features each (full float64 precision), timestamps in the last day."""
    names = [f"f{j:02d}" for j in range(features)]
    values = rng.normal(0, 1, (count, features)).tolist()
    latency = np.round(rng.gamma(2, 20, count), 3).tolist()
    prediction = np.round(rng.uniform(0, 1, count), 6).tolist()
    base = datetime.now(UTC) - timedelta(days=1)
    return [
        {
            "event_id": f"{prefix}-{start + i:08d}", "model": model, "version": version,
            "timestamp": (base + timedelta(milliseconds=start + i)).isoformat(), "latency_ms": latency[i], "error": False,
            "unit_id": f"user-{(start + i) % 5000}", "features": dict(zip(names, values[i], strict=True)), "prediction": prediction[i],
        }
        for i in range(count)
    ]


def cmd_ingest_http(args) -> None:
    """For each batch size: build and encode every body first (timed: the client's share), then POST them on N threads."""
    import requests

    setup = json.loads(Path(args.setup).read_text())
    url = args.base_url.rstrip("/") + "/api/v1/events"
    headers = {"Authorization": f"Token {setup['token']}", "Content-Type": "application/json", "Accept": "application/json"}
    rng = np.random.default_rng(SEED)

    def post_all(bodies: list[bytes], expected: list[int]) -> tuple[float, list[float]]:
        latencies: list[float] = [0.0] * len(bodies)
        next_index = iter(range(len(bodies)))
        lock = threading.Lock()
        failures: list[str] = []

        def worker() -> None:
            session = requests.Session()
            while not failures:
                with lock:
                    i = next(next_index, None)
                if i is None:
                    return
                t = time.perf_counter()
                response = session.post(url, data=bodies[i], headers=headers, timeout=600)
                latencies[i] = time.perf_counter() - t
                if response.status_code != 202 or response.json().get("accepted") != expected[i]:
                    failures.append(f"request {i}: HTTP {response.status_code} {response.text[:500]}")

        threads = [threading.Thread(target=worker) for _ in range(args.threads)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        if failures:
            raise SystemExit(f"POST {url} failed: {failures[0]}")
        return wall, latencies

    # Warm-up: each worker loads the code and opens its database connection; not timed.
    warm = [json.dumps({"events": make_events("warmup", k * 100, 100, setup["model"], setup["version"], args.features, rng)}).encode()
            for k in range(2 * args.threads)]
    post_all(warm, [100] * len(warm))

    out: dict = {"url": url, "threads": args.threads, "features": args.features, "runs": {}, "loadavg_before": _loadavg()}
    for size in args.batch_sizes:
        n_batches = max(1, args.events // size)
        started = time.perf_counter()
        payloads = [make_events(f"b{size}", k * size, size, setup["model"], setup["version"], args.features, rng) for k in range(n_batches)]
        build_s = time.perf_counter() - started
        started = time.perf_counter()
        bodies = [json.dumps({"events": events}).encode() for events in payloads]
        encode_s = time.perf_counter() - started
        del payloads
        wall, latencies = post_all(bodies, [size] * n_batches)
        total = size * n_batches
        ms = [x * 1000 for x in latencies]
        run = {
            "batch_size": size, "requests": n_batches, "events": total, "wall_s": round(wall, 2), "events_per_s": round(total / wall),
            "request_ms_median": round(statistics.median(ms), 1), "request_ms_p95": round(percentile(ms, 95), 1),
            "request_ms_sum": round(sum(ms)), "server_events_per_s_per_request": round(total / (sum(latencies) / args.threads)),
            "body_mb_each": mib(len(bodies[0])), "body_mb_total": mib(sum(len(b) for b in bodies)),
            "client_build_s": round(build_s, 2), "client_json_dumps_s": round(encode_s, 2),
            "client_events_per_s": round(total / (build_s + encode_s)),
        }
        out["runs"][str(size)] = run
        print(f"  batches of {size:,}: {total:,} events in {n_batches} requests, {wall:.1f} s -> {run['events_per_s']:,} events/s "
              f"({args.threads} client threads; request median {run['request_ms_median']} ms, p95 {run['request_ms_p95']} ms, "
              f"{run['body_mb_each']} MiB each); client side, not timed above: build {build_s:.1f} s + json.dumps {encode_s:.1f} s")
        del bodies
    out["loadavg_after"] = _loadavg()

    django_setup()
    from monitoring.models import Event, FeatureBatch

    expected = sum(r["events"] for r in out["runs"].values()) + 100 * 2 * args.threads
    out["events_in_db"] = Event.objects.count()
    out["feature_batches_in_db"] = FeatureBatch.objects.count()
    if out["events_in_db"] != expected:
        raise SystemExit(f"{out['events_in_db']} events in the database, {expected} expected")
    write_json(args.out, out)


# --- profile -------------------------------------------------------------------------------------


def goals_missed(work: Path) -> list[str]:
    run = _load(work / "drift-run.json") or {}
    ev = _load(work / "evidently.json") or {}
    inmem = _load(work / "drift-inmem.json") or {}
    ingest = _load(work / "ingest.json") or {}
    missed = []
    if run.get("seconds") is not None and run["seconds"] >= GOAL_REPORT_S:
        missed.append(f"drift report {run['seconds']} s (goal < {GOAL_REPORT_S} s)")
    if ev.get("seconds") and run.get("seconds") and ev["seconds"] / run["seconds"] < GOAL_RATIO:
        missed.append(f"Evidently / ours {ev['seconds'] / run['seconds']:.0f}x (goal >= {GOAL_RATIO:.0f}x)")
    if inmem and inmem.get("ks_identical") != inmem.get("n_columns"):
        missed.append("KS not identical to scipy")
    for size, r in (ingest.get("runs") or {}).items():
        if r["events_per_s"] < GOAL_EVENTS_PER_S:
            missed.append(f"ingestion {r['events_per_s']} events/s at batches of {size} (goal >= {GOAL_EVENTS_PER_S})")
    return missed


def cmd_profile(args) -> None:
    """cProfile of one drift_report_run (drift DB) or one 10,000-event POST through django.test.Client (ingest DB)."""
    import cProfile

    from prompts_bench import profile_summary

    work = Path(args.work)
    missed = goals_missed(work)
    if args.mode == "auto" and not missed:
        write_json(args.out, {"skipped": "every goal met"})
        print(f"  profile {args.what}: skipped, every goal met")
        return
    django_setup()
    profiler = cProfile.Profile()
    if args.what == "drift":
        import functools

        from monitoring import drift, services
        from monitoring.models import DriftReport

        setup = json.loads((work / "drift-setup.json").read_text())
        template = DriftReport.objects.get(pk=setup["report_id"])
        report = DriftReport.objects.create(model_version_id=template.model_version_id, window_start=template.window_start,
                                            window_end=template.window_end)
        # cProfile sees only the calling thread: run the columns on it (workers=1) so their time is attributed.
        drift.drift_report = functools.partial(drift.drift_report, workers=1)
        started = time.perf_counter()
        profiler.enable()
        done = services.drift_report_run(report_id=report.pk)
        profiler.disable()
        seconds = time.perf_counter() - started
        if done is None or done.status != "done":
            raise SystemExit(f"profiled drift_report_run did not finish: {done and done.error}")
        note = "drift_report_run with drift.drift_report(workers=1), so cProfile sees the column work"
    else:
        from django.test import Client

        setup = json.loads((work / "ingest-setup.json").read_text())
        body = json.dumps({"events": make_events("profile", 0, 10_000, setup["model"], setup["version"], 20, np.random.default_rng(1))})
        client = Client(HTTP_AUTHORIZATION=f"Token {setup['token']}")
        client.post("/api/v1/events", data=json.dumps({"events": make_events("profile-warm", 0, 10, setup["model"], setup["version"], 20,
                                                                             np.random.default_rng(2))}), content_type="application/json")
        started = time.perf_counter()
        profiler.enable()
        response = client.post("/api/v1/events", data=body, content_type="application/json")
        profiler.disable()
        seconds = time.perf_counter() - started
        if response.status_code != 202:
            raise SystemExit(f"profiled POST answered {response.status_code}: {response.content[:500]!r}")
        note = "one POST /api/v1/events of 10,000 events x 20 features through django.test.Client (in-process, no gunicorn)"
    summary = profile_summary(profiler, args.text, seconds)
    write_json(args.out, {"what": args.what, "note": note, "missed_goals": missed, **summary})
    print(f"  profile {args.what}: {seconds:.2f} s under cProfile ({note}); text in {args.text}")


# --- report --------------------------------------------------------------------------------------


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(line[i])) for line in [header, *rows]) for i in range(len(header))]
    print("  ".join(h.ljust(widths[0]) if i == 0 else h.rjust(widths[i]) for i, h in enumerate(header)))
    print("  ".join("-" * w for w in widths))
    for line in rows:
        print("  ".join(str(c).ljust(widths[0]) if i == 0 else str(c).rjust(widths[i]) for i, c in enumerate(line)))


def _f(value, fmt: str = "{:.2f}") -> str:
    return "—" if value is None else fmt.format(value)


def cmd_report(args) -> None:
    work = Path(args.work)
    env = _load(work / "env.json") or {}
    data = _load(work / "data" / "columns.json") or {}
    setup = _load(work / "drift-setup.json") or {}
    run = _load(work / "drift-run.json") or {}
    inmem = _load(work / "drift-inmem.json") or {}
    ev = _load(work / "evidently.json")
    ev_skipped = (work / "evidently-skipped.txt").read_text().strip() if (work / "evidently-skipped.txt").is_file() else ""
    ingest = _load(work / "ingest.json") or {}
    profiles = {what: _load(work / f"profile-{what}.json") for what in ("drift", "ingest")}
    timings = _load(work / "timings.json") or {}
    if ev_skipped:
        ev = None

    rows, cols = data.get("rows"), len(data.get("names", []))
    ours_s = run.get("seconds")
    ratio = round(ev["seconds"] / ours_s, 1) if ev and ours_s else None
    ratio_inmem = round(ev["seconds"] / inmem["drift_report_median_s"], 1) if ev and inmem.get("drift_report_median_s") else None
    print()
    print("=" * 100)
    print("Environment: " + ", ".join(f"{k} {v}" for k, v in env.items()))
    print(f"Monitoring benchmark. Drift: {rows:,} rows x {cols} numeric columns per side (seeded; {sum(1 for c in inmem.get('columns', []) if c['drifted'])} "
          f"of {cols} flagged drifted by ours), current window stored as {setup.get('batches')} FeatureBatch rows of {setup.get('batch_rows'):,} rows "
          f"written directly with columnar.encode (not 100 HTTP requests).")
    print()
    table = [
        ["ours: reference_set_from_columns (once per reference: sort, store)", _f(setup.get("reference_set_s")), _f(setup.get("peak_rss_mb"), "{:.0f}"),
         f"profile blob {setup.get('reference_profile_mb')} MiB"],
        ["ours: drift_report_run, stored data -> DriftReport row", _f(ours_s), _f(run.get("peak_rss_mb"), "{:.0f}"),
         f"own process; {run.get('rss_before_mb', 0):.0f} MB after Django import"],
        ["  parts: reference_columns / window_columns / drift_report",
         " / ".join(_f(run.get("parts", {}).get(k)) for k in ("reference_columns_s", "window_columns_s", "drift_report_s")), "",
         "re-run one by one, same process"],
        ["ours: drift.drift_report in memory, reference prepared", _f(inmem.get("drift_report_median_s")), "",
         f"median of {len(inmem.get('drift_report_s', []))}, min {_f(inmem.get('drift_report_min_s'))}; {run.get('threads')} threads"],
        ["ours: prepare_reference x columns (in memory)", _f(inmem.get("prepare_reference_s")), "", ""],
        ["scipy: ks_2samp(r, c) loop over the columns", _f(inmem.get("scipy_ks_loop_s")), "", "KS statistic + p-value only"],
        [f"Evidently {ev['evidently_version']} DataDriftPreset" if ev else "Evidently DataDriftPreset",
         _f(ev["seconds"], "{:.1f}") if ev else "SKIPPED", _f(ev["peak_rss_mb"], "{:.0f}") if ev else "—",
         (f"own process; {ev['rss_with_frames_mb']:.0f} MB with the DataFrames; pandas {ev['pandas_version']}") if ev else ev_skipped[:60]],
    ]
    _table(["drift, " + f"{rows:,} x {cols}", "wall s", "peak RSS MB", "note"], table)
    print()
    ks_ok = inmem.get("ks_identical") == inmem.get("n_columns")
    print(f"Evidently / ours (stored path): {_f(ratio, '{:.1f}x')}; Evidently / ours (in memory): {_f(ratio_inmem, '{:.1f}x')}; "
          f"scipy loop / ours (stored): {_f(inmem['scipy_ks_loop_s'] / ours_s if ours_s and inmem.get('scipy_ks_loop_s') else None, '{:.1f}x')}")
    print(f"KS statistics identical (==) to scipy.stats.ks_2samp: {inmem.get('ks_identical')}/{inmem.get('n_columns')} columns (stored and in memory); "
          f"PSI vs the brief's numpy formula: max relative difference {_f(inmem.get('psi_max_rel_diff'), '{:.1e}')} "
          f"({'within' if inmem.get('psi_within_1e9') else 'NOT within'} 1e-9)")
    if ev:
        methods = sorted({str(c.get("method")) for c in ev.get("per_column", {}).values()})
        print(f"Evidently flagged {ev.get('drifted_columns')} columns drifted (methods: {', '.join(methods) or '?'}); "
              f"ours {run.get('drifted_columns')} (PSI > 0.25 or JS > 0.3).")
    print(f"Goals: ours < {GOAL_REPORT_S:.0f} s: {'met' if ours_s and ours_s < GOAL_REPORT_S else 'NOT met'} ({_f(ours_s)} s); "
          f">= {GOAL_RATIO:.0f}x faster than Evidently: {('met' if ratio >= GOAL_RATIO else 'NOT met') if ratio else 'not measured'}; "
          f"KS identical to scipy: {'met' if ks_ok else 'NOT met'}")
    print()
    print("Per column (stored report): construction, PSI, KS (ours == scipy), W1/std, verdict")
    per_col = [[c["column"], data.get("construction", {}).get(c["column"], ""), f"{c['psi']:.4f}", f"{c['ks_stored']:.6f}",
                "==" if c["ks_identical"] else "DIFFERS", _f(c["wasserstein_norm"], "{:.3f}"), c["severity"]]
               for c in inmem.get("columns", [])]
    _table(["column", "current side", "PSI", "KS", "scipy", "W1/std", "severity"], per_col)
    print()

    runs = ingest.get("runs", {})
    if runs:
        print(f"Ingestion: POST {ingest.get('url', '/api/v1/events').split('127.0.0.1')[-1]} to gunicorn -w 2 (sync), DJANGO_DEBUG=0, SQLite (WAL); "
              f"{ingest.get('threads')} client threads, bodies JSON-encoded before timing; {ingest.get('features')} numeric features an event.")
        _table(["batch size", "events", "requests", "wall s", "events/s", "req median ms", "req p95 ms", "MiB/request",
                "client build+dumps s", "client events/s"],
               [[f"{r['batch_size']:,}", f"{r['events']:,}", r["requests"], _f(r["wall_s"], "{:.1f}"), f"{r['events_per_s']:,}",
                 r["request_ms_median"], r["request_ms_p95"], r["body_mb_each"], f"{r['client_build_s']:.1f}+{r['client_json_dumps_s']:.1f}",
                 f"{r['client_events_per_s']:,}"] for r in runs.values()])
        print(f"Goal >= {GOAL_EVENTS_PER_S:,} events/s: " + "; ".join(
            f"batches of {int(size):,}: {'met' if r['events_per_s'] >= GOAL_EVENTS_PER_S else 'NOT met'}" for size, r in runs.items())
              + f". Rows in the database afterwards: {ingest.get('events_in_db'):,} events, {ingest.get('feature_batches_in_db')} feature batches.")
    else:
        print("Ingestion: no result")
    for what, prof in profiles.items():
        if not prof or prof.get("skipped"):
            continue
        print()
        print(f"Profile, {what}: {prof['note']}; {prof['seconds_profiled']} s under cProfile. Top by own time:")
        for row in prof["by_own_time"][:10]:
            print(f"    {row['own_s']:7.3f} s own {row['cumulative_s']:7.3f} s cum {row['calls']:>9} calls  {row['function']}")
        print("  Ours by cumulative time:")
        for row in prof["ours_by_cumulative_time"][:8]:
            print(f"    {row['cumulative_s']:7.3f} s cum {row['own_s']:7.3f} s own {row['calls']:>9} calls  {row['function']}")
    missed = goals_missed(work)
    print()
    print("Goals missed: " + ("; ".join(missed) if missed else "none"))

    result = {
        "environment": env, "data": data, "drift_setup": setup, "drift_run": {k: v for k, v in run.items() if k != "results"},
        "drift_results": run.get("results"), "in_memory": inmem, "evidently": ev, "evidently_skipped": ev_skipped or None,
        "ratio_evidently_over_ours": ratio, "ratio_evidently_over_ours_in_memory": ratio_inmem, "ingestion": ingest,
        "profiles": profiles, "goals_missed": missed, "timings": timings,
        "goals": {"report_s_below": GOAL_REPORT_S, "ratio_at_least": GOAL_RATIO, "events_per_s_at_least": GOAL_EVENTS_PER_S},
    }
    out = Path(args.results)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, result)
    print(f"Written: {out.relative_to(REPO_DIR) if out.is_relative_to(REPO_DIR) else out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("data")
    p.add_argument("--dir", required=True)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--columns", type=int, default=20, choices=range(1, len(COLUMNS) + 1), metavar="1..20")
    p.set_defaults(fn=cmd_data)
    for name, fn in (("drift-setup", cmd_drift_setup), ("drift-inmem", cmd_drift_inmem), ("evidently", cmd_evidently)):
        p = sub.add_parser(name)
        p.add_argument("--data", required=True)
        p.add_argument("--out", required=True)
        if name == "drift-inmem":
            p.add_argument("--stored", required=True, help="the drift-run JSON (the stored report's results)")
            p.add_argument("--repeat", type=int, default=3)
        p.set_defaults(fn=fn)
    p = sub.add_parser("drift-run")
    p.add_argument("--report-id", type=int, required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_drift_run)
    p = sub.add_parser("ingest-setup")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_ingest_setup)
    p = sub.add_parser("ingest-http")
    p.add_argument("--base-url", required=True)
    p.add_argument("--setup", required=True)
    p.add_argument("--events", type=int, default=200_000, help="events per batch size")
    p.add_argument("--batch-sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1000, 10_000])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--features", type=int, default=20)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_ingest_http)
    p = sub.add_parser("profile")
    p.add_argument("--what", choices=("drift", "ingest"), required=True)
    p.add_argument("--mode", choices=("auto", "always"), default="auto", help="auto: only when a goal was missed")
    p.add_argument("--work", required=True)
    p.add_argument("--text", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_profile)
    p = sub.add_parser("report")
    p.add_argument("--work", required=True)
    p.add_argument("--results", default=str(BENCH_DIR / "results" / "monitoring.json"))
    p.set_defaults(fn=cmd_report)
    args = parser.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()

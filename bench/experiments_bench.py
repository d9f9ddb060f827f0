"""Benchmark of A/B experiments: the analysis of one experiment with 10,000,000 exposures and 1,000,000 outcomes, and
assignment over HTTP. Driven by the experiments step of bench/run.sh (`BENCH_ONLY=experiments make bench`).

The issue's figures, side by side in one run:
- the analysis task's wall time on SQLite and on PostgreSQL (goal: under 2 s), beside the same numbers computed by
  pandas + statsmodels from the raw rows (and a check that the numbers agree);
- assignment: units per second in batches of 10,000, and single-unit p50 / p99 under 50 concurrent clients, against
  gunicorn (experiments_http.py).

Subcommands (each one step of run.sh; the database is the one SQLITE_PATH or DATABASE_URL names):

  data       on a fresh, migrated database: an editor, model `checkout` v1 and v2, experiment `checkout-ab` (A v1 / B v2,
             50/50, primary conversion, secondary revenue) through the services, started 14 days ago. Then N exposures
             written in bulk (executemany on SQLite, COPY on PostgreSQL; buckets and variants from stats.buckets and
             stats.variant_indices, as assignment computes them), exposure_counts_rebuild, and M outcomes (half
             conversions, half revenue, some before their unit's exposure). ANALYZE. Setup, not a figure.
  analyze    the task experiments.tasks.analysis_compute, in this process, R times (each a fresh Analysis row); its wall
             time, and the time of each SQL statement it ran.
  reference  pandas reads the raw rows (exposures and outcomes) and computes conversion and revenue per exposed unit,
             statsmodels' z-test / Wald interval and Welch t-test, CUPED (OLS slope), the SRM chi-square (scipy); wall
             time, and the largest relative difference from the stored snapshot.
  http       assignment against gunicorn (experiments_http.py): batches of 10,000, single units under 50 clients
  report     merge the JSON files of both databases and the HTTP step, print the table, write bench/results/experiments.json
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from datetime import UTC, timedelta
from pathlib import Path

import numpy as np
from common import django_setup, load_json, loadavg, peak_rss_mb, print_environment, print_table, write_json, write_results

KEY = "checkout-ab"
EDITOR = "bench-editor"
SEED = 20261204
DAYS = 14
CHUNK = 200_000
GOAL_ANALYSIS_S = 2.0


def _timestamps_text(values: np.ndarray, vendor: str) -> list[str]:
    """datetime64[us] (UTC) as each database stores a timestamp: Django's SQLite text, or PostgreSQL input with +00."""
    text = np.datetime_as_string(values, unit="us")
    if vendor == "sqlite":
        return [t.replace("T", " ") for t in text.tolist()]
    return [t.replace("T", " ") + "+00" for t in text.tolist()]


def _bulk_insert(table: str, columns: list[str], rows, vendor: str) -> None:
    from django.db import connection

    quoted = ", ".join(connection.ops.quote_name(c) for c in columns)
    with connection.cursor() as cursor:
        if vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {connection.ops.quote_name(table)} ({quoted}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            cursor.executemany(f"INSERT INTO {connection.ops.quote_name(table)} ({quoted}) VALUES ({', '.join(['%s'] * len(columns))})", list(rows))


def cmd_data(args) -> None:
    django_setup()
    from django.db import connection, transaction
    from django.utils import timezone

    from experiments import services, stats
    from experiments.models import Experiment, Exposure, Outcome, Variant
    from mlops_site.roles import user_set_role, user_token_refresh
    from registry.services import model_version_register

    vendor = connection.vendor
    editor = user_set_role(username=EDITOR, role="editor")
    for _ in range(2):
        model_version_register(model_name="checkout", actor=editor, description="experiments bench")
    experiment = services.experiment_create(
        key=KEY, hypothesis="v2 raises conversion by 2 points", model="checkout", actor=editor, mde=0.002, baseline_rate=0.05,
        variants=[{"name": "A", "version": 1, "weight": 50}, {"name": "B", "version": 2, "weight": 50}],
        primary_metric={"name": "conversion", "kind": "proportion"}, secondary_metrics=[{"name": "revenue", "kind": "mean"}],
    )
    experiment = services.experiment_start(experiment=experiment, reason="bench", actor=editor)
    now = timezone.now().replace(microsecond=0)
    start = now - timedelta(days=DAYS)
    Experiment.objects.filter(pk=experiment.pk).update(started_at=start)
    variants = list(Variant.objects.filter(experiment=experiment).order_by("position"))
    weights = [float(v.weight) for v in variants]
    variant_ids = np.array([v.pk for v in variants])
    rng = np.random.default_rng(SEED)
    n, m = args.exposures, args.outcomes
    start64 = np.datetime64(start.astimezone(UTC).replace(tzinfo=None), "us")
    span_us = DAYS * 86400 * 1_000_000

    # Exposures, in unit order (each index grows at its end), in chunks generated with numpy.
    t0 = time.perf_counter()
    exposed_at = start64 + rng.integers(0, span_us, n).astype("timedelta64[us]")
    arm = np.empty(n, dtype=np.int8)
    insert_s = 0.0
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        units = [f"u{i:09d}" for i in range(lo, hi)]
        buckets = stats.buckets(KEY, units)
        arm[lo:hi] = stats.variant_indices(buckets, weights)
        rows = zip([experiment.pk] * (hi - lo), units, variant_ids[arm[lo:hi]].tolist(), buckets.tolist(),
                   _timestamps_text(exposed_at[lo:hi], vendor), strict=True)
        t = time.perf_counter()
        with transaction.atomic():
            _bulk_insert(Exposure._meta.db_table, ["experiment_id", "unit_id", "variant_id", "bucket", "exposed_at"], rows, vendor)
        insert_s += time.perf_counter() - t
    exposures_s = time.perf_counter() - t0
    t = time.perf_counter()
    counted = services.exposure_counts_rebuild(experiment=experiment)
    counts_s = time.perf_counter() - t

    # Outcomes: half conversions (B converts a little more), half revenue (a spending habit before and after exposure).
    t0 = time.perf_counter()
    half = m // 2
    conv_units = rng.integers(0, n, half)
    keep = rng.random(half) < np.where(arm[conv_units] == 1, 1.0, 0.9)
    conv_units = conv_units[keep]
    conv_ts = exposed_at[conv_units] + rng.integers(-86400_000_000, 3 * 86400_000_000, conv_units.size).astype("timedelta64[us]")
    rev_units = rng.integers(0, n, m - conv_units.size)
    rev_values = np.round(rng.gamma(2.0, 15.0, rev_units.size) * np.where(arm[rev_units] == 1, 1.03, 1.0), 2)
    rev_ts = exposed_at[rev_units] + rng.integers(-3 * 86400_000_000, 3 * 86400_000_000, rev_units.size).astype("timedelta64[us]")
    metric = ["conversion"] * conv_units.size + ["revenue"] * rev_units.size
    units = np.concatenate([conv_units, rev_units])
    values = np.concatenate([np.ones(conv_units.size), rev_values])
    ts = np.concatenate([conv_ts, rev_ts])
    ts_text = _timestamps_text(ts, vendor)
    received = _timestamps_text(np.array([np.datetime64(now.astimezone(UTC).replace(tzinfo=None), "us")]), vendor)[0]
    for lo in range(0, units.size, CHUNK):
        hi = min(units.size, lo + CHUNK)
        rows = zip([f"u{i:09d}" for i in units[lo:hi].tolist()], metric[lo:hi], values[lo:hi].tolist(), ts_text[lo:hi], [received] * (hi - lo),
                   strict=True)
        with transaction.atomic():
            _bulk_insert(Outcome._meta.db_table, ["unit_id", "metric", "value", "timestamp", "received_at"], rows, vendor)
    outcomes_s = time.perf_counter() - t0

    t = time.perf_counter()
    with connection.cursor() as cursor:
        if vendor == "postgresql":
            cursor.execute("VACUUM ANALYZE")  # Django's connections are in autocommit mode: VACUUM runs outside a transaction
        else:
            cursor.execute("ANALYZE")
    analyze_s = time.perf_counter() - t
    size = None
    with connection.cursor() as cursor:
        if vendor == "postgresql":
            cursor.execute("SELECT pg_database_size(current_database())")
            size = cursor.fetchone()[0]
    if vendor == "sqlite":
        size = Path(connection.settings_dict["NAME"]).stat().st_size
    result = {
        "vendor": vendor, "exposures": n, "outcomes": int(units.size), "counted": counted, "experiment_id": experiment.pk,
        "exposures_s": round(exposures_s, 1), "exposures_insert_s": round(insert_s, 1), "counts_rebuild_s": round(counts_s, 2),
        "outcomes_s": round(outcomes_s, 1), "analyze_s": round(analyze_s, 1), "db_mb": round((size or 0) / 1024 / 1024),
        "token": user_token_refresh(user=editor), "user": EDITOR,
    }
    write_json(args.out, result)
    print(f"  {vendor}: {n:,} exposures in {exposures_s:.1f} s ({n / max(insert_s, 1e-9):,.0f}/s inserting), counts rebuilt in {counts_s:.1f} s, "
          f"{units.size:,} outcomes in {outcomes_s:.1f} s, ANALYZE {analyze_s:.1f} s; database {result['db_mb']:,} MB")


def cmd_analyze(args) -> None:
    django_setup()
    from django.db import connection

    from experiments import services, tasks
    from experiments.models import Analysis, Experiment

    experiment = Experiment.objects.get(key=KEY)
    runs = []
    for _ in range(args.runs):
        requested = services.analysis_request(experiment=experiment, enqueue=False)
        statements: list[dict] = []

        def timed(execute, sql, params, many, context, statements=statements):
            t = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                statements.append({"sql": " ".join(sql.split())[:160], "s": round(time.perf_counter() - t, 4)})

        t = time.perf_counter()
        with connection.execute_wrapper(timed):
            status = tasks.analysis_compute(requested.pk)
        wall = time.perf_counter() - t
        assert status == "done", Analysis.objects.get(pk=requested.pk).error
        runs.append({"wall_s": round(wall, 3), "slowest": sorted(statements, key=lambda s: -s["s"])[:4]})
        print(f"  {connection.vendor}: analysis_compute {wall:.2f} s (slowest statement {runs[-1]['slowest'][0]['s']:.2f} s)")
    latest = Analysis.objects.filter(experiment=experiment, status="done").order_by("-finished_at").first()
    write_json(args.out, {"vendor": connection.vendor, "runs": runs, "analysis_id": latest.pk, "results": latest.results,
                          "peak_rss_mb": peak_rss_mb(), "loadavg": loadavg()})


def cmd_reference(args) -> None:
    """pandas + statsmodels from the raw rows: the anchor, and the check that the numbers agree."""
    django_setup()
    import pandas as pd
    from django.db import connection
    from scipy import stats as scipy_stats
    from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest
    from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

    from experiments.models import Experiment

    analysis = load_json(args.analysis)
    experiment = Experiment.objects.get(key=KEY)
    variants = {v.pk: v.name for v in experiment.variants.all()}
    t0 = time.perf_counter()
    raw = connection.connection  # the DB-API connection: pandas reads through it (psycopg works, pandas only warns that it is untested)
    warnings.filterwarnings("ignore", message="pandas only supports SQLAlchemy")
    exposures = pd.read_sql_query(f"SELECT unit_id, variant_id, exposed_at FROM experiments_exposure WHERE experiment_id = {experiment.pk}", raw)
    outcomes = pd.read_sql_query("SELECT unit_id, metric, value, timestamp FROM experiments_outcome", raw)
    read_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    exposures["exposed_at"] = pd.to_datetime(exposures["exposed_at"], utc=True, format="ISO8601")
    outcomes["timestamp"] = pd.to_datetime(outcomes["timestamp"], utc=True, format="ISO8601")
    joined = outcomes.merge(exposures, on="unit_id", how="inner")
    after = joined["timestamp"] >= joined["exposed_at"]
    units = exposures.set_index("unit_id")["variant_id"].map(variants)
    n = units.value_counts()
    conv = joined[after & (joined["metric"] == "conversion") & (joined["value"] > 0)]["unit_id"].unique()
    x = units.loc[conv].value_counts()
    z, p = proportions_ztest([x["B"], x["A"]], [n["B"], n["A"]])
    low, high = confint_proportions_2indep(x["B"], n["B"], x["A"], n["A"], method="wald", compare="diff")
    revenue = joined[joined["metric"] == "revenue"]
    post = revenue[after.loc[revenue.index]].groupby("unit_id")["value"].sum().reindex(units.index, fill_value=0.0)
    pre = revenue[~after.loc[revenue.index]].groupby("unit_id")["value"].sum().reindex(units.index, fill_value=0.0)
    ya, yb = post[units == "A"].to_numpy(), post[units == "B"].to_numpy()
    welch = CompareMeans(DescrStatsW(yb), DescrStatsW(ya))
    t_stat, p_t, _ = welch.ttest_ind(usevar="unequal")
    t_low, t_high = welch.tconfint_diff(usevar="unequal")
    xs, ys = pre.to_numpy(), post.to_numpy()
    theta = np.cov(xs, ys)[0, 1] / np.var(xs, ddof=1)
    chi2, p_srm = scipy_stats.chisquare([n["A"], n["B"]])
    compute_s = time.perf_counter() - t1
    wall = time.perf_counter() - t0

    ours = analysis["results"]
    conversion = next(m for m in ours["metrics"] if m["name"] == "conversion")
    revenue_ours = next(m for m in ours["metrics"] if m["name"] == "revenue")
    pairs = {
        "units A": (conversion["arms"][0]["units"], n["A"]), "units B": (conversion["arms"][1]["units"], n["B"]),
        "conversions A": (conversion["arms"][0]["conversions"], x["A"]), "conversions B": (conversion["arms"][1]["conversions"], x["B"]),
        "z": (conversion["comparisons"][0]["statistic"], z), "p (z)": (conversion["comparisons"][0]["p_value"], p),
        "ci low (z)": (conversion["comparisons"][0]["ci_low"], low), "ci high (z)": (conversion["comparisons"][0]["ci_high"], high),
        "revenue mean A": (revenue_ours["arms"][0]["value"], ya.mean()), "revenue mean B": (revenue_ours["arms"][1]["value"], yb.mean()),
        "t": (revenue_ours["comparisons"][0]["statistic"], t_stat), "p (t)": (revenue_ours["comparisons"][0]["p_value"], p_t),
        "ci low (t)": (revenue_ours["comparisons"][0]["ci_low"], t_low), "ci high (t)": (revenue_ours["comparisons"][0]["ci_high"], t_high),
        "CUPED theta": ((revenue_ours["comparisons"][0]["cuped"] or {}).get("theta"), theta),
        "SRM chi2": (ours["srm"]["chi2"], chi2), "SRM p": (ours["srm"]["p_value"], p_srm),
    }
    diffs = {k: (abs(a - b) / max(abs(b), 1e-300) if a is not None else None) for k, (a, b) in pairs.items()}
    worst = max((d for d in diffs.values() if d is not None), default=None)
    agree = all(d is not None and d <= 1e-9 for d in diffs.values())
    write_json(args.out, {"vendor": connection.vendor, "read_s": round(read_s, 2), "compute_s": round(compute_s, 2), "wall_s": round(wall, 2),
                          "pairs": {k: [float(a) if a is not None else None, float(b)] for k, (a, b) in pairs.items()},
                          "max_rel_diff": worst, "agree": agree, "peak_rss_mb": peak_rss_mb()})
    print(f"  {connection.vendor}: pandas + statsmodels {wall:.1f} s (read {read_s:.1f} s, compute {compute_s:.1f} s); "
          f"largest relative difference from our snapshot {worst:.1e} -> {'agree' if agree else 'DIFFER'}")


def cmd_report(args) -> None:
    work = Path(args.work)
    env = load_json(work / "env.json") or {}
    print_environment(env)
    rows, result = [], {"environment": env, "goal_analysis_s": GOAL_ANALYSIS_S}
    for vendor in ("sqlite", "postgresql"):
        data, analysis, reference = (load_json(work / f"{step}-{vendor}.json") for step in ("data", "analyze", "reference"))
        if not analysis:
            result[vendor] = {"skipped": (load_json(work / f"skipped-{vendor}.json") or {}).get("reason", "not run")}
            continue
        walls = [r["wall_s"] for r in analysis["runs"]]
        result[vendor] = {"data": {k: v for k, v in (data or {}).items() if k != "token"}, "analysis": analysis["runs"], "reference": reference}
        rows.append([vendor, f"{data['exposures']:,}", f"{data['outcomes']:,}", f"{min(walls):.2f}", f"{float(np.median(walls)):.2f}",
                     f"{max(walls):.2f}", f"{reference['wall_s']:.1f}" if reference else "—",
                     f"{reference['max_rel_diff']:.1e}" if reference and reference["max_rel_diff"] is not None else "—",
                     "yes" if min(walls) < GOAL_ANALYSIS_S else "no"])
    print("A/B analysis of one experiment (2 arms, conversion + revenue with CUPED, 4 guardrails, daily series): "
          "analysis_compute in-process; pandas + statsmodels from the raw rows beside it.")
    print_table(["database", "exposures", "outcomes", "ours min s", "median s", "max s", "pandas+statsmodels s", "max rel diff", f"< {GOAL_ANALYSIS_S:g} s"], rows)
    for vendor in ("sqlite", "postgresql"):
        if isinstance(result.get(vendor), dict) and "analysis" in result[vendor]:
            slowest = result[vendor]["analysis"][-1]["slowest"]
            print(f"  {vendor}, slowest statements of the last run: " + "; ".join(f"{s['s']:.2f} s {s['sql'][:70]}..." for s in slowest[:2]))
        elif vendor in result:
            print(f"  {vendor}: SKIPPED ({result[vendor].get('skipped')})")
    http = load_json(work / "http.json")
    if http:
        result["assignment"] = http
        print()
        print(f"Assignment over HTTP: gunicorn -w {http['workers']} (sync), SQLite with the {http['exposures_before']:,} exposures above, "
              f"Redis cache; client on the same 2 cores.")
        print_table(["what", "requests", "units", "wall s", "units/s", "p50 ms", "p99 ms"], [
            [r["label"], f"{r['requests']:,}", f"{r['units']:,}", f"{r['wall_s']:.1f}", f"{r['units_per_s']:,.0f}", f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}"]
            for r in http["rows"]
        ])
    write_results(args.results, result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("data")
    p.add_argument("--exposures", type=int, default=10_000_000)
    p.add_argument("--outcomes", type=int, default=1_000_000)
    p.add_argument("--out", required=True)
    p = sub.add_parser("analyze")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--out", required=True)
    p = sub.add_parser("reference")
    p.add_argument("--analysis", required=True)
    p.add_argument("--out", required=True)
    p = sub.add_parser("http")
    p.add_argument("--base-url", required=True)
    p.add_argument("--data", required=True, help="data-sqlite.json (the editor's token)")
    p.add_argument("--workers", type=int, required=True, help="gunicorn's worker count, for the report")
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--single-requests", type=int, default=5000)
    p.add_argument("--alone-requests", type=int, default=500)
    p.add_argument("--out", required=True)
    p = sub.add_parser("report")
    p.add_argument("--work", required=True)
    p.add_argument("--results", default=str(Path(__file__).resolve().parent / "results" / "experiments.json"))
    args = parser.parse_args()
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    if args.cmd == "http":
        from experiments_http import cmd_http

        cmd_http(args)
        return
    {"data": cmd_data, "analyze": cmd_analyze, "reference": cmd_reference, "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    main()

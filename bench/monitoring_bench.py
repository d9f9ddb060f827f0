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
                loop; checks of the stored statistics against scipy and the numpy PSI formula
  evidently     Evidently's DataDriftPreset on the same arrays (runs in bench/.venv-evidently)
  ingest-setup  editor, API token and model version for the ingestion server
  ingest-http   POST batches of events to a running gunicorn; events/s per batch size
  profile       cProfile of drift_report_run and of one 10,000-event POST (when a goal is missed)
  report        merge the JSON files, print the table, write bench/results/monitoring.json

Only the Django steps import the project; `evidently` needs only numpy, pandas and evidently. The steps
live in monitoring_drift.py (data, drift-*, evidently) and monitoring_ingest.py (ingest-*); profile and
report are here.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from common import BENCH_DIR, django_setup, load_json, print_environment, print_table, profile_summary, write_json, write_results
from monitoring_drift import COLUMNS, cmd_data, cmd_drift_inmem, cmd_drift_run, cmd_drift_setup, cmd_evidently
from monitoring_ingest import cmd_ingest_http, cmd_ingest_setup, make_events

GOAL_REPORT_S = 3.0
GOAL_RATIO = 50.0
GOAL_EVENTS_PER_S = 20_000


def goals_missed(work: Path) -> list[str]:
    run = load_json(work / "drift-run.json") or {}
    ev = load_json(work / "evidently.json") or {}
    inmem = load_json(work / "drift-inmem.json") or {}
    ingest = load_json(work / "ingest.json") or {}
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


def _f(value, fmt: str = "{:.2f}") -> str:
    return "—" if value is None else fmt.format(value)


def cmd_report(args) -> None:
    work = Path(args.work)
    env = load_json(work / "env.json") or {}
    data = load_json(work / "data" / "columns.json") or {}
    setup = load_json(work / "drift-setup.json") or {}
    run = load_json(work / "drift-run.json") or {}
    inmem = load_json(work / "drift-inmem.json") or {}
    ev = load_json(work / "evidently.json")
    ev_skipped = (work / "evidently-skipped.txt").read_text().strip() if (work / "evidently-skipped.txt").is_file() else ""
    ingest = load_json(work / "ingest.json") or {}
    profiles = {what: load_json(work / f"profile-{what}.json") for what in ("drift", "ingest")}
    timings = load_json(work / "timings.json") or {}
    if ev_skipped:
        ev = None

    rows, cols = data.get("rows"), len(data.get("names", []))
    ours_s = run.get("seconds")
    ratio = round(ev["seconds"] / ours_s, 1) if ev and ours_s else None
    ratio_inmem = round(ev["seconds"] / inmem["drift_report_median_s"], 1) if ev and inmem.get("drift_report_median_s") else None
    print_environment(env)
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
    print_table(["drift, " + f"{rows:,} x {cols}", "wall s", "peak RSS MB", "note"], table)
    print()
    ks_ok = inmem.get("ks_identical") == inmem.get("n_columns")
    print(f"Evidently / ours (stored path): {_f(ratio, '{:.1f}x')}; Evidently / ours (in memory): {_f(ratio_inmem, '{:.1f}x')}; "
          f"scipy loop / ours (stored): {_f(inmem['scipy_ks_loop_s'] / ours_s if ours_s and inmem.get('scipy_ks_loop_s') else None, '{:.1f}x')}")
    print(f"KS statistics identical (==) to scipy.stats.ks_2samp: {inmem.get('ks_identical')}/{inmem.get('n_columns')} columns (stored and in memory); "
          f"PSI vs the numpy formula: max relative difference {_f(inmem.get('psi_max_rel_diff'), '{:.1e}')} "
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
    print_table(["column", "current side", "PSI", "KS", "scipy", "W1/std", "severity"], per_col)
    print()

    runs = ingest.get("runs", {})
    if runs:
        print(f"Ingestion: POST {ingest.get('url', '/api/v1/events').split('127.0.0.1')[-1]} to gunicorn -w 2 (sync), DJANGO_DEBUG=0, SQLite (WAL); "
              f"{ingest.get('threads')} client threads, bodies JSON-encoded before timing; {ingest.get('features')} numeric features an event.")
        print_table(["batch size", "events", "requests", "wall s", "events/s", "req median ms", "req p95 ms", "MiB/request",
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
    write_results(args.results, result)


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

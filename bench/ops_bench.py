"""Benchmark of the operations pages: 10,000,000 events over 30 days, the roll-up task, the cost and operations pages.

Driven by the operations step of bench/run.sh (`BENCH_ONLY=operations make bench`). The issue's figures:
with 10M events over 30 days, the server time of the cost page and of the operations page for 30 days
(goal: under 200 ms, read from the roll-ups), the roll-up task's throughput in events per second, and the
number of SQL queries of each page.

Subcommands (each one step of run.sh, results as JSON files in a work folder):

  data    on a fresh, migrated database: an editor and a viewer, 4 models x 2 versions (model_version_register),
          4 prompts x 2 versions (prompts_import), two daily budgets (budget_set); then N events spread over the
          last 30 days, generated in numpy blocks and written with the ingestion's kind of INSERT (one prepared
          statement, executemany), in timestamp order as a live stream writes them. Setup, not a figure, but
          its insert rate is printed.
  rollup  rollups_update from an empty cursor until the stream is folded, alone in this fresh process (wall
          time, events/s, peak RSS); then the checks against the raw events: per subject the requests, errors,
          tokens and cost of the minute and of the hour roll-ups equal SQL aggregates over the Event table, and
          latency (and TTFT) quantiles of one subject and one day within 1 % of numpy's exact quantile.
  pages   the operations page (a model, a prompt), the cost page and the quality page for 30 days and for
          24 hours, in-process through django.test.Client as a logged-in viewer (the time of client.get is the
          server's time: middleware, views, template, no network); warm-up, then N timed requests per page,
          interleaved; queries per page with CaptureQueriesContext. One more request under cProfile of each
          30-day page that misses the goal (or of every 30-day page). Then /metrics' traffic series from the
          lifetime roll-ups beside the same series summed over every hour roll-up (how /metrics read them
          before): the samples must agree; N interleaved timings each.
  report  merge the JSON files, print the table, write bench/results/operations.json

The steps live in ops_data.py, ops_rollup.py and ops_pages.py; the report is here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import BENCH_DIR, load_json, print_environment, print_table, write_results
from ops_data import MODELS, PROMPTS, cmd_data
from ops_pages import GOAL_PAGE_MS, cmd_pages
from ops_rollup import SKETCH_ALPHA, cmd_rollup


def goals_missed(rollup: dict, pages: dict) -> list[str]:
    missed = []
    for label, page in (pages.get("pages") or {}).items():
        if "@30d" in label and page["median_ms"] >= GOAL_PAGE_MS:
            missed.append(f"{label} median {page['median_ms']} ms (goal < {GOAL_PAGE_MS:.0f} ms)")
    if rollup and not rollup.get("totals_check", {}).get("ok"):
        missed.append("roll-up totals differ from the raw events")
    if rollup and not all(c["ok"] for c in rollup.get("quantile_checks", [])):
        missed.append("a roll-up quantile is not within 1 % of the exact one")
    if pages.get("metrics_scrape") and not pages["metrics_scrape"]["same_samples"]:
        missed.append("/metrics from the lifetime roll-ups differs from /metrics summed over the hour roll-ups")
    return missed


def cmd_report(args) -> None:
    work = Path(args.work)
    env = load_json(work / "env.json") or {}
    data = load_json(work / "data.json") or {}
    rollup = load_json(work / "rollup.json") or {}
    pages = load_json(work / "pages.json") or {}
    timings = load_json(work / "timings.json") or {}

    print_environment(env)
    print(f"Operations benchmark: {data.get('events', 0):,} events over {data.get('days')} days, {len(MODELS)} models and "
          f"{len(PROMPTS)} prompts x 2 versions, SQLite (WAL); database {data.get('db_mb', 0):,} MB after the events, "
          f"{rollup.get('db_mb', 0):,} MB with the roll-ups.")
    print(f"Setup (not a figure): events generated in numpy blocks of {data.get('block', 0):,} on a second thread and inserted with the "
          f"ingestion's INSERT and executemany, one transaction a block: {data.get('events', 0):,} in {data.get('loop_s')} s, "
          f"of it executemany {data.get('insert_s')} s = {data.get('insert_events_per_s', 0):,} events/s inserting "
          f"({data.get('events_per_s_overall', 0):,} events/s overall).")
    print()
    if rollup:
        print(f"Roll-up: rollups_update(max_events={rollup['max_events']:,}) x {rollup['calls']} from an empty cursor, own process: "
              f"{rollup['events']:,} events in {rollup['seconds']} s = {rollup['events_per_s']:,} events/s "
              f"(first call {rollup['first_call_events_per_s']:,}/s, last full call {rollup['last_full_call_events_per_s']:,}/s); "
              f"peak RSS {rollup['peak_rss_mb']:.0f} MB; {rollup['minute_rows']:,} minute and {rollup['hour_rows']:,} hour rows.")
        totals = rollup.get("totals_check", {})
        for g, c in totals.get("by_granularity", {}).items():
            print(f"  check, {g} roll-ups vs SQL over the raw events, per subject: requests, errors, tokens, priced requests equal for "
                  f"{c['subjects_equal']}/{totals['subjects']}; cost max relative difference {c['cost_max_rel_diff']:.1e} "
                  f"-> {'ok' if c['ok'] else 'FAILED'}")
        for c in rollup.get("quantile_checks", []):
            pairs = zip(c["ours"], c["exact_inverted_cdf"], strict=True)
            shown = " / ".join("—" if o is None else f"{o:.1f} vs {e:.1f}" for o, e in pairs)
            print(f"  check, {c['metric']} P50/P95/P99 {c['subject']}, {c['start'][:16]} to {c['end'][:16]}, {c['granularity']} roll-ups "
                  f"vs exact over {c['raw_values']:,} raw values: {shown} ms, max rel error {c['max_rel_error']:.2%} "
                  f"-> {'ok' if c['ok'] else 'FAILED'}")
    else:
        print("Roll-up: no result")
    print()
    if pages.get("skipped"):
        print(f"Pages: SKIPPED, {pages['skipped']}")
    elif pages:
        print(f"Pages: in-process django.test.Client as a viewer (server time: middleware, view, template; no network), DJANGO_DEBUG=0; "
              f"{pages['warmup']} warm-up and {pages.get('rounds', pages['requests'])} timed requests per page, interleaved.")
        rows = []
        for key in pages.get("order") or sorted(pages["pages"]):
            page = pages["pages"][key]
            label, _, window = key.rpartition(" @")
            verdict = ("met" if page["median_ms"] < GOAL_PAGE_MS else "NOT met") if window == "30d" else ""
            rows.append([label, window, f"{page['median_ms']:.1f}", f"{page['p95_ms']:.1f}", page["queries"],
                         f"{page['bytes'] / 1024:.0f}", verdict])
        print_table(["page (?range=)", "range", "median ms", "p95 ms", "queries", "KiB", f"< {GOAL_PAGE_MS:.0f} ms"], rows)
        print(f"Load average before / after: {pages.get('loadavg_before')} / {pages.get('loadavg_after')}")
        if scrape := pages.get("metrics_scrape"):
            print(f"/metrics traffic series ({scrape['samples']:,} samples, {scrape['bytes'] / 1024:.0f} KiB), in-process, interleaved:")
            print_table(["read from", "median ms", "p95 ms", "queries"],
                        [[label, f"{side['median_ms']:.1f}", f"{side['p95_ms']:.1f}", side["queries"]] for label, side in scrape["sides"].items()])
            print(f"  {scrape['lifetime_rows']:,} lifetime rows against {scrape['hour_rows']:,} hour rows: {scrape['ratio']}x faster; "
                  f"the same samples (floats within 1e-9): {'yes' if scrape['same_samples'] else 'NO'}")
        for label, prof in (pages.get("profiles") or {}).items():
            print(f"Profile of {label} ({prof['seconds_profiled']} s under cProfile), ours by cumulative time:")
            for row in prof["ours_by_cumulative_time"][:8]:
                print(f"    {row['cumulative_s']:7.3f} s cum {row['own_s']:7.3f} s own {row['calls']:>9} calls  {row['function']}")
    else:
        print("Pages: no result")
    missed = goals_missed(rollup, pages)
    print()
    measured = pages and not pages.get("skipped")
    print("Goals missed: " + ("; ".join(missed) if missed else "none" if measured else "none measured (pages skipped)"))
    result = {
        "environment": env, "data": {k: v for k, v in data.items() if k != "viewer_password"}, "rollup": rollup, "pages": pages,
        "goals": {"page_ms_below": GOAL_PAGE_MS, "sketch_relative_error": SKETCH_ALPHA}, "goals_missed": missed, "timings": timings,
    }
    write_results(args.results, result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("data")
    p.add_argument("--events", type=int, default=10_000_000)
    p.add_argument("--block", type=int, default=100_000, help="events generated and inserted at a time (one transaction)")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_data)
    p = sub.add_parser("rollup")
    p.add_argument("--data", required=True)
    p.add_argument("--max-events", type=int, default=500_000, help="per rollups_update call (the task's default)")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_rollup)
    p = sub.add_parser("pages")
    p.add_argument("--data", required=True)
    p.add_argument("--ranges", type=lambda s: s.split(","), default=["30d", "24h"])
    p.add_argument("--requests", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--max-seconds", type=float, default=240, help="stop the timed rounds after this long (at least 10 rounds)")
    p.add_argument("--profile", choices=("auto", "always", "0"), default="auto",
                   help="auto: the 30-day pages that miss the goal; always: every 30-day page")
    p.add_argument("--profile-dir", default="/tmp", help="where the cProfile text reports go")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_pages)
    p = sub.add_parser("report")
    p.add_argument("--work", required=True)
    p.add_argument("--results", default=str(BENCH_DIR / "results" / "operations.json"))
    p.set_defaults(fn=cmd_report)
    args = parser.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()

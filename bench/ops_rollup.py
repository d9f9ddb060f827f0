"""The roll-up task over the operations bench's events, and its checks against them: `rollup` of ops_bench.py."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from common import django_setup, loadavg, peak_rss_mb, write_json
from ops_data import db_size_mb

SKETCH_ALPHA = 0.01  # monitoring/sketch.py: every quantile estimate within 1 % of the exact one


def _subject_totals_sql(table: str) -> str:
    return (
        "SELECT COALESCE(model_version_id, -prompt_version_id), COUNT(*), SUM(CASE WHEN error THEN 1 ELSE 0 END), "
        f"SUM(COALESCE(input_tokens, 0) + COALESCE(output_tokens, 0)), SUM(cost_usd), COUNT(cost_usd) FROM {table} GROUP BY 1"
    )


def _check_totals(data: dict) -> dict:
    """Per subject and granularity: requests, errors, tokens, priced requests equal (==) the raw aggregates; cost within 1e-9."""
    from django.db import connection
    from django.db.models import F, Sum

    from monitoring.models import Event, Rollup

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(_subject_totals_sql(connection.ops.quote_name(Event._meta.db_table)))
        raw = {row[0]: row[1:] for row in cursor.fetchall()}
    raw_s = time.perf_counter() - started
    result = {"raw_sql_s": round(raw_s, 2), "subjects": len(raw), "by_granularity": {}}
    for granularity in ("minute", "hour"):
        rows = (Rollup.objects.filter(granularity=granularity).values("model_version_id", "prompt_version_id")
                .annotate(requests=Sum("requests"), errors=Sum("errors"), tokens=Sum(F("input_tokens") + F("output_tokens")),
                          cost=Sum("cost_usd"), priced=Sum("cost_requests")))
        ours = {(r["model_version_id"] or -r["prompt_version_id"]): (r["requests"], r["errors"], r["tokens"], r["cost"], r["priced"])
                for r in rows}
        mismatches, cost_rel = [], 0.0
        for subject, (requests, errors, tokens, cost, priced) in raw.items():
            mine = ours.get(subject)
            if mine is None or (mine[0], mine[1], mine[2], mine[4]) != (requests, errors, tokens, priced):
                mismatches.append({"subject": subject, "raw": [requests, errors, tokens, priced],
                                   "rollup": mine and [mine[0], mine[1], mine[2], mine[4]]})
                continue
            if cost is not None:
                cost_rel = max(cost_rel, abs(mine[3] - cost) / abs(cost))
        extra = sorted(set(ours) - set(raw))
        result["by_granularity"][granularity] = {
            "subjects_equal": len(raw) - len(mismatches), "mismatches": mismatches[:5], "extra_subjects": extra,
            "cost_max_rel_diff": cost_rel, "ok": not mismatches and not extra and cost_rel <= 1e-9,
        }
    total_requests = sum(r[0] for r in raw.values())
    result["raw_events"] = total_requests
    result["ok"] = all(g["ok"] for g in result["by_granularity"].values()) and total_requests == data["events"]
    return result


def _check_quantiles(data: dict) -> list[dict]:
    """rollup_totals' latency (and TTFT) quantiles against numpy's exact ones over the raw values read from the database.

    Exact: np.quantile(..., method="inverted_cdf"), the sketch's rank rule (rank ceil(q * n)); the guarantee is
    a relative error of at most 1 % (SKETCH_ALPHA), for hour and minute roll-ups alike (merging loses nothing).
    """
    from monitoring.models import Event
    from monitoring.selectors import rollup_totals

    end = datetime.fromisoformat(data["window"][1])
    day = (end - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)  # the last whole UTC day
    model = max((s for s in data["subjects"] if s["kind"] == "model"), key=lambda s: s["share"])
    prompt = max((s for s in data["subjects"] if s["kind"] == "prompt"), key=lambda s: s["share"])
    cases = [
        (model, "latency", day, day + timedelta(days=1), "hour"), (model, "latency", day, day + timedelta(days=1), "minute"),
        (prompt, "latency", day, day + timedelta(days=1), "hour"), (prompt, "ttft", day, day + timedelta(days=1), "hour"),
        # The 30 days from the hour roll-ups (the window starts on a whole hour, as the page floors it).
        (model, "latency", datetime.fromisoformat(data["window"][0]).replace(minute=0, second=0), end, "hour"),
    ]
    qs = (0.5, 0.95, 0.99)
    checks = []
    for subject, metric, start, stop, granularity in cases:
        field = "model_version_id" if subject["kind"] == "model" else "prompt_version_id"
        column = "latency_ms" if metric == "latency" else "ttft_ms"
        t = time.perf_counter()
        rows = Event.objects.filter(**{field: subject["id"], f"{column}__isnull": False}, timestamp__gte=start, timestamp__lt=stop)
        raw = np.array(rows.values_list(column, flat=True), dtype=np.float64)
        read_s = time.perf_counter() - t
        totals = rollup_totals(kind=subject["kind"], name=subject["name"], versions=[subject["version"]], start=start, end=stop,
                               granularity=granularity)
        if metric == "latency":
            ours, count = [totals.latency_p50, totals.latency_p95, totals.latency_p99], totals.requests
        else:
            ours, count = [None, totals.ttft_p95, None], totals.ttft_count
        exact = [float(np.quantile(raw, q, method="inverted_cdf")) for q in qs]
        linear = [float(np.quantile(raw, q)) for q in qs]
        rel = [abs(o - e) / e if o is not None else None for o, e in zip(ours, exact, strict=True)]
        worst = max(r for r in rel if r is not None)
        checks.append({
            "subject": f"{subject['kind']} {subject['name']} v{subject['version']}", "metric": metric, "granularity": granularity,
            "start": start.isoformat(), "end": stop.isoformat(), "raw_values": int(raw.size), "rollup_count": count,
            "raw_read_s": round(read_s, 2),
            "quantiles": list(qs), "ours": ours, "exact_inverted_cdf": exact, "numpy_linear": linear, "rel_error": rel,
            "max_rel_error": worst, "ok": count == raw.size and worst <= SKETCH_ALPHA + 1e-9,
        })
    return checks


def cmd_rollup(args) -> None:
    """rollups_update (as rollups_catch_up calls it) from an empty cursor to the end: wall time, events/s, RSS; then the checks."""
    django_setup()
    from monitoring.models import Event, Rollup, RollupCursor
    from monitoring.services import rollups_update

    data = json.loads(Path(args.data).read_text())
    if RollupCursor.objects.exists() or Rollup.objects.exists():
        raise SystemExit("the roll-ups must start from an empty cursor on a database of their own")
    last_id = Event.objects.order_by("-id").values_list("id", flat=True).first()
    rss_before = peak_rss_mb()
    calls = []
    started = time.perf_counter()
    # rollups_catch_up's loop without its time limit, each call timed. It stops at the cursor rather than at a
    # short call: a call may fold fewer than max_events while more remain (gaps in the ids).
    while True:
        t = time.perf_counter()
        folded = rollups_update(max_events=args.max_events)
        calls.append((folded, time.perf_counter() - t))
        if folded == 0 or RollupCursor.objects.get().last_event_id >= last_id:
            break
    seconds = time.perf_counter() - started
    rss_peak = peak_rss_mb()
    folded = sum(n for n, _ in calls)
    cursor = RollupCursor.objects.get().last_event_id
    rates = [n / s for n, s in calls if n == args.max_events] or [n / s for n, s in calls if n]  # full calls (a short last one says little)
    out = {
        "events": folded, "seconds": round(seconds, 2), "events_per_s": round(folded / seconds), "max_events": args.max_events,
        "calls": len(calls), "call_s": [round(s, 2) for _, s in calls], "call_events": [n for n, _ in calls],
        "first_call_events_per_s": round(rates[0]) if rates else None, "last_full_call_events_per_s": round(rates[-1]) if rates else None,
        "peak_rss_mb": rss_peak, "rss_before_mb": rss_before, "cursor_at_last_event": cursor == last_id,
        "minute_rows": Rollup.objects.filter(granularity="minute").count(), "hour_rows": Rollup.objects.filter(granularity="hour").count(),
        "db_mb": db_size_mb(), "loadavg": loadavg(),
    }
    print(f"  rollups_update x {len(calls)} (max_events {args.max_events:,}): {folded:,} events in {seconds:.1f} s -> "
          f"{out['events_per_s']:,} events/s (first call {out['first_call_events_per_s']:,}/s, "
          f"last full {out['last_full_call_events_per_s']:,}/s); "
          f"peak RSS {rss_peak:.0f} MB; {out['minute_rows']:,} minute + {out['hour_rows']:,} hour rows", flush=True)
    if folded != data["events"] or not out["cursor_at_last_event"]:
        raise SystemExit(f"folded {folded:,} of {data['events']:,} events (cursor {cursor}, last id {last_id})")
    out["totals_check"] = _check_totals(data)
    totals = out["totals_check"]
    print(f"  check, per subject (SQL over the raw events, {totals['raw_sql_s']} s): "
          + "; ".join(f"{g}: requests/errors/tokens equal for {c['subjects_equal']}/{totals['subjects']}, "
                      f"cost max rel diff {c['cost_max_rel_diff']:.1e}"
                      for g, c in totals["by_granularity"].items()))
    out["quantile_checks"] = _check_quantiles(data)
    for c in out["quantile_checks"]:
        print(f"  check, {c['metric']} P50/P95/P99 of {c['subject']} {c['start'][:16]} to {c['end'][:16]} from {c['granularity']} roll-ups "
              f"({c['raw_values']:,} raw values): max rel error {c['max_rel_error']:.2%} ({'ok' if c['ok'] else 'NOT within 1 %'})")
    write_json(args.out, out)

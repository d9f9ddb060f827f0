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
          30-day page that misses the goal (or of every 30-day page).
  report  merge the JSON files, print the table, write bench/results/operations.json
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from registry_bench import BENCH_DIR, REPO_DIR, _loadavg, django_setup, percentile, write_json

EDITOR = "bench-editor"
VIEWER = ("bench-viewer", "bench-viewer-pw")
SEED = 20_240_605
DAYS = 30
GOAL_PAGE_MS = 200.0
SKETCH_ALPHA = 0.01  # monitoring/sketch.py: every quantile estimate within 1 % of the exact one
VERSION_SHARE = (0.3, 0.7)  # of a name's traffic: v1, v2 (the newer version takes most of it)

# name, share of all traffic, latency median (ms) and log-sd. Model events have a prediction and no tokens.
MODELS = (
    ("fraud-detector", 0.20, 18.0, 0.45),
    ("churn-predictor", 0.10, 35.0, 0.50),
    ("search-ranker", 0.12, 9.0, 0.40),
    ("demand-forecast", 0.08, 60.0, 0.60),
)
# name, share, LLM, latency median (ms), input and output tokens (medians), USD per input and output token.
PROMPTS = (
    ("summarize", 0.15, "claude-sonnet-4", 2400.0, 1200, 250, 3e-6, 15e-6),
    ("classify", 0.20, "gpt-4o-mini", 450.0, 300, 5, 0.15e-6, 0.6e-6),
    ("extract-entities", 0.05, "gpt-4o", 1300.0, 900, 120, 2.5e-6, 10e-6),
    ("support-reply", 0.10, "claude-haiku-4", 900.0, 700, 180, 0.8e-6, 4e-6),
)
PROMPT_FILE = """name: {name}
version: {version}
description: Operations bench prompt.
model: {llm}
temperature: 0.{version}
max_tokens: 800
system: |
  You are a careful assistant. Answer in the requested format only.
template: |
  Task {name}, version {version}:

  {{text}}
"""


def peak_rss_mb() -> float:
    """This process's peak resident set size so far (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def db_size_mb() -> float:
    from django.conf import settings

    path = Path(settings.DATABASES["default"]["NAME"])
    return round(sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.is_file()) / 1024 / 1024, 1)


# --- data ----------------------------------------------------------------------------------------


def _subjects(versions: dict[tuple[str, str, int], int]) -> list[dict]:
    """One dict per version (16): kind, name, version, database id, share of the traffic and its generator parameters."""
    out = []
    for name, share, median, sigma in MODELS:
        for v, part in enumerate(VERSION_SHARE, start=1):
            # v2 is a little faster: the operations page then has something to compare.
            out.append({"kind": "model", "name": name, "version": v, "id": versions[("model", name, v)], "share": share * part,
                        "latency_median": median * (1.0 if v == 1 else 0.9), "sigma": sigma})
    for name, share, llm, median, tokens_in, tokens_out, usd_in, usd_out in PROMPTS:
        for v, part in enumerate(VERSION_SHARE, start=1):
            out.append({"kind": "prompt", "name": name, "version": v, "id": versions[("prompt", name, v)], "share": share * part,
                        "latency_median": median * (1.0 if v == 1 else 0.9), "sigma": 0.5, "llm": llm, "tokens_in": tokens_in,
                        "tokens_out": tokens_out * (1.0 if v == 1 else 0.8), "usd_in": usd_in, "usd_out": usd_out})
    return out


def _nullable(values: np.ndarray, present: np.ndarray) -> list:
    """Python values where `present`, None elsewhere (NULL in the database)."""
    out = values.astype(object)
    out[~present] = None
    return out.tolist()


def event_rows(rng: np.random.Generator, first_id: int, n: int, t0: float, t1: float, subjects: list[dict]) -> list[tuple]:
    """`n` events with timestamps in [t0, t1) (epoch seconds, sorted), as row tuples in services.EVENT_COLUMNS order.

    Latency log-normal per subject, ~1 % errors; prompt events carry tokens (some of the input
    cached), the cost at the LLM's price, time to first token, a guardrail flag, a judge score and a
    faithfulness on ~10 %, feedback on ~5 % (80 % thumbs up); model events a prediction.
    """
    k = len(subjects)
    which = rng.choice(k, size=n, p=np.array([s["share"] for s in subjects]) / sum(s["share"] for s in subjects))
    prompt = np.array([s["kind"] == "prompt" for s in subjects])[which]
    param = {key: np.array([s.get(key, 0) or 0 for s in subjects], dtype=np.float64)[which]
             for key in ("latency_median", "sigma", "tokens_in", "tokens_out", "usd_in", "usd_out")}
    seconds = np.sort(rng.uniform(t0, t1, n))
    stamps = np.datetime_as_string((seconds * 1e6).astype(np.int64).astype("datetime64[us]"), unit="us").tolist()
    stamps = [s.replace("T", " ") for s in stamps]  # naive UTC text, as Django's SQLite backend stores a datetime
    latency = np.round(rng.lognormal(np.log(param["latency_median"]), param["sigma"]), 3)
    error = rng.random(n) < 0.01
    tokens_in = np.maximum(1, np.rint(rng.lognormal(np.log(np.maximum(param["tokens_in"], 1)), 0.4))).astype(np.int64)
    tokens_out = np.maximum(1, np.rint(rng.lognormal(np.log(np.maximum(param["tokens_out"], 1)), 0.5))).astype(np.int64)
    cached = np.where(rng.random(n) < 0.3, tokens_in // 2, 0)
    cost = (tokens_in - cached) * param["usd_in"] + cached * param["usd_in"] * 0.5 + tokens_out * param["usd_out"]
    ttft = np.round(latency * rng.uniform(0.1, 0.4, n), 3)
    judge = np.round(rng.beta(8, 2, n), 4)
    faithfulness = np.round(rng.beta(9, 1.5, n), 4)
    guardrail = rng.random(n) < 0.02
    feedback = np.where(rng.random(n) < 0.8, 1, -1)
    has_judge = prompt & (rng.random(n) < 0.1)
    has_faithfulness = prompt & (rng.random(n) < 0.1)
    has_feedback = prompt & (rng.random(n) < 0.05)
    prediction = np.round(rng.uniform(0, 1, n), 4).astype(str)
    ids = np.array([s["id"] for s in subjects])[which]
    llm = np.array([s.get("llm", "") for s in subjects], dtype=object)[which].tolist()
    nothing = [None] * n
    columns = [
        [f"ops-{first_id + i:09d}" for i in range(n)],  # event_id
        _nullable(ids, ~prompt), _nullable(ids, prompt),  # model_version, prompt_version
        stamps, stamps,  # timestamp, received_at
        latency.tolist(), error.tolist(), [""] * n,  # latency_ms, error, unit_id
        _nullable(prediction, ~prompt), nothing,  # prediction (JSON text), label
        _nullable(tokens_in, prompt), _nullable(tokens_out, prompt), _nullable(cost, prompt), _nullable(ttft, prompt),
        _nullable(guardrail, prompt), _nullable(feedback, has_feedback), _nullable(judge, has_judge),
        _nullable(cached, prompt), nothing, llm, [False] * n,  # cached_tokens, reasoning_tokens, llm_model, pricing_missing
        _nullable(faithfulness, has_faithfulness), nothing,  # faithfulness, batch
    ]
    return list(zip(*columns, strict=True))


def cmd_data(args) -> None:
    """Users, versions, prompts and budgets through the services; then the events, block by block, with executemany."""
    django_setup()
    from django.db import connection, transaction

    from monitoring.budgets import budget_set
    from monitoring.models import Event
    from monitoring.services import EVENT_COLUMNS
    from registry.models import PromptVersion
    from registry.roles_admin import user_set_role
    from registry.services import model_version_register, prompts_import

    started = time.perf_counter()
    editor = user_set_role(username=EDITOR, role="editor")
    user_set_role(username=VIEWER[0], role="viewer", password=VIEWER[1])
    versions = {}
    for name, *_ in MODELS:
        for v in (1, 2):
            mv = model_version_register(model_name=name, actor=editor, metrics={"accuracy": 0.9 + 0.01 * v}, description="operations bench")
            versions[("model", name, mv.version)] = mv.pk
    files = {f"{p[0]}/v{v}.yaml": PROMPT_FILE.format(name=p[0], version=v, llm=p[2]) for p in PROMPTS for v in (1, 2)}
    prompts_import(files=files, actor=editor)
    for pv in PromptVersion.objects.select_related("prompt"):
        versions[("prompt", pv.prompt.name, pv.version)] = pv.pk
    subjects = _subjects(versions)
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(days=DAYS)
    # Budgets sized so that the bench's traffic crosses the 80 % share of the first one, like a real day might.
    budget_set(name="all-spend-daily", amount_usd=round(args.events / 10_000_000 * 600, 2) or 1.0, period="day", actor=editor)
    budget_set(name="summarize-daily", amount_usd=round(args.events / 10_000_000 * 400, 2) or 1.0, period="day", scope="prompt",
               members=["prompt:summarize"], actor=editor)
    setup_s = time.perf_counter() - started

    fields = [Event._meta.get_field(name) for name in EVENT_COLUMNS]
    quote = connection.ops.quote_name
    sql = (  # what monitoring.services._insert_events runs
        f"INSERT INTO {quote(Event._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))}) ON CONFLICT ({quote(fields[0].column)}) DO NOTHING"
    )
    blocks = max(1, math.ceil(args.events / args.block))
    t0, span = start.timestamp(), (end - start).total_seconds()

    def block(b: int) -> tuple[list[tuple], float]:
        t = time.perf_counter()
        first = b * args.block
        rng = np.random.default_rng([SEED, b])  # per block: the same events whatever the thread timing
        n = min(args.block, args.events - first)
        rows = event_rows(rng, first + 1, n, t0 + span * b / blocks, t0 + span * (b + 1) / blocks, subjects)
        return rows, time.perf_counter() - t

    generate_s = insert_s = 0.0
    done, last_print = 0, time.perf_counter()
    loop_started = time.perf_counter()
    # The next block is generated on a second thread while this one inserts: sqlite3 lets go of the GIL
    # while SQLite works, so on 2 cores the two overlap (the generation is setup, not part of the figure).
    with ThreadPoolExecutor(max_workers=1) as pool:
        upcoming = pool.submit(block, 0)
        for b in range(blocks):
            rows, seconds = upcoming.result()
            generate_s += seconds
            if b + 1 < blocks:
                upcoming = pool.submit(block, b + 1)
            t = time.perf_counter()
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.executemany(sql, rows)
            insert_s += time.perf_counter() - t
            done += len(rows)
            del rows
            if time.perf_counter() - last_print > 30 or done == args.events:
                last_print = time.perf_counter()
                print(f"  events: {done:,} of {args.events:,} ({done / insert_s:,.0f} events/s inserting, "
                      f"{done / (time.perf_counter() - loop_started):,.0f} events/s with the generation beside it)", flush=True)
    loop_s = time.perf_counter() - loop_started
    stored = Event.objects.count()
    if stored != args.events:
        raise SystemExit(f"{stored:,} events in the database, {args.events:,} written")
    out = {
        "events": args.events, "block": args.block, "days": DAYS, "window": [start.isoformat(), end.isoformat()], "subjects": subjects,
        "setup_s": round(setup_s, 2), "generate_s": round(generate_s, 1), "insert_s": round(insert_s, 1),
        "loop_s": round(loop_s, 1), "insert_events_per_s": round(args.events / insert_s),
        "events_per_s_overall": round(args.events / loop_s),
        "db_mb": db_size_mb(), "peak_rss_mb": peak_rss_mb(), "viewer": VIEWER[0], "viewer_password": VIEWER[1], "seed": SEED,
        "insert_sql": sql,
    }
    write_json(args.out, out)
    print(f"  data: {len(subjects)} versions ({len(MODELS)} models, {len(PROMPTS)} prompts x 2), 2 budgets in {setup_s:.1f} s; "
          f"{args.events:,} events over {DAYS} days in {loop_s:.1f} s: executemany {insert_s:.1f} s "
          f"({out['insert_events_per_s']:,} events/s, {args.block:,} rows a transaction), generation {generate_s:.1f} s beside it; "
          f"database {out['db_mb']:,} MB")


# --- rollup --------------------------------------------------------------------------------------


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
    from monitoring.rollups import rollup_totals

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
    from monitoring.rollups import rollups_update

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
        "db_mb": db_size_mb(), "loadavg": _loadavg(),
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


# --- pages ---------------------------------------------------------------------------------------


def _targets(data: dict, ranges: list[str]) -> dict[str, str] | str:
    """{label: path} of the pages to time; a string saying why when the pages are not there yet."""
    from django.urls import NoReverseMatch, reverse

    model = max((s for s in data["subjects"] if s["kind"] == "model"), key=lambda s: s["share"])["name"]
    prompt = max((s for s in data["subjects"] if s["kind"] == "prompt"), key=lambda s: s["share"])["name"]
    try:
        paths = {
            f"operations: model {model}": reverse("monitoring:operations", args=["model", model]),
            f"operations: prompt {prompt}": reverse("monitoring:operations", args=["prompt", prompt]),
            "costs": reverse("monitoring:costs"),
            f"quality: {prompt}": reverse("monitoring:quality", args=[prompt]),
        }
    except NoReverseMatch as exc:
        return f"the pages are not routed yet ({exc})"
    return {f"{label} @{r}": f"{path}?range={r}" for r in ranges for label, path in paths.items()}


def cmd_pages(args) -> None:
    """Warm up, count queries, then time every page N times, interleaved (round i requests each page once, rotating order)."""
    django_setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    data = json.loads(Path(args.data).read_text())
    targets = _targets(data, args.ranges)
    if isinstance(targets, str):
        write_json(args.out, {"skipped": targets})
        print(f"  pages: SKIPPED, {targets}")
        return
    client = Client()
    if not client.login(username=data["viewer"], password=data["viewer_password"]):
        raise SystemExit("in-process login failed")
    out: dict = {"requests": args.requests, "warmup": args.warmup, "loadavg_before": _loadavg(), "pages": {}, "order": list(targets)}
    for label, path in targets.items():
        for _ in range(args.warmup):
            response = client.get(path)
            if response.status_code != 200:
                raise SystemExit(f"{path}: HTTP {response.status_code}: {response.content[:500]!r}")
        with CaptureQueriesContext(connection) as captured:
            response = client.get(path)
        sqls = [q["sql"] for q in captured.captured_queries]
        out["pages"][label] = {"path": path, "queries": len(sqls), "sql": sqls, "bytes": len(response.content), "samples_ms": []}
    labels = list(targets)
    started = time.perf_counter()
    for i in range(args.requests):
        for label in labels[i % len(labels):] + labels[: i % len(labels)]:
            t = time.perf_counter()
            response = client.get(targets[label])
            out["pages"][label]["samples_ms"].append((time.perf_counter() - t) * 1000)
            assert response.status_code == 200, (label, response.status_code)
        # A page that reads raw events can take seconds at 10M events: the rounds stop at the time limit (10 at least).
        if i + 1 >= 10 and time.perf_counter() - started > args.max_seconds:
            print(f"  pages: stopped after {i + 1} rounds ({args.max_seconds:.0f} s limit)")
            break
    out["rounds"] = i + 1
    out["loadavg_after"] = _loadavg()
    for label, page in out["pages"].items():
        ms = page.pop("samples_ms")
        page.update({"median_ms": round(statistics.median(ms), 1), "p95_ms": round(percentile(ms, 95), 1), "min_ms": round(min(ms), 1),
                     "max_ms": round(max(ms), 1)})
        print(f"  {label}: median {page['median_ms']} ms, p95 {page['p95_ms']} ms, {page['queries']} queries, "
              f"{page['bytes'] / 1024:.0f} KiB")
    slow = [label for label, page in out["pages"].items() if "@30d" in label and page["median_ms"] >= GOAL_PAGE_MS]
    if args.profile == "always":
        slow = [label for label in out["pages"] if "@30d" in label]
    if args.profile != "0" and slow:
        import cProfile

        from prompts_bench import profile_summary

        out["profiles"] = {}
        for k, label in enumerate(slow):
            profiler = cProfile.Profile()
            t = time.perf_counter()
            profiler.enable()
            client.get(targets[label])
            profiler.disable()
            text = Path(args.profile_dir) / f"profile-page-{k}.txt"
            out["profiles"][label] = profile_summary(profiler, str(text), time.perf_counter() - t)
        print(f"  cProfile of {len(slow)} page(s) (one request each): text in {args.profile_dir}/profile-page-*.txt")
    write_json(args.out, out)


# --- report --------------------------------------------------------------------------------------


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(line[i])) for line in [header, *rows]) for i in range(len(header))]
    print("  ".join(h.ljust(widths[0]) if i == 0 else h.rjust(widths[i]) for i, h in enumerate(header)))
    print("  ".join("-" * w for w in widths))
    for line in rows:
        print("  ".join(str(c).ljust(widths[0]) if i == 0 else str(c).rjust(widths[i]) for i, c in enumerate(line)))


def goals_missed(rollup: dict, pages: dict) -> list[str]:
    missed = []
    for label, page in (pages.get("pages") or {}).items():
        if "@30d" in label and page["median_ms"] >= GOAL_PAGE_MS:
            missed.append(f"{label} median {page['median_ms']} ms (goal < {GOAL_PAGE_MS:.0f} ms)")
    if rollup and not rollup.get("totals_check", {}).get("ok"):
        missed.append("roll-up totals differ from the raw events")
    if rollup and not all(c["ok"] for c in rollup.get("quantile_checks", [])):
        missed.append("a roll-up quantile is not within 1 % of the exact one")
    return missed


def cmd_report(args) -> None:
    work = Path(args.work)
    env = _load(work / "env.json") or {}
    data = _load(work / "data.json") or {}
    rollup = _load(work / "rollup.json") or {}
    pages = _load(work / "pages.json") or {}
    timings = _load(work / "timings.json") or {}

    print()
    print("=" * 100)
    print("Environment: " + ", ".join(f"{k} {v}" for k, v in env.items()))
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
        _table(["page (?range=)", "range", "median ms", "p95 ms", "queries", "KiB", f"< {GOAL_PAGE_MS:.0f} ms"], rows)
        print(f"Load average before / after: {pages.get('loadavg_before')} / {pages.get('loadavg_after')}")
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
    out = Path(args.results)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, result)
    print(f"Written: {out.relative_to(REPO_DIR) if out.is_relative_to(REPO_DIR) else out}")


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

"""The operations bench's data: `data` of ops_bench.py. Users, versions, prompts and budgets through the services,
then N events over the last 30 days, generated in numpy blocks and written with the ingestion's INSERT."""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from common import django_setup, peak_rss_mb, write_json

EDITOR = "bench-editor"
VIEWER = ("bench-viewer", "bench-" + "password-long")
SEED = 20_240_605
DAYS = 30
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
    """`n` events with timestamps in [t0, t1) (epoch seconds, sorted), as row tuples in services.ingestion.EVENT_COLUMNS order.

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
        _nullable(faithfulness, has_faithfulness), [False] * n, nothing, nothing,  # faithfulness, shadow, cache_creation_tokens, batch
    ]
    return list(zip(*columns, strict=True))


def cmd_data(args) -> None:
    """Users, versions, prompts and budgets through the services; then the events, block by block, with executemany."""
    django_setup()
    from django.db import connection, transaction

    from mlops_site.roles import user_set_role
    from monitoring.models import Event
    from monitoring.services import budget_set
    from monitoring.services.ingestion import EVENT_COLUMNS
    from registry.models import PromptVersion
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
    sql = (  # what monitoring.ingestion._insert_events runs
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

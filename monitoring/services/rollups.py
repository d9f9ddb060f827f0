"""Roll-ups: fold the event stream into the minute, hour and lifetime roll-ups; read past the cursor, sum per bucket, add to the rows.

`rollups_update` (Celery beat, every minute, through `rollups_catch_up`) folds the events past a
cursor into Rollup rows: counts and sums add up, latency and TTFT sketches merge
(monitoring/sketch.py). Pages, alerts and /metrics read them through selectors/rollups.py.

Shadow events (mirrored to a canary's candidate, served to nobody) are left out: the roll-ups count served
traffic. A rollout's shadow stage reads them raw (selectors.rollups.shadow_totals).

Events are read with raw SQL straight into numpy arrays (no ORM object, no datetime per event),
grouped per (version, minute) with one np.unique, summed with np.bincount, and sketched per group
in one pass (sketch.sketches_by_group); hours are summed from the minutes, and each version's lifetime
row (one per version, what /metrics reads) from the hours. Only the rows the fold touches are read back,
and they are added to (late events land in old buckets).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from django.db import connection, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from ..models import LIFETIME_BUCKET, Event, Granularity, Rollup, RollupCursor
from ..models.operations import COUNTERS, FLOAT_COUNTERS
from ..sketch import QuantileSketch, merge_blobs_by_group, merge_by_group, sketches_by_group

CURSOR = "events"
READ_CHUNK = 50_000


# The flags of an event packed into one small integer by the database: five columns of booleans
# and NULLs become one number on the Python side (where every value costs an object).
ERROR, PRICING_MISSING, GUARDRAIL_KNOWN, GUARDRAIL_TRIGGERED, FEEDBACK_UP, FEEDBACK_DOWN, HAS_TOKENS = (1 << i for i in range(7))
_FLAGS_SQL = (
    "(CASE WHEN {error} THEN 1 ELSE 0 END) + (CASE WHEN {pricing_missing} THEN 2 ELSE 0 END)"
    " + (CASE WHEN {guardrail_triggered} IS NULL THEN 0 WHEN {guardrail_triggered} THEN 12 ELSE 4 END)"
    " + (CASE WHEN {feedback} = 1 THEN 16 WHEN {feedback} = -1 THEN 32 ELSE 0 END)"
    " + (CASE WHEN {input_tokens} IS NULL AND {output_tokens} IS NULL THEN 0 ELSE 64 END)"
)
_NUMBERS = (
    "latency_ms", "ttft_ms", "input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens", "cache_creation_tokens", "cost_usd",
    "judge_score", "faithfulness",
)
_WIDTH = 3 + len(_NUMBERS)


def _events_sql() -> str:
    q = {f.name: connection.ops.quote_name(f.column) for f in Event._meta.concrete_fields}
    # Seconds since the epoch, computed by the database: SQLite keeps naive UTC text
    # ('YYYY-MM-DD HH:MM:SS[.ffffff]'), PostgreSQL a timestamptz; no datetime object is built
    # per event. unixepoch() (SQLite 3.38+) costs half of strftime('%s').
    if connection.vendor != "sqlite":
        seconds = f"FLOOR(EXTRACT(EPOCH FROM {q['timestamp']}))::bigint"
    elif connection.Database.sqlite_version_info >= (3, 38):
        seconds = f"unixepoch({q['timestamp']})"
    else:
        seconds = f"CAST(strftime('%%s', {q['timestamp']}) AS INTEGER)"
    # Every column is a number, never NULL: the whole chunk then converts to one float64 array in a
    # single C pass (np.fromiter), where None would need the slow object path. NULL reads as -1,
    # which no stored value can be (ingestion accepts these fields only >= 0). The subject is one
    # signed id: > 0 a model version, < 0 a prompt version (the check constraint allows one of them).
    numbers = ", ".join(q[name] if name == "latency_ms" else f"COALESCE({q[name]}, -1)" for name in _NUMBERS)
    return (
        f"SELECT COALESCE({q['model_version']}, -{q['prompt_version']}), {seconds}, {_FLAGS_SQL.format(**q)}, {numbers} "
        f"FROM {connection.ops.quote_name(Event._meta.db_table)} WHERE {q['id']} > %s AND {q['id']} <= %s AND NOT {q['shadow']}"
    )


@dataclass(frozen=True)
class EventColumns:
    """Events as arrays: subject (signed version id), epoch seconds, packed flags, and the numbers (NaN where NULL)."""

    subject: np.ndarray
    seconds: np.ndarray
    flags: np.ndarray
    numbers: dict[str, np.ndarray]

    @classmethod
    def from_table(cls, table: np.ndarray) -> EventColumns:
        ints = table[:, :3].astype(np.int64)
        numbers = {name: table[:, 3 + i] for i, name in enumerate(_NUMBERS)}
        numbers = {name: np.where(values < 0, np.nan, values) if name != "latency_ms" else values for name, values in numbers.items()}
        return cls(subject=ints[:, 0], seconds=ints[:, 1], flags=ints[:, 2], numbers=numbers)

    @property
    def size(self) -> int:
        return self.subject.size


def _settled_horizon() -> int:
    """The largest event id below which no new event can appear.

    PostgreSQL hands out ids when a row is inserted, not when it commits: an ingestion that took
    ids 100-199 may commit after one that took 200-299 was folded, and a cursor at 299 would skip
    it for ever. LOCK ... IN SHARE MODE waits for every open transaction that inserted events
    (they hold ROW EXCLUSIVE until they end) and holds new ones off for the instant of the
    MAX(id); at or below that id everything has committed or rolled back. The lock lives in its
    own transaction for milliseconds, never during the fold. SQLite needs none of this: one
    writer at a time, so ids commit in order and MAX(id) is settled as read.
    """
    table = connection.ops.quote_name(Event._meta.db_table)
    query = f"SELECT COALESCE(MAX({connection.ops.quote_name('id')}), 0) FROM {table}"
    if connection.vendor == "sqlite":  # no transaction: on SQLite (IMMEDIATE) it would take the write lock
        with connection.cursor() as cursor:
            cursor.execute(query)
            return int(cursor.fetchone()[0])
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL lock_timeout = '10s'")
        cursor.execute(f"LOCK TABLE {table} IN SHARE MODE")
        cursor.execute(query)
        return int(cursor.fetchone()[0])


def _read_events(*, after: int, upto: int, limit: int) -> tuple[EventColumns | None, int]:
    """The events with after < id <= upto, at most `limit` of them, and the id read up to.

    Read in id ranges of at most min(READ_CHUNK, what is left of `limit`) ids, so no range can
    hold more events than `limit` allows; gaps in the ids only make a range hold fewer.
    """
    sql, parts = _events_sql(), []
    with connection.cursor() as cursor:
        while after < upto and limit > 0:
            stop = min(after + min(READ_CHUNK, limit), upto)
            cursor.execute(sql, [after, stop])
            rows = cursor.fetchall()
            if rows:
                parts.append(np.fromiter(itertools.chain.from_iterable(rows), dtype=np.float64, count=len(rows) * _WIDTH))
            after, limit = stop, limit - len(rows)
    if not parts:
        return None, after
    return EventColumns.from_table(np.concatenate(parts).reshape(-1, _WIDTH)), after


# --- folding -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fold:
    """Events summed per (subject, bucket) of one granularity: what to add to the roll-up rows."""

    granularity: str
    subject: np.ndarray  # signed version id, per group
    bucket: np.ndarray  # epoch seconds of the bucket's start, per group
    sums: dict[str, np.ndarray]  # COUNTERS -> float64 per group
    latency: dict[int, QuantileSketch]  # group index -> sketch (groups without a value left out)
    ttft: dict[int, QuantileSketch]


def _groups(subject: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (subject, bucket index) pairs, sorted, and the pair of each input: one np.unique over a packed int64
    (subject offset times the span of the indexes plus the index offset: far below 2**63 for any real ids and dates)."""
    low, width = int(index.min()), int(index.max() - index.min()) + 1
    subject_low = int(subject.min())
    codes, inverse = np.unique((subject - subject_low) * width + (index - low), return_inverse=True)
    subjects, indexes = np.divmod(codes, width)
    return subjects + subject_low, indexes + low, inverse


def _coarser(fold: Fold, granularity: str, of: np.ndarray, subject: np.ndarray, bucket: np.ndarray) -> Fold:
    """`fold` summed into coarser groups (`of`: the coarse group of each of its groups), sketches merged."""

    def merged(sketches: dict[int, QuantileSketch]) -> dict[int, QuantileSketch]:
        return merge_by_group(of[list(sketches)], list(sketches.values())) if sketches else {}

    return Fold(
        granularity=granularity, subject=subject, bucket=bucket,
        sums={name: np.bincount(of, weights=values, minlength=subject.size) for name, values in fold.sums.items()},
        latency=merged(fold.latency), ttft=merged(fold.ttft),
    )


def fold_events(events: EventColumns) -> tuple[Fold, Fold, Fold]:
    """The minute fold of the events (one grouping, a bincount per counter, a sketch per group), the hour
    fold summed from the minutes (their sketches merged) rather than from the events again, and the
    lifetime fold (one group per version) summed from the hours."""
    subject, minute, group = _groups(events.subject, events.seconds // 60)
    minute *= 60
    n = subject.size

    def count(mask=None):
        return np.bincount(group, weights=mask, minlength=n).astype(np.float64)

    def total(values):
        present = ~np.isnan(values)
        return np.bincount(group[present], weights=values[present], minlength=n), count(present)

    flags, numbers = events.flags, events.numbers
    ttft_sum, ttft_count = total(numbers["ttft_ms"])
    cost_sum, cost_count = total(numbers["cost_usd"])
    judge_sum, judge_count = total(numbers["judge_score"])
    faith_sum, faith_count = total(numbers["faithfulness"])
    sums = {
        "requests": count(), "errors": count(flags & ERROR), "latency_sum": np.bincount(group, weights=numbers["latency_ms"], minlength=n),
        "ttft_count": ttft_count, "ttft_sum": ttft_sum, "token_requests": count((flags & HAS_TOKENS) > 0),
        **{name: total(numbers[name])[0] for name in ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens", "cache_creation_tokens")},
        "cost_usd": cost_sum, "cost_requests": cost_count, "pricing_missing": count((flags & PRICING_MISSING) > 0),
        "guardrail_known": count((flags & GUARDRAIL_KNOWN) > 0), "guardrail_triggered": count((flags & GUARDRAIL_TRIGGERED) > 0),
        "feedback_up": count((flags & FEEDBACK_UP) > 0), "feedback_down": count((flags & FEEDBACK_DOWN) > 0),
        "judge_count": judge_count, "judge_sum": judge_sum, "faithfulness_count": faith_count, "faithfulness_sum": faith_sum,
    }
    has_ttft = ~np.isnan(numbers["ttft_ms"])
    minutes = Fold(
        granularity=Granularity.MINUTE, subject=subject, bucket=minute, sums=sums,
        latency=sketches_by_group(group, numbers["latency_ms"]), ttft=sketches_by_group(group[has_ttft], numbers["ttft_ms"][has_ttft]),
    )
    hour_subject, hour, hour_of = _groups(subject, minute // 3600)
    hours = _coarser(minutes, Granularity.HOUR, hour_of, hour_subject, hour * 3600)
    life_subject, life_of = np.unique(hour_subject, return_inverse=True)
    lifetime = _coarser(hours, Granularity.LIFETIME, life_of, life_subject, np.full(life_subject.size, int(LIFETIME_BUCKET.timestamp())))
    return minutes, hours, lifetime


# --- writing -------------------------------------------------------------------------------------


def _existing(fold: Fold, when: list[datetime]) -> dict[tuple[int, int], tuple[int, bytes, bytes]]:
    """The Rollup rows the fold adds to: {(subject, bucket seconds): (pk, latency sketch, ttft sketch)}."""
    models = sorted({s for s in fold.subject.tolist() if s > 0})
    prompts = sorted({-s for s in fold.subject.tolist() if s < 0})
    # Django keeps SQLite statements under 999 parameters: the buckets take what the subjects leave. With
    # hundreds of subjects, filtering by bucket alone reads a few rows too many, which are ignored.
    few = len(models) + len(prompts) <= 400
    subjects = Q(model_version_id__in=models) | Q(prompt_version_id__in=prompts) if few else Q()
    size = 900 - (len(models) + len(prompts) if few else 0)
    found = {}
    for start in range(0, len(when), size):
        rows = Rollup.objects.filter(subjects, granularity=fold.granularity, bucket__in=when[start : start + size]).values_list(
            "pk", "model_version_id", "prompt_version_id", "bucket", "latency_sketch", "ttft_sketch"
        )
        for pk, model_version_id, prompt_version_id, bucket, latency, ttft in rows:
            found[(model_version_id or -prompt_version_id, int(bucket.timestamp()))] = (pk, latency, ttft)
    return found


def _merged_with(stored: dict[int, bytes], new: dict[int, QuantileSketch]) -> dict[int, QuantileSketch]:
    """The new sketch of each group merged with the one stored in its row (one merge_by_group for all rows)."""
    old = {g: QuantileSketch.from_bytes(blob) for g, blob in stored.items() if blob and g in new}
    if not old:
        return new
    merged = merge_by_group(np.array(list(old) + list(new)), list(old.values()) + list(new.values()))
    return {g: merged[g] for g in new}


def _write(fold: Fold) -> tuple[int, int]:
    """Add the fold to its Rollup rows: UPDATE col = col + value where a row exists (sketches merged), INSERT the others."""
    quote = connection.ops.quote_name
    table = quote(Rollup._meta.db_table)
    buckets = np.unique(fold.bucket).tolist()
    when = {b: datetime.fromtimestamp(b, UTC) for b in buckets}
    existing = _existing(fold, list(when.values()))
    keys = list(zip(fold.subject.tolist(), fold.bucket.tolist(), strict=True))
    row_of = {g: existing[key] for g, key in enumerate(keys) if key in existing}
    latency = _merged_with({g: row[1] for g, row in row_of.items()}, fold.latency)
    ttft = _merged_with({g: row[2] for g, row in row_of.items()}, fold.ttft)
    counters = list(zip(*(fold.sums[name].tolist() if name in FLOAT_COUNTERS else np.rint(fold.sums[name]).astype(np.int64).tolist() for name in COUNTERS), strict=True))
    updates, inserts = [], []
    for g, (subject, bucket) in enumerate(keys):
        row = row_of.get(g)
        if row is None:
            lat, tt = latency.get(g), ttft.get(g)
            inserts.append((
                subject if subject > 0 else None, -subject if subject < 0 else None, fold.granularity,
                connection.ops.adapt_datetimefield_value(when[bucket]), *counters[g],
                lat.to_bytes() if lat is not None else b"", tt.to_bytes() if tt is not None else b"",
            ))
        else:
            pk, old_latency, old_ttft = row
            lat, tt = latency.get(g), ttft.get(g)  # None: no new value, the stored sketch stays
            updates.append((*counters[g], lat.to_bytes() if lat is not None else bytes(old_latency), tt.to_bytes() if tt is not None else bytes(old_ttft), pk))
    with connection.cursor() as cursor:
        if updates:
            assignments = ", ".join(f"{quote(name)} = {quote(name)} + %s" for name in COUNTERS)
            sketches = f"{quote('latency_sketch')} = %s, {quote('ttft_sketch')} = %s"
            cursor.executemany(f"UPDATE {table} SET {assignments}, {sketches} WHERE {quote('id')} = %s", updates)
        if inserts:
            names = ["model_version_id", "prompt_version_id", "granularity", "bucket", *COUNTERS, "latency_sketch", "ttft_sketch"]
            cursor.executemany(f"INSERT INTO {table} ({', '.join(map(quote, names))}) VALUES ({', '.join(['%s'] * len(names))})", inserts)
    return len(updates), len(inserts)


def rollups_update(*, max_events: int = 500_000) -> int:
    """Fold up to `max_events` new events (id past the "events" cursor) into the minute, hour and lifetime roll-ups; the number folded.

    The events are read and summed with no lock held: on SQLite a write transaction blocks
    ingestion, so it is kept to the writes. Then, in one transaction holding the cursor row
    (select_for_update; on SQLite the IMMEDIATE write transaction is the lock), the cursor must
    still be where the read started: if another worker moved it meanwhile, this run writes
    nothing and returns 0, so no event is ever counted twice. Otherwise the rows are added to
    and the cursor advanced, all or nothing.
    """
    cursor_row, _ = RollupCursor.objects.get_or_create(name=CURSOR)
    start = cursor_row.last_event_id
    horizon = _settled_horizon()
    if horizon <= start:
        return 0
    events, read_to = _read_events(after=start, upto=horizon, limit=max_events)
    folds = fold_events(events) if events is not None else ()
    with transaction.atomic():
        locked = RollupCursor.objects.select_for_update().get(pk=cursor_row.pk)
        if locked.last_event_id != start:
            return 0
        for fold in folds:
            _write(fold)
        RollupCursor.objects.filter(pk=cursor_row.pk).update(last_event_id=read_to, updated_at=timezone.now())
    return events.size if events is not None else 0


def rollups_catch_up(*, max_seconds: float = 45.0, max_events: int = 500_000) -> int:
    """`rollups_update` again and again until the stream is caught up or `max_seconds` have passed; the events folded.

    One beat tick a minute folding at most `max_events` would fall behind ingestion at 20,000
    events/s; the time limit keeps a run inside its minute, so ticks rarely overlap (when they
    do, the cursor check turns one of them into a no-op).
    """
    deadline = time.monotonic() + max_seconds
    folded = 0
    while True:
        done = rollups_update(max_events=max_events)
        folded += done
        if done < max_events or time.monotonic() >= deadline:
            return folded



def rollups_lifetime_rebuild() -> int:
    """Each version's lifetime row summed again from its hour rows (counters added, sketches merged), the number of rows
    written: the repair when they disagree, e.g. after a worker of an older release folded events during an upgrade.
    Holds the roll-up cursor meanwhile, so no fold commits in between; the counters on /metrics can only go up by it
    (the hours hold everything folded). A version at a time, so a long history is never all in memory."""
    with transaction.atomic():
        RollupCursor.objects.get_or_create(name=CURSOR)
        RollupCursor.objects.select_for_update().get(name=CURSOR)
        Rollup.objects.filter(granularity=Granularity.LIFETIME).delete()
        hours = Rollup.objects.filter(granularity=Granularity.HOUR)
        totals = hours.values("model_version_id", "prompt_version_id").annotate(**{f"sum_{name}": Sum(name) for name in COUNTERS}).order_by()
        rows = []
        for total in totals:
            mine = hours.filter(model_version_id=total["model_version_id"], prompt_version_id=total["prompt_version_id"])
            sketches = {}
            for field in ("latency_sketch", "ttft_sketch"):
                blobs = [bytes(blob) for blob in mine.exclude(**{field: b""}).values_list(field, flat=True).iterator(chunk_size=2000)]
                sketches[field] = merge_blobs_by_group(np.zeros(len(blobs), dtype=np.int64), blobs)[0].to_bytes() if blobs else b""
            counters = {name: total[f"sum_{name}"] or 0 for name in COUNTERS}
            rows.append(Rollup(model_version_id=total["model_version_id"], prompt_version_id=total["prompt_version_id"],
                               granularity=Granularity.LIFETIME, bucket=LIFETIME_BUCKET, **counters, **sketches))
        Rollup.objects.bulk_create(rows, batch_size=500)
    return len(rows)

"""Roll-ups against a direct computation over the raw events (numpy over the values sent), and their selectors."""

import importlib
import io
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.apps import apps as django_apps
from django.conf import settings
from django.core.management import call_command
from django.db import connection, connections

from monitoring import selectors, services, tasks
from monitoring.models import Event, Rollup, RollupCursor
from monitoring.services import rollups
from monitoring.sketch import ALPHA, QuantileSketch
from registry.services import prompts as prompt_services
from tests.factories import register
from tests.prompts.conftest import brief_folder

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
SUBJECTS = [("model", "fraud", 1), ("model", "fraud", 2), ("prompt", "summarize", 2)]
STEP = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1)}
COUNTS = ("requests", "errors", "ttft_count", "token_requests", "input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens",
          "cache_creation_tokens", "cost_requests", "pricing_missing", "guardrail_known", "guardrail_triggered", "feedback_up", "feedback_down", "judge_count",
          "faithfulness_count")
SUMS = ("latency_sum", "ttft_sum", "cost_usd", "judge_sum", "faithfulness_sum")


@pytest.fixture
def subjects(editor):
    register("fraud", editor)
    register("fraud", editor)
    prompt_services.prompts_import(files=brief_folder(), actor=editor)


def random_events(seed: int, n: int, *, start: datetime, minutes: float, prefix: str) -> list[dict]:
    """Events of the three subjects with every optional field sometimes present (zeros and tokens without a cost too)."""
    rng = np.random.default_rng(seed)
    events = []
    for i in range(n):
        kind, name, version = SUBJECTS[rng.integers(len(SUBJECTS))]
        at = start + timedelta(microseconds=int(rng.integers(0, int(minutes * 60e6))))
        event = {
            "event_id": f"{prefix}-{i}", kind: name, "version": version, "timestamp": at.isoformat(),
            "latency_ms": 0.0 if rng.random() < 0.05 else float(rng.lognormal(4, 1)), "error": bool(rng.random() < 0.1),
        }
        if kind == "prompt" or rng.random() < 0.2:
            tokens_in, tokens_out = int(rng.integers(1, 2000)), int(rng.integers(0, 800))
            event |= {"input_tokens": tokens_in, "output_tokens": tokens_out,
                      "cached_tokens": int(rng.integers(0, tokens_in + 1)), "reasoning_tokens": int(rng.integers(0, tokens_out + 1))}
            if rng.random() < 0.3:  # cache writes: part of the input tokens that were not read from the cache
                event["cache_creation_tokens"] = int(rng.integers(0, tokens_in - event["cached_tokens"] + 1))
            if rng.random() < 0.8:
                event["cost_usd"] = float(rng.uniform(0, 0.01))
        for field, share, draw in (
            ("ttft_ms", 0.5, lambda: float(rng.lognormal(5, 0.5))), ("guardrail_triggered", 0.6, lambda: bool(rng.random() < 0.2)),
            ("feedback", 0.3, lambda: int(rng.choice([1, -1]))), ("judge_score", 0.25, lambda: float(rng.uniform(0, 1))),
            ("faithfulness", 0.25, lambda: float(rng.uniform(0, 1))),
        ):
            if rng.random() < share:
                event[field] = draw()
        events.append(event)
    return events


def send(api_as, user, events: list[dict]) -> list[dict]:
    """Ingest through the API; the events back as stored for the two fields ingestion may set itself (it prices
    events with tokens and no cost, or flags them pricing missing), everything else exactly as sent."""
    for start in range(0, len(events), 5000):
        response = api_as(user).post("/api/v1/events", {"events": events[start : start + 5000]}, format="json")
        assert response.status_code == 202, response.content
    stored = {e: (cost, missing) for e, cost, missing in Event.objects.values_list("event_id", "cost_usd", "pricing_missing")}
    return [e | {"cost_usd": stored[e["event_id"]][0], "pricing_missing": stored[e["event_id"]][1]} for e in events]


def subject_of(event: dict) -> tuple[str, str, int]:
    kind = "model" if "model" in event else "prompt"
    return kind, event[kind], event["version"]


def floor(at: datetime, granularity: str) -> datetime:
    if granularity == "lifetime":
        return datetime(1970, 1, 1, tzinfo=UTC)  # one row per version
    return at.replace(second=0, microsecond=0) if granularity == "minute" else at.replace(minute=0, second=0, microsecond=0)


def values(events: list[dict], field: str) -> np.ndarray:
    return np.array([e[field] for e in events if e.get(field) is not None], dtype=float)


def direct(events: list[dict]) -> dict:
    """Counters of a group of events, straight from the event dicts."""
    tokens = [e for e in events if e.get("input_tokens") is not None or e.get("output_tokens") is not None]
    return {
        "requests": len(events), "errors": sum(e["error"] for e in events), "latency_sum": values(events, "latency_ms").sum(),
        "ttft_count": values(events, "ttft_ms").size, "ttft_sum": values(events, "ttft_ms").sum(), "token_requests": len(tokens),
        **{f: int(values(events, f).sum()) for f in ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens", "cache_creation_tokens")},
        "cost_usd": values(events, "cost_usd").sum(), "cost_requests": values(events, "cost_usd").size,
        "pricing_missing": sum(bool(e["pricing_missing"]) for e in events), "guardrail_known": values(events, "guardrail_triggered").size,
        "guardrail_triggered": int(values(events, "guardrail_triggered").sum()),
        "feedback_up": sum(e.get("feedback") == 1 for e in events), "feedback_down": sum(e.get("feedback") == -1 for e in events),
        "judge_count": values(events, "judge_score").size, "judge_sum": values(events, "judge_score").sum(),
        "faithfulness_count": values(events, "faithfulness").size, "faithfulness_sum": values(events, "faithfulness").sum(),
    }


def assert_sketch_matches(blob, raw: np.ndarray) -> None:
    sketch = QuantileSketch.from_bytes(blob)
    assert sketch.count == raw.size
    if raw.size:
        qs = [0, 0.5, 0.95, 0.99, 1]
        exact = np.quantile(raw, qs, method="inverted_cdf")
        assert np.allclose(sketch.quantiles(qs), exact, rtol=ALPHA * (1 + 1e-9), atol=0)


def assert_rollups_match(events: list[dict]) -> None:
    """Every roll-up row (minute, hour and lifetime) equals the direct computation over its events, and no row is missing or extra."""
    for granularity in ("minute", "hour", "lifetime"):
        groups = defaultdict(list)
        for e in events:
            groups[(*subject_of(e), floor(datetime.fromisoformat(e["timestamp"]), granularity))].append(e)
        rows = Rollup.objects.filter(granularity=granularity).select_related("model_version__model", "prompt_version__prompt")
        stored = {}
        for row in rows:
            version = row.model_version or row.prompt_version
            kind, name = ("model", version.model.name) if row.model_version else ("prompt", version.prompt.name)
            stored[(kind, name, version.version, row.bucket)] = row
        assert set(stored) == set(groups), granularity
        for key, group in groups.items():
            row, expected = stored[key], direct(group)
            assert {f: getattr(row, f) for f in COUNTS} == {f: expected[f] for f in COUNTS}, key
            for f in SUMS:
                assert getattr(row, f) == pytest.approx(expected[f], rel=1e-9, abs=1e-12), (key, f)
            assert_sketch_matches(row.latency_sketch, values(group, "latency_ms"))
            assert_sketch_matches(row.ttft_sketch, values(group, "ttft_ms"))


# --- rollups_update --------------------------------------------------------------------------------


def test_rollups_match_a_direct_computation_over_the_events(api_as, editor, subjects):
    events = send(api_as, editor, random_events(1, 3000, start=T0 + timedelta(minutes=7, seconds=30), minutes=130, prefix="a"))

    folded = rollups.rollups_update()

    assert folded == 3000
    assert_rollups_match(events)
    assert RollupCursor.objects.get(name="events").last_event_id == Event.objects.order_by("-id").first().pk
    assert Rollup.objects.filter(granularity="hour").count() == 3 * 3  # three subjects x hours 10, 11 and 12


def test_late_events_land_in_their_old_buckets(api_as, editor, subjects):
    first = send(api_as, editor, random_events(2, 1500, start=T0, minutes=120, prefix="a"))
    rollups.rollups_update()
    before = dict(Rollup.objects.exclude(granularity="lifetime").values_list("pk", "requests"))
    lifetime_before = dict(Rollup.objects.filter(granularity="lifetime").values_list("pk", "requests"))

    late = random_events(3, 600, start=T0 + timedelta(minutes=30), minutes=20, prefix="late")
    fresh = random_events(4, 400, start=T0 + timedelta(minutes=150), minutes=10, prefix="fresh")
    events = send(api_as, editor, late + fresh)
    folded = rollups.rollups_update()

    assert folded == 1000
    assert_rollups_match(first + events)
    after = dict(Rollup.objects.filter(pk__in=list(before)).values_list("pk", "requests"))
    assert after.keys() == before.keys()  # the old rows were added to in place
    grown = sum(after[pk] - before[pk] for pk in before)
    assert 600 < grown <= 2 * 600  # each late event grew its (existing) hour row, and most of them an existing minute row
    lifetime_after = dict(Rollup.objects.filter(granularity="lifetime").values_list("pk", "requests"))
    assert lifetime_after.keys() == lifetime_before.keys()  # one row per version, added to
    assert sum(lifetime_after.values()) - sum(lifetime_before.values()) == 1000


def test_the_migration_sums_each_versions_lifetime_row_from_its_hours(api_as, editor, subjects):
    """Versions with traffic from before lifetime rows existed get theirs from their hour rows, then the cache writes from
    their events, as the two migrations run: equal to the events."""
    lifetime_rows_from_hours = importlib.import_module("monitoring.migrations.0016_rollup_lifetime").lifetime_rows_from_hours
    cache_writes_from_events = importlib.import_module("monitoring.migrations.0018_rollup_cache_creation_backfill").cache_writes_from_events
    events = send(api_as, editor, random_events(6, 2000, start=T0, minutes=300, prefix="a"))
    rollups.rollups_update()
    # the rows as they were before both migrations: no lifetime rows, no cache writes counted
    Rollup.objects.filter(granularity="lifetime").delete()
    Rollup.objects.update(cache_creation_tokens=0)

    lifetime_rows_from_hours(django_apps, None)
    cache_writes_from_events(django_apps, None)

    assert_rollups_match(events)


def test_the_migration_adds_the_cache_writes_of_events_already_folded(api_as, editor, subjects):
    """Rows folded before roll-ups counted cache writes get them from their events: only those up to the cursor."""
    cache_writes_from_events = importlib.import_module("monitoring.migrations.0018_rollup_cache_creation_backfill").cache_writes_from_events
    events = send(api_as, editor, random_events(7, 2000, start=T0, minutes=300, prefix="a"))
    rollups.rollups_update()
    Rollup.objects.update(cache_creation_tokens=0)
    later = send(api_as, editor, random_events(8, 200, start=T0, minutes=300, prefix="b"))  # past the cursor: the task's

    cache_writes_from_events(django_apps, None)

    assert_rollups_match(events)
    rollups.rollups_update()
    assert_rollups_match(events + later)


def test_rebuilding_the_lifetime_rows_repairs_them_from_the_hours(api_as, editor, subjects):
    """The repair after an upgrade that let an old worker fold: lifetime rows short, wrong or missing are summed again."""
    events = send(api_as, editor, random_events(9, 1500, start=T0, minutes=300, prefix="a"))
    rollups.rollups_update()
    lifetime = Rollup.objects.filter(granularity="lifetime").order_by("pk")
    lifetime.filter(pk=lifetime[0].pk).delete()
    lifetime.filter(pk=lifetime[0].pk).update(requests=3, cache_creation_tokens=0, latency_sketch=b"")
    out = io.StringIO()

    call_command("rollups_rebuild_lifetime", stdout=out)

    assert_rollups_match(events)
    assert out.getvalue().strip() == "Rebuilt the lifetime roll-ups of 3 version(s) from their hour roll-ups."
    more = send(api_as, editor, random_events(10, 300, start=T0 + timedelta(hours=1), minutes=30, prefix="b"))
    rollups.rollups_update()
    assert_rollups_match(events + more)  # and the fold goes on adding to them


def test_running_the_update_again_counts_nothing_twice(api_as, editor, subjects):
    events = send(api_as, editor, random_events(5, 800, start=T0, minutes=90, prefix="a"))
    rollups.rollups_update()
    before = list(Rollup.objects.order_by("pk").values())

    again = rollups.rollups_update()

    assert again == 0
    assert list(Rollup.objects.order_by("pk").values()) == before
    assert_rollups_match(events)


def test_the_update_folds_at_most_max_events_and_resumes_where_it_stopped(api_as, editor, subjects):
    events = send(api_as, editor, random_events(6, 1000, start=T0, minutes=60, prefix="a"))

    steps = [rollups.rollups_update(max_events=300) for _ in range(5)]

    assert steps == [300, 300, 300, 100, 0]
    assert_rollups_match(events)


def test_a_run_whose_cursor_moved_meanwhile_writes_nothing(api_as, editor, subjects, monkeypatch):
    events = send(api_as, editor, random_events(7, 500, start=T0, minutes=30, prefix="a"))
    read = rollups._read_events
    calls = []

    def read_while_another_worker_folds(**kwargs):
        result = read(**kwargs)
        if not calls:
            calls.append("other worker")
            calls.append(rollups.rollups_update())  # folds the same events and moves the cursor first
        return result

    monkeypatch.setattr(rollups, "_read_events", read_while_another_worker_folds)

    mine = rollups.rollups_update()

    assert (mine, calls) == (0, ["other worker", 500])
    assert_rollups_match(events)


def test_update_on_an_empty_stream_does_nothing():
    assert rollups.rollups_update() == 0
    assert not Rollup.objects.exists()


def test_pricing_missing_events_are_counted_and_add_no_cost(api_as, editor, subjects):
    events = send(api_as, editor, random_events(8, 300, start=T0, minutes=10, prefix="a"))
    flagged = [e["event_id"] for e in events if e.get("input_tokens") is not None][::3]
    Event.objects.filter(event_id__in=flagged).update(pricing_missing=True, cost_usd=None)
    events = [e | {"pricing_missing": True, "cost_usd": None} if e["event_id"] in flagged else e for e in events]

    rollups.rollups_update()

    assert_rollups_match(events)
    assert sum(Rollup.objects.filter(granularity="hour").values_list("pricing_missing", flat=True)) >= len(flagged)


def test_the_task_catches_up_and_is_on_the_beat_schedule(api_as, editor, subjects):
    send(api_as, editor, random_events(9, 200, start=T0, minutes=5, prefix="a"))

    assert tasks.rollups_update_task() == 200
    assert tasks.rollups_update_task() == 0
    entry = settings.CELERY_BEAT_SCHEDULE["monitoring-rollups"]
    assert (entry["task"], entry["schedule"]) == ("monitoring.tasks.rollups_update_task", 60.0)


def waiting_for_the_events_table() -> bool:
    """Whether some session waits for a lock on the events table (PostgreSQL's pg_locks)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = %s::regclass", [Event._meta.db_table])
        return cursor.fetchone()[0] > 0


@pytest.mark.postgres_only
@pytest.mark.skipif(settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql", reason="needs PostgreSQL's concurrent writers")
@pytest.mark.django_db(transaction=True)
def test_events_of_an_ingestion_still_open_are_not_skipped(editor, subjects):
    """An ingestion holding low ids commits after a later one: the roll-up waits for it instead of moving its cursor past them."""
    from django.db import transaction


    inserted, release = threading.Event(), threading.Event()

    def slow_ingestion():
        try:
            with transaction.atomic():
                services.events_ingest(payload={"events": random_events(10, 50, start=T0, minutes=5, prefix="slow")}, actor=editor)
                inserted.set()
                release.wait(30)
        finally:
            connections.close_all()

    results = []

    def fold():
        try:
            results.append(rollups.rollups_update())
        finally:
            connections.close_all()

    slow = threading.Thread(target=slow_ingestion)
    slow.start()
    assert inserted.wait(30)
    services.events_ingest(payload={"events": random_events(11, 30, start=T0, minutes=5, prefix="fast")}, actor=editor)
    folder = threading.Thread(target=fold)
    folder.start()
    try:
        deadline = time.monotonic() + 30
        while not waiting_for_the_events_table():  # the fold waits for the open ingestion, it does not fold around it
            assert folder.is_alive() and time.monotonic() < deadline, f"the roll-up did not wait for the open ingestion: {results}"
            time.sleep(0.01)
        assert folder.is_alive() and results == []
    finally:
        release.set()
        slow.join(30)
        folder.join(30)

    rollups.rollups_update()
    assert results == [80]
    assert sum(Rollup.objects.filter(granularity="hour").values_list("requests", flat=True)) == 80


# --- selectors -------------------------------------------------------------------------------------


def merged_metrics(events: list[dict], seconds: float) -> dict:
    """The selector's metrics computed directly from the events of a bucket (or window)."""
    c = direct(events)
    latency, ttft = values(events, "latency_ms"), values(events, "ttft_ms")
    feedback = c["feedback_up"] + c["feedback_down"]

    def ratio(top, bottom):
        return top / bottom if bottom else None

    return {
        "requests": c["requests"], "throughput": c["requests"] / seconds, "errors": c["errors"], "error_rate": ratio(c["errors"], c["requests"]),
        "latency_p50": np.quantile(latency, 0.5, method="inverted_cdf"), "latency_p95": np.quantile(latency, 0.95, method="inverted_cdf"),
        "latency_p99": np.quantile(latency, 0.99, method="inverted_cdf"),
        "ttft_p95": np.quantile(ttft, 0.95, method="inverted_cdf") if ttft.size else None,
        "input_tokens_avg": ratio(c["input_tokens"], c["token_requests"]), "output_tokens_avg": ratio(c["output_tokens"], c["token_requests"]),
        "cost_usd": c["cost_usd"], "cost_per_request": ratio(c["cost_usd"], c["cost_requests"]), "pricing_missing": c["pricing_missing"],
        "guardrail_rate": ratio(c["guardrail_triggered"], c["guardrail_known"]), "thumbs_up_share": ratio(c["feedback_up"], feedback),
        "judge_avg": ratio(c["judge_sum"], c["judge_count"]), "faithfulness_avg": ratio(c["faithfulness_sum"], c["faithfulness_count"]),
    }


def assert_point_matches(point: selectors.OpsMetrics, expected: dict) -> None:
    for name, value in expected.items():
        got = getattr(point, name)
        if value is None:
            assert got is None, name
        elif name.startswith(("latency_p", "ttft_p")):
            assert got == pytest.approx(value, rel=ALPHA * (1 + 1e-9)), name
        else:
            assert got == pytest.approx(value, rel=1e-9, abs=1e-12), name


@pytest.fixture
def traffic(api_as, editor, subjects):
    events = send(api_as, editor, random_events(12, 4000, start=T0 + timedelta(minutes=3), minutes=170, prefix="a"))
    rollups.rollups_update()
    return events


@pytest.mark.parametrize(("kind", "name", "versions"), [("model", "fraud", None), ("model", "fraud", [2]), ("prompt", "summarize", [2])])
def test_series_per_minute_matches_the_events_merged_over_versions(traffic, kind, name, versions):
    start, end = T0 + timedelta(minutes=20, seconds=30), T0 + timedelta(minutes=140)
    chosen = [e for e in traffic if subject_of(e)[:2] == (kind, name) and (versions is None or e["version"] in versions)]

    series = selectors.rollup_series(kind=kind, name=name, versions=versions, start=start, end=end)

    assert series.granularity == "minute" and series.start == T0 + timedelta(minutes=20)  # the window's start floored to its bucket
    by_bucket = defaultdict(list)
    for e in chosen:
        bucket = floor(datetime.fromisoformat(e["timestamp"]), "minute")
        if series.start <= bucket < end:
            by_bucket[bucket].append(e)
    assert series.column("bucket") == sorted(by_bucket)
    for point in series.points:
        assert_point_matches(point, merged_metrics(by_bucket[point.bucket], 60.0))


def test_series_per_hour_and_totals_match_the_events(traffic):
    start, end = T0 - timedelta(hours=2), T0 + timedelta(hours=5)
    chosen = [e for e in traffic if subject_of(e)[:2] == ("model", "fraud")]

    series = selectors.rollup_series(kind="model", name="fraud", start=start, end=end)
    totals = selectors.rollup_totals(kind="model", name="fraud", start=start, end=end)

    assert series.granularity == "hour"  # a 7-hour window reads hour roll-ups
    by_hour = defaultdict(list)
    for e in chosen:
        by_hour[floor(datetime.fromisoformat(e["timestamp"]), "hour")].append(e)
    assert series.column("bucket") == sorted(by_hour)
    for point in series.points:
        assert_point_matches(point, merged_metrics(by_hour[point.bucket], 3600.0))
    assert_point_matches(totals, merged_metrics(chosen, (end - start).total_seconds()))


def test_totals_over_a_minute_window_and_an_empty_one(traffic):
    start, end = T0 + timedelta(minutes=45), T0 + timedelta(minutes=75)
    chosen = [e for e in traffic if subject_of(e) == ("prompt", "summarize", 2) and start <= datetime.fromisoformat(e["timestamp"]) < end]

    totals = selectors.rollup_totals(kind="prompt", name="summarize", versions=[2], start=start, end=end)
    empty = selectors.rollup_totals(kind="prompt", name="summarize", versions=[1], start=start, end=end)

    assert_point_matches(totals, merged_metrics(chosen, 1800.0))
    assert (empty.requests, empty.throughput, empty.error_rate, empty.latency_p95) == (0, 0.0, None, None)
    assert selectors.rollup_series(kind="model", name="nothing", start=start, end=end).points == ()


def test_window_rule_minutes_up_to_six_hours_then_hours():
    assert selectors.window_granularity(T0, T0 + timedelta(hours=6)) == "minute"
    assert selectors.window_granularity(T0, T0 + timedelta(hours=6, minutes=1)) == "hour"
    assert selectors.rollup_series(kind="model", name="x", start=T0, end=T0 + timedelta(days=2), granularity="minute").granularity == "minute"


def test_spend_per_day_and_name(api_as, editor, subjects):
    events = send(api_as, editor, random_events(13, 1200, start=T0 - timedelta(hours=20), minutes=24 * 60, prefix="a"))
    rollups.rollups_update()

    by_model = selectors.rollup_spend(start=T0 - timedelta(days=2), end=T0 + timedelta(days=2), group_by="model")
    by_prompt = selectors.rollup_spend(start=T0 - timedelta(days=2), end=T0 + timedelta(days=2), group_by="prompt")

    for spend, kind in ((by_model, "model"), (by_prompt, "prompt")):
        expected = defaultdict(float)
        for e in events:
            if subject_of(e)[0] == kind and e["cost_usd"] is not None:
                expected[(datetime.fromisoformat(e["timestamp"]).date(), subject_of(e)[1])] += e["cost_usd"]
        assert [(row.day, row.name) for row in spend] == sorted(expected)
        for row in spend:
            assert row.cost_usd == pytest.approx(expected[(row.day, row.name)], rel=1e-9)


def test_selectors_take_one_query_however_many_buckets(traffic, django_assert_max_num_queries):
    for start, end in ((T0, T0 + timedelta(hours=6)), (T0 - timedelta(days=30), T0 + timedelta(days=1))):
        with django_assert_max_num_queries(1):
            series = selectors.rollup_series(kind="model", name="fraud", start=start, end=end)
        with django_assert_max_num_queries(1):
            selectors.rollup_totals(kind="prompt", name="summarize", versions=[1, 2], start=start, end=end)
        with django_assert_max_num_queries(1):
            selectors.rollup_spend(start=start, end=end, group_by="model")
        # Six hours: one point a minute; 31 days: one point per 6 hours (the traffic spans a few hours).
        assert len(series.points) > 2 if end - start < timedelta(days=1) else series.point_seconds == 6 * 3600 and len(series.points) >= 1


def test_selectors_refuse_a_bad_window_or_kind():
    from mlops_site.exceptions import ValidationFailed

    with pytest.raises(ValidationFailed):
        selectors.rollup_series(kind="model", name="x", start=T0, end=T0)
    with pytest.raises(ValidationFailed):
        selectors.rollup_totals(kind="dataset", name="x", start=T0, end=T0 + timedelta(hours=1))
    with pytest.raises(ValidationFailed):
        selectors.rollup_series(kind="model", name="x", start=T0, end=T0 + timedelta(hours=1), granularity="day")


# --- shadow events: a canary's mirrored requests ------------------------------------------------------------


def shadow_traffic(api_as, editor) -> tuple[list[dict], list[dict]]:
    """(served, shadow) events of the three subjects over the same two hours, both stored and rolled up."""
    served = random_events(21, 1500, start=T0, minutes=120, prefix="a")
    mirrored = [e | {"shadow": True} for e in random_events(22, 1500, start=T0, minutes=120, prefix="s")]
    stored = send(api_as, editor, served + mirrored)
    return stored[: len(served)], stored[len(served) :]


def test_shadow_events_stay_out_of_the_rollups_and_the_spend(api_as, editor, subjects):
    served, mirrored = shadow_traffic(api_as, editor)

    folded = rollups.rollups_update()

    assert folded == len(served)
    assert_rollups_match(served)  # every row, the cost sums included, is the served events' alone
    spend = selectors.rollup_spend(start=T0 - timedelta(days=1), end=T0 + timedelta(days=1), group_by="prompt")
    assert [row.cost_usd for row in spend] == [pytest.approx(values([e for e in served if "prompt" in e], "cost_usd").sum(), rel=1e-9)]
    assert Event.objects.filter(shadow=True).count() == len(mirrored)


@pytest.mark.parametrize(("kind", "name", "version"), SUBJECTS)
def test_shadow_totals_match_the_shadow_events_of_the_version(api_as, editor, subjects, kind, name, version):
    served, mirrored = shadow_traffic(api_as, editor)
    rollups.rollups_update()
    start, end = T0 + timedelta(minutes=20), T0 + timedelta(minutes=95)
    chosen = [e for e in mirrored if subject_of(e) == (kind, name, version) and start <= datetime.fromisoformat(e["timestamp"]) < end]

    totals = selectors.shadow_totals(kind=kind, name=name, version=version, start=start, end=end)

    assert len(chosen) > 100
    assert_point_matches(totals, merged_metrics(chosen, (end - start).total_seconds()))


def test_shadow_totals_of_a_version_without_shadow_events_are_empty(api_as, editor, subjects):
    send(api_as, editor, random_events(23, 200, start=T0, minutes=30, prefix="a"))

    totals = selectors.shadow_totals(kind="model", name="fraud", version=1, start=T0, end=T0 + timedelta(hours=1))

    assert (totals.requests, totals.error_rate, totals.latency_p95, totals.cost_per_request) == (0, None, None, None)

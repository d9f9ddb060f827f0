"""The roll-up migrations run as `migrate` runs them, on a database holding what the release before them wrote: the
schema and models as of monitoring 0015, hour and minute rows and events stored through those, then a migration to the
newest state. Lifetime rows must equal their hours (counters and sketches), and the cache writes of the events up to
the roll-up cursor must land in every granularity; those past it are left to the fold."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from monitoring.models import Rollup
from monitoring.sketch import QuantileSketch, sketches_by_group
from tests.factories import register

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("monitoring", "0015_event_labelled_index")]
T0 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def sketch(values: list[float]) -> bytes:
    return sketches_by_group(np.zeros(len(values), dtype=np.int64), np.array(values))[0].to_bytes()


def test_migrating_a_database_of_the_previous_release(editor):
    versions = [register("fraud", editor), register("fraud", editor)]
    newest = MigrationExecutor(connection).loader.graph.leaf_nodes("monitoring")
    old = migrate(BEFORE)
    try:
        OldRollup, OldEvent, OldCursor = (old.get_model("monitoring", name) for name in ("Rollup", "Event", "RollupCursor"))
        rng = np.random.default_rng(3)
        latencies = {}
        for v in versions:
            for h in range(5):
                values = rng.lognormal(4, 1, 40).tolist()
                latencies.setdefault(v.pk, []).extend(values)
                OldRollup.objects.create(model_version_id=v.pk, granularity="hour", bucket=T0 + timedelta(hours=h), requests=40, errors=h,
                                         latency_sum=sum(values), latency_sketch=sketch(values), cost_usd=0.25 * h, cost_requests=40)
                OldRollup.objects.create(model_version_id=v.pk, granularity="minute", bucket=T0 + timedelta(hours=h, minutes=7), requests=40)
        folded = [OldEvent.objects.create(event_id=f"e-{i}", model_version_id=versions[0].pk, timestamp=T0 + timedelta(hours=i, minutes=7, seconds=3),
                                          latency_ms=10.0, input_tokens=100, cache_creation_tokens=10 + i) for i in range(3)]
        OldEvent.objects.create(event_id="shadow", model_version_id=versions[0].pk, timestamp=T0, latency_ms=1.0, input_tokens=100,
                                cache_creation_tokens=500, shadow=True)
        OldCursor.objects.create(name="events", last_event_id=max(e.pk for e in folded) + 1)  # the shadow event is folded too (left out)
        OldEvent.objects.create(event_id="later", model_version_id=versions[0].pk, timestamp=T0, latency_ms=1.0, input_tokens=100,
                                cache_creation_tokens=999)  # past the cursor: the fold's, not the migration's
    finally:
        migrate(newest)

    lifetime = {row.model_version_id: row for row in Rollup.objects.filter(granularity="lifetime")}
    assert set(lifetime) == {v.pk for v in versions}
    for v in versions:
        hours = Rollup.objects.filter(granularity="hour", model_version=v)
        row = lifetime[v.pk]
        assert (row.requests, row.errors, row.cost_requests) == (200, 10, 200)
        assert row.cost_usd == pytest.approx(2.5) and row.latency_sum == pytest.approx(sum(latencies[v.pk]))
        merged = QuantileSketch.from_bytes(bytes(row.latency_sketch))
        assert merged.count == 200
        exact = np.quantile(latencies[v.pk], [0.5, 0.95, 0.99], method="inverted_cdf")
        assert np.allclose(merged.quantiles([0.5, 0.95, 0.99]), exact, rtol=0.01)
        assert hours.count() == 5
    cache = {(r.granularity, r.bucket): r.cache_creation_tokens for r in Rollup.objects.filter(model_version=versions[0])}
    assert cache[("lifetime", datetime(1970, 1, 1, tzinfo=UTC))] == 10 + 11 + 12
    assert [cache[("hour", T0 + timedelta(hours=i))] for i in range(5)] == [10, 11, 12, 0, 0]
    assert [cache[("minute", T0 + timedelta(hours=i, minutes=7))] for i in range(5)] == [10, 11, 12, 0, 0]
    assert all(r.cache_creation_tokens == 0 for r in Rollup.objects.filter(model_version=versions[1]))

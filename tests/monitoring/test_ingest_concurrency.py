"""Two ingestion requests carrying the same events at the same moment (most meaningful on PostgreSQL)."""

import threading

import pytest

from monitoring import selectors, services
from monitoring.models import Event, FeatureBatch
from monitoring.services import ingestion
from tests.conftest import make_user
from tests.factories import register
from tests.registry.test_concurrency import run_at_once

from .test_ingest import event


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_batches_with_the_same_events_store_their_features_once(monkeypatch):
    editor = make_user("alice", "editor")
    fraud = register("fraud", editor)
    # Both requests look for known event ids before either writes: the window the race lives in.
    both_checked = threading.Barrier(2)
    known_event_ids = ingestion._known_event_ids

    def check_then_wait(ids):
        found = known_event_ids(ids)
        both_checked.wait(timeout=30)
        return found

    monkeypatch.setattr(ingestion, "_known_event_ids", check_then_wait)
    batch = {"events": [event(i) for i in range(20)]}

    outcomes = run_at_once([lambda: services.events_ingest(payload=batch, actor=editor) for _ in range(2)])

    assert [kind for kind, _ in outcomes] == ["ok", "ok"], outcomes
    results = sorted((r.accepted, r.duplicates) for _, r in outcomes)
    assert results == [(0, 20), (20, 0)]
    assert Event.objects.count() == 20
    columns = selectors.window_columns(
        model_version_id=fraud.pk, start=Event.objects.earliest("timestamp").timestamp, end=Event.objects.latest("timestamp").timestamp.replace(year=2100)
    )
    assert sorted(columns["amount"].tolist()) == [10.0 + i for i in range(20)]
    assert FeatureBatch.objects.count() == 1
    assert set(Event.objects.values_list("batch_id", flat=True)) == {FeatureBatch.objects.get().pk}


@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_that_overlap_in_part_keep_each_events_features_once(monkeypatch):
    editor = make_user("alice", "editor")
    fraud = register("fraud", editor)
    both_checked = threading.Barrier(2)
    known_event_ids = ingestion._known_event_ids

    def check_then_wait(ids):
        found = known_event_ids(ids)
        both_checked.wait(timeout=30)
        return found

    monkeypatch.setattr(ingestion, "_known_event_ids", check_then_wait)
    first, second = {"events": [event(i) for i in range(0, 12)]}, {"events": [event(i) for i in range(8, 20)]}

    outcomes = run_at_once([lambda: services.events_ingest(payload=first, actor=editor), lambda: services.events_ingest(payload=second, actor=editor)])

    assert [kind for kind, _ in outcomes] == ["ok", "ok"], outcomes
    assert sum(r.accepted for _, r in outcomes) == 20 and sum(r.duplicates for _, r in outcomes) == 4
    columns = selectors.window_columns(
        model_version_id=fraud.pk, start=Event.objects.earliest("timestamp").timestamp, end=Event.objects.latest("timestamp").timestamp.replace(year=2100)
    )
    assert sorted(columns["amount"].tolist()) == [10.0 + i for i in range(20)]
    for stored in Event.objects.select_related("batch"):
        assert stored.batch is not None
    per_batch = {b.pk: b.rows for b in FeatureBatch.objects.all()}
    assert sum(per_batch.values()) == 20
    assert sorted(Event.objects.values_list("batch_id", flat=True)) == sorted(pk for pk, rows in per_batch.items() for _ in range(rows))

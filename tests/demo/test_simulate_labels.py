"""Late labels in the demo traffic: events carry no ground truth; labels come later through the labels API (real time)
or, for a backfill of this site, through the labels service at the time each arrived, with the day's performance windows."""

import io
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.core.management import call_command
from sklearn.metrics import accuracy_score

from demo.simulation import FRAUD, LABEL_SHARE
from demo.streams import ModelStream
from demo.traffic import Backfill
from monitoring.models import Event, PerformanceWindow
from tests.conftest import make_user
from tests.factories import register

# The seed's fraud-detector in production (v6) registers these; the page's alert line is 5 % under each.
SEEDED_PRODUCTION = {"accuracy": 0.9488, "f1": 0.8395, "auc": 0.954}
LINE = 0.95 * SEEDED_PRODUCTION["accuracy"]


def simulate(*args: str) -> str:
    out = io.StringIO()
    call_command("simulate_traffic", *args, stdout=out)
    return out.getvalue()


def test_model_stream_sends_no_label_inside_events_and_each_label_after_its_delay():
    begin = datetime(2026, 5, 1, tzinfo=UTC).timestamp()
    stream = ModelStream(profile=FRAUD, seed=5, run_id="r", schedule=Backfill(begin, begin + 3600, 4000), model="fraud-detector",
                         version=1, label_delay=120.0)

    batch = stream.build(0, 4000)

    assert not any("label" in event for event in batch.events)
    served = {e["event_id"]: datetime.fromisoformat(e["timestamp"]).timestamp() for e in batch.events if not e["error"]}
    assert {x.event_id for x in batch.labels} <= set(served)
    assert abs(len(batch.labels) / len(served) - LABEL_SHARE) < 0.03
    delays = np.array([x.arrives - served[x.event_id] for x in batch.labels])
    assert delays.min() >= 120 - 0.001 and delays.max() <= 6 * 120 + 0.001  # the timestamps keep milliseconds
    assert np.median(delays) > 200  # spread over the range, not all at the shortest delay
    assert {x.label for x in batch.labels} == {0, 1}


def test_real_time_posts_the_labels_through_the_api_after_their_delay(live_server):
    fraud = register("fraud-detector", make_user("alice", "editor"))

    out = simulate("--model", "fraud-detector", "--events", "180", "--rate", "30", "--drift-at", "none", "--label-delay", "1.5",
                   "--seed", "2", "--no-ab", "--url", live_server.url)

    events = Event.objects.filter(model_version=fraud)
    labelled = list(events.exclude(label=None).values_list("timestamp", "received_at", "labelled_at"))
    assert events.count() == 180 and 35 <= len(labelled) <= 75  # about 30 % of the successful ones
    assert all(at is not None and at > received for _, received, at in labelled)  # sent after the event, not inside it
    last_batch = max(events.values_list("received_at", flat=True))
    on_time = [(ts, at) for ts, _, at in labelled if at < last_batch]  # the rest went at the end of the run, pending
    assert len(on_time) >= 10
    assert all(at - ts >= timedelta(seconds=1.5) for ts, at in on_time)  # each once its delay had passed, not sooner
    assert f"{len(labelled)} labelled" in out


def test_a_backfill_stores_each_label_when_it_arrived_and_the_hourly_performance_windows(live_server):
    fraud = register("fraud-detector", make_user("alice", "editor"), metrics=SEEDED_PRODUCTION)
    started = datetime.now(UTC)

    out = simulate("--model", "fraud-detector", "--events", "6000", "--batch", "3000", "--backfill-hours", "24", "--drift-at", "60%",
                   "--seed", "7", "--no-ab", "--url", live_server.url)

    events = Event.objects.filter(model_version=fraud)
    rows = list(events.exclude(label=None).values_list("timestamp", "labelled_at"))
    delays = np.array([(at - ts).total_seconds() for ts, at in rows])
    assert delays.min() >= 3600 - 1 and delays.max() <= 6 * 3600 + 600  # plus up to 10 minutes: the labelling job runs then
    assert all(at <= started + timedelta(minutes=10) for _, at in rows)  # none from the future
    assert f"{len(rows):,} labels of this backfill stored as they arrived" in out

    windows = list(PerformanceWindow.objects.filter(model_version=fraud).order_by("window_end"))
    assert len(windows) >= 20 and all(w.window_end - w.window_start == timedelta(hours=24) for w in windows)
    drift_at = sorted(events.values_list("timestamp", flat=True))[3600]
    before = [w for w in windows if w.window_end <= drift_at and w.labelled >= 200]  # fewer: a handful of labels, noisy
    last = windows[-1]
    assert len(before) >= 3 and all(w.accuracy >= LINE for w in before)
    assert last.accuracy < LINE  # the drifted hours' late labels pull the day under the alert line
    assert all(3600 <= w.label_delay_p50_s <= w.label_delay_p95_s <= 6 * 3600 + 600 for w in windows)
    labelled = events.filter(timestamp__gte=last.window_start, timestamp__lt=last.window_end, labelled_at__lte=last.window_end,
                             prediction__isnull=False)
    truth, scores = zip(*labelled.values_list("label", "prediction"), strict=True)
    assert last.labelled == len(truth)  # only the labels that had arrived when the window closed
    assert last.accuracy == pytest.approx(accuracy_score(truth, np.array(scores) >= 0.5))

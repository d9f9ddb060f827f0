"""Labels joined by event_id, and performance windows checked against scikit-learn."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sklearn import metrics as sk

from monitoring import services
from monitoring.models import Event, PerformanceWindow
from tests.factories import register
from tests.registry.test_api import assert_error_shape

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def send_predictions(api_as, user, scores, *, model="fraud", prefix="p"):
    events = [
        {"event_id": f"{prefix}-{i}", "model": model, "version": 1, "timestamp": (T0 + timedelta(seconds=i)).isoformat(),
         "latency_ms": 5, "prediction": float(s)}
        for i, s in enumerate(scores)
    ]
    assert api_as(user).post("/api/v1/events", {"events": events}, format="json").status_code == 202


def test_labels_arrive_later_and_the_window_matches_scikit_learn(api_as, editor, viewer):
    register("fraud", editor, metrics={"accuracy": 0.95, "f1": 0.9, "auc": 0.97})
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 600)
    scores = np.clip(0.35 * y + rng.normal(0.35, 0.2, 600), 0, 1).round(3)
    send_predictions(api_as, editor, scores)

    answer = api_as(editor).post("/api/v1/labels", {"labels": [{"event_id": f"p-{i}", "label": int(v)} for i, v in enumerate(y)]
                                                    + [{"event_id": "never-sent", "label": 1}]}, format="json")
    window = services.performance_compute(model_version=Event.objects.first().model_version, start=T0, end=T0 + timedelta(hours=1))

    assert answer.status_code == 202 and answer.json() == {"updated": 600, "unknown": 1, "unknown_ids": ["never-sent"]}
    pred = (scores >= 0.5).astype(int)
    assert window.labelled == 600
    assert window.accuracy == pytest.approx(sk.accuracy_score(y, pred))
    assert window.f1 == pytest.approx(sk.f1_score(y, pred))
    assert window.roc_auc == pytest.approx(sk.roc_auc_score(y, scores))
    assert window.baseline == {"accuracy": 0.95, "f1": 0.9, "roc_auc": 0.97}
    assert window.drops["accuracy"] == pytest.approx((0.95 - window.accuracy) / 0.95)
    assert api_as(viewer).post("/api/v1/labels", {"labels": [{"event_id": "p-1", "label": 1}]}, format="json").status_code == 403


def test_class_name_predictions_and_no_labels(api_as, editor):
    version = register("fraud", editor)
    events = [{"event_id": f"c-{i}", "model": "fraud", "version": 1, "timestamp": T0.isoformat(), "latency_ms": 1, "prediction": p}
              for i, p in enumerate(["spam", "ham", "spam", "ham"])]
    api_as(editor).post("/api/v1/events", {"events": events}, format="json")

    empty = services.performance_compute(model_version=version, start=T0, end=T0 + timedelta(hours=1))
    services.labels_attach(payload={"labels": [{"event_id": f"c-{i}", "label": v} for i, v in enumerate(["spam", "spam", "spam", "ham"])]},
                              actor=editor)
    window = services.performance_compute(model_version=version, start=T0, end=T0 + timedelta(hours=1))

    assert empty.labelled == 0 and empty.accuracy is None and "no labelled" in empty.note
    assert window.accuracy == 0.75 and window.roc_auc is None
    assert window.drops == {"accuracy": pytest.approx((0.9 - 0.75) / 0.9)}  # the factory registers accuracy 0.9
    assert PerformanceWindow.objects.count() == 1  # the same window, recomputed in place


@pytest.mark.parametrize(
    "payload",
    [{}, {"labels": []}, {"labels": [{"event_id": "x"}]}, {"labels": [{"event_id": 3, "label": 1}]},
     '{"labels": [{"event_id": "x", "label": NaN}]}', {"labels": [{"event_id": "x", "label": [1]}]}],
)
def test_bad_labels_are_a_400(api_as, editor, payload):
    if isinstance(payload, str):
        response = api_as(editor).post("/api/v1/labels", payload, content_type="application/json")
    else:
        response = api_as(editor).post("/api/v1/labels", payload, format="json")
    assert_error_shape(response, 400)


def test_window_counts_its_events_and_measures_the_label_delay(api_as, editor):
    version = register("fraud", editor)
    # Four events an hour apart from T0; one carries its label, two are labelled later, one never.
    events = [{"event_id": f"d-{i}", "model": "fraud", "version": 1, "timestamp": (T0 + timedelta(hours=i)).isoformat(), "latency_ms": 1,
               "prediction": 0.9} for i in range(4)]
    events[0]["label"] = 1
    api_as(editor).post("/api/v1/events", {"events": events}, format="json")
    labelled_at = T0 + timedelta(hours=10)
    services.labels_attach(payload={"labels": [{"event_id": "d-1", "label": 1}, {"event_id": "d-2", "label": 0}]}, actor=editor, now=labelled_at)

    window = services.performance_compute(model_version=version, start=T0, end=T0 + timedelta(hours=24))

    first = Event.objects.get(event_id="d-0")
    delays = [(first.received_at - first.timestamp).total_seconds(), 9 * 3600, 8 * 3600]  # the inline label: when its event arrived
    assert (window.events, window.labelled, window.labelled_share) == (4, 3, 0.75)
    assert window.label_delay_p50_s == pytest.approx(np.percentile(delays, 50), rel=1e-12)
    assert window.label_delay_p95_s == pytest.approx(np.percentile(delays, 95), rel=1e-12)
    assert Event.objects.get(event_id="d-1").labelled_at == labelled_at and Event.objects.get(event_id="d-3").labelled_at is None

import math

import numpy as np
import pytest

from monitoring import columnar
from monitoring.models import Event, FeatureBatch
from tests.factories import register
from tests.registry.test_api import assert_error_shape

pytestmark = pytest.mark.django_db


def event(i: int, **overrides) -> dict:
    base = {
        "event_id": f"e-{i}", "model": "fraud", "version": 1, "timestamp": "2026-11-20T10:00:00Z", "latency_ms": 12.5,
        "error": False, "unit_id": f"user-{i % 7}", "features": {"amount": 10.0 + i, "country": "DE" if i % 2 else "FR"},
        "prediction": 0.2, "label": None,
    }
    return base | overrides


@pytest.fixture
def fraud(editor):
    return register("fraud", editor)


def test_ingest_stores_events_and_columnar_features(api_as, editor, fraud):
    response = api_as(editor).post("/api/v1/events", {"events": [event(i) for i in range(5)]}, format="json")

    assert response.status_code == 202, response.content
    assert response.json() == {"accepted": 5, "duplicates": 0}
    assert Event.objects.count() == 5
    batch = FeatureBatch.objects.get()
    columns = columnar.decode(batch.data)
    assert batch.columns == {"amount": "numeric", "country": "categorical"}
    assert columns["amount"].tolist() == [10.0, 11.0, 12.0, 13.0, 14.0]
    assert columns["country"].tolist() == ["FR", "DE", "FR", "DE", "FR"]
    assert columns[columnar.PREDICTION].tolist() == [0.2] * 5
    assert set(Event.objects.values_list("batch_id", flat=True)) == {batch.pk}
    stored = Event.objects.get(event_id="e-3")
    assert (stored.prediction, stored.label, stored.latency_ms, stored.unit_id) == (0.2, None, 12.5, "user-3")
    assert stored.timestamp.isoformat() == "2026-11-20T10:00:00+00:00"
    assert Event.objects.filter(label__isnull=True).count() == 5


def test_resent_events_are_duplicates_not_rows(api_as, editor, fraud):
    client = api_as(editor)
    client.post("/api/v1/events", {"events": [event(i) for i in range(3)]}, format="json")

    again = client.post("/api/v1/events", {"events": [event(i) for i in range(2, 5)] + [event(4)]}, format="json")

    assert again.json() == {"accepted": 2, "duplicates": 2}
    assert Event.objects.count() == 5


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"latency_ms": -1}, "latency_ms"),
        ({"latency_ms": "fast"}, "latency_ms"),
        ({"timestamp": "yesterday"}, "timestamp"),
        ({"timestamp": "2999-01-01T00:00:00Z"}, "timestamp"),
        ({"feedback": 2}, "feedback"),
        ({"input_tokens": -5}, "input_tokens"),
        ({"features": {"amount": [1, 2]}}, "features.amount"),
        ({"version": 9}, "version"),
        ({"model": "nope"}, "version"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_a_bad_event_refuses_the_whole_batch_naming_index_and_field(api_as, editor, fraud, bad, field):
    events = [event(0), event(1) | bad, event(2)]

    body = assert_error_shape(api_as(editor).post("/api/v1/events", {"events": events}, format="json"), 400, "invalid")

    assert body["extra"]["errors"][0]["index"] == 1
    assert body["extra"]["errors"][0]["field"] == field
    assert not Event.objects.exists() and not FeatureBatch.objects.exists()


def test_nan_in_a_feature_is_refused(api_as, editor, fraud):
    raw = '{"events": [{"event_id": "x", "model": "fraud", "version": 1, "timestamp": "2026-11-20T10:00:00Z", "latency_ms": 1, "features": {"a": NaN}}]}'

    assert_error_shape(api_as(editor).post("/api/v1/events", raw, content_type="application/json"), 400)


def test_batch_size_limit_and_roles(api_as, editor, viewer, fraud):
    assert_error_shape(api_as(editor).post("/api/v1/events", {"events": []}, format="json"), 400)
    assert_error_shape(api_as(viewer).post("/api/v1/events", {"events": [event(0)]}, format="json"), 403)
    too_many = {"events": [event(i) for i in range(10_001)]}
    assert "at most 10000" in assert_error_shape(api_as(editor).post("/api/v1/events", too_many, format="json"), 400)["message"]


def test_missing_features_become_nan_or_empty(api_as, editor, fraud):
    events = [event(0), event(1, features={"amount": 3.0}), event(2, features={"country": "DE", "amount": None})]

    api_as(editor).post("/api/v1/events", {"events": events}, format="json")

    columns = columnar.decode(FeatureBatch.objects.get().data)
    assert columns["country"].tolist() == ["FR", "", "DE"]
    assert columns["amount"][0] == 10.0 and math.isnan(columns["amount"][2])
    assert np.isnan(columns["amount"]).sum() == 1


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), True, {"a": 1}])
def test_feature_values_that_are_refused(value):
    from monitoring.ingest import BatchInvalid, validate_batch

    payload = {"events": [event(0, features={"x": value})]}

    with pytest.raises(BatchInvalid) as caught:
        validate_batch(payload)

    assert caught.value.errors[0]["field"] == "features.x"


def test_feature_values_that_are_accepted():
    from monitoring.ingest import validate_batch

    cleaned = validate_batch({"events": [event(0, features={"a": 1, "b": -2.5, "c": "DE", "d": None, "e": 0.0})]})

    assert cleaned[0].features == {"a": 1, "b": -2.5, "c": "DE", "d": None, "e": 0.0}


def test_columnar_blobs_round_trip_and_read_old_npz():
    import io

    columns = {"ts": np.arange(5.0), "cat": np.array(["a", "", "ccc", "b", "é"]), "empty": np.array([], dtype=float)}

    decoded = columnar.decode(columnar.encode(columns))

    assert set(decoded) == set(columns)
    for name, array in columns.items():
        assert decoded[name].dtype == array.dtype and decoded[name].tolist() == array.tolist()
    old = io.BytesIO()
    np.savez(old, **columns)
    assert columnar.decode(old.getvalue())["cat"].tolist() == ["a", "", "ccc", "b", "é"]

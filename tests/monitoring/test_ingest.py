import math
from datetime import UTC, datetime, timedelta

import msgspec
import numpy as np
import pytest

from monitoring import columnar, selectors
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


def drift_columns(version) -> dict:
    start = datetime(2026, 11, 20, 10, tzinfo=UTC)
    return selectors.window_columns(model_version_id=version.pk, start=start, end=start + timedelta(hours=1))


def test_a_resent_batch_adds_no_feature_values_for_drift(api_as, editor, fraud):
    client = api_as(editor)
    client.post("/api/v1/events", {"events": [event(i) for i in range(3)]}, format="json")
    # The client retries: e-1 and e-2 again (with other values, as a buggy client might), plus two new events.
    resent = [event(i, features={"amount": 500.0 + i, "country": "XX"}, prediction=0.9) for i in (1, 2)]

    again = client.post("/api/v1/events", {"events": resent + [event(3), event(4)]}, format="json")

    assert again.json() == {"accepted": 2, "duplicates": 2}
    columns = drift_columns(fraud)
    assert sorted(columns["amount"].tolist()) == [10.0, 11.0, 12.0, 13.0, 14.0]
    assert "XX" not in columns["country"].tolist() and len(columns["country"]) == 5
    assert columns[columnar.PREDICTION].tolist() == [0.2] * 5


def test_a_duplicate_within_one_request_adds_its_features_once(api_as, editor, fraud):
    events = [event(0), event(1), event(1, features={"amount": 999.0, "country": "XX"}, prediction=0.9), event(2)]

    response = api_as(editor).post("/api/v1/events", {"events": events}, format="json")

    assert response.json() == {"accepted": 3, "duplicates": 1}
    columns = drift_columns(fraud)
    assert sorted(columns["amount"].tolist()) == [10.0, 11.0, 12.0]
    assert sorted(columns["country"].tolist()) == ["DE", "FR", "FR"]
    assert columns[columnar.PREDICTION].tolist() == [0.2] * 3
    assert Event.objects.get(event_id="e-1").prediction == 0.2  # the first copy is the one kept


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
        ({"prompt": 3}, "prompt"),
        ({"features": []}, "features"),
        ({"llm_model": 0}, "llm_model"),
        ({"feedback": 1.0}, "feedback"),
        ({"input_tokens": 10, "cached_tokens": 11}, "cached_tokens"),
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
    from monitoring.events import BatchInvalid, validate_batch

    payload = {"events": [event(0, features={"x": value})]}

    with pytest.raises(BatchInvalid) as caught:
        validate_batch(payload)

    assert caught.value.errors[0]["field"] == "features.x"


def test_feature_values_that_are_accepted():
    from monitoring.events import validate_batch

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


def _strict_verdict(body: bytes):
    """What the reference path (strict JSON parse, then validate_batch) makes of a body."""
    from mlops_site.parsers import StrictJSONError, strict_loads
    from monitoring.events import BatchInvalid, validate_batch

    try:
        return validate_batch(strict_loads(body))
    except (StrictJSONError, BatchInvalid):
        return "refused"


def _assert_fast_path_agrees(body: bytes) -> bool:
    """The fast path never accepts what the reference refuses, and when it accepts it returns the
    same events. True when the fast path decided (did not fall back)."""
    from monitoring.events import validate_body

    fast = validate_body(body)
    if fast is None:
        return False
    assert fast == _strict_verdict(body), body[:300]
    return True


def _rfc3339(value) -> bool:
    try:
        msgspec.convert(value, datetime)
    except msgspec.ValidationError:
        return False
    return True


def test_fast_path_takes_plain_valid_batches():
    import json

    events = [event(i) for i in range(3)] + [
        event(3, model=None, prompt="summarize", features=None, input_tokens=120, output_tokens=40, cost_usd=0.001, ttft_ms=300,
              guardrail_triggered=True, feedback=-1, judge_score=0.8, unit_id=None, label=1, prediction="spam"),
        event(4, timestamp="2026-11-20T12:00:00+02:00", features={}, error=True, prediction=True),
        event(5, timestamp="2026-11-20T10:00:00", features={"n": 3, "s": "x", "missing": None}),
    ]
    for e in events:
        if e.get("model") is None:
            e.pop("model")

    for body in (json.dumps({"events": events}), json.dumps({"events": events}, indent=2), json.dumps({"events": events}, separators=(",", ":"))):
        assert _assert_fast_path_agrees(body.encode()), body[:200]


@pytest.mark.parametrize(
    "body",
    [
        b'{"events": [{"event_id": "a", "event_id": "b", "model": "fraud", "version": 1, "timestamp": "2026-11-20T10:00:00Z", "latency_ms": 1}]}',
        b'{"events": [{"event_id": "a", "model": "fraud", "version": 1, "timestamp": "2026-11-20T10:00:00Z", "latency_ms": 1, "features": {"x": 1, "x": 2}}]}',
        b'{"events": [{"event_id": "a", "model": "fraud", "version": 1, "timestamp": "2026-11-20T10:00:00Z", "latency_ms": 1, "features": {"x": 1, "x" : 2}}]}',
        b'{"events": [], "events": [{"event_id": "a", "model": "fraud", "version": 1, "timestamp": "2026-11-20T10:00:00Z", "latency_ms": 1}]}',
        b'{"events": [{"event_id": "a", "model": "fraud", "version": 1, "timestamp": "2026-11-20T10:00:00Z", "latency_ms": 1, "features": {"x": 1, "x\\":": 2, "x": 3}}]}',
    ],
)
def test_fast_path_never_accepts_repeated_keys(body):
    from monitoring.events import validate_body

    assert validate_body(body) is None
    assert _strict_verdict(body) == "refused"


def test_fast_path_agrees_with_the_reference_on_random_events():
    import json
    import random

    rng = random.Random(7)
    pool = {
        "event_id": ["a", "", "x" * 101, 5, None],
        "model": ["fraud", None, 3, ""],
        "prompt": ["summarize", None],
        "version": [1, 2, 0, -1, True, 1.5, "1"],
        "timestamp": ["2026-11-20T10:00:00Z", "2026-11-20 10:00:00", "2026-11-20", "2026-11-20T10:00", "nope", 17, "2999-01-01T00:00:00Z"],
        "latency_ms": [0, 12.5, -1, "3", True, 1e308, None],
        "error": [True, False, 0, "no", None],
        "unit_id": ["u", None, 3, "y" * 201],
        "features": [{"a": 1.5}, {"a": "x", "b": None}, {"a": True}, {"a": [1]}, {"a": {"b": 1}}, None, [], 0, {"a": 10**30}],
        "prediction": [0.2, "spam", True, None, [1], {"a": 1}],
        "label": [1, "ham", False, None],
        "input_tokens": [0, 10, -1, 1.5, True, None],
        "cost_usd": [0, 0.01, -0.5, "1", None],
        "feedback": [1, -1, 0, True, None, 1.0],
        "judge_score": [0.5, -0.1, None],
        "guardrail_triggered": [True, None, 1],
        "output_tokens": [0, 50, None],
        "cached_tokens": [0, 5, 11, -1, None],
        "reasoning_tokens": [0, 20, 60, None],
        "llm_model": ["gpt-4o-mini", "", None, 7, "m" * 201],
        "faithfulness": [0.0, 0.9, 1.0, 1.5, -0.1, None],
        "extra": ["unknown field"],
    }
    decided = 0

    for _ in range(1200):
        e = event(0, event_id=f"id-{rng.random()}")
        for key in rng.sample(sorted(pool), k=rng.randint(0, 4)):
            value = rng.choice(pool[key])
            if rng.random() < 0.15:
                e.pop(key, None)
            else:
                e[key] = value
        body = json.dumps({"events": [e]}, separators=(",", ":") if rng.random() < 0.5 else (", ", ": "))
        took = _assert_fast_path_agrees(body.encode())
        decided += took
        # Both paths check the one declaration: the fast path falls back on a valid event only for a
        # timestamp msgspec does not read (it reads RFC 3339, the strict path any ISO 8601).
        if not took and _rfc3339(e.get("timestamp")):
            assert _strict_verdict(body.encode()) == "refused", body

    assert decided > 100  # the fast path really takes the valid ones

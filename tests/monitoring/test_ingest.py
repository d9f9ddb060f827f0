import json
import math
from datetime import UTC, datetime, timedelta
from unittest import mock

import msgspec
import numpy as np
import pytest

from mlops_site.exceptions import ValidationFailed
from monitoring import columnar, selectors
from monitoring.events import validate_body
from monitoring.models import Event, FeatureBatch, FeatureNames
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


def writes(queries) -> list[str]:
    """The write statements of captured queries, each as its verb and table ("INSERT monitoring_event"),
    one entry per statement (an executemany is one)."""
    out = []
    for query in queries:
        sql = query["sql"].split(" times: ", 1)[-1].lstrip()
        verb = sql.split(" ", 1)[0].upper()
        if verb in ("INSERT", "UPDATE", "DELETE"):
            table = sql.split('"')[1]
            out.append(f"{verb} {table}")
    return out


def test_a_new_batch_is_stored_with_one_insert_per_table_and_a_resent_one_writes_nothing(editor, fraud):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from monitoring.services import events_ingest

    # given a batch of five new events
    payload = {"events": [event(i) for i in range(5)]}

    # when it is sent, then sent again
    with CaptureQueriesContext(connection) as first:
        events_ingest(payload=payload, actor=editor)
    with CaptureQueriesContext(connection) as again:
        result = events_ingest(payload=payload, actor=editor)

    # then the first write is the version's feature names, one feature batch and one INSERT of the events
    # (nothing rewritten after); the second is answered by the duplicate check alone: no write at all
    assert writes(first.captured_queries) == ["INSERT monitoring_featurenames", "INSERT monitoring_featurebatch", "INSERT monitoring_event"]
    assert writes(again.captured_queries) == []
    assert result.accepted == 0 and result.duplicates == 5


def test_a_batch_larger_than_a_chunk_is_stored_whole_and_recognised_whole(editor, fraud):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from monitoring.services import events_ingest

    # given 2,500 events: more than the 2,000 ids or rows one statement carries
    payload = {"events": [event(i) for i in range(2500)]}

    # when they are sent, then sent again with one new event
    with CaptureQueriesContext(connection) as first:
        stored = events_ingest(payload=payload, actor=editor)
    with CaptureQueriesContext(connection) as again:
        resent = events_ingest(payload={"events": payload["events"] + [event(2500)]}, actor=editor)

    # then every event is stored, in two INSERTs of 2,000 and 500, and recognised when re-sent
    assert (stored.accepted, stored.duplicates) == (2500, 0)
    inserts = [q["sql"].split(" times: ")[0] for q in first.captured_queries if "INSERT" in q["sql"] and "monitoring_event" in q["sql"]]
    assert inserts == ["2000", "500"]
    assert (resent.accepted, resent.duplicates) == (1, 2500)
    assert writes(again.captured_queries) == ["INSERT monitoring_featurebatch", "INSERT monitoring_event"]
    assert Event.objects.count() == 2501
    assert sorted(drift_columns(fraud)["amount"].tolist()) == [10.0 + i for i in range(2501)]


def test_unknown_versions_are_listed_up_to_100(api_as, editor, fraud):
    # given 150 events of a version the registry does not have
    events = [event(i, version=9) for i in range(150)]

    # when
    body = assert_error_shape(api_as(editor).post("/api/v1/events", {"events": events}, format="json"), 400, "invalid")

    # then
    errors = body["extra"]["errors"]
    assert len(errors) == 100
    assert errors[0] == {"index": 0, "field": "version", "message": "no model 'fraud' version 9 in the registry"}
    assert errors[-1]["index"] == 99


def test_events_ingest_names_the_role_it_needs(viewer):
    from mlops_site.exceptions import Forbidden
    from monitoring.services import events_ingest

    # given a viewer

    # when / then
    with pytest.raises(Forbidden, match=r"^Ingesting events needs the editor role\.$"):
        events_ingest(payload={"events": [event(0)]}, actor=viewer)


def test_a_model_event_is_stored_with_its_label_and_no_llm(api_as, editor, fraud):
    # given an event with a label and no llm_model

    # when
    api_as(editor).post("/api/v1/events", {"events": [event(0, label=1, prediction="spam")]}, format="json")

    # then
    stored = Event.objects.get(event_id="e-0")
    assert (stored.label, stored.prediction, stored.llm_model) == (1, "spam", "")


def test_a_shadow_event_is_stored_as_shadow_and_others_as_served(api_as, editor, fraud):
    # given a mirrored request's event, one that says it is not, and one that does not say

    # when
    api_as(editor).post("/api/v1/events", {"events": [event(0, shadow=True), event(1, shadow=False), event(2)]}, format="json")

    # then
    assert dict(Event.objects.values_list("event_id", "shadow")) == {"e-0": True, "e-1": False, "e-2": False}


def test_event_times_are_stored_in_utc_whatever_the_site_time_zone(api_as, editor, fraud, settings):
    # given a site configured for Tokyo (UTC+9), whose process clock follows TIME_ZONE
    settings.TIME_ZONE = "Asia/Tokyo"

    # when an event of 10:00 UTC is sent
    api_as(editor).post("/api/v1/events", {"events": [event(0, timestamp="2026-11-20T10:00:00Z")]}, format="json")

    # then it reads back as 10:00 UTC, and the drift window of 10:00-11:00 UTC holds it
    assert Event.objects.get(event_id="e-0").timestamp == datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert Event.objects.filter(timestamp__gte=datetime(2026, 11, 20, 10, tzinfo=UTC), timestamp__lt=datetime(2026, 11, 20, 11, tzinfo=UTC)).count() == 1


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([], "Batch refused, nothing stored: events: the batch is empty"),
        (
            [event(i, latency_ms=-1) for i in range(5)],
            "Batch refused, nothing stored: " + "; ".join(f"events[{i}].latency_ms: required: a finite number >= 0" for i in range(5)),
        ),
        (
            [event(i, latency_ms=-1) for i in range(6)],
            "Batch refused, nothing stored: " + "; ".join(f"events[{i}].latency_ms: required: a finite number >= 0" for i in range(5)) + " (and 1 more)",
        ),
        (
            [event(i, latency_ms=-1) for i in range(8)],
            "Batch refused, nothing stored: " + "; ".join(f"events[{i}].latency_ms: required: a finite number >= 0" for i in range(5)) + " (and 3 more)",
        ),
    ],
    ids=["batch-level", "five", "six", "eight"],
)
def test_a_refused_batch_names_its_first_five_problems_and_counts_the_rest(api_as, editor, fraud, events, message):
    # given a batch with problems (in each case)

    # when
    body = assert_error_shape(api_as(editor).post("/api/v1/events", {"events": events}, format="json"), 400, "invalid")

    # then
    assert body["message"] == message


@pytest.mark.parametrize("field", ["input_tokens", "output_tokens"])
def test_a_token_count_beyond_its_column_is_a_400_naming_it_not_a_500(api_as, editor, fraud, field):
    too_many = event(0, **{field: 2**31})
    at_the_limit = event(1, input_tokens=2**31 - 1, output_tokens=2**31 - 1)

    refused = api_as(editor).post("/api/v1/events", {"events": [too_many]}, format="json")
    stored = api_as(editor).post("/api/v1/events", {"events": [at_the_limit]}, format="json")

    assert_error_shape(refused, 400)
    assert refused.json()["extra"]["errors"] == [{"index": 0, "field": field, "message": "must be a whole number from 0 to 2147483647"}]
    assert stored.status_code == 202, stored.content


def wide_events(start: int, names: int, prefix: str = "f") -> list[dict]:
    """Small events that together name `names` distinct features, 100 to an event."""
    return [
        event(start + i, features={f"{prefix}{n}": 1.0 for n in range(i * 100, min(names, (i + 1) * 100))})
        for i in range(-(-names // 100))
    ]


def test_a_batch_naming_more_features_than_the_cap_is_refused_whole(api_as, editor, fraud):
    events = wide_events(0, 1001)

    body = assert_error_shape(api_as(editor).post("/api/v1/events", {"events": events}, format="json"), 400, "invalid")

    assert body["extra"]["errors"] == [
        {"index": None, "field": "features", "message": "1001 distinct feature names in the batch, at most 1000 (MLOPS_MAX_FEATURES)"}
    ]
    assert not Event.objects.exists() and not FeatureBatch.objects.exists() and not FeatureNames.objects.exists()


def test_a_batch_naming_exactly_the_cap_is_stored(api_as, editor, fraud):
    events = wide_events(0, 1000)

    response = api_as(editor).post("/api/v1/events", {"events": events}, format="json")

    assert response.status_code == 202, response.content
    assert len(FeatureBatch.objects.get().columns) == 1000
    assert len(FeatureNames.objects.get(model_version=fraud).names) == 1000


def test_the_fast_and_the_strict_path_both_refuse_a_batch_over_the_cap(api_as, editor, fraud):
    fast = json.dumps({"events": wide_events(0, 1001)}).encode()
    strict = fast.replace(b'":', b'" :')  # whitespace before a colon: the fast path defers to the strict one
    assert validate_body(fast) is not None and validate_body(strict) is None

    refused = [api_as(editor).post("/api/v1/events", raw, content_type="application/json") for raw in (fast, strict)]

    assert [assert_error_shape(r, 400, "invalid")["extra"]["errors"][0]["field"] for r in refused] == ["features", "features"]
    assert not Event.objects.exists() and not FeatureBatch.objects.exists()


def test_the_feature_cap_comes_from_the_settings(api_as, editor, fraud, settings):
    settings.MLOPS_MAX_FEATURES = 150

    refused = api_as(editor).post("/api/v1/events", {"events": wide_events(0, 151)}, format="json")
    accepted = api_as(editor).post("/api/v1/events", {"events": wide_events(10, 150)}, format="json")
    one_more = api_as(editor).post("/api/v1/events", {"events": [event(500, features={"new": 1.0})]}, format="json")

    assert assert_error_shape(refused, 400, "invalid")["extra"]["errors"][0]["message"] == (
        "151 distinct feature names in the batch, at most 150 (MLOPS_MAX_FEATURES)")
    assert accepted.status_code == 202, accepted.content
    assert assert_error_shape(one_more, 400, "invalid")["extra"]["errors"][0]["message"] == (
        "model 'fraud' version 1 would hold 151 distinct feature names, at most 150 (MLOPS_MAX_FEATURES)")


def test_a_version_cannot_gather_more_feature_names_than_the_cap_over_batches(api_as, editor, fraud):
    client = api_as(editor)
    first = client.post("/api/v1/events", {"events": wide_events(0, 600, prefix="a")}, format="json")

    with mock.patch.object(columnar, "build_batch", side_effect=AssertionError("a column was built")):
        second = client.post("/api/v1/events", {"events": wide_events(100, 600, prefix="b")}, format="json")

    assert first.status_code == 202, first.content
    body = assert_error_shape(second, 400, "invalid")
    assert body["extra"]["errors"] == [
        {"index": None, "field": "features", "message": "model 'fraud' version 1 would hold 1200 distinct feature names, at most 1000 (MLOPS_MAX_FEATURES)"}
    ]
    assert Event.objects.count() == 6 and FeatureBatch.objects.count() == 1
    assert len(FeatureNames.objects.get(model_version=fraud).names) == 600


def test_a_version_counts_the_names_of_every_batch_stored_for_it(api_as, editor, fraud):
    client = api_as(editor)
    client.post("/api/v1/events", {"events": wide_events(0, 400, prefix="a")}, format="json")
    client.post("/api/v1/events", {"events": wide_events(100, 400, prefix="b")}, format="json")

    third = client.post("/api/v1/events", {"events": wide_events(200, 300, prefix="c")}, format="json")

    assert "version 1 would hold 1100" in assert_error_shape(third, 400, "invalid")["message"]
    assert len(FeatureNames.objects.get(model_version=fraud).names) == 800


def test_a_version_may_be_sent_its_known_feature_names_again_at_the_cap(api_as, editor, fraud):
    client = api_as(editor)
    client.post("/api/v1/events", {"events": wide_events(0, 1000)}, format="json")

    again = client.post("/api/v1/events", {"events": wide_events(100, 1000)}, format="json")
    one_more = client.post("/api/v1/events", {"events": [event(500, features={"new": 1.0})]}, format="json")

    assert again.status_code == 202, again.content
    assert "version 1 would hold 1001" in assert_error_shape(one_more, 400, "invalid")["message"]


def test_a_batch_racing_another_past_the_version_cap_is_refused_whole(editor, fraud):
    from monitoring.services import events_ingest, ingestion

    # given another request storing 600 names for the version after this one's first check
    build = ingestion._feature_batches
    raced = []

    def other_request_first(events, versions):
        if not raced:
            raced.append(None)
            raced[0] = events_ingest(payload={"events": wide_events(100, 600, prefix="b")}, actor=editor)
        return build(events, versions)

    # when this one, with 600 other names, is written
    with mock.patch.object(ingestion, "_feature_batches", side_effect=other_request_first), pytest.raises(ValidationFailed) as refused:
        events_ingest(payload={"events": wide_events(0, 600, prefix="a")}, actor=editor)

    # then it is refused under the lock and only the other request's events and names are stored
    assert "version 1 would hold 1200" in str(refused.value)
    assert raced[0].accepted == 6 and Event.objects.count() == 6 and FeatureBatch.objects.count() == 1
    assert FeatureNames.objects.get(model_version=fraud).names == sorted(f"b{n}" for n in range(600))


def test_the_migration_gives_each_version_the_names_of_its_stored_batches(api_as, editor, fraud):
    import importlib

    from django.apps import apps

    client = api_as(editor)
    client.post("/api/v1/events", {"events": [event(0, features={"a": 1.0, "b": "x"})]}, format="json")
    client.post("/api/v1/events", {"events": [event(1, features={"b": "y", "c": 2.0})]}, format="json")
    FeatureNames.objects.all().delete()

    importlib.import_module("monitoring.migrations.0010_feature_names").backfill(apps, None)

    assert FeatureNames.objects.get(model_version=fraud).names == ["a", "b", "c"]

"""The event schema (monitoring/events.py): one declaration (FIELDS), and both validation paths taken from it.
That the two paths agree on random events is tests/monitoring/test_ingest.py's."""

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Literal

import msgspec
import pytest
from msgspec import Meta

from monitoring.events import (
    FIELD_NAMES,
    FIELDS,
    BatchInvalid,
    CleanEvent,
    DecodedEvent,
    FeatureValue,
    Refused,
    strict_check,
    validate_batch,
    validate_body,
)

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
ABSENT = object()


def event(**overrides) -> dict:
    base = {"event_id": "e-1", "model": "fraud", "version": 1, "timestamp": "2026-11-20T10:00:00Z", "latency_ms": 12.5}
    return {key: value for key, value in (base | overrides).items() if value is not ABSENT}


def both_paths(*sent: dict) -> tuple:
    """What the fast path (None: it falls back) and the strict path (the events, or the errors) make of one body."""
    body = json.dumps({"events": list(sent)}).encode()
    try:
        strict = validate_batch(json.loads(body), now=NOW)
    except BatchInvalid as exc:
        strict = exc.errors
    return validate_body(body, now=NOW), strict


def test_the_struct_the_strict_path_and_clean_events_have_the_declared_fields():
    declared = [f.name for f in FIELDS]

    assert list(DecodedEvent.__struct_fields__) == declared
    assert FIELD_NAMES == set(declared)
    assert list(CleanEvent._fields) == ["index", *declared]


@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f.name)
def test_every_declared_field_is_checked_by_both_paths_with_its_message(field):
    fast, strict = both_paths(event(**{field.name: [1]}))  # a list fits no field

    assert fast is None
    assert {"index": 0, "field": field.name, "message": field.message} in strict


def test_a_name_outside_the_declaration_is_unknown_to_both_paths():
    fast, strict = both_paths(event(latency=3), event(zz=1, latency=3, yy=2))

    assert fast is None
    assert strict == [
        {"index": 0, "field": "latency", "message": "unknown field"},
        {"index": 1, "field": "latency", "message": "unknown field (and yy, zz)"},
    ]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([event()], 'send {"events": [...]}'),
        ({"events": event()}, 'send {"events": [...]}'),
        ({"events": []}, "the batch is empty"),
        ({"events": [event()] * 10_001}, "at most 10000 events per request, got 10001"),
    ],
)
def test_a_batch_that_is_not_one_is_refused_as_a_whole(payload, message):
    with pytest.raises(BatchInvalid) as caught:
        validate_batch(payload, now=NOW)

    assert caught.value.errors == [{"index": None, "field": "events", "message": message}]


def test_the_largest_batch_passes_both_paths():
    sent = [event(event_id=f"e-{i}") for i in range(10_000)]

    fast, strict = both_paths(*sent)

    assert len(strict) == 10_000 and fast == strict


def test_the_strict_path_stops_after_a_hundred_problems():
    with pytest.raises(BatchInvalid) as caught:
        validate_batch({"events": [event(latency_ms=-1) for _ in range(150)]}, now=NOW)

    assert [e["index"] for e in caught.value.errors] == list(range(100))


@pytest.mark.parametrize("how", ["absent", "null"])
def test_a_field_not_given_takes_its_default_in_both_paths(how):
    optional = ["prompt", "error", "unit_id", "features", "prediction", "label", "input_tokens", "output_tokens", "cached_tokens",
                "reasoning_tokens", "cost_usd", "ttft_ms", "judge_score", "faithfulness", "llm_model", "guardrail_triggered", "feedback", "shadow"]
    sent = event(**{name: ABSENT if how == "absent" else None for name in optional})

    fast, strict = both_paths(sent)

    assert fast == strict
    expected = {"prompt": None, "error": False, "unit_id": "", "features": {}, "prediction": None, "label": None, "input_tokens": None,
                "output_tokens": None, "cached_tokens": None, "reasoning_tokens": None, "cost_usd": None, "ttft_ms": None,
                "judge_score": None, "faithfulness": None, "llm_model": "", "guardrail_triggered": None, "feedback": None, "shadow": False}
    assert {name: getattr(strict[0], name) for name in optional} == expected


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"prompt": "summarize"}, "model", "give either model or prompt (a name)"),
        ({"model": ABSENT}, "model", "give either model or prompt (a name)"),
        ({"model": None, "prompt": None}, "model", "give either model or prompt (a name)"),
        ({"timestamp": "2026-11-20T13:00:01Z"}, "timestamp", "is in the future"),
        ({"timestamp": "2026-11-20T14:00:01+01:00"}, "timestamp", "is in the future"),
        ({"input_tokens": 10, "cached_tokens": 11}, "cached_tokens", "cannot exceed input_tokens (they are counted inside it)"),
        ({"cached_tokens": 1}, "input_tokens", "required when cached_tokens is given (it counts them)"),
        ({"output_tokens": 5, "reasoning_tokens": 6}, "reasoning_tokens", "cannot exceed output_tokens (they are counted inside it)"),
        ({"reasoning_tokens": 1}, "output_tokens", "required when reasoning_tokens is given (it counts them)"),
        ({"faithfulness": 1.01}, "faithfulness", "must be from 0 to 1"),
    ],
)
def test_a_broken_rule_between_fields_is_refused_by_both_paths(overrides, field, message):
    fast, strict = both_paths(event(**overrides))

    assert fast is None
    assert strict == [{"index": 0, "field": field, "message": message}]


@pytest.mark.parametrize(
    "overrides",
    [
        {"timestamp": "2026-11-20T13:00:00Z"},  # now plus the hour of slack for clocks
        {"timestamp": "2026-11-20T14:00:00+01:00"},
        {"input_tokens": 10, "cached_tokens": 10},
        {"cached_tokens": 0},
        {"output_tokens": 5, "reasoning_tokens": 5},
        {"reasoning_tokens": 0},
        {"faithfulness": 1},
        {"model": None, "prompt": "summarize"},
        {"model": ABSENT, "prompt": ""},
    ],
)
def test_rules_between_fields_at_their_limits_pass_both_paths(overrides):
    fast, strict = both_paths(event(**overrides))

    assert isinstance(strict, list) and isinstance(strict[0], CleanEvent), strict
    assert fast == strict


def test_a_field_refused_on_its_own_is_not_named_again_by_a_rule():
    _, strict = both_paths(event(cached_tokens=5, input_tokens=-1), event(model=3), event(prompt=3, model=ABSENT))

    assert strict == [
        {"index": 0, "field": "input_tokens", "message": "must be a whole number from 0 to 2147483647"},
        {"index": 1, "field": "model", "message": "give either model or prompt (a name)"},
        {"index": 2, "field": "prompt", "message": "give either model or prompt (a name)"},
        {"index": 2, "field": "model", "message": "give either model or prompt (a name)"},
    ]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"model": 3, "prompt": "summarize"}, "model"),
        ({"prompt": True}, "prompt"),
        ({"features": []}, "features"),
        ({"features": 0}, "features"),
        ({"llm_model": 0}, "llm_model"),
        ({"llm_model": False}, "llm_model"),
        ({"feedback": 1.0}, "feedback"),
        ({"latency_ms": 10**400}, "latency_ms"),  # beyond the largest float
    ],
)
def test_a_value_of_the_wrong_kind_is_refused_not_dropped(overrides, field):
    fast, strict = both_paths(event(**overrides))

    assert fast is None
    assert [e["field"] for e in strict] == [field]


def test_a_timestamp_without_a_zone_is_utc_and_one_with_a_zone_keeps_it():
    fast, strict = both_paths(event(timestamp="2026-11-20T10:00:00"), event(timestamp="2026-11-20T10:00:00+02:00"))

    assert fast == strict
    assert strict[0].timestamp == datetime(2026, 11, 20, 10, tzinfo=UTC) and strict[0].timestamp.utcoffset() == timedelta(0)
    assert strict[1].timestamp.utcoffset() == timedelta(hours=2) and strict[1].timestamp == datetime(2026, 11, 20, 8, tzinfo=UTC)
    assert strict[1].timestamp.tzinfo == timezone(timedelta(hours=2))


def test_a_timestamp_that_is_not_one_is_named_with_its_problem():
    _, strict = both_paths(event(timestamp=1763632800), event(timestamp="20 Nov 2026"), event(timestamp=ABSENT))

    assert strict == [
        {"index": 0, "field": "timestamp", "message": "must be an ISO 8601 string"},
        {"index": 1, "field": "timestamp", "message": "not an ISO 8601 date and time"},
        {"index": 2, "field": "timestamp", "message": "must be an ISO 8601 string"},
    ]


def test_a_timestamp_msgspec_does_not_read_takes_the_strict_path():
    fast, strict = both_paths(event(timestamp="2026-11-20 10:00:00"), event(timestamp="2026-11-20"))

    assert fast is None
    assert [e.timestamp for e in strict] == [datetime(2026, 11, 20, 10, tzinfo=UTC), datetime(2026, 11, 20, tzinfo=UTC)]


def test_whole_numbers_become_floats_in_float_fields_in_both_paths():
    fast, strict = both_paths(event(latency_ms=12, cost_usd=0, ttft_ms=3, judge_score=1, faithfulness=0))

    assert fast == strict
    for name in ("latency_ms", "cost_usd", "ttft_ms", "judge_score", "faithfulness"):
        assert type(getattr(fast[0], name)) is float and type(getattr(strict[0], name)) is float


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_the_strict_path_refuses_numbers_that_are_not_finite(value):
    sent = [event(latency_ms=value), event(cost_usd=value), event(prediction=value), event(features={"x": value})]

    with pytest.raises(BatchInvalid) as caught:
        validate_batch({"events": sent}, now=NOW)

    assert [e["field"] for e in caught.value.errors] == ["latency_ms", "cost_usd", "prediction", "features.x"]


def test_a_bad_feature_is_named_by_its_key_and_features_not_an_object_as_a_whole():
    _, strict = both_paths(event(features={"amount": 1.5, "country": ["DE"], "age": True}), event(features="amount=1.5"))

    assert strict == [
        {"index": 0, "field": "features.country", "message": "must be a finite number, a string or null (NaN and Infinity are invalid)"},
        {"index": 1, "field": "features", "message": "must be an object of name to number or string"},
    ]


def test_clean_events_say_what_served_the_request():
    _, strict = both_paths(event(), event(model=ABSENT, prompt="summarize"))

    assert [(e.kind, e.name) for e in strict] == [("model", "fraud"), ("prompt", "summarize")]


VALUES = [
    None, True, False, 0, 1, -1, 2, 10**30, 10**400, 1.0, -1.0, 0.5, -0.5, 1e308, "", "a", "é" * 100, "x" * 101, "x" * 200, "x" * 201,
    [], [1], {}, {"a": 1}, {"a": -2.5, "b": "x", "c": None, "d": 10**30}, {"a": True}, {"a": [1]}, {"a": {"b": 1}},
]


@pytest.mark.parametrize(
    ("tp", "constraint"),
    # The declared ones, upper bounds (no field has one today), a bound on one side, and every scalar.
    sorted({(f.type, f.constraint) for f in FIELDS if f.check is None}
           | {(FeatureValue, None), (dict[str, FeatureValue], None), (int, Meta(ge=-1, le=1)), (float, Meta(ge=-1, le=1)),
              (int, Meta(le=1)), (float, Meta(le=1.0)), (int | float | str | bool | None, None)}, key=repr),
    ids=repr,
)
def test_the_strict_check_of_a_type_takes_what_msgspec_takes(tp, constraint):
    reference = tp if constraint is None else Annotated[tp, constraint]
    check = strict_check(tp, constraint)

    for value in VALUES:
        try:
            expected = msgspec.convert(value, reference)
        except msgspec.ValidationError:
            expected = "refused"
        try:
            got = check(value)
        except Refused:
            got = "refused"
        assert (got, type(got)) == (expected, type(expected)), (tp, constraint, value)


def test_the_strict_check_of_a_dict_names_the_first_bad_key():
    check = strict_check(dict[str, FeatureValue])

    with pytest.raises(Refused) as caught:
        check({"a": 1, "b": True, "c": [1]})

    assert caught.value.field == "b"


@pytest.mark.parametrize(
    ("tp", "constraint"),
    [
        (list[int], None),
        (Literal["a", "b"], None),
        (dict[int, FeatureValue], None),
        (str | None, None),
        (int, Meta(gt=0)),
        (float, Meta(lt=1)),
        (str, Meta(pattern="^[a-z]+$")),
        (int, Meta(multiple_of=2)),
    ],
    ids=repr,
)
def test_a_type_or_bound_without_a_strict_check_cannot_be_declared(tp, constraint):
    with pytest.raises(TypeError):
        strict_check(tp, constraint)


@pytest.mark.parametrize(
    ("tp", "constraint", "named"),
    [(int, Meta(gt=0), Meta(gt=0)), (list[int], None, list[int]), (dict[str, list[int]], None, list[int])],
    ids=repr,
)
def test_a_declaration_without_a_strict_check_names_what_has_none(tp, constraint, named):
    with pytest.raises(TypeError) as caught:
        strict_check(tp, constraint)

    assert str(caught.value) == f"no strict check for {named!r}"


@pytest.mark.parametrize("field", [f for f in FIELDS if f.constraint is not None], ids=lambda f: f.name)
def test_a_value_beyond_a_declared_bound_is_refused_by_both_paths(field):
    bound = field.constraint
    if bound.min_length:
        value = ""
    elif bound.max_length is not None:
        value = "x" * (bound.max_length + 1)
    elif bound.le is not None:
        value = bound.le + 1
    else:
        value = bound.ge - 1

    fast, strict = both_paths(event(**{field.name: value}))

    assert fast is None
    assert {"index": 0, "field": field.name, "message": field.message} in strict


@pytest.mark.parametrize("field", [f.name for f in FIELDS if f.default is msgspec.NODEFAULT])
def test_a_required_field_sent_as_null_is_refused_by_both_paths(field):
    fast, strict = both_paths(event(**{field: None}))

    assert fast is None
    assert strict[0]["field"] == field


def test_an_event_that_is_not_an_object_is_named_and_the_next_ones_still_checked():
    fast, strict = both_paths(event(event_id="e-0"), 5, event(event_id="e-2", latency_ms=-1))

    assert fast is None
    assert strict == [
        {"index": 1, "field": "", "message": "each event must be an object"},
        {"index": 2, "field": "latency_ms", "message": "required: a finite number >= 0"},
    ]


def test_two_unknown_names_are_both_named():
    fast, strict = both_paths(event(latency=3, zz=1))

    assert fast is None
    assert strict == [{"index": 0, "field": "latency", "message": "unknown field (and zz)"}]

"""POST /api/v1/otel: OTLP/HTTP JSON GenAI spans become events, through the same ingestion as /api/v1/events."""

from datetime import UTC, date, datetime

import pytest

from monitoring import services
from monitoring.models import Event
from registry import services as registry_services
from tests.factories import register
from tests.prompts.conftest import brief_folder
from tests.registry.test_api import assert_error_shape

pytestmark = pytest.mark.django_db

M = 1_000_000
START = 1_795_596_000_123_456_789  # 2026-11-25 08:40:00.123456789 UTC


def attr(key: str, value) -> dict:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}  # int64 travels as a string in OTLP JSON
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"stringValue": value}}


def span(span_id: str, attributes: dict, *, start: int = START, duration_ms: int = 1500, status: int = 1) -> dict:
    return {
        "traceId": "5b8efff798038103d269b633813fc60c", "spanId": span_id, "name": "chat gpt-4o", "kind": 3,
        "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + duration_ms * 1_000_000),
        "status": {"code": status}, "attributes": [attr(k, v) for k, v in attributes.items()],
    }


def traces(spans: list[dict], resource: dict | None = None) -> dict:
    resource = {"service.name": "summarizer"} if resource is None else resource
    return {"resourceSpans": [{
        "resource": {"attributes": [attr(k, v) for k, v in resource.items()]},
        "scopeSpans": [{"scope": {"name": "opentelemetry.instrumentation.openai"}, "spans": spans}],
    }]}


@pytest.fixture
def prompts(editor):
    registry_services.prompts_import(files=brief_folder(), actor=editor)  # summarize v1-3 run claude-sonnet-4
    services.price_set(pattern="gpt-4o", input_per_token=2.5 / M, output_per_token=10 / M, cached_input_per_token=1.25 / M,
                    effective_from=date(2026, 1, 1), actor=editor)


SUMMARIZE = {"mlops.prompt": "summarize", "mlops.prompt.version": 2}


def test_genai_spans_become_priced_events(api_as, editor, prompts):
    body = traces([
        span("aaaaaaaaaaaaaaa1", SUMMARIZE | {
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 300, "gen_ai.usage.cache_read_input_tokens": 200,
            "enduser.id": "user-7",
        }, status=2),
        span("aaaaaaaaaaaaaaa2", {"http.route": "/summarize"}),  # not a GenAI span
    ])

    response = api_as(editor).post("/api/v1/otel", body, format="json")

    assert response.status_code == 202, response.content
    assert response.json() == {"accepted": 1, "duplicates": 0, "skipped": 1}
    stored = Event.objects.get()
    assert stored.event_id == "5b8efff798038103d269b633813fc60c:aaaaaaaaaaaaaaa1"
    assert stored.timestamp == datetime(2026, 11, 25, 8, 40, 0, 123456, tzinfo=UTC)
    assert (stored.latency_ms, stored.error, stored.unit_id, stored.llm_model) == (1500.0, True, "user-7", "gpt-4o")
    assert (stored.input_tokens, stored.output_tokens, stored.cached_tokens) == (1200, 300, 200)
    assert stored.prompt_version.version == 2 and stored.prompt_version.prompt.name == "summarize"
    # (1,000 x 2.5 + 200 x 1.25 + 300 x 10) / 1M
    assert stored.cost_usd == pytest.approx(0.00575, rel=1e-12) and not stored.pricing_missing


@pytest.mark.parametrize(
    "usage",
    [
        {"gen_ai.usage.prompt_tokens": 1000, "gen_ai.usage.completion_tokens": 100},
        {"prompt_tokens": 1000, "completion_tokens": 100},
    ],
)
def test_older_token_attribute_names(api_as, editor, prompts, usage):
    body = traces([span("bbbbbbbbbbbbbbb1", usage | {"gen_ai.request.model": "gpt-4o"})], resource=SUMMARIZE)

    response = api_as(editor).post("/api/v1/otel", body, format="json")

    assert response.json() == {"accepted": 1, "duplicates": 0, "skipped": 0}
    stored = Event.objects.get()
    assert (stored.input_tokens, stored.output_tokens, stored.error) == (1000, 100, False)
    assert stored.cost_usd == pytest.approx((1000 * 2.5 + 100 * 10) / M)


def test_subject_from_the_resource_the_spans_own_wins_and_the_prompts_llm_fills_in(api_as, editor, prompts):
    register("router", editor)
    body = traces([
        span("ccccccccccccccc1", {"gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 2}),
        span("ccccccccccccccc2", {"gen_ai.request.model": "gpt-4o", "mlops.model": "router", "mlops.model.version": "1"}),
    ], resource={"service.name": "app"} | SUMMARIZE)

    api_as(editor).post("/api/v1/otel", body, format="json")

    first, second = Event.objects.order_by("event_id")
    assert first.prompt_version.version == 2 and first.llm_model == "claude-sonnet-4"
    assert (first.cost_usd, first.pricing_missing) == (None, True)  # tokens, but claude-sonnet-4 has no price here
    assert second.model_version.model.name == "router" and second.prompt_version is None


def test_resent_spans_are_duplicates(api_as, editor, prompts):
    body = traces([span("ddddddddddddddd1", SUMMARIZE | {"gen_ai.request.model": "gpt-4o"})])
    client = api_as(editor)

    client.post("/api/v1/otel", body, format="json")
    again = client.post("/api/v1/otel", body, format="json")

    assert again.json() == {"accepted": 0, "duplicates": 1, "skipped": 0}
    assert Event.objects.count() == 1


def test_only_non_genai_spans_is_accepted_and_counted(api_as, editor):
    body = traces([span("eeeeeeeeeeeeeee1", {"http.method": "GET"}), span("eeeeeeeeeeeeeee2", {})])

    response = api_as(editor).post("/api/v1/otel", body, format="json")

    assert (response.status_code, response.json()) == (202, {"accepted": 0, "duplicates": 0, "skipped": 2})


@pytest.mark.parametrize(
    ("change", "field", "where"),
    [
        ({"mlops.prompt": None}, "mlops.prompt", "spans[1]"),
        ({"mlops.prompt.version": 9}, "version", "spans[1]"),
        ({"gen_ai.usage.input_tokens": -4}, "input_tokens", "spans[1]"),
    ],
)
def test_a_bad_span_refuses_the_whole_request_naming_the_span(api_as, editor, prompts, change, field, where):
    good = span("fffffffffffffff1", SUMMARIZE | {"gen_ai.request.model": "gpt-4o"})
    attributes = {k: v for k, v in (SUMMARIZE | {"gen_ai.request.model": "gpt-4o"} | change).items() if v is not None}

    body = assert_error_shape(api_as(editor).post("/api/v1/otel", traces([good, span("fffffffffffffff2", attributes)]), format="json"), 400, "invalid")

    error = body["extra"]["errors"][0]
    assert (error["field"], error["span"]) == (field, f"resourceSpans[0].scopeSpans[0].{where}")
    assert body["message"].startswith("Spans refused, nothing stored: resourceSpans[0].scopeSpans[0].spans[1]")
    assert not Event.objects.exists()


def test_a_span_ending_before_it_starts_is_refused(api_as, editor, prompts):
    bad = span("ggggggggggggggg1", SUMMARIZE | {"gen_ai.request.model": "gpt-4o"})
    bad["endTimeUnixNano"] = str(START - 1)

    body = assert_error_shape(api_as(editor).post("/api/v1/otel", traces([bad]), format="json"), 400, "invalid")

    assert body["extra"]["errors"][0]["field"] == "startTimeUnixNano"


@pytest.mark.parametrize(
    "payload",
    [
        [],
        {"resourceSpans": {"not": "a list"}},
        {"resourceSpans": ["nope"]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{"attributes": "gen_ai.request.model=gpt-4o"}]}]}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{"attributes": [{"value": {"stringValue": "gpt-4o"}}]}]}]}]},
    ],
)
def test_a_malformed_body_is_400_in_the_one_shape(api_as, editor, payload):
    body = assert_error_shape(api_as(editor).post("/api/v1/otel", payload, format="json"), 400, "invalid")

    assert body["message"].startswith("Not OTLP JSON")


def test_not_json_is_400(api_as, editor):
    assert_error_shape(api_as(editor).post("/api/v1/otel", b"{resourceSpans", content_type="application/json"), 400)


def test_viewers_cannot_send_spans(api_as, viewer, prompts):
    body = traces([span("hhhhhhhhhhhhhhh1", SUMMARIZE | {"gen_ai.request.model": "gpt-4o"})])

    assert_error_shape(api_as(viewer).post("/api/v1/otel", body, format="json"), 403)
    assert_error_shape(api_as(None).post("/api/v1/otel", body, format="json"), 401)
    assert not Event.objects.exists()

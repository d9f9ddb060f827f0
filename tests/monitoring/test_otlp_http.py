"""POST /api/v1/otel/v1/traces: OTLP/HTTP as OpenTelemetry's own Python SDK and OTLP/HTTP exporter send it
(protobuf, gzip or not), against the live server; the answer is parsed back with OTLP's own proto classes."""

import gzip
import json
from datetime import UTC, date, datetime

import pytest
import requests
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status as SpanStatus
from opentelemetry.trace import StatusCode

from mlops_site.roles import user_token_refresh
from monitoring import services
from monitoring.models import Event
from registry import services as registry_services
from tests.monitoring.test_otel import SUMMARIZE, attr, span, traces
from tests.prompts.conftest import brief_folder
from tests.registry.test_api import assert_error_shape

pytestmark = pytest.mark.django_db(transaction=True)

M = 1_000_000
PATH = "/api/v1/otel/v1/traces"
# The GenAI semantic conventions' current attribute names.
CURRENT = {
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.usage.input_tokens": 1200,
    "gen_ai.usage.output_tokens": 300,
    "gen_ai.usage.cache_read.input_tokens": 200,
    "gen_ai.usage.cache_creation.input_tokens": 100,
    "gen_ai.usage.reasoning.output_tokens": 50,
    "gen_ai.conversation.id": "conv-42",
    "enduser.id": "user-7",
}


@pytest.fixture
def key(editor):
    registry_services.prompts_import(files=brief_folder(), actor=editor)  # summarize v1-3
    services.price_set(
        pattern="gpt-4o*",
        input_per_token=2.5 / M,
        output_per_token=10 / M,
        cached_input_per_token=1.25 / M,
        cache_creation_per_token=3.125 / M,
        effective_from=date(2026, 1, 1),
        actor=editor,
    )
    return user_token_refresh(user=editor)


class Recording(SpanExporter):
    """The SDK's exporter, keeping what each export returned (the batch processor drops it)."""

    def __init__(self, exporter):
        self.exporter, self.results = exporter, []

    def export(self, spans):
        self.results.append(self.exporter.export(spans))
        return self.results[-1]

    def shutdown(self):
        self.exporter.shutdown()


def emit(exporter, spans: list[dict], resource: dict | None = None) -> list:
    """Emit `spans` ({name, attributes, error}) through a real TracerProvider and batch processor, flush, return the export results."""
    recording = Recording(exporter)
    provider = TracerProvider(resource=Resource.create({"service.name": "summarizer", **(resource or {})}))
    provider.add_span_processor(BatchSpanProcessor(recording))
    tracer = provider.get_tracer("tests.otlp")
    for s in spans:
        with tracer.start_as_current_span(s.get("name", "chat gpt-4o"), attributes=s["attributes"]) as current:
            if s.get("error"):
                current.set_status(SpanStatus(StatusCode.ERROR))

    assert provider.force_flush(timeout_millis=30_000)
    provider.shutdown()
    return recording.results


def sdk_request(spans: list[dict], resource: dict | None = None) -> tuple[bytes, list]:
    """The protobuf ExportTraceServiceRequest the SDK's exporter would send for `spans`, and the finished spans."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "summarizer", **(resource or {})}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests.otlp")
    for s in spans:
        with tracer.start_as_current_span("chat", attributes=s["attributes"]):
            pass
    finished = memory.get_finished_spans()
    return encode_spans(finished).SerializeToString(), finished


def post(live_server, key, body: bytes, content_type="application/x-protobuf", **headers):
    return requests.post(
        f"{live_server.url}{PATH}",
        data=body,
        timeout=30,
        headers={"Authorization": f"Bearer {key}", "Content-Type": content_type, **headers},
    )


def test_otlp_http_sdk_exporter_spans_become_priced_events(live_server, key):
    exporter = OTLPSpanExporter(endpoint=f"{live_server.url}{PATH}", headers={"Authorization": f"Bearer {key}"})

    results = emit(exporter, [{"attributes": SUMMARIZE | CURRENT, "error": True}])

    assert results == [SpanExportResult.SUCCESS]
    stored = Event.objects.get()
    assert (stored.llm_model, stored.unit_id, stored.error) == ("gpt-4o-2024-08-06", "conv-42", True)
    assert (stored.input_tokens, stored.output_tokens, stored.cached_tokens) == (1200, 300, 200)
    assert (stored.cache_creation_tokens, stored.reasoning_tokens) == (100, 50)
    assert stored.prompt_version.prompt.name == "summarize" and stored.prompt_version.version == 2
    assert len(stored.event_id) == 32 + 1 + 16 and stored.event_id.count(":") == 1
    # Cache reads and writes are inside the 1,200 input tokens: 900 plain, 200 read, 100 written.
    assert stored.cost_usd == pytest.approx((900 * 2.5 + 200 * 1.25 + 100 * 3.125 + 300 * 10) / M, rel=1e-12)


def test_otlp_http_event_ids_are_the_spans_hex_ids(live_server, key):
    body, finished = sdk_request([{"attributes": SUMMARIZE | CURRENT}])

    response = post(live_server, key, body)

    assert response.status_code == 200, response.content
    context = finished[0].context
    assert Event.objects.get().event_id == f"{context.trace_id:032x}:{context.span_id:016x}"


def test_otlp_http_base_endpoint_from_the_environment_and_older_attribute_names(live_server, key, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"{live_server.url}/api/v1/otel")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Bearer {key}")
    older = {
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.prompt_tokens": 1000,
        "gen_ai.usage.completion_tokens": 100,
        "gen_ai.usage.cache_read_input_tokens": 400,
        "gen_ai.usage.reasoning_tokens": 20,
        "session.id": "s-1",
    }

    results = emit(OTLPSpanExporter(), [{"attributes": older}], resource=SUMMARIZE)

    assert results == [SpanExportResult.SUCCESS]
    stored = Event.objects.get()
    assert (stored.llm_model, stored.unit_id) == ("gpt-4o", "s-1")
    assert (stored.input_tokens, stored.output_tokens, stored.cached_tokens, stored.reasoning_tokens) == (1000, 100, 400, 20)
    assert stored.cost_usd == pytest.approx((600 * 2.5 + 400 * 1.25 + 100 * 10) / M, rel=1e-12)


def test_otlp_http_gzip_compressed_export_is_stored(live_server, key):
    exporter = OTLPSpanExporter(
        endpoint=f"{live_server.url}{PATH}", headers={"Authorization": f"Bearer {key}"}, compression=Compression.Gzip
    )

    results = emit(exporter, [{"attributes": SUMMARIZE | CURRENT}, {"attributes": SUMMARIZE | CURRENT}])

    assert results == [SpanExportResult.SUCCESS]
    assert Event.objects.count() == 2 and {e.input_tokens for e in Event.objects.all()} == {1200}


def test_otlp_http_span_without_our_attributes_is_rejected_alone(live_server, key):
    body, _ = sdk_request(
        [
            {"attributes": SUMMARIZE | CURRENT},
            {"attributes": {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 10}},  # no mlops.prompt
            {"attributes": {"mlops.prompt": "summarize", "mlops.prompt.version": 99, "gen_ai.usage.input_tokens": 10}},  # no such version
            {"attributes": {"http.route": "/summarize"}},  # not a GenAI span: ignored, not rejected
            {"attributes": SUMMARIZE | CURRENT},
        ]
    )

    response = post(live_server, key, body)

    assert response.status_code == 200, response.content
    assert response.headers["Content-Type"] == "application/x-protobuf"
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.HasField("partial_success") and answer.partial_success.rejected_spans == 2
    assert "mlops.prompt" in answer.partial_success.error_message
    assert Event.objects.count() == 2


def test_otlp_http_all_taken_answers_an_empty_response(live_server, key):
    body, _ = sdk_request([{"attributes": SUMMARIZE | CURRENT}, {"attributes": {"http.route": "/"}}])

    response = post(live_server, key, gzip.compress(body), **{"Content-Encoding": "gzip"})

    assert response.status_code == 200, response.content
    assert not ExportTraceServiceResponse.FromString(response.content).HasField("partial_success")
    assert Event.objects.count() == 1


def test_otlp_http_json_still_works_with_partial_success(live_server, key):
    body = traces([span("aaaaaaaaaaaaaaa1", SUMMARIZE | CURRENT), span("aaaaaaaaaaaaaaa2", {"gen_ai.usage.input_tokens": 5})])

    response = post(live_server, key, json.dumps(body).encode(), content_type="application/json")

    assert response.status_code == 200, response.content
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["partialSuccess"]["rejectedSpans"] == 1
    assert Event.objects.get().event_id == "5b8efff798038103d269b633813fc60c:aaaaaaaaaaaaaaa1"


def test_otlp_http_garbage_protobuf_is_400_with_an_rpc_status(live_server, key):
    response = post(live_server, key, b"\xff\xff\xff\xff not a protobuf")

    assert response.status_code == 400
    status = Status.FromString(response.content)
    assert status.code == 3 and "not an OTLP ExportTraceServiceRequest" in status.message
    assert not Event.objects.exists()


def test_otlp_http_gzip_bomb_is_413(live_server, key, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
    bomb = gzip.compress(b'{"resourceSpans": [' + b" " * (8 * 1024 * 1024) + b"]}")  # 8 MB of spaces in about 8 KB

    response = post(live_server, key, bomb, content_type="application/json", **{"Content-Encoding": "gzip"})

    assert len(bomb) < 64 * 1024
    assert_error_shape(response, 413, "too_large")


def test_otlp_http_bad_gzip_is_400_and_other_types_415(live_server, key):
    bad_gzip = post(live_server, key, b"plain, not gzip", **{"Content-Encoding": "gzip"})
    other_type = post(live_server, key, b"<spans/>", content_type="application/xml")
    other_encoding = post(live_server, key, b"...", **{"Content-Encoding": "br"})

    assert bad_gzip.status_code == 400 and "gzip" in Status.FromString(bad_gzip.content).message
    assert_error_shape(other_type, 415, "unsupported_media_type")
    assert_error_shape(other_encoding, 415, "unsupported_media_type")


def test_otlp_http_needs_an_editor_token(live_server, key, viewer):
    body, _ = sdk_request([{"attributes": SUMMARIZE | CURRENT}])

    anonymous = requests.post(f"{live_server.url}{PATH}", data=body, timeout=30, headers={"Content-Type": "application/x-protobuf"})
    as_viewer = post(live_server, user_token_refresh(user=viewer), body)

    assert anonymous.status_code == 401 and as_viewer.status_code == 403
    assert not Event.objects.exists()


def test_otlp_http_old_path_keeps_its_answer(api_as, editor, key):
    body = traces([span("aaaaaaaaaaaaaaa1", SUMMARIZE | CURRENT)])

    response = api_as(editor).post("/api/v1/otel", body, format="json")

    assert response.status_code == 202, response.content
    assert response.json() == {"accepted": 1, "duplicates": 0, "skipped": 0}
    assert Event.objects.get().timestamp == datetime(2026, 11, 25, 8, 40, 0, 123456, tzinfo=UTC)


def test_otlp_http_json_ids_keep_hex_and_kinds(live_server, key):
    body = traces([span("aaaaaaaaaaaaaaa1", SUMMARIZE | {"gen_ai.usage.input_tokens": 7, "gen_ai.conversation.id": "c"})])
    body["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"].append(attr("mlops.unit_id", "u-1"))

    response = post(live_server, key, json.dumps(body).encode(), content_type="application/json; charset=utf-8")

    assert response.status_code == 200 and response.json() == {}
    assert Event.objects.get().unit_id == "u-1"  # mlops.unit_id wins over gen_ai.conversation.id

"""REST API of ingestion: served-request events, their labels, and OpenTelemetry GenAI spans as events.

`POST /api/v1/otel/v1/traces` takes OTLP/HTTP traces as exporters send them (protobuf or JSON, gzip or not; an
exporter whose OTLP endpoint is `.../api/v1/otel` appends `/v1/traces`) and answers as the OTLP spec says;
`POST /api/v1/otel`, the older path, takes OTLP/JSON and answers with counts. monitoring/otlp.py turns each span
with GenAI attributes into one event, which goes through the same ingestion as `POST /api/v1/events`: same
validation, duplicates and cost.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from mlops_site.exceptions import TooLarge, ValidationFailed
from mlops_site.parsers import StrictJSONError, strict_loads
from mlops_site.roles import IsEditor
from mlops_site.uploads import read_body

from .. import otlp, otlp_wire, services
from ..events import validate_body
from .serializers import EventBatchIn, IngestOut, LabelBatchIn, LabelsOut, OtelIngestOut, OtlpExportOut, OtlpTracesIn


class EventIngestApi(APIView):
    """`{"events": [...]}`, up to 10,000 served requests. 202 `{"accepted", "duplicates"}`; a bad batch is refused whole."""

    permission_classes = [IsEditor]

    @extend_schema(request=EventBatchIn, responses={202: IngestOut})
    def post(self, request):
        # The fast path reads the raw body; a body it cannot vouch for goes through DRF's strict
        # parser and the full validation, which name every problem.
        events = validate_body(request.body) if request.content_type == "application/json" else None
        if events is None:
            result = services.events_ingest(payload=request.data, actor=request.user)
        else:
            result = services.events_ingest(events=events, actor=request.user)
        return Response(IngestOut(result).data, status=status.HTTP_202_ACCEPTED)


class LabelsApi(APIView):
    """`{"labels": [{"event_id", "label"}]}` (up to 10,000): ground truth for served events, joined by event_id."""

    permission_classes = [IsEditor]

    @extend_schema(request=LabelBatchIn, responses={202: LabelsOut})
    def post(self, request):
        result = services.labels_attach(payload=request.data, actor=request.user)
        return Response(LabelsOut(result).data, status=status.HTTP_202_ACCEPTED)


def _refused(problems: list[dict]) -> ValidationFailed:
    error = ValidationFailed(otlp.refusal_message(problems))
    error.extra["errors"] = problems[:100]
    return error


class OtelTracesApi(APIView):
    """OTLP/HTTP JSON traces (`{"resourceSpans": [...]}`): each span with GenAI attributes becomes one event,
    ingested like `POST /api/v1/events` (same validation, duplicates and cost; at most 10,000 per request).

    Span attributes read: gen_ai.response.model (else gen_ai.request.model), gen_ai.usage.input_tokens and
    gen_ai.usage.output_tokens (or gen_ai.usage.prompt_tokens / completion_tokens, or plain prompt_tokens /
    completion_tokens), gen_ai.usage.cache_read.input_tokens, cache_creation.input_tokens and
    reasoning.output_tokens (or their older names); status.code 2 is an error. The registry entry comes from
    `mlops.prompt` + `mlops.prompt.version` or `mlops.model` + `mlops.model.version` on the span or its resource;
    the unit from `mlops.unit_id`, `gen_ai.conversation.id`, `enduser.id` or `session.id`. Spans without GenAI attributes are
    skipped and counted. 202 `{"accepted", "duplicates", "skipped"}`; any bad span refuses the whole request (400).
    """

    permission_classes = [IsEditor]

    @extend_schema(request=OtlpTracesIn, responses={202: OtelIngestOut})
    def post(self, request):
        try:
            events, paths, skipped, problems = otlp.otlp_events(request.data)
        except otlp.OtlpError as exc:
            raise ValidationFailed(str(exc), fields={exc.where: [exc.expected]}, code="invalid") from None
        if problems:
            raise _refused(problems)
        if not events:
            return Response(OtelIngestOut({"accepted": 0, "duplicates": 0, "skipped": skipped}).data, status=status.HTTP_202_ACCEPTED)
        try:
            result = services.events_ingest(payload={"events": events}, actor=request.user)
        except ValidationFailed as exc:
            errors = exc.extra.get("errors")
            if not errors:
                raise
            # Name the span and its attribute, not our event's index and field: the client sent spans.
            raise _refused([{**e, "span": paths[e["index"]] if e.get("index") is not None else "body"} for e in errors]) from None
        answer = {"accepted": result.accepted, "duplicates": result.duplicates, "skipped": skipped}
        return Response(OtelIngestOut(answer).data, status=status.HTTP_202_ACCEPTED)


class UnsupportedMediaType(ValidationFailed):
    status, code = 415, "unsupported_media_type"


def _ingest_what_passes(events: list[dict], paths: list[str], problems: list[dict], *, actor) -> list[dict]:
    """Store the events no problem names and return every problem, those of validation included: a bad span is
    rejected alone (OTLP's partial success), never with its batch. A problem of the whole batch (over 10,000
    events) still refuses it."""
    bad = {p["index"] for p in problems}
    while True:
        kept = [i for i in range(len(events)) if i not in bad]
        if not kept:
            return problems
        try:
            services.events_ingest(payload={"events": [events[i] for i in kept]}, actor=actor)
            return problems
        except ValidationFailed as exc:
            errors = exc.extra.get("errors")
            if not errors or any(e.get("index") is None for e in errors):
                raise
            # Validation names the index in the batch it was given: back to the span's index.
            found = [{**e, "index": kept[e["index"]], "span": paths[kept[e["index"]]]} for e in errors]
            problems = problems + found
            bad |= {e["index"] for e in found}


class OtlpHttpTracesApi(APIView):
    """OTLP/HTTP traces as an OpenTelemetry exporter sends them: point OTEL_EXPORTER_OTLP_ENDPOINT at
    `https://HOST/api/v1/otel` (the exporter appends `/v1/traces`), with `Authorization: Bearer <token>`.

    Body: an ExportTraceServiceRequest in protobuf (`application/x-protobuf`) or OTLP/JSON (`application/json`),
    `Content-Encoding: gzip` or none. Each span with GenAI attributes becomes one event, read as `POST /api/v1/otel`
    reads it, and ingested like `POST /api/v1/events`; spans without GenAI attributes are ignored. 200 with an
    ExportTraceServiceResponse in the request's encoding: empty when every span was taken, else `partial_success`
    {rejected_spans, error_message} counting the GenAI spans that could not be stored (no `mlops.prompt` /
    `mlops.model`, an unknown version, a bad value); the others are stored. 400 for a body that does not decode
    (a google.rpc.Status for a protobuf request), 413 over the size limit (the gzip body inflated too), 415 for
    another content type or encoding.
    """

    permission_classes = [IsEditor]

    @extend_schema(
        request={otlp_wire.JSON: OtlpTracesIn, otlp_wire.PROTOBUF: OpenApiTypes.BINARY},
        responses={
            200: OtlpExportOut,
            400: OpenApiResponse(description="undecodable body"),
            413: OpenApiResponse(description="too large"),
            415: OpenApiResponse(description="unsupported media type"),
        },
    )
    def post(self, request):
        try:
            kind = otlp_wire.media_type(request.META.get("CONTENT_TYPE", ""))
            encoding = request.META.get("HTTP_CONTENT_ENCODING", "")
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            data = otlp_wire.inflate(read_body(request, limit=limit, what="The OTLP body"), encoding, limit=limit)
        except otlp_wire.Unsupported as exc:
            raise UnsupportedMediaType(str(exc)) from None
        except otlp_wire.Inflated as exc:
            raise TooLarge(str(exc)) from None
        except otlp_wire.Undecodable as exc:
            return self._undecodable(request, str(exc))
        try:
            body = otlp_wire.protobuf_traces(data) if kind == otlp_wire.PROTOBUF else strict_loads(data)
            events, paths, _, problems = otlp.otlp_events(body)
        except otlp_wire.Undecodable as exc:
            return self._undecodable(request, str(exc))
        except StrictJSONError as exc:
            raise ValidationFailed(f"Malformed JSON: {exc}", code="parse_error") from None
        except otlp.OtlpError as exc:
            raise ValidationFailed(str(exc), fields={exc.where: [exc.expected]}, code="invalid") from None
        problems = _ingest_what_passes(events, paths, problems, actor=request.user)
        rejected = len({p["index"] for p in problems})
        message = otlp.refusal_message(problems, lead="Spans rejected") if problems else ""
        return HttpResponse(otlp_wire.answer(kind, rejected=rejected, message=message), content_type=kind)

    @staticmethod
    def _undecodable(request, message: str):
        if (request.META.get("CONTENT_TYPE") or "").split(";")[0].strip().lower() == otlp_wire.PROTOBUF:
            return HttpResponse(otlp_wire.rpc_status(3, message), status=400, content_type=otlp_wire.PROTOBUF)
        raise ValidationFailed(message, code="parse_error")

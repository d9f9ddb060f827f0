"""REST API of ingestion: served-request events, their labels, and OpenTelemetry GenAI spans as events.

`POST /api/v1/otel` takes OTLP/HTTP JSON traces (point an OpenTelemetry exporter's traces endpoint here);
monitoring/otlp.py turns each span with GenAI attributes into one event, which goes through the same ingestion
as `POST /api/v1/events`: same validation, duplicates and cost.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from mlops_site.exceptions import ValidationFailed
from mlops_site.roles import IsEditor

from .. import otlp, services
from ..events import validate_body
from .serializers import EventBatchIn, IngestOut, LabelBatchIn, LabelsOut, OtelIngestOut, OtlpTracesIn


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

    Span attributes read: gen_ai.request.model, gen_ai.response.model, gen_ai.usage.input_tokens and
    gen_ai.usage.output_tokens (or gen_ai.usage.prompt_tokens / completion_tokens, or plain prompt_tokens /
    completion_tokens), gen_ai.usage.cache_read_input_tokens; status.code 2 is an error. The registry entry comes
    from `mlops.prompt` + `mlops.prompt.version` or `mlops.model` + `mlops.model.version` on the span or its
    resource; the unit from `mlops.unit_id`, `enduser.id` or `session.id`. Spans without GenAI attributes are
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

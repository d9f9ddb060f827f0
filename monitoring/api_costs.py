"""REST API of LLM cost (`/api/v1/`): the price table, and OpenTelemetry GenAI spans as events.

`POST /api/v1/otel` takes OTLP/HTTP JSON traces (point an OpenTelemetry exporter's traces endpoint
here); monitoring/otlp.py turns each span with GenAI attributes into one event, which goes through
the same ingestion as `POST /api/v1/events`: same validation, duplicates and cost.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from mlops_site.exceptions import ValidationFailed
from mlops_site.roles import IsEditor, IsViewer
from mlops_site.serializers import StrictSerializer

from . import otlp, selectors, services
from .models import Price


class PriceSetInput(StrictSerializer):
    pattern = serializers.CharField(help_text="an exact LLM model name, or a glob such as gpt-4o-mini*")
    input_per_token = serializers.FloatField(help_text="USD per input token")
    output_per_token = serializers.FloatField(help_text="USD per output token")
    cached_input_per_token = serializers.FloatField(required=False, allow_null=True, default=None, help_text="empty: the input price")
    reasoning_per_token = serializers.FloatField(required=False, allow_null=True, default=None, help_text="empty: the output price")
    effective_from = serializers.DateField(help_text="YYYY-MM-DD, the first day (UTC) this price is in force")
    source = serializers.CharField(required=False, allow_blank=True, max_length=50, help_text="default: your user name")


class PriceOutput(serializers.ModelSerializer):
    class Meta:
        model = Price
        fields = ["id", "pattern", "input_per_token", "output_per_token", "cached_input_per_token", "reasoning_per_token",
                  "effective_from", "source", "created_at"]


class PriceListApi(generics.GenericAPIView):
    """GET: the price table, by pattern and newest first (paginated; `?search=` matches the pattern).
    POST (editor): add a price, in USD per token, in force from `effective_from`; the same pattern and date twice is a 409."""

    serializer_class = PriceOutput

    def get_permissions(self):
        return [IsEditor()] if self.request.method == "POST" else [IsViewer()]

    @extend_schema(parameters=[OpenApiParameter("search", str)], responses=PriceOutput(many=True))
    def get(self, request):
        page = self.paginate_queryset(selectors.price_list(search=request.query_params.get("search", "").strip()))
        return self.get_paginated_response(PriceOutput(page, many=True).data)

    @extend_schema(request=PriceSetInput, responses={201: PriceOutput})
    def post(self, request):
        serializer = PriceSetInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        data["source"] = data.get("source") or request.user.username
        price = services.price_set(**data, actor=request.user)
        return Response(PriceOutput(price).data, status=status.HTTP_201_CREATED)


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

    @extend_schema(
        request=inline_serializer("OtlpTraces", {"resourceSpans": serializers.ListField(child=serializers.DictField())}),
        responses={202: inline_serializer("OtelIngestResult", {
            "accepted": serializers.IntegerField(), "duplicates": serializers.IntegerField(), "skipped": serializers.IntegerField(),
        })},
    )
    def post(self, request):
        try:
            events, paths, skipped, problems = otlp.otlp_events(request.data)
        except otlp.OtlpError as exc:
            raise ValidationFailed(str(exc), fields={exc.where: [exc.expected]}, code="invalid") from None
        if problems:
            raise _refused(problems)
        if not events:
            return Response({"accepted": 0, "duplicates": 0, "skipped": skipped}, status=status.HTTP_202_ACCEPTED)
        try:
            result = services.events_ingest(payload={"events": events}, actor=request.user)
        except ValidationFailed as exc:
            errors = exc.extra.get("errors")
            if not errors:
                raise
            # Name the span and its attribute, not our event's index and field: the client sent spans.
            raise _refused([{**e, "span": paths[e["index"]] if e.get("index") is not None else "body"} for e in errors]) from None
        return Response({"accepted": result.accepted, "duplicates": result.duplicates, "skipped": skipped}, status=status.HTTP_202_ACCEPTED)

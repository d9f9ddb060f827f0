"""REST API of LLM cost (`/api/v1/`): the price table, and OpenTelemetry GenAI spans as events.

`POST /api/v1/otel` takes OTLP/HTTP JSON traces (what an OpenTelemetry exporter
sends with `OTEL_EXPORTER_OTLP_PROTOCOL=http/json` to `.../v1/traces`; point its
traces endpoint here). Each span with GenAI attributes becomes one event and goes
through the same ingestion as `POST /api/v1/events`: same validation,
duplicates and cost. Which registry entry a span belongs to comes from these
attributes, on the span or on its resource (the span's own win):

    mlops.prompt + mlops.prompt.version    a prompt version, or
    mlops.model + mlops.model.version      a model version
    mlops.unit_id (else enduser.id, session.id)   the unit_id (user or session)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from mlops_site.exceptions import ValidationFailed
from mlops_site.roles import IsEditor, IsViewer
from mlops_site.serializers import StrictSerializer

from . import selectors, services
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


# --- OpenTelemetry ----------------------------------------------------------------------------

INPUT_TOKENS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "prompt_tokens")
OUTPUT_TOKENS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "completion_tokens")
CACHED_TOKENS = ("gen_ai.usage.cache_read_input_tokens", "gen_ai.usage.cache_read.input_tokens")
REASONING_TOKENS = ("gen_ai.usage.reasoning_tokens",)
LLM_MODEL = ("gen_ai.response.model", "gen_ai.request.model")
UNIT_ID = ("mlops.unit_id", "enduser.id", "session.id")
PLAIN_TOKEN_KEYS = {"prompt_tokens", "completion_tokens"}
STATUS_ERROR = (2, "2", "STATUS_CODE_ERROR")
# Where an event field came from, to name it in an error.
FIELD_SOURCE = {
    "model": "mlops.model or mlops.prompt", "prompt": "mlops.prompt", "version": "mlops.model.version or mlops.prompt.version",
    "event_id": "traceId and spanId", "timestamp": "startTimeUnixNano", "latency_ms": "endTimeUnixNano - startTimeUnixNano",
    "input_tokens": INPUT_TOKENS[0], "output_tokens": OUTPUT_TOKENS[0], "cached_tokens": CACHED_TOKENS[0],
    "reasoning_tokens": REASONING_TOKENS[0], "llm_model": "gen_ai.response.model or gen_ai.request.model", "unit_id": UNIT_ID[0],
}


def _malformed(where: str, expected: str) -> ValidationFailed:
    return ValidationFailed(f"Not OTLP JSON: {where} must be {expected}.", fields={where: [expected]}, code="invalid")


def _list(container: dict, key: str, where: str) -> list:
    value = container.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _malformed(f"{where}.{key}", "a list")
    return value


def _value(any_value):
    """The Python value of an OTLP AnyValue (`{"stringValue": ...}`, `{"intValue": "120"}`...). Arrays, maps and bytes: None."""
    if not isinstance(any_value, dict):
        return None
    for kind in ("stringValue", "boolValue", "intValue", "doubleValue"):
        if kind in any_value:
            value = any_value[kind]
            # int64 travels as a JSON string in OTLP (proto3's JSON mapping); a whole double is a count too.
            if kind == "intValue" and isinstance(value, str) and value.lstrip("-").isdigit():
                return int(value)
            if kind == "doubleValue" and isinstance(value, float) and value.is_integer():
                return int(value)
            return value
    return None


def _attributes(container: dict, where: str) -> dict:
    out = {}
    for i, item in enumerate(_list(container, "attributes", where)):
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise _malformed(f"{where}.attributes[{i}]", 'an object {"key", "value"}')
        out[item["key"]] = _value(item.get("value"))
    return out


def _first(attributes: dict, keys: tuple[str, ...]):
    return next((attributes[k] for k in keys if attributes.get(k) is not None), None)


def _whole(value):
    """A version number sent as text ("3") is a number; anything else goes to validation as it is."""
    return int(value) if isinstance(value, str) and value.isascii() and value.isdigit() else value


def _subject(attributes: dict) -> dict | None:
    for kind in ("prompt", "model"):
        name = attributes.get(f"mlops.{kind}")
        if name is not None:
            return {kind: name, "version": _whole(attributes.get(f"mlops.{kind}.version"))}
    return None


def _nanos(value) -> int | None:
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    return value if type(value) is int and 0 < value < 253402300800 * 10**9 else None  # up to year 9999


def _is_genai(attributes: dict) -> bool:
    return any(key.startswith("gen_ai.") for key in attributes) or not PLAIN_TOKEN_KEYS.isdisjoint(attributes)


def otlp_events(body) -> tuple[list[dict], list[str], int, list[dict]]:
    """The events of an OTLP/HTTP JSON trace export: (events, the span path of each, spans skipped, problems).

    One event per span with GenAI attributes (`gen_ai.*`, or plain prompt_tokens /
    completion_tokens): event_id traceId:spanId, timestamp from startTimeUnixNano,
    latency end - start, error when status.code is 2, llm_model from
    gen_ai.response.model else gen_ai.request.model, tokens from
    gen_ai.usage.input_tokens / output_tokens (or the older prompt_tokens /
    completion_tokens), cached from gen_ai.usage.cache_read_input_tokens. Other
    spans are skipped. A body that is not OTLP JSON raises ValidationFailed.
    """
    if not isinstance(body, dict):
        raise _malformed("body", 'an object {"resourceSpans": [...]}')
    events, paths, problems, skipped = [], [], [], 0
    for r, resource_spans in enumerate(_list(body, "resourceSpans", "body")):
        where_r = f"resourceSpans[{r}]"
        if not isinstance(resource_spans, dict):
            raise _malformed(where_r, "an object")
        resource = resource_spans.get("resource") or {}
        if not isinstance(resource, dict):
            raise _malformed(f"{where_r}.resource", "an object")
        resource_attributes = _attributes(resource, f"{where_r}.resource")
        # instrumentationLibrarySpans: the name before OTLP 0.15, still sent by old exporters.
        key = "scopeSpans" if "scopeSpans" in resource_spans else "instrumentationLibrarySpans"
        for s, scope_spans in enumerate(_list(resource_spans, key, where_r)):
            where_s = f"{where_r}.{key}[{s}]"
            if not isinstance(scope_spans, dict):
                raise _malformed(where_s, "an object")
            for k, span in enumerate(_list(scope_spans, "spans", where_s)):
                where = f"{where_s}.spans[{k}]"
                if not isinstance(span, dict):
                    raise _malformed(where, "an object")
                attributes = _attributes(span, where)
                if not _is_genai(attributes):
                    skipped += 1
                    continue
                index = len(events)
                bad = lambda field, message, index=index, where=where: problems.append(  # noqa: E731
                    {"index": index, "span": where, "field": field, "message": message}
                )
                subject = _subject(attributes) or _subject(resource_attributes)
                if subject is None:
                    bad("mlops.prompt", "set mlops.prompt and mlops.prompt.version (or mlops.model and mlops.model.version) on the span or its resource")
                    subject = {}
                trace_id, span_id = span.get("traceId"), span.get("spanId")
                if not isinstance(trace_id, str) or not trace_id or not isinstance(span_id, str) or not span_id:
                    bad("traceId", "traceId and spanId are required (hex strings)")
                start, end = _nanos(span.get("startTimeUnixNano")), _nanos(span.get("endTimeUnixNano"))
                if start is None or end is None or end < start:
                    bad("startTimeUnixNano", "startTimeUnixNano and endTimeUnixNano are required, nanoseconds since 1970, end >= start")
                    start = end = 0
                span_status = span.get("status") if isinstance(span.get("status"), dict) else {}
                event = {
                    "event_id": f"{trace_id}:{span_id}", **subject,
                    "timestamp": (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=start // 1000)).isoformat(),
                    "latency_ms": (end - start) / 1e6, "error": span_status.get("code") in STATUS_ERROR,
                    "llm_model": _first(attributes, LLM_MODEL) or "",
                    "unit_id": _first(attributes, UNIT_ID) or _first(resource_attributes, UNIT_ID) or "",
                }
                for field, keys in (("input_tokens", INPUT_TOKENS), ("output_tokens", OUTPUT_TOKENS),
                                    ("cached_tokens", CACHED_TOKENS), ("reasoning_tokens", REASONING_TOKENS)):
                    value = _first(attributes, keys)
                    if value is not None:
                        event[field] = value
                if not isinstance(event["unit_id"], str):
                    event["unit_id"] = str(event["unit_id"])
                events.append(event)
                paths.append(where)
    return events, paths, skipped, problems


def _refused(problems: list[dict]) -> ValidationFailed:
    shown = "; ".join(f"{p['span']}: {FIELD_SOURCE.get(p['field'], p['field'])}: {p['message']}" for p in problems[:5])
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    error = ValidationFailed(f"Spans refused, nothing stored: {shown}{more}")
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
        events, paths, skipped, problems = otlp_events(request.data)
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

"""OpenTelemetry GenAI spans (OTLP/HTTP JSON traces) as event dicts for ingestion. No Django.

`POST /api/v1/otel` and `POST /api/v1/otel/v1/traces` take what an OpenTelemetry exporter sends to
`.../v1/traces` (monitoring/otlp_wire.py turns protobuf into this JSON form). Each span with GenAI attributes
becomes one event dict, validated and stored like those of `POST /api/v1/events`. Which registry
entry a span belongs to comes from these attributes, on the span or on its resource (the span's own win):

    mlops.prompt + mlops.prompt.version    a prompt version, or
    mlops.model + mlops.model.version      a model version
    mlops.unit_id (else gen_ai.conversation.id, enduser.id, session.id)   the unit_id (conversation, user or session)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

INPUT_TOKENS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "prompt_tokens")
OUTPUT_TOKENS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "completion_tokens")
# The GenAI semantic conventions' current names first, then the older ones exporters still send.
CACHED_TOKENS = ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens")
REASONING_TOKENS = ("gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens")
CACHE_CREATION_TOKENS = ("gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_creation_input_tokens")
LLM_MODEL = ("gen_ai.response.model", "gen_ai.request.model")
UNIT_ID = ("mlops.unit_id", "gen_ai.conversation.id", "enduser.id", "session.id")
PLAIN_TOKEN_KEYS = {"prompt_tokens", "completion_tokens"}
STATUS_ERROR = (2, "2", "STATUS_CODE_ERROR")
# Where an event field came from, to name it in an error.
FIELD_SOURCE = {
    "model": "mlops.model or mlops.prompt", "prompt": "mlops.prompt", "version": "mlops.model.version or mlops.prompt.version",
    "event_id": "traceId and spanId", "timestamp": "startTimeUnixNano", "latency_ms": "endTimeUnixNano - startTimeUnixNano",
    "input_tokens": INPUT_TOKENS[0], "output_tokens": OUTPUT_TOKENS[0], "cached_tokens": CACHED_TOKENS[0],
    "reasoning_tokens": REASONING_TOKENS[0], "cache_creation_tokens": CACHE_CREATION_TOKENS[0], "llm_model": "gen_ai.response.model or gen_ai.request.model", "unit_id": UNIT_ID[0],
}


class OtlpError(ValueError):
    """A body that is not OTLP JSON: the part at `where` (a path such as resourceSpans[0].scopeSpans[1]) is not `expected`."""

    def __init__(self, where: str, expected: str):
        super().__init__(f"Not OTLP JSON: {where} must be {expected}.")
        self.where, self.expected = where, expected


def _list(container: dict, key: str, where: str) -> list:
    value = container.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise OtlpError(f"{where}.{key}", "a list")
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
            raise OtlpError(f"{where}.attributes[{i}]", 'an object {"key", "value"}')
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
    completion_tokens), cached from gen_ai.usage.cache_read.input_tokens (or the older
    cache_read_input_tokens), reasoning from gen_ai.usage.reasoning.output_tokens, written to a
    cache from gen_ai.usage.cache_creation.input_tokens (both counted inside the input). Other
    spans are skipped. A body that is not OTLP JSON raises OtlpError.
    """
    if not isinstance(body, dict):
        raise OtlpError("body", 'an object {"resourceSpans": [...]}')
    events, paths, problems, skipped = [], [], [], 0
    for r, resource_spans in enumerate(_list(body, "resourceSpans", "body")):
        where_r = f"resourceSpans[{r}]"
        if not isinstance(resource_spans, dict):
            raise OtlpError(where_r, "an object")
        resource = resource_spans.get("resource") or {}
        if not isinstance(resource, dict):
            raise OtlpError(f"{where_r}.resource", "an object")
        resource_attributes = _attributes(resource, f"{where_r}.resource")
        # instrumentationLibrarySpans: the name before OTLP 0.15, still sent by old exporters.
        key = "scopeSpans" if "scopeSpans" in resource_spans else "instrumentationLibrarySpans"
        for s, scope_spans in enumerate(_list(resource_spans, key, where_r)):
            where_s = f"{where_r}.{key}[{s}]"
            if not isinstance(scope_spans, dict):
                raise OtlpError(where_s, "an object")
            for k, span in enumerate(_list(scope_spans, "spans", where_s)):
                where = f"{where_s}.spans[{k}]"
                if not isinstance(span, dict):
                    raise OtlpError(where, "an object")
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
                                    ("cached_tokens", CACHED_TOKENS), ("reasoning_tokens", REASONING_TOKENS),
                                    ("cache_creation_tokens", CACHE_CREATION_TOKENS)):
                    value = _first(attributes, keys)
                    if value is not None:
                        event[field] = value
                if not isinstance(event["unit_id"], str):
                    event["unit_id"] = str(event["unit_id"])
                events.append(event)
                paths.append(where)
    return events, paths, skipped, problems


def refusal_message(problems: list[dict], lead: str = "Spans refused, nothing stored") -> str:
    """The message of refused spans: their first problems by span and attribute (the client sent spans, not events)."""
    shown = "; ".join(f"{p['span']}: {FIELD_SOURCE.get(p['field'], p['field'])}: {p['message']}" for p in problems[:5])
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return f"{lead}: {shown}{more}"

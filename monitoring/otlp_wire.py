"""OTLP/HTTP trace exports as they travel: gzip or not, protobuf or JSON, in; the spec's answer out. No Django.

What an OpenTelemetry exporter sends to `<endpoint>/v1/traces`: the Python SDK and the Collector send
protobuf (`application/x-protobuf`), the Collector gzips it by default (`Content-Encoding: gzip`);
`OTEL_EXPORTER_OTLP_PROTOCOL=http/json` sends `application/json`. A protobuf body becomes the dict an OTLP/JSON
body parses to (camelCase keys, trace and span ids as hex, int64 as decimal text), so monitoring/otlp.py reads
both the same way. The answer is an ExportTraceServiceResponse in the request's encoding; an undecodable
protobuf request is answered with a google.rpc.Status, as the OTLP spec asks.
"""

from __future__ import annotations

import json
import zlib

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse

PROTOBUF, JSON = "application/x-protobuf", "application/json"
ENCODINGS = {"", "identity", "gzip"}


class Undecodable(ValueError):
    """A body that is neither valid gzip nor the protobuf it claims to be (400)."""


class Unsupported(ValueError):
    """A content type or content encoding OTLP/HTTP does not use (415)."""


class Inflated(ValueError):
    """A gzip body that inflates past the limit (413)."""

    def __init__(self, limit: int):
        super().__init__(f"The gzip body inflates to over the limit of {limit} bytes.")
        self.limit = limit


def media_type(content_type: str) -> str:
    """`application/x-protobuf` or `application/json` from a Content-Type header (parameters and case ignored); else Unsupported."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind not in (PROTOBUF, JSON):
        raise Unsupported(f"Content-Type {content_type or '(none)'!r} is not OTLP/HTTP: send {PROTOBUF} or {JSON}.")
    return kind


def inflate(data: bytes, content_encoding: str, *, limit: int) -> bytes:
    """The body without its Content-Encoding (none, identity or gzip), inflated to at most `limit` bytes."""
    encoding = (content_encoding or "").strip().lower()
    if encoding not in ENCODINGS:
        raise Unsupported(f"Content-Encoding {content_encoding!r} is not supported: send gzip or none.")
    if encoding != "gzip":
        return data
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip header and trailer
    try:
        out = inflater.decompress(data, limit + 1)  # never more than the limit + 1 bytes in memory
    except zlib.error as exc:
        raise Undecodable(f"The body is not valid gzip: {exc}.") from None
    if len(out) > limit:
        raise Inflated(limit)
    if not inflater.eof:
        raise Undecodable("The body is not valid gzip: it ends before its last block.")
    return out


def _hex_ids(message, fields: dict) -> None:
    """OTLP/JSON writes trace and span ids as hex, where the proto3 JSON mapping would give base64."""
    for name, key in (("trace_id", "traceId"), ("span_id", "spanId"), ("parent_span_id", "parentSpanId")):
        value = getattr(message, name)
        if value:
            fields[key] = value.hex()


def protobuf_traces(data: bytes) -> dict:
    """An ExportTraceServiceRequest in protobuf as the dict its OTLP/JSON form parses to; Undecodable if it is not one."""
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(data)
    except (DecodeError, RuntimeWarning, ValueError) as exc:
        raise Undecodable(f"The body is not an OTLP ExportTraceServiceRequest in protobuf: {exc or 'cannot decode'}.") from None
    body = json_format.MessageToDict(request, preserving_proto_field_name=False, use_integers_for_enums=True)
    # MessageToDict keeps every element of a repeated field (an empty message becomes {}), so the lists line up.
    for rs_message, rs in zip(request.resource_spans, body.get("resourceSpans", []), strict=True):
        for ss_message, ss in zip(rs_message.scope_spans, rs.get("scopeSpans", []), strict=True):
            for span_message, span in zip(ss_message.spans, ss.get("spans", []), strict=True):
                _hex_ids(span_message, span)
                for link_message, link in zip(span_message.links, span.get("links", []), strict=True):
                    _hex_ids(link_message, link)
    return body


def answer(kind: str, *, rejected: int = 0, message: str = "") -> bytes:
    """An ExportTraceServiceResponse: empty when all was accepted, else partial_success {rejected_spans, error_message}."""
    if kind == PROTOBUF:
        response = ExportTraceServiceResponse()
        if rejected:
            response.partial_success.rejected_spans = rejected
            response.partial_success.error_message = message
        return response.SerializeToString()
    body = {"partialSuccess": {"rejectedSpans": rejected, "errorMessage": message}} if rejected else {}
    return json.dumps(body).encode()


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def rpc_status(code: int, message: str) -> bytes:
    """A google.rpc.Status {code = 1, message = 2} in protobuf, written by hand (its class is in googleapis-common-protos,
    which the site does not need otherwise). `code` is a google.rpc.Code: 3 INVALID_ARGUMENT for a bad body."""
    text = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text

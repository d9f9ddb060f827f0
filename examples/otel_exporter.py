"""Pointing an OpenTelemetry exporter at the control plane: LLM calls traced as GenAI spans become monitoring events.

The OpenTelemetry SDK's OTLP/HTTP exporter needs only its standard variables; it appends `/v1/traces` to the
endpoint and sends protobuf. The resource says which registered prompt (or model) version the spans belong to;
each span with `gen_ai.*` attributes becomes one event (tokens, cost from the price table, latency, errors).
Spans without them (HTTP, database) are ignored, so the same exporter can carry the whole application's traces.
Details: docs/monitoring.md (OpenTelemetry).

    pip install opentelemetry-sdk opentelemetry-exporter-otlp-proto-http
    export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:8000/api/v1/otel
    export OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer <an editor's token>"
    export OTEL_RESOURCE_ATTRIBUTES="mlops.prompt=summarize,mlops.prompt.version=1"
    python examples/otel_exporter.py --calls 20

The LLM call is a stand-in (no provider is called); wrap your own client call the same way, or use an
instrumentation library that writes the GenAI semantic conventions (opentelemetry-instrumentation-openai-v2 and
others): their spans are read as they are.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode


def tracer_provider() -> TracerProvider:
    """A provider whose exporter reads OTEL_EXPORTER_OTLP_ENDPOINT / _HEADERS; the resource names the prompt version."""
    resource = Resource.create({"service.name": "summarizer"})  # merged with OTEL_RESOURCE_ATTRIBUTES
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def chat(tracer: trace.Tracer, *, text: str, conversation: str) -> str:
    """One LLM call as a GenAI client span (the semantic conventions' names)."""
    with tracer.start_as_current_span("chat gpt-4o-mini", kind=trace.SpanKind.CLIENT) as span:
        span.set_attribute("gen_ai.operation.name", "chat")
        span.set_attribute("gen_ai.provider.name", "openai")
        span.set_attribute("gen_ai.request.model", "gpt-4o-mini")
        span.set_attribute("gen_ai.conversation.id", conversation)  # the unit: canaries and A/B tests count by it
        time.sleep(random.uniform(0.01, 0.05))  # the call itself
        if random.random() < 0.05:
            span.set_status(Status(StatusCode.ERROR, "provider timeout"))  # counted as an error
            return ""
        span.set_attribute("gen_ai.response.model", "gpt-4o-mini-2024-07-18")
        span.set_attribute("gen_ai.usage.input_tokens", 40 + len(text.split()))
        span.set_attribute("gen_ai.usage.output_tokens", random.randint(20, 80))
        span.set_attribute("gen_ai.usage.cache_read.input_tokens", 32)  # part of the input tokens
        return "a summary"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=10)
    args = parser.parse_args()
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        print("Set OTEL_EXPORTER_OTLP_ENDPOINT (http://HOST/api/v1/otel) and OTEL_EXPORTER_OTLP_HEADERS first.", file=sys.stderr)
        return 2

    provider = tracer_provider()
    tracer = provider.get_tracer("examples.otel_exporter")
    for number in range(args.calls):
        chat(tracer, text="Summarize the quarterly report in three sentences.", conversation=f"conv-{number % 7}")
    provider.force_flush()  # the batch processor sends every few seconds; at exit, flush what is left
    provider.shutdown()
    print(f"{args.calls} spans exported to {os.environ['OTEL_EXPORTER_OTLP_ENDPOINT']}/v1/traces")
    return 0


if __name__ == "__main__":
    sys.exit(main())

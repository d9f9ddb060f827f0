"""`/metrics`: the roll-ups as Prometheus gauges (text exposition format 0.0.4), so Grafana can read us.

Per model or prompt version, over the last 5 minutes of minute roll-ups:
request rate, error rate, latency and time-to-first-token quantiles (from the
merged sketches, within 1 %), cost rate and tokens per request; plus each alert
rule's state and each budget's share spent. Four queries whatever the traffic and the number of budgets.
Auth: the API's, so `Authorization: Bearer <token>` (Prometheus' default) or `Token <token>`.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.views import APIView

from mlops_site.roles import IsViewer

from .. import selectors
from ..models import AlertRule, Granularity, Rollup
from ..services.alerts import subject_of
from ..sketch import QuantileSketch

WINDOW = timedelta(minutes=5)
STATE_VALUE = {"ok": 0, "warning": 1, "alert": 2}


def _label(value) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels) -> str:
    return "{" + ",".join(f'{key}="{_label(value)}"' for key, value in labels.items()) + "}"


class _Family:
    def __init__(self, name: str, help_text: str):
        self.name, self.help, self.samples = name, help_text, []

    def add(self, value: float | None, **labels) -> None:
        if value is not None:
            self.samples.append(f"{self.name}{_labels(**labels)} {float(value):.10g}")

    def text(self) -> str:
        return f"# HELP {self.name} {self.help}\n# TYPE {self.name} gauge\n" + "".join(s + "\n" for s in self.samples)


def prometheus_text(*, now=None) -> str:
    now = now or timezone.now()
    start = (now - WINDOW).replace(second=0, microsecond=0)
    seconds = (now - start).total_seconds()
    rows = Rollup.objects.filter(granularity=Granularity.MINUTE, bucket__gte=start, bucket__lte=now).values_list(
        "model_version__model__name", "model_version__version", "prompt_version__prompt__name", "prompt_version__version",
        "requests", "errors", "latency_sketch", "ttft_sketch", "cost_usd", "token_requests", "input_tokens", "output_tokens",
    )
    groups: dict[tuple, dict] = defaultdict(lambda: {"requests": 0, "errors": 0, "cost": 0.0, "token_requests": 0, "tokens": 0,
                                                      "latency": [], "ttft": []})
    for model, mv, prompt, pv, requests, errors, lat, ttft, cost, token_requests, tokens_in, tokens_out in rows:
        g = groups[("model", model, mv) if model else ("prompt", prompt, pv)]
        g["requests"] += requests
        g["errors"] += errors
        g["cost"] += cost
        g["token_requests"] += token_requests
        g["tokens"] += tokens_in + tokens_out
        g["latency"].append(QuantileSketch.from_bytes(bytes(lat)))
        g["ttft"].append(QuantileSketch.from_bytes(bytes(ttft)))
    rate = _Family("mlops_requests_per_second", "Requests per second over the last 5 minutes.")
    error_rate = _Family("mlops_error_rate", "Share of requests that failed, last 5 minutes.")
    latency = _Family("mlops_latency_ms", "Response latency quantiles in ms, last 5 minutes (sketch, 1 % relative error).")
    ttft = _Family("mlops_time_to_first_token_ms", "Time to first token quantiles in ms, last 5 minutes.")
    cost = _Family("mlops_cost_usd_per_second", "Known spend in USD per second, last 5 minutes.")
    tokens = _Family("mlops_tokens_per_request", "Input plus output tokens per request that reported tokens, last 5 minutes.")
    for (kind, name, version), g in sorted(groups.items(), key=lambda item: (item[0][0], item[0][1], item[0][2])):
        labels = {"kind": kind, "name": name, "version": version}
        rate.add(g["requests"] / seconds, **labels)
        error_rate.add(g["errors"] / g["requests"] if g["requests"] else None, **labels)
        for q, value in zip((0.5, 0.95, 0.99), QuantileSketch.merge_all(g["latency"]).quantiles([0.5, 0.95, 0.99]), strict=True):
            latency.add(value, **labels, quantile=q)
        ttft.add(QuantileSketch.merge_all(g["ttft"]).quantile(0.95), **labels, quantile=0.95)
        cost.add(g["cost"] / seconds, **labels)
        tokens.add(g["tokens"] / g["token_requests"] if g["token_requests"] else None, **labels)
    alerts = _Family("mlops_alert_state", "Alert rule state: 0 ok, 1 warning, 2 alert.")
    for rule in AlertRule.objects.filter(enabled=True).select_related("model", "prompt"):
        alerts.add(STATE_VALUE[rule.state], rule=rule.name, metric=rule.metric, **subject_of(rule))
    budgets = _Family("mlops_budget_spent_share", "Share of the budget spent in the current period.")
    enabled = list(selectors.budget_list(enabled=True))
    statuses = selectors.budget_statuses(budgets=enabled, now=now)
    for budget in enabled:
        budgets.add(statuses[budget.pk].share, budget=budget.name, period=budget.period)
    return "".join(f.text() for f in (rate, error_rate, latency, ttft, cost, tokens, alerts, budgets))


class MetricsApi(APIView):
    """Prometheus scrape endpoint (text/plain; version=0.0.4)."""

    permission_classes = [IsViewer]

    @extend_schema(responses={(200, "text/plain"): OpenApiTypes.STR}, description="Prometheus text exposition format 0.0.4.")
    def get(self, request):
        return HttpResponse(prometheus_text(), content_type="text/plain; version=0.0.4; charset=utf-8")

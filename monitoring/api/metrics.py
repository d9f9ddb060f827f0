"""`/metrics`: the roll-ups in Prometheus' exposition format, rendered by `prometheus_client`, so Prometheus and Grafana read us.

Counters and histograms are cumulative over a version's whole life: every scrape reads each version's
lifetime roll-up (which the roll-up worker only ever adds to, late events included), so a counter
never goes down between scrapes and PromQL's `rate()`, `increase()` and `histogram_quantile()`
work over any window and across versions. Times are in seconds, as Prometheus expects.

- counters: `mlops_requests_total`, `mlops_errors_total`, `mlops_tokens_total{kind}`, `mlops_cost_usd_total`;
- histograms: `mlops_request_duration_seconds`, `mlops_time_to_first_token_seconds`. Their buckets are
  read from the merged latency (TTFT) sketch at fixed bounds: `le=B` counts the values whose sketch
  estimate is at most B, i.e. every value up to B/(1+α) and none above B/(1-α) (α = 0.01, so within
  1 % of the bound; monitoring/sketch.py). `_sum` is the roll-ups' exact latency (TTFT) sum, `_count`
  the number of values;
- gauges, for states and shares only: `mlops_alert_state`, `mlops_budget_spent_share`, `mlops_drift_max_psi`.

A higher app adds its own series with `collector_register` (experiments: rollout and A/B traffic shares), so
this module never imports it.

Served traffic only: shadow events never reach the roll-ups. A fixed number of queries however many
versions, rules and budgets: one read of the lifetime rows (counters and sketches together, so counters
and histograms always agree), then rules, budgets (and their spend) and the latest drift reports. The
work grows with the number of versions, not with the hours of history: each version's one sketch has its
keys counted into the buckets (one bincount for all of them).
Auth: the API's, so `Authorization: Bearer <token>` (Prometheus' default) or `Token <token>`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from django.db.models import OuterRef, Q, Subquery
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from rest_framework.views import APIView

from mlops_site.roles import IsViewer

from .. import selectors
from ..models import AlertRule, AlertState, DriftReport, Granularity, ReportStatus, Rollup
from ..sketch import cumulative_counts_by_group

# Upper bounds (seconds) of the latency and TTFT histogram buckets: 5 ms to a minute, +Inf added.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
STATE_VALUE = {AlertState.OK: 0, AlertState.WARNING: 1, AlertState.ALERT: 2}
VERSION_LABELS = ["subject", "name", "version"]
TOKEN_KINDS = {
    "input": "input_tokens",
    "output": "output_tokens",
    "cached": "cached_tokens",
    "cache_creation": "cache_creation_tokens",
    "reasoning": "reasoning_tokens",
}
_SUMS = ("requests", "errors", "latency_sum", "ttft_sum", *TOKEN_KINDS.values(), "cost_usd")


def histogram_buckets(cumulative: np.ndarray) -> list[tuple[str, float]]:
    """(le, count) pairs of a histogram from `sketch.cumulative_counts_by_group`'s counts at BUCKETS, +Inf last."""
    return [(label, float(n)) for label, n in zip((*map(repr, BUCKETS), "+Inf"), cumulative.tolist(), strict=True)]


class RollupCollector(Collector):
    """The metric families of one scrape, read from the database when `collect` runs."""

    def __init__(self, *, now=None):
        self.now = now or timezone.now()

    def collect(self) -> Iterator[Metric]:
        yield from self._traffic()
        yield from self._states()

    def traffic_rows(self) -> tuple[list[dict], dict[int, np.ndarray], dict[int, np.ndarray]]:
        """Each version's lifetime totals (`_SUMS` and its names), and its latency and TTFT cumulative bucket
        counts by group (model version id, or minus the prompt version id). One query."""
        rows = list(
            Rollup.objects.filter(granularity=Granularity.LIFETIME)
            .values(
                "model_version_id",
                "prompt_version_id",
                "model_version__model__name",
                "model_version__version",
                "prompt_version__prompt__name",
                "prompt_version__version",
                *_SUMS,
                "latency_sketch",
                "ttft_sketch",
            )
            .order_by("model_version_id", "prompt_version_id")
        )
        groups = np.array([row["model_version_id"] or -row["prompt_version_id"] for row in rows], dtype=np.int64)
        bounds_ms = [bound * 1000 for bound in BUCKETS]  # the sketches hold milliseconds
        latency = cumulative_counts_by_group(groups, [row["latency_sketch"] for row in rows], bounds_ms)
        ttft = cumulative_counts_by_group(groups, [row["ttft_sketch"] for row in rows], bounds_ms)
        return rows, latency, ttft

    def _traffic(self) -> Iterator[Metric]:
        rows, latency, ttft = self.traffic_rows()
        requests = CounterMetricFamily("mlops_requests", "Requests served (shadow traffic excluded).", labels=VERSION_LABELS)
        errors = CounterMetricFamily("mlops_errors", "Requests that failed.", labels=VERSION_LABELS)
        tokens = CounterMetricFamily(
            "mlops_tokens",
            "Tokens reported; cached (read from a prompt cache) and cache_creation (written to one) are part of input, and"
            " reasoning part of output, so never add the kinds up.",
            labels=[*VERSION_LABELS, "kind"],
        )
        cost = CounterMetricFamily(
            "mlops_cost_usd", "Known spend in US dollars (requests without a price add nothing).", labels=VERSION_LABELS
        )
        duration = HistogramMetricFamily(
            "mlops_request_duration_seconds",
            "Response latency in seconds (buckets from a sketch: within 1 % of each bound).",
            labels=VERSION_LABELS,
        )
        first_token = HistogramMetricFamily(
            "mlops_time_to_first_token_seconds",
            "Time to first token in seconds, of the requests that reported it.",
            labels=VERSION_LABELS,
        )
        for row in rows:
            if row["model_version_id"]:
                group, labels = row["model_version_id"], ["model", row["model_version__model__name"], str(row["model_version__version"])]
            else:
                group, labels = (
                    -row["prompt_version_id"],
                    ["prompt", row["prompt_version__prompt__name"], str(row["prompt_version__version"])],
                )
            requests.add_metric(labels, row["requests"])
            errors.add_metric(labels, row["errors"])
            for kind, field in TOKEN_KINDS.items():
                tokens.add_metric([*labels, kind], row[field])
            cost.add_metric(labels, row["cost_usd"])
            if (counts := latency.get(group)) is not None and counts[-1]:
                duration.add_metric(labels, histogram_buckets(counts), row["latency_sum"] / 1000.0)
            if (counts := ttft.get(group)) is not None and counts[-1]:
                first_token.add_metric(labels, histogram_buckets(counts), row["ttft_sum"] / 1000.0)
        yield from (requests, errors, tokens, cost, duration, first_token)

    def _states(self) -> Iterator[Metric]:
        alerts = GaugeMetricFamily(
            "mlops_alert_state",
            "State of each enabled alert rule: 0 ok, 1 warning, 2 alert.",
            labels=["subject", "name", "rule", "metric"],
        )
        for rule in AlertRule.objects.filter(enabled=True).select_related("model", "prompt").order_by("pk"):
            subject = ["model", rule.model.name] if rule.model_id else ["prompt", rule.prompt.name]
            alerts.add_metric([*subject, rule.name, rule.metric], STATE_VALUE[rule.state])
        budgets = GaugeMetricFamily(
            "mlops_budget_spent_share",
            "Share of each enabled budget spent in its current period (1 = all of it).",
            labels=["budget", "period"],
        )
        enabled = list(selectors.budget_list(enabled=True))
        statuses = selectors.budget_statuses(budgets=enabled, now=self.now)
        for budget in enabled:
            budgets.add_metric([budget.name, budget.period], statuses[budget.pk].share)
        psi = GaugeMetricFamily(
            "mlops_drift_max_psi", "Largest column PSI of each model version's latest finished drift report.", labels=["name", "version"]
        )
        latest = DriftReport.objects.filter(model_version=OuterRef("model_version"), status=ReportStatus.DONE).order_by(
            "-window_end", "-id"
        )
        reports = (
            DriftReport.objects.filter(Q(pk=Subquery(latest.values("pk")[:1])), max_psi__isnull=False)
            .values_list("model_version__model__name", "model_version__version", "max_psi")
            .order_by("model_version_id")
        )
        for name, version, value in reports:
            psi.add_metric([name, str(version)], value)
        yield from (alerts, budgets, psi)


CollectorFactory = Callable[..., Collector]  # called with now=, once per scrape
_collectors: list[CollectorFactory] = [RollupCollector]


def collector_register(factory: CollectorFactory) -> None:
    """Adds `factory(now=...)`'s families to every scrape (an app's `ready()` calls it; registering twice adds it once)."""
    if factory not in _collectors:
        _collectors.append(factory)


def prometheus_text(*, now=None) -> bytes:
    """One scrape: a private registry per call (never the process-wide default one), so nothing is kept between scrapes."""
    now = now or timezone.now()
    registry = CollectorRegistry(auto_describe=False)
    for factory in _collectors:
        registry.register(factory(now=now))
    return generate_latest(registry)


class MetricsApi(APIView):
    """Prometheus scrape endpoint."""

    permission_classes = [IsViewer]

    @extend_schema(responses={(200, "text/plain"): OpenApiTypes.STR}, description="Prometheus text exposition format.")
    def get(self, request):
        return HttpResponse(prometheus_text(), content_type=CONTENT_TYPE_LATEST)

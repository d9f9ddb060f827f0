"""/metrics read back with prometheus_client's own parser: types, names, units, label sets and values
from traffic sent through the ingestion API and folded by the real roll-up service."""

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from experiments import services as experiments_services
from mlops_site.roles import user_token_refresh
from monitoring import services
from monitoring.models import LIFETIME_BUCKET, AlertRule, Budget, DriftReport, Rollup
from monitoring.sketch import ALPHA
from registry.services import prompts as prompt_services
from tests.experiments.conftest import canary_of, design
from tests.factories import promote, register
from tests.prompts.conftest import brief_folder

pytestmark = pytest.mark.django_db

DASHBOARD = Path(settings.BASE_DIR) / "docs" / "grafana-dashboard.json"
VERSION_LABELS = {"subject", "name", "version"}


def send(api_as, user, events: list[dict]) -> None:
    response = api_as(user).post("/api/v1/events", {"events": events}, format="json")
    assert response.status_code == 202, response.content
    services.rollups_update()


def scrape(client, user) -> dict:
    """{family name: family} of one scrape, parsed by prometheus_client."""
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {user_token_refresh(user=user)}")
    assert response.status_code == 200 and response["Content-Type"] == CONTENT_TYPE_LATEST
    return {family.name: family for family in text_string_to_metric_families(response.content.decode())}


def samples(families: dict, sample_name: str, **labels) -> dict:
    """{frozen labels without those given: value} of the samples called sample_name whose labels include those given."""
    out = {}
    for family in families.values():
        for s in family.samples:
            if s.name == sample_name and labels.items() <= s.labels.items():
                out[frozenset((k, v) for k, v in s.labels.items() if k not in labels)] = s.value
    return out


def value(families: dict, sample_name: str, **labels) -> float:
    found = samples(families, sample_name, **labels)
    assert len(found) == 1, (sample_name, labels, found)
    return next(iter(found.values()))


def event(i: int, at: datetime, latency_ms: float, **fields) -> dict:
    return {"event_id": f"e-{i}", "model": "fraud", "version": 1, "timestamp": at.isoformat(), "latency_ms": latency_ms} | fields


def test_metrics_are_counters_and_histograms_in_seconds(client, api_as, editor, viewer):
    register("fraud", editor)
    now = timezone.now()
    send(
        api_as,
        editor,
        [
            event(1, now, 100.0, ttft_ms=40.0, input_tokens=500, output_tokens=120, cached_tokens=200, reasoning_tokens=30, cost_usd=0.002,
                  cache_creation_tokens=150),
            event(2, now, 200.0, ttft_ms=1500.0, input_tokens=300, output_tokens=80, cost_usd=0.001),
            event(3, now, 300.0, error=True),
        ],
    )

    families = scrape(client, viewer)

    assert {name: families[name].type for name in families} == {
        "mlops_requests": "counter",
        "mlops_errors": "counter",
        "mlops_tokens": "counter",
        "mlops_cost_usd": "counter",
        "mlops_request_duration_seconds": "histogram",
        "mlops_time_to_first_token_seconds": "histogram",
        "mlops_alert_state": "gauge",
        "mlops_budget_spent_share": "gauge",
        "mlops_drift_max_psi": "gauge",
        # experiments' (tests/experiments/test_metrics_series.py)
        "mlops_rollout_traffic_share": "gauge",
        "mlops_rollout_status": "gauge",
        "mlops_experiment_traffic_share": "gauge",
        "mlops_experiment_exposed_units": "counter",
    }
    fraud = {"subject": "model", "name": "fraud", "version": "1"}
    assert {s.name for s in families["mlops_requests"].samples} == {"mlops_requests_total"}
    assert [s.labels for s in families["mlops_requests"].samples] == [fraud]
    assert value(families, "mlops_requests_total", **fraud) == 3
    assert value(families, "mlops_errors_total", **fraud) == 1
    assert samples(families, "mlops_tokens_total", **fraud) == {
        frozenset({("kind", "input")}): 800,
        frozenset({("kind", "output")}): 200,
        frozenset({("kind", "cached")}): 200,
        frozenset({("kind", "cache_creation")}): 150,
        frozenset({("kind", "reasoning")}): 30,
    }
    assert value(families, "mlops_cost_usd_total", **fraud) == pytest.approx(0.003, rel=1e-9)
    buckets = {dict(labels)["le"]: v for labels, v in samples(families, "mlops_request_duration_seconds_bucket", **fraud).items()}
    assert (buckets["0.05"], buckets["0.25"], buckets["0.5"], buckets["60.0"], buckets["+Inf"]) == (0, 2, 3, 3, 3)
    assert value(families, "mlops_request_duration_seconds_count", **fraud) == 3
    assert value(families, "mlops_request_duration_seconds_sum", **fraud) == pytest.approx(0.6, rel=0.01)
    first_token = {dict(labels)["le"]: v for labels, v in samples(families, "mlops_time_to_first_token_seconds_bucket", **fraud).items()}
    assert (first_token["0.025"], first_token["0.05"], first_token["1.0"], first_token["2.5"], first_token["+Inf"]) == (0, 1, 1, 2, 2)
    assert value(families, "mlops_time_to_first_token_seconds_sum", **fraud) == pytest.approx(1.54, rel=0.01)


def test_metrics_histogram_buckets_are_within_one_percent_of_their_bounds(client, api_as, editor, viewer):
    register("fraud", editor)
    now = timezone.now()
    latency = np.random.default_rng(7).lognormal(5, 1.5, 2000).round(3)
    send(api_as, editor, [event(i, now - timedelta(minutes=i % 90), float(x)) for i, x in enumerate(latency)])
    seconds = latency / 1000

    families = scrape(client, viewer)

    buckets = samples(families, "mlops_request_duration_seconds_bucket", subject="model", name="fraud", version="1")
    bounds = sorted((float(dict(labels)["le"]), v) for labels, v in buckets.items())
    assert len(bounds) == 14 and bounds[-1] == (float("inf"), 2000)
    for bound, count in bounds[:-1]:
        assert (seconds <= bound / (1 + ALPHA)).sum() <= count <= (seconds <= bound / (1 - ALPHA)).sum(), bound
    counts = [count for _, count in bounds]
    assert counts == sorted(counts) and len(set(counts)) > 8  # cumulative, and the bounds spread the sample
    assert value(families, "mlops_request_duration_seconds_sum", name="fraud") == pytest.approx(seconds.sum(), rel=1e-9)


def test_metrics_counters_never_go_down_between_scrapes(client, api_as, editor, viewer):
    register("fraud", editor)
    now = timezone.now()
    send(api_as, editor, [event(i, now - timedelta(hours=3), 100.0 + i, error=i % 4 == 0, cost_usd=0.01) for i in range(40)])
    first = scrape(client, viewer)

    send(api_as, editor, [event(100 + i, now, 50.0, cost_usd=0.01) for i in range(5)])
    second = scrape(client, viewer)

    for name in (
        "mlops_requests_total",
        "mlops_errors_total",
        "mlops_cost_usd_total",
        "mlops_request_duration_seconds_bucket",
        "mlops_request_duration_seconds_count",
        "mlops_request_duration_seconds_sum",
    ):
        before, after = samples(first, name), samples(second, name)
        assert before.keys() == after.keys() and all(after[k] >= before[k] for k in before), name
    assert (value(first, "mlops_requests_total"), value(second, "mlops_requests_total")) == (40, 45)
    assert (value(first, "mlops_errors_total"), value(second, "mlops_errors_total")) == (10, 10)
    assert value(second, "mlops_cost_usd_total") == pytest.approx(0.45, rel=1e-9)


def test_metrics_leave_shadow_events_out(client, api_as, editor, viewer):
    register("fraud", editor)
    now = timezone.now()
    served = [event(i, now, 100.0, cost_usd=0.01) for i in range(6)]
    mirrored = [event(50 + i, now, 900.0, cost_usd=0.5, error=True, shadow=True) for i in range(4)]
    send(api_as, editor, served + mirrored)

    families = scrape(client, viewer)

    assert value(families, "mlops_requests_total") == 6
    assert value(families, "mlops_errors_total") == 0
    assert value(families, "mlops_cost_usd_total") == pytest.approx(0.06, rel=1e-9)
    assert value(families, "mlops_request_duration_seconds_bucket", le="0.5") == 6


def test_metrics_take_a_fixed_number_of_queries_however_many_versions(client, api_as, editor, viewer, django_assert_max_num_queries):
    for _ in range(4):
        register("fraud", editor)
    register("churn", editor)
    prompt_services.prompts_import(files=brief_folder(), actor=editor)
    services.budget_set(name="all daily", amount_usd=10, actor=editor)
    now = timezone.now()
    events = [event(i, now - timedelta(hours=i % 30), 100.0, ttft_ms=30.0, version=1 + i % 4) for i in range(80)]
    events += [{"event_id": f"c-{i}", "model": "churn", "version": 1, "timestamp": now.isoformat(), "latency_ms": 20.0} for i in range(3)]
    events += [
        {
            "event_id": f"p-{i}",
            "prompt": "summarize",
            "version": 1 + i % 3,
            "timestamp": now.isoformat(),
            "latency_ms": 800.0,
            "input_tokens": 100,
            "output_tokens": 20,
        }
        for i in range(9)
    ]
    send(api_as, editor, events)
    token = user_token_refresh(user=viewer)

    # token, its use recorded, roles; the lifetime roll-ups; alert rules, budgets, their spend; drift reports;
    # the newest rollouts, the running experiments' variants
    with django_assert_max_num_queries(10):
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")

    families = {f.name: f for f in text_string_to_metric_families(response.content.decode())}
    assert len(samples(families, "mlops_requests_total")) == 8
    assert value(families, "mlops_requests_total", subject="prompt", name="summarize", version="2") == 3
    assert {frozenset(s.labels) for s in families["mlops_request_duration_seconds"].samples} == {
        frozenset(VERSION_LABELS),
        frozenset(VERSION_LABELS | {"le"}),
    }


def test_metrics_give_each_enabled_budgets_share(client, editor, viewer, monkeypatch):
    fraud = register("fraud", editor)
    services.budget_set(name="all daily", amount_usd=10, actor=editor)
    services.budget_set(name="fraud weekly", amount_usd=100, period="week", scope="model", members=["model:fraud"], actor=editor)
    Budget.objects.filter(pk=services.budget_set(name="off", amount_usd=1, actor=editor).pk).update(enabled=False)
    now = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)  # a Wednesday
    for bucket, cost in ((datetime(2026, 11, 23, 10, tzinfo=UTC), 3.0), (datetime(2026, 11, 25, 9, tzinfo=UTC), 2.5)):
        Rollup.objects.create(model_version=fraud, granularity="hour", bucket=bucket, requests=10, cost_usd=cost, cost_requests=10)
    # and the version's lifetime row, as the roll-up fold keeps it beside the hours
    Rollup.objects.create(model_version=fraud, granularity="lifetime", bucket=LIFETIME_BUCKET, requests=20, cost_usd=5.5, cost_requests=20)
    monkeypatch.setattr("django.utils.timezone.now", lambda: now)

    families = scrape(client, viewer)

    shares = {dict(labels)["budget"]: v for labels, v in samples(families, "mlops_budget_spent_share").items()}
    assert shares == {"all daily": pytest.approx(2.5 / 10), "fraud weekly": pytest.approx(5.5 / 100)}
    assert value(families, "mlops_cost_usd_total") == pytest.approx(5.5)  # all time, unlike the budgets' periods


def test_metrics_refuse_a_request_without_a_token(client):
    assert client.get("/metrics").status_code == 401


def test_grafana_dashboard_reads_only_metrics_we_expose(client, api_as, editor, approver, viewer):
    first = register("fraud", editor)
    services.default_rules_ensure(model=first.model)
    services.budget_set(name="all daily", amount_usd=10, actor=editor)
    promote(first, "production", editor, approver)
    canary_of(register("fraud", editor), editor, approver)
    register("checkout", editor), register("checkout", editor)
    experiments_services.experiment_start(experiment=design(editor), reason="go", actor=editor)
    experiments_services.experiment_assign(key="checkout-test", unit_ids=["u-1"], actor=editor)
    send(api_as, editor, [event(1, timezone.now(), 120.0, ttft_ms=30.0, input_tokens=10, output_tokens=5, cost_usd=0.01)])
    exposed = {s.name for family in scrape(client, viewer).values() for s in family.samples}
    dashboard = json.loads(DASHBOARD.read_text())

    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]

    assert isinstance(dashboard["schemaVersion"], int) and dashboard["title"] and len(expressions) >= 6
    used = {name for expr in expressions for name in re.findall(r"\bmlops_[a-z_]+", expr)}
    assert used - exposed == set()
    assert {
        "mlops_requests_total",
        "mlops_errors_total",
        "mlops_request_duration_seconds_bucket",
        "mlops_cost_usd_total",
        "mlops_tokens_total",
        "mlops_budget_spent_share",
        "mlops_rollout_traffic_share",
        "mlops_experiment_exposed_units_total",
    } <= used


def test_metrics_give_the_largest_psi_of_each_versions_latest_finished_drift_report(client, editor, viewer):
    first, second = register("fraud", editor), register("fraud", editor)
    start = datetime(2026, 11, 25, 10, tzinfo=UTC)
    for version, hours, status, psi in (
        (first, 1, "done", 0.31),
        (first, 2, "done", 0.04),
        (first, 3, "failed", None),
        (second, 1, "done", 0.12),
        (second, 2, "running", None),
    ):
        DriftReport.objects.create(
            model_version=version, window_start=start, window_end=start + timedelta(hours=hours), status=status, max_psi=psi
        )

    families = scrape(client, viewer)

    assert samples(families, "mlops_drift_max_psi") == {
        frozenset({("name", "fraud"), ("version", "1")}): 0.04,
        frozenset({("name", "fraud"), ("version", "2")}): 0.12,
    }


def histogram_quantile(q: float, buckets: dict[float, float]) -> tuple[float, float, float]:
    """PromQL's histogram_quantile over cumulative {le: count}: (estimate, bucket start, bucket end), as Prometheus
    interpolates linearly inside the bucket that holds rank q * count (promql/quantile.go, bucketQuantile)."""
    bounds = sorted(buckets)
    rank = q * buckets[float("inf")]
    index = next(i for i, bound in enumerate(bounds) if buckets[bound] >= rank)
    start, below = (bounds[index - 1], buckets[bounds[index - 1]]) if index else (0.0, 0.0)
    end = bounds[index]
    return start + (end - start) * (rank - below) / (buckets[end] - below), start, end


def test_metrics_give_histogram_quantile_the_p95_of_two_versions_together(client, api_as, editor, viewer):
    register("fraud", editor)
    register("fraud", editor)
    now = timezone.now()
    rng = np.random.default_rng(11)
    one, two = rng.lognormal(4.5, 0.6, 700).round(3), rng.lognormal(6, 0.5, 300).round(3)
    send(
        api_as,
        editor,
        [event(i, now - timedelta(minutes=i % 120), float(x)) for i, x in enumerate(one)]
        + [event(1000 + i, now - timedelta(minutes=i % 120), float(x), version=2) for i, x in enumerate(two)],
    )

    families = scrape(client, viewer)

    summed: dict[float, float] = {}  # sum by (le) over both versions
    for labels, count in samples(families, "mlops_request_duration_seconds_bucket", name="fraud").items():
        le = float(dict(labels)["le"])
        summed[le] = summed.get(le, 0) + count
    estimate, start, end = histogram_quantile(0.95, summed)
    exact = np.quantile(np.concatenate([one, two]) / 1000, 0.95, method="inverted_cdf")
    assert start / (1 + ALPHA) < exact <= end / (1 - ALPHA) and start <= estimate <= end
    assert summed[float("inf")] == 1000


def test_metrics_give_each_enabled_alert_rules_state_as_a_number(client, editor, viewer):
    rules = services.default_rules_ensure(model=register("fraud", editor).model)
    for rule, state in zip(rules, ("alert", "warning"), strict=False):
        AlertRule.objects.filter(pk=rule.pk).update(state=state)
    AlertRule.objects.filter(pk=rules[2].pk).update(enabled=False)

    families = scrape(client, viewer)

    states = {dict(labels)["rule"]: v for labels, v in samples(families, "mlops_alert_state", subject="model", name="fraud").items()}
    assert states == {rules[0].name: 2, rules[1].name: 1} | {rule.name: 0 for rule in rules[3:]}
    assert len(states) == len(rules) - 1 >= 3

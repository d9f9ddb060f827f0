"""/metrics in the Prometheus text format, read back with a parser of that format written here."""

import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.utils import timezone

from mlops_site.roles import user_token_refresh
from monitoring import services
from monitoring.models import Budget, Rollup
from tests.factories import register

pytestmark = pytest.mark.django_db

SAMPLE = re.compile(r'^([a-z_]+)\{(.*)\} (\S+)$')


def parse(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        name, labels, value = SAMPLE.match(line).groups()
        out[(name, tuple(sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels))))] = float(value)
    return out


def test_metrics_are_the_last_five_minutes_of_roll_ups(client, api_as, editor, viewer, django_assert_max_num_queries):
    register("fraud", editor)
    now = timezone.now()
    latency = np.random.default_rng(0).lognormal(4, 0.4, 600).round(2)
    events = [{"event_id": f"e-{i}", "model": "fraud", "version": 1, "timestamp": (now - timedelta(seconds=i * 0.4)).isoformat(),
               "latency_ms": float(latency[i]), "error": i % 50 == 0} for i in range(600)]
    assert api_as(editor).post("/api/v1/events", {"events": events}, format="json").status_code == 202
    services.rollups_update()
    token = user_token_refresh(user=viewer)

    with django_assert_max_num_queries(6):
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = parse(response.content.decode())
    labels = (("kind", "model"), ("name", "fraud"), ("version", "1"))
    assert samples[("mlops_error_rate", labels)] == pytest.approx(12 / 600)
    p95 = samples[("mlops_latency_ms", tuple(sorted(labels + (("quantile", "0.95"),))))]
    assert p95 == pytest.approx(np.quantile(latency, 0.95, method="inverted_cdf"), rel=0.01)
    assert client.get("/metrics").status_code == 401


def test_metrics_give_each_enabled_budgets_share_in_a_fixed_number_of_queries(client, editor, viewer, monkeypatch,
                                                                               django_assert_max_num_queries):
    fraud = register("fraud", editor)
    services.budget_set(name="all daily", amount_usd=10, actor=editor)
    services.budget_set(name="fraud weekly", amount_usd=100, period="week", scope="model", members=["model:fraud"], actor=editor)
    Budget.objects.filter(pk=services.budget_set(name="off", amount_usd=1, actor=editor).pk).update(enabled=False)
    now = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)  # a Wednesday
    for bucket, cost in ((datetime(2026, 11, 23, 10, tzinfo=UTC), 3.0), (datetime(2026, 11, 25, 9, tzinfo=UTC), 2.5)):
        Rollup.objects.create(model_version=fraud, granularity="hour", bucket=bucket, requests=10, cost_usd=cost, cost_requests=10)
    monkeypatch.setattr("django.utils.timezone.now", lambda: now)
    token = user_token_refresh(user=viewer)

    with django_assert_max_num_queries(7):  # token, its first use recorded, roles, minute roll-ups, rules, budgets, their spend
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")

    shares = {dict(labels)["budget"]: value for (name, labels), value in parse(response.content.decode()).items()
              if name == "mlops_budget_spent_share"}
    assert shares == {"all daily": pytest.approx(2.5 / 10), "fraud weekly": pytest.approx(5.5 / 100)}

"""Operations alert rules on the roll-ups: defaults appear with traffic, values agree with the raw events,
and a state change is one AlertEvent (not one per tick)."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from monitoring import services
from monitoring.models import AlertEvent, AlertRule
from registry.services import prompts as prompt_services
from tests.factories import register
from tests.prompts.conftest import brief_folder

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def send(api_as, user, events):
    response = api_as(user).post("/api/v1/events", {"events": events}, format="json")
    assert response.status_code == 202, response.content


def test_model_latency_and_errors_alert_once_and_match_raw_events(api_as, editor, settings):
    settings.MLOPS_LATENCY_SLA_MS = 200
    register("fraud", editor)
    rng = np.random.default_rng(2)
    latency = rng.lognormal(np.log(150), 0.5, 3000).round(1)
    errors = rng.random(3000) < 0.02
    send(api_as, editor, [
        {"event_id": f"m-{i}", "model": "fraud", "version": 1, "timestamp": (NOW - timedelta(minutes=50) + timedelta(seconds=i)).isoformat(),
         "latency_ms": float(latency[i]), "error": bool(errors[i])}
        for i in range(3000)
    ])
    services.rollups_update()

    first = services.ops_alerts_evaluate(now=NOW)
    again = services.ops_alerts_evaluate(now=NOW + timedelta(seconds=30))

    by_metric = {r.metric: r for r in AlertRule.objects.filter(model__name="fraud")}
    assert {"latency_p95_ms", "error_rate", "throughput_share", "accuracy_drop"} <= set(by_metric)
    exact_p95 = np.quantile(latency, 0.95, method="inverted_cdf")
    assert by_metric["latency_p95_ms"].last_value == pytest.approx(exact_p95, rel=0.01)
    assert by_metric["error_rate"].last_value == pytest.approx(errors.mean(), rel=1e-12)
    # The second tick (30 s later) set last_value: its window runs from the minute floor of now - 60 min.
    assert by_metric["throughput_share"].last_value == pytest.approx(3000 / 3630 / 100, rel=1e-9)
    assert {e.rule.metric for e in first} == {"latency_p95_ms", "error_rate"} and again == []
    assert AlertEvent.objects.count() == 2
    assert "P95" in first[0].message or "P95" in first[1].message


def test_prompt_quality_rules(api_as, editor):
    prompt_services.prompts_import(files=brief_folder(), actor=editor)
    events = []
    for i in range(400):
        events.append({
            "event_id": f"p-{i}", "prompt": "summarize", "version": 2, "timestamp": (NOW - timedelta(minutes=30, seconds=-i)).isoformat(),
            "latency_ms": 2500.0, "ttft_ms": 300.0, "input_tokens": 800, "output_tokens": 200,
            "judge_score": 0.6 if i % 2 else 0.7, "faithfulness": 0.9, "guardrail_triggered": i % 10 == 0,
            "feedback": 1 if i % 4 else -1,
        })
    send(api_as, editor, events)
    services.rollups_update()

    changes = services.ops_alerts_evaluate(now=NOW)

    rules = {r.metric: r for r in AlertRule.objects.filter(prompt__name="summarize")}
    assert rules["judge_score_avg"].last_value == pytest.approx(0.65) and rules["judge_score_avg"].state == "alert"
    assert rules["guardrail_rate"].last_value == pytest.approx(0.1) and rules["guardrail_rate"].state == "alert"
    assert rules["thumbs_up_share"].last_value == pytest.approx(0.75) and rules["thumbs_up_share"].state == "alert"
    assert rules["faithfulness_avg"].state == "ok" and rules["latency_p95_ms"].state == "ok"
    assert rules["tokens_ratio"].last_value is None  # no history before the window and no expected value set
    assert {e.rule.metric for e in changes} == {"judge_score_avg", "guardrail_rate", "thumbs_up_share"}


def test_prompt_rules_show_on_the_alerts_page_and_api(client, api_as, editor, viewer):
    prompt_services.prompts_import(files=brief_folder(), actor=editor)
    send(api_as, editor, [{"event_id": f"q-{i}", "prompt": "summarize", "version": 2, "timestamp": (NOW - timedelta(minutes=5)).isoformat(),
                           "latency_ms": 1000.0, "judge_score": 0.2} for i in range(20)])
    services.rollups_update()
    services.ops_alerts_evaluate(now=NOW)
    client.force_login(viewer)

    page = client.get("/monitoring/alerts/")
    listed = api_as(viewer).get("/api/v1/alerts?prompt=summarize&state=alert").json()

    assert page.status_code == 200 and "Judge score" in page.content.decode()
    assert [(r["name"], r["prompt"], r["model"]) for r in listed["results"]] == [("Judge score", "summarize", None)]

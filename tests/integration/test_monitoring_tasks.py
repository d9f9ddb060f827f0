"""Monitoring work through a real worker on committed rows: drift reports and their alerts (webhook and e-mail),
the hourly drift schedule, the sweep of stuck work, roll-ups, budgets, performance windows and operations alerts, each
triggered the way production triggers it (an API call that enqueues on commit, or the beat entry)."""

import hashlib
import hmac
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from scipy import stats
from sklearn import metrics as sk

from monitoring.api.metrics import prometheus_text
from monitoring.models import AlertEvent, BudgetAlert, DriftReport, PerformanceWindow, Rollup
from tests.factories import register

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

VERSION_URL = "/api/v1/models/fraud/versions/1"


def send_events(client, events: list[dict]) -> None:
    response = client.post("/api/v1/events", {"events": events}, format="json")
    assert response.status_code == 202, response.content


def amounts(values, at, *, model: str = "fraud", prefix: str = "e") -> list[dict]:
    return [
        {"event_id": f"{prefix}-{i}", "model": model, "version": 1, "timestamp": (at + timedelta(seconds=i)).isoformat(),
         "latency_ms": 10.0, "features": {"amount": float(v)}}
        for i, v in enumerate(values)
    ]


def fraud_with_reference(client, editor, reference: np.ndarray) -> None:
    register("fraud", editor)
    csv = "amount\n" + "".join(f"{v}\n" for v in reference)
    response = client.put(f"{VERSION_URL}/reference", data=csv.encode(), content_type="text/csv")
    assert response.status_code == 200, response.content


def signed(site, body: bytes) -> str:
    return "sha256=" + hmac.new(site.webhook_secret.encode(), body, hashlib.sha256).hexdigest()


def report_finished(report_id: int):
    return DriftReport.objects.filter(pk=report_id, status__in=["done", "failed"]).first()


def test_drift_report_compute_and_alert_notify_reach_the_webhook_and_the_mailbox(worker, site, api_as, editor):
    client, rng = api_as(editor), np.random.default_rng(0)
    reference, current = rng.normal(100, 10, 2000), rng.normal(130, 10, 300)
    fraud_with_reference(client, editor, reference)
    start = (timezone.now() - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    send_events(client, amounts(current, start))

    queued = client.post(f"{VERSION_URL}/drift-reports", {"start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()}, format="json")
    report = worker.wait_for(lambda: report_finished(queued.json()["id"]), "the drift report finished")
    event = worker.wait_for(lambda: AlertEvent.objects.filter(rule__metric="feature_psi", notified_at__isnull=False).first(), "the alert was sent")
    worker.drain()

    assert queued.status_code == 202 and (report.status, report.rows, report.attempts) == ("done", 300, 1)
    amount = next(r for r in report.results if r["column"] == "amount")
    assert amount["ks_statistic"] == pytest.approx(stats.ks_2samp(reference, current).statistic)
    assert (event.to_state, event.notification_error) == ("alert", "")
    [hook] = site.inbox.posts(rule="Feature drift")
    assert hook["json"]["state"] == "alert" and "fraud v1" in hook["json"]["text"]
    assert hook["signature"] == signed(site, hook["raw"])
    [mail] = [m for m in site.mailbox.messages() if "Feature drift" in m["subject"]]
    assert mail["to"] == site.alert_emails and "fraud v1" in mail.get_content()


def test_drift_reports_schedule_reports_the_last_hour_of_traffic(worker, api_as, editor):
    client, rng = api_as(editor), np.random.default_rng(1)
    fraud_with_reference(client, editor, rng.normal(100, 10, 500))
    send_events(client, amounts(rng.normal(100, 10, 120), timezone.now() - timedelta(minutes=30)))

    scheduled = worker.beat("monitoring-hourly-drift").get(timeout=30)
    report = worker.wait_for(lambda: DriftReport.objects.filter(status__in=["done", "failed"]).first(), "the scheduled report finished")

    assert scheduled == 1
    assert (report.status, report.rows, report.window_end - report.window_start) == ("done", 120, timedelta(hours=1))


def test_drift_reports_schedule_sweeps_a_report_a_broker_outage_left_pending(worker, broker_down, api_as, editor):
    client, rng = api_as(editor), np.random.default_rng(2)
    fraud_with_reference(client, editor, rng.normal(100, 10, 500))
    start = (timezone.now() - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    send_events(client, amounts(rng.normal(100, 10, 80), start))  # older than the hour: the schedule itself reports nothing
    with broker_down():
        queued = client.post(f"{VERSION_URL}/drift-reports", {"start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()}, format="json")
    report_id = queued.json()["id"]

    DriftReport.objects.filter(pk=report_id).update(requested_at=timezone.now() - timedelta(minutes=11))
    swept = worker.beat("monitoring-stuck-work-sweep").get(timeout=30)
    report = worker.wait_for(lambda: report_finished(report_id), "the swept report finished")

    assert queued.status_code == 202 and swept == 1
    assert (report.status, report.rows, report.attempts) == ("done", 80, 1)


def test_rollups_update_task_folds_new_events_once(worker, api_as, editor):
    register("fraud", editor)
    latency = np.random.default_rng(3).lognormal(np.log(80), 0.4, 240).round(2)
    at = timezone.now() - timedelta(minutes=20)
    send_events(api_as(editor), [
        {"event_id": f"r-{i}", "model": "fraud", "version": 1, "timestamp": (at + timedelta(seconds=i)).isoformat(), "latency_ms": float(v)}
        for i, v in enumerate(latency)
    ])

    folded = worker.beat("monitoring-rollups").get(timeout=30)
    again = worker.beat("monitoring-rollups").get(timeout=30)

    hours = Rollup.objects.filter(granularity="hour")
    assert (folded, again) == (240, 0)
    assert sum(r.requests for r in hours) == 240
    assert sum(r.latency_sum for r in hours) == pytest.approx(float(latency.sum()))
    # The version's lifetime row, written by the worker beside the hours, is what /metrics reads.
    lifetime = Rollup.objects.get(granularity="lifetime")
    assert lifetime.requests == 240 and lifetime.latency_sum == pytest.approx(float(latency.sum()))
    samples = {(s.name, s.labels.get("le")): s.value for f in text_string_to_metric_families(prometheus_text().decode()) for s in f.samples}
    assert samples[("mlops_requests_total", None)] == samples[("mlops_request_duration_seconds_count", None)] == 240
    # le="0.1" counts every value up to 100 ms / 1.01 and none above 100 ms / 0.99 (the sketch's 1 %)
    assert np.sum(latency <= 100 / 1.01) <= samples[("mlops_request_duration_seconds_bucket", "0.1")] <= np.sum(latency <= 100 / 0.99)


def test_budgets_evaluate_and_budget_alert_notify_send_a_reached_share_once(worker, site, api_as, editor):
    client = api_as(editor)
    register("chatbot", editor)
    now = timezone.now()
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    at = today + (now - today) / 2  # inside today's UTC period whatever the time of day
    send_events(client, [
        {"event_id": f"b-{i}", "model": "chatbot", "version": 1, "timestamp": at.isoformat(), "latency_ms": 500.0, "cost_usd": 0.05}
        for i in range(100)
    ])
    budget = client.post("/api/v1/budgets", {"name": "llm spend", "amount_usd": 6.0, "period": "day"}, format="json")

    folded = worker.beat("monitoring-rollups").get(timeout=30)
    fired = worker.beat("monitoring-budgets").get(timeout=30)
    alert = worker.wait_for(lambda: BudgetAlert.objects.filter(notified_at__isnull=False).first(), "the budget alert was sent")
    again = worker.beat("monitoring-budgets").get(timeout=30)
    worker.drain()

    assert budget.status_code == 201 and (folded, fired, again) == (100, 1, 0)
    assert alert.threshold == 0.8 and alert.spent_usd == pytest.approx(5.0) and alert.notification_error == ""
    [hook] = site.inbox.posts(budget="llm spend")
    assert hook["json"]["share"] == 0.8 and hook["json"]["spent_usd"] == pytest.approx(5.0) and hook["json"]["amount_usd"] == 6.0
    [mail] = [m for m in site.mailbox.messages() if "llm spend" in m["subject"]]
    assert mail["to"] == site.alert_emails and "5.00 of 6.00 USD" in mail.get_content()


def test_performance_windows_schedule_scores_the_last_day_of_labelled_events(worker, api_as, editor):
    client = api_as(editor)
    register("fraud", editor, metrics={"accuracy": 0.95, "f1": 0.9, "auc": 0.97})
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 300)
    scores = np.clip(0.35 * y + rng.normal(0.35, 0.2, 300), 0, 1).round(3)
    at = timezone.now() - timedelta(hours=2)
    send_events(client, [
        {"event_id": f"p-{i}", "model": "fraud", "version": 1, "timestamp": (at + timedelta(seconds=i)).isoformat(), "latency_ms": 5.0,
         "prediction": float(s)}
        for i, s in enumerate(scores)
    ])
    labelled = client.post("/api/v1/labels", {"labels": [{"event_id": f"p-{i}", "label": int(v)} for i, v in enumerate(y)]}, format="json")

    computed = worker.beat("monitoring-performance").get(timeout=30)

    window = PerformanceWindow.objects.get()
    assert labelled.status_code == 202 and computed == 1
    assert window.labelled == 300 and window.window_end - window.window_start == timedelta(hours=24)
    assert window.accuracy == pytest.approx(sk.accuracy_score(y, (scores >= 0.5).astype(int)))
    assert window.roc_auc == pytest.approx(sk.roc_auc_score(y, scores))


def test_ops_alerts_evaluate_fires_once_and_alert_notify_sends_it(worker, site, api_as, editor, settings):
    register("fraud", editor)
    at = timezone.now() - timedelta(minutes=10)
    send_events(api_as(editor), [
        {"event_id": f"o-{i}", "model": "fraud", "version": 1, "timestamp": (at + timedelta(seconds=i)).isoformat(), "latency_ms": 900.0 + i}
        for i in range(120)
    ])

    folded = worker.beat("monitoring-rollups").get(timeout=30)
    fired = worker.beat("monitoring-ops-alerts").get(timeout=30)
    event = worker.wait_for(lambda: AlertEvent.objects.filter(rule__metric="latency_p95_ms", notified_at__isnull=False).first(), "the alert was sent")
    again = worker.beat("monitoring-ops-alerts").get(timeout=30)
    worker.drain()

    assert (folded, fired, again) == (120, 1, 0)
    assert event.to_state == "alert" and event.rule.threshold == settings.MLOPS_LATENCY_SLA_MS and event.notification_error == ""
    [hook] = site.inbox.posts(rule="Latency P95 over SLA")  # a rule the worker created, from its own site settings
    assert hook["json"]["state"] == "alert" and hook["json"]["model"] == "fraud"
    assert hook["signature"] == signed(site, hook["raw"])
    assert len([m for m in site.mailbox.messages() if "Latency P95 over SLA" in m["subject"]]) == 1

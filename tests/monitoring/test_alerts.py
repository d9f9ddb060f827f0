import hashlib
import hmac
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest
from django.test import Client
from django.utils import timezone

from monitoring import services, tasks
from monitoring.models import AlertEvent, AlertRule
from monitoring.services import alerts
from tests.factories import register
from tests.monitoring.test_reports import T0, send

pytestmark = pytest.mark.django_db


@pytest.fixture
def webhook(settings):
    """A real HTTP receiver on 127.0.0.1 that records what it is sent (allowed as a webhook target by the site's setting)."""
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"body": body, "signature": self.headers.get("X-MLOps-Signature")})
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.MLOPS_WEBHOOK_ALLOWED_HOSTS = [f"127.0.0.1:{server.server_port}"]
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()


def _run_report(version, start, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        report = services.drift_report_request(model_version=version, start=start, end=start + timedelta(hours=1))
    report.refresh_from_db()
    return report


def test_drift_fires_the_default_alert_once_to_a_signed_webhook(celery_eager, api_as, editor, webhook, settings, django_capture_on_commit_callbacks):
    url, received = webhook
    settings.MLOPS_ALERT_WEBHOOK_URL, settings.MLOPS_ALERT_WEBHOOK_SECRET = url, "s3cret"
    version = register("fraud", editor)
    rng = np.random.default_rng(0)
    services.reference_set_from_file(model_version=version, data=("amount\n" + "".join(f"{v}\n" for v in rng.normal(100, 10, 2000))).encode(), actor=editor)
    send(api_as, editor, rng.normal(130, 10, 300), start=0, at=T0)
    send(api_as, editor, rng.normal(131, 10, 300), start=1000, at=T0 + timedelta(hours=1))

    first = _run_report(version, T0, django_capture_on_commit_callbacks)
    second = _run_report(version, T0 + timedelta(hours=1), django_capture_on_commit_callbacks)

    rule = AlertRule.objects.get(model=version.model, metric="feature_psi")
    assert rule.state == "alert" and first.drifted_columns == 1 and second.drifted_columns == 1
    assert AlertEvent.objects.filter(rule=rule).count() == 1  # two alerting reports, one state change
    sent = [json.loads(r["body"]) for r in received if json.loads(r["body"])["rule"] == "Feature drift"]
    assert len(sent) == 1 and sent[0]["state"] == "alert" and "fraud v1" in sent[0]["text"]
    body = next(r for r in received if json.loads(r["body"])["rule"] == "Feature drift")
    assert body["signature"] == "sha256=" + hmac.new(b"s3cret", body["body"], hashlib.sha256).hexdigest()


def test_states_follow_thresholds_with_a_warning_band(editor):
    version = register("fraud", editor)
    rule = AlertRule.objects.create(model=version.model, name="r", metric="feature_psi", comparison=">", threshold=0.25, warning_threshold=0.1)

    assert [alerts.state_for(rule, v) for v in (0.05, 0.1, 0.15, 0.25, 0.3, None)] == ["ok", "ok", "warning", "warning", "alert", "ok"]


def test_silenced_rules_record_the_change_but_send_nothing(celery_eager, api_as, editor, webhook, django_capture_on_commit_callbacks):
    url, received = webhook
    version = register("fraud", editor)
    rng = np.random.default_rng(1)
    services.reference_set_from_file(model_version=version, data=("amount\n" + "".join(f"{v}\n" for v in rng.normal(0, 1, 1000))).encode(), actor=editor)
    AlertRule.objects.update(webhook_url=url)
    rule = AlertRule.objects.get(model=version.model, metric="feature_psi")
    alerts.alert_silence(rule_id=rule.pk, hours=24, actor=editor)
    send(api_as, editor, rng.normal(3, 1, 300))

    _run_report(version, T0, django_capture_on_commit_callbacks)

    event = AlertEvent.objects.get(rule=rule)
    assert event.silenced and event.notified_at is None
    assert [json.loads(r["body"])["rule"] for r in received] == ["Schema violation"]  # "country" is not in the reference; that rule is not silenced


def test_a_second_delivery_of_the_notification_sends_nothing(editor, webhook):
    url, received = webhook
    version = register("fraud", editor)
    rule = AlertRule.objects.create(model=version.model, name="r", metric="feature_psi", threshold=0.25, webhook_url=url)
    event = AlertEvent.objects.create(rule=rule, from_state="ok", to_state="alert", value=0.4, message="m")

    alerts.alert_notify(event_id=event.pk)
    alerts.alert_notify(event_id=event.pk)

    assert len(received) == 1


def test_the_sweep_sends_the_notifications_a_broker_outage_left_unsent(celery_eager, editor, webhook, django_capture_on_commit_callbacks):
    url, received = webhook
    version = register("fraud", editor)
    rule = AlertRule.objects.create(model=version.model, name="r", metric="feature_psi", threshold=0.25, webhook_url=url)
    events = {m: AlertEvent.objects.create(rule=rule, from_state="ok", to_state="alert", value=0.4, message=m, silenced=m == "silenced")
              for m in ("lost", "recent", "silenced")}
    AlertEvent.objects.filter(pk__in=[events["lost"].pk, events["silenced"].pk]).update(at=timezone.now() - timedelta(minutes=11))

    with django_capture_on_commit_callbacks(execute=True):
        queued = services.stuck_work_sweep()

    assert queued == 1
    assert [json.loads(r["body"])["text"] for r in received] == ["lost"]
    assert AlertEvent.objects.filter(notified_at__isnull=False).get().message == "lost"


def test_the_sweep_is_its_own_beat_entry_every_ten_minutes(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["monitoring-stuck-work-sweep"]

    assert (entry["task"], entry["schedule"]) == (tasks.stuck_work_sweep.name, 600.0)


def test_a_drift_alert_is_e_mailed_once_to_the_configured_recipients(api_as, editor, settings, celery_eager, mailoutbox, django_capture_on_commit_callbacks):
    settings.MLOPS_ALERT_EMAILS = "oncall@example.com, ml-team@example.com"
    version = register("fraud", editor)
    rng = np.random.default_rng(0)
    rows = "".join(f"{v},{'DE' if i % 2 else 'FR'}\n" for i, v in enumerate(rng.normal(100, 10, 2000)))
    services.reference_set_from_file(model_version=version, data=("amount,country\n" + rows).encode(), actor=editor)
    send(api_as, editor, rng.normal(130, 10, 300), start=0, at=T0)
    send(api_as, editor, rng.normal(131, 10, 300), start=1000, at=T0 + timedelta(hours=1))

    _run_report(version, T0, django_capture_on_commit_callbacks)
    _run_report(version, T0 + timedelta(hours=1), django_capture_on_commit_callbacks)

    event = AlertEvent.objects.get()
    assert (event.rule.name, event.to_state) == ("Feature drift", "alert") and event.notified_at is not None
    assert len(mailoutbox) == 1  # the second alerting report is no change of state
    mail = mailoutbox[0]
    assert mail.to == ["oncall@example.com", "ml-team@example.com"]
    assert mail.from_email == settings.DEFAULT_FROM_EMAIL
    assert mail.subject.startswith("[ALERT] Feature drift on fraud v1: largest feature PSI = ")
    assert "fraud v1" in mail.body and "largest feature PSI" in mail.body and "(> 0.25 alerts" in mail.body


def test_a_rules_own_recipients_get_one_e_mail_per_change_of_state(editor, mailoutbox):
    version = register("fraud", editor)
    rule = AlertRule.objects.create(model=version.model, name="Prediction drift", metric="prediction_psi", threshold=0.2, emails="a@example.com,b@example.com")
    event = AlertEvent.objects.create(rule=rule, from_state="ok", to_state="alert", value=0.4, message="[ALERT] Prediction drift on fraud v1: prediction PSI = 0.4")

    alerts.alert_notify(event_id=event.pk)
    alerts.alert_notify(event_id=event.pk)  # the task delivered twice

    assert [(m.to, m.subject) for m in mailoutbox] == [(["a@example.com", "b@example.com"], "[ALERT] Prediction drift on fraud v1: prediction PSI = 0.4")]
    assert "prediction PSI = 0.4" in mailoutbox[0].body


def test_an_unreachable_webhook_is_recorded_not_raised(editor):
    version = register("fraud", editor)
    rule = AlertRule.objects.create(model=version.model, name="r", metric="feature_psi", threshold=0.25, webhook_url="http://127.0.0.1:9/none")
    event = AlertEvent.objects.create(rule=rule, from_state="ok", to_state="alert", value=0.4, message="m")

    notified = alerts.alert_notify(event_id=event.pk)

    assert (notified.notification_status, notified.notified_at) == ("failed", None) and "webhook" in notified.notification_error


def test_alerts_page_acknowledge_and_silence(editor, viewer):
    version = register("fraud", editor)
    rule = AlertRule.objects.create(model=version.model, name="Feature drift", metric="feature_psi", threshold=0.25, state="alert")
    client = Client()
    client.force_login(editor)

    page = client.get("/monitoring/alerts/").content.decode()
    acknowledged = client.post(f"/monitoring/alerts/{rule.pk}/acknowledge/", follow=True).content.decode()
    silenced = client.post(f"/monitoring/alerts/{rule.pk}/silence/", {"hours": "24"}, follow=True).content.decode()

    assert "Feature drift" in page and "Acknowledge" in page
    assert "acknowledged by alice" in acknowledged
    assert "Silenced until" in silenced
    viewer_client = Client()
    viewer_client.force_login(viewer)
    assert "needs the editor role" in viewer_client.post(f"/monitoring/alerts/{rule.pk}/acknowledge/", follow=True).content.decode()


def test_hourly_schedule_queues_reports_only_for_versions_with_reference_and_traffic(celery_eager, api_as, editor, django_capture_on_commit_callbacks):
    watched, quiet = register("fraud", editor), register("churn", editor)
    services.reference_set_from_file(model_version=watched, data=b"amount\n1\n2\n3\n", actor=editor)
    services.reference_set_from_file(model_version=quiet, data=b"amount\n1\n2\n3\n", actor=editor)
    send(api_as, editor, [1.0, 2.0, 2.5], at=T0)

    with django_capture_on_commit_callbacks(execute=True):
        queued = services.drift_reports_schedule(hours=1, now=T0 + timedelta(minutes=30))

    assert queued == 1
    from monitoring.models import DriftReport

    assert list(DriftReport.objects.values_list("model_version__model__name", "status")) == [("fraud", "done")]


def test_metric_values_from_report_results():
    results = [
        {"column": "amount", "psi": 0.3, "drifted": True, "severity": "significant", "reason": "PSI", "invalid_current": 0, "missing_reference": 0.01, "missing_current": 0.05},
        {"column": "country", "psi": 0.05, "drifted": False, "severity": "none", "reason": "PSI", "invalid_current": 2, "missing_reference": 0.0, "missing_current": 0.0},
        {"column": "new_one", "psi": None, "drifted": False, "severity": "no_data", "reason": "new column, not in the reference", "invalid_current": 0, "missing_reference": 1.0, "missing_current": 0.0},
        {"column": "prediction", "psi": 0.21, "drifted": True, "severity": "significant", "reason": "PSI", "invalid_current": 0, "missing_reference": 0.0, "missing_current": 0.5},
    ]

    assert alerts.metric_value("feature_psi", results) == 0.3
    assert alerts.metric_value("prediction_psi", results) == 0.21
    assert alerts.metric_value("schema_violations", results) == 2.0  # invalid values in country, a new column
    assert alerts.metric_value("drifted_features", results) == 1.0
    assert alerts.metric_value("null_share_increase", results) == pytest.approx(0.04)
    assert alerts.metric_value("label_psi", results) is None

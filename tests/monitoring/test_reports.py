import json
import socket
import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import redis
from django.utils import timezone
from scipy import stats

import mlops_site.settings as site_settings
from mlops_site.celery import app as celery_app
from monitoring import services
from monitoring.models import DriftReport
from tests.factories import register

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def send(api_as, user, values, *, start=0, shift=0.0, at=T0):
    rng = np.random.default_rng(start)
    events = [
        {
            "event_id": f"e-{start + i}", "model": "fraud", "version": 1, "timestamp": (at + timedelta(seconds=i)).isoformat(),
            "latency_ms": 10, "features": {"amount": float(v + shift), "country": "DE" if rng.random() < 0.5 + shift / 10 else "FR"},
            "prediction": float(rng.random()),
        }
        for i, v in enumerate(values)
    ]
    response = api_as(user).post("/api/v1/events", {"events": events}, format="json")
    assert response.status_code == 202, response.content


@pytest.fixture
def fraud(editor):
    return register("fraud", editor)


def test_reference_from_csv_and_report_match_scipy(celery_eager, api_as, editor, fraud, django_capture_on_commit_callbacks):
    rng = np.random.default_rng(0)
    reference = rng.normal(100, 10, 3000)
    csv = "amount,country\n" + "".join(f"{v},{'DE' if i % 2 else 'FR'}\n" for i, v in enumerate(reference))
    services.reference_set_from_file(model_version=fraud, data=csv.encode(), actor=editor)
    current = rng.normal(103, 10, 2000)
    send(api_as, editor, current)

    with django_capture_on_commit_callbacks(execute=True):
        report = services.drift_report_request(model_version=fraud, start=T0, end=T0 + timedelta(hours=1))

    report.refresh_from_db()
    assert report.status == "done" and report.rows == 2000
    amount = next(r for r in report.results if r["column"] == "amount")
    assert amount["ks_statistic"] == stats.ks_2samp(reference, current).statistic
    assert amount["ks_pvalue"] == stats.ks_2samp(reference, current).pvalue
    assert {r["column"] for r in report.results} == {"amount", "country", "prediction"}


def test_empty_window_says_no_data(celery_eager, api_as, editor, fraud, django_capture_on_commit_callbacks):
    services.reference_set_from_file(model_version=fraud, data=b"amount\n1\n2\n3\n", actor=editor)

    with django_capture_on_commit_callbacks(execute=True):
        report = services.drift_report_request(model_version=fraud, start=T0, end=T0 + timedelta(hours=1))

    report.refresh_from_db()
    assert (report.status, report.rows, report.error, report.max_psi) == ("done", 0, "no data in this window", None)


def test_report_without_reference_fails_with_a_reason(celery_eager, editor, fraud, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        report = services.drift_report_request(model_version=fraud, start=T0, end=T0 + timedelta(hours=1))

    report.refresh_from_db()
    assert report.status == "failed" and "no reference" in report.error


def test_a_second_delivery_does_not_run_a_finished_report_again(api_as, editor, fraud):
    services.reference_set_from_file(model_version=fraud, data=b"amount\n1\n2\n3\n", actor=editor)
    send(api_as, editor, [1.0, 2.0, 5.0])
    report = DriftReport.objects.create(model_version=fraud, window_start=T0, window_end=T0 + timedelta(hours=1))

    first = services.drift_report_run(report_id=report.pk)
    second = services.drift_report_run(report_id=report.pk)

    assert first.status == "done" and second is None
    assert DriftReport.objects.get(pk=report.pk).attempts == 1


def test_the_hourly_sweep_takes_back_a_report_left_running_by_a_dead_worker(celery_eager, api_as, editor, fraud, django_capture_on_commit_callbacks):
    services.reference_set_from_file(model_version=fraud, data=b"amount\n1\n2\n3\n", actor=editor)
    send(api_as, editor, [1.0, 2.0, 5.0])
    now = timezone.now()
    window = {"model_version": fraud, "window_start": T0, "window_end": T0 + timedelta(hours=1), "status": "running", "attempts": 1}
    stale = DriftReport.objects.create(**window, started_at=now - timedelta(minutes=11))
    alive = DriftReport.objects.create(**window, started_at=now - timedelta(minutes=9))  # its worker may still be on it

    with django_capture_on_commit_callbacks(execute=True):
        services.stuck_work_sweep()
    redelivered = services.drift_report_run(report_id=alive.pk)  # its message handed to a second worker

    stale.refresh_from_db()
    alive.refresh_from_db()
    assert (stale.status, stale.attempts, stale.rows) == ("done", 2, 3)
    assert (alive.status, alive.attempts, redelivered) == ("running", 1, None)


def test_a_report_left_running_by_a_dead_worker_is_claimed_again(api_as, editor, fraud):
    services.reference_set_from_file(model_version=fraud, data=b"amount\n1\n2\n3\n", actor=editor)
    send(api_as, editor, [1.0, 2.0, 5.0])
    report = DriftReport.objects.create(model_version=fraud, window_start=T0, window_end=T0 + timedelta(hours=1), status="running",
                                        started_at=datetime.now(UTC) - timedelta(hours=1), attempts=1)

    finished = services.drift_report_run(report_id=report.pk)

    assert (finished.status, finished.attempts) == ("done", 2)


def test_bad_csv_is_a_clear_error(editor, fraud):
    from mlops_site.exceptions import ValidationFailed

    with pytest.raises(ValidationFailed):
        services.reference_set_from_file(model_version=fraud, data=b"a,b\n1\n", actor=editor)
    with pytest.raises(ValidationFailed):
        services.reference_set_from_file(model_version=fraud, data=b"\xff\xfe", actor=editor)


def test_drift_reports_command_covers_consecutive_windows(celery_eager, api_as, editor, fraud, django_capture_on_commit_callbacks):
    from django.core.management import call_command
    from django.utils import timezone

    services.reference_set_from_file(model_version=fraud, data=b"amount\n1\n2\n3\n", actor=editor)
    now = timezone.now()
    send(api_as, editor, [1.0, 2.0], start=0, at=now - timedelta(hours=3))
    send(api_as, editor, [1.0, 2.0], start=100, at=now - timedelta(minutes=5))

    with django_capture_on_commit_callbacks(execute=True):
        call_command("drift_reports", "--hours", "6")

    reports = DriftReport.objects.order_by("window_start")
    assert reports.count() == 2 and all(r.status == "done" and r.rows == 2 for r in reports)


@pytest.fixture
def broker_that_hangs_up():
    """A Redis that is down, whatever runs on this machine: a port on 127.0.0.1 held by the test, which
    accepts each connection and closes it at once. Yields its URL and the connections it hung up on."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.05)
    contacts, stop = [], threading.Event()

    def serve():
        while not stop.is_set():
            try:
                connection, peer = server.accept()
            except TimeoutError:
                continue
            contacts.append(peer)
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"redis://127.0.0.1:{server.getsockname()[1]}/0", contacts
    finally:
        stop.set()
        thread.join(5)
        server.close()


def reports_queued_in(url: str) -> list[str]:
    """The drift-report tasks waiting in the default queue of a real Redis at `url` (none if nothing answers there)."""
    try:
        raw = redis.Redis.from_url(url, socket_connect_timeout=0.5).lrange(celery_app.conf.task_default_queue, 0, -1)
    except redis.RedisError:
        return []
    headers = [json.loads(m).get("headers", {}) for m in raw]
    return [h.get("argsrepr", "") for h in headers if h.get("task") == "monitoring.tasks.drift_report_compute"]


def test_requesting_a_report_with_the_broker_down_still_succeeds(
    editor, fraud, settings, monkeypatch, broker_that_hangs_up, django_capture_on_commit_callbacks, caplog
):
    url, contacts = broker_that_hangs_up
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = url
    for name in ("CELERY_BROKER_URL", "CELERY_BROKER_WRITE_URL"):  # Celery prefers these environment variables to the settings
        monkeypatch.delenv(name, raising=False)
    celery_app._after_fork()  # drop the producer pool made for the previous broker (Celery has no public reset)
    try:
        with django_capture_on_commit_callbacks(execute=True) as enqueued:
            report = services.drift_report_request(model_version=fraud, start=T0, end=T0 + timedelta(hours=1))
    finally:
        celery_app._after_fork()  # the next publish makes a pool for the restored broker

    report.refresh_from_db()
    assert report.status == "pending" and len(enqueued) == 1
    assert contacts  # the publish really went to the broker that is down
    assert f"could not enqueue monitoring.tasks.drift_report_compute({report.pk},)" in caplog.text
    assert "the periodic sweep will retry" in caplog.text
    assert f"({report.pk},)" not in reports_queued_in(site_settings.CELERY_BROKER_URL)  # nothing reached the configured Redis


def test_a_csv_prediction_column_is_compared_with_event_predictions(celery_eager, api_as, editor, fraud, django_capture_on_commit_callbacks):
    services.reference_set_from_file(model_version=fraud, data=b"amount,prediction\n" + b"".join(f"{i},{i / 100}\n".encode() for i in range(100)), actor=editor)
    send(api_as, editor, [1.0, 2.0, 3.0])

    with django_capture_on_commit_callbacks(execute=True):
        report = services.drift_report_request(model_version=fraud, start=T0, end=T0 + timedelta(hours=1))

    report.refresh_from_db()
    prediction = [r for r in report.results if r["column"] == "prediction"]
    assert len(prediction) == 1 and prediction[0]["psi"] is not None


def test_reference_from_a_window_of_past_traffic(api_as, editor, fraud):
    send(api_as, editor, [1.0, 2.0, 3.0, 4.0], at=T0)

    reference = services.reference_set_from_window(model_version=fraud, start=T0, end=T0 + timedelta(hours=1), actor=editor)

    assert (reference.source, reference.rows) == ("window", 4)
    assert set(reference.columns) >= {"amount", "country", "__prediction__"}
    with pytest.raises(Exception, match="No traffic"):
        services.reference_set_from_window(model_version=fraud, start=T0 - timedelta(days=2), end=T0 - timedelta(days=1), actor=editor)


def test_label_drift_once_labels_arrive(celery_eager, api_as, editor, fraud, django_capture_on_commit_callbacks):
    services.reference_set_from_file(model_version=fraud, data=b"amount,label\n" + b"".join(f"{i},{int(i % 10 == 0)}\n".encode() for i in range(1000)), actor=editor)
    events = [
        {"event_id": f"l-{i}", "model": "fraud", "version": 1, "timestamp": (T0 + timedelta(seconds=i)).isoformat(), "latency_ms": 5,
         "features": {"amount": float(i)}, "label": int(i % 2 == 0)}
        for i in range(400)
    ]
    assert api_as(editor).post("/api/v1/events", {"events": events}, format="json").status_code == 202

    with django_capture_on_commit_callbacks(execute=True):
        report = services.drift_report_request(model_version=fraud, start=T0, end=T0 + timedelta(hours=1))

    report.refresh_from_db()
    label = next(r for r in report.results if r["column"] == "label")
    assert label["drifted"] and label["psi"] > 0.25  # 10 % positives in the reference, 50 % now
    from monitoring.services.alerts import metric_value

    assert metric_value("label_psi", report.results) == label["psi"]
    assert metric_value("schema_violations", report.results) == 0.0


def test_late_labels_feed_label_drift_in_the_window_they_arrive_and_the_default_rule_fires(
    celery_eager, api_as, editor, fraud, django_capture_on_commit_callbacks
):
    from monitoring.models import AlertEvent, AlertRule

    services.reference_set_from_file(model_version=fraud, data=b"amount,label\n" + b"".join(f"{i},{int(i % 10 == 0)}\n".encode() for i in range(1000)), actor=editor)
    events = [
        {"event_id": f"late-{i}", "model": "fraud", "version": 1, "timestamp": (T0 + timedelta(seconds=i)).isoformat(), "latency_ms": 5,
         "features": {"amount": float(i)}}
        for i in range(400)
    ]
    assert api_as(editor).post("/api/v1/events", {"events": events}, format="json").status_code == 202
    two_days_later = T0 + timedelta(days=2)
    labels = [{"event_id": f"late-{i}", "label": int(i % 2 == 0)} for i in range(400)]  # half positive: the reference has 10 %
    services.labels_attach(payload={"labels": labels}, actor=editor, now=two_days_later + timedelta(minutes=5))

    with django_capture_on_commit_callbacks(execute=True):
        when_served = services.drift_report_request(model_version=fraud, start=T0, end=T0 + timedelta(hours=1))
        when_labelled = services.drift_report_request(model_version=fraud, start=two_days_later, end=two_days_later + timedelta(hours=1))

    when_served.refresh_from_db()
    when_labelled.refresh_from_db()
    served = next(r for r in when_served.results if r["column"] == "label")
    assert (served["n_current"], served["psi"]) == (0, None)  # counted when they arrived, not when the events were served
    label = next(r for r in when_labelled.results if r["column"] == "label")
    reference = np.array([int(i % 10 == 0) for i in range(1000)])
    current = np.array([int(i % 2 == 0) for i in range(400)])
    expected_psi = sum((c - r) * np.log(c / r) for r, c in [((reference == k).mean(), (current == k).mean()) for k in (0, 1)])
    assert label["psi"] == pytest.approx(expected_psi, rel=1e-9) and label["drifted"]
    rule = AlertRule.objects.get(model=fraud.model, metric="label_psi")
    assert (rule.name, rule.comparison, rule.threshold, rule.state) == ("Label drift", ">", 0.2, "alert")
    assert AlertEvent.objects.filter(rule=rule, to_state="alert").count() == 1

"""A worker killed (SIGKILL) in the middle of a task: its row stays `running`, the sweep queues it again once it is
stale, another worker finishes it exactly once, and a further sweep or a redelivery of the task does nothing more.

"In the middle" is a point the test holds, not a moment it guesses: the evaluation's call to the LLM is kept open
by the fake server until the worker is dead; the drift report waits for a table lock the test holds (PostgreSQL).
Time is moved by setting the row's started_at into the past, never by waiting for it."""

from datetime import timedelta

import numpy as np
import pytest
from django.conf import settings
from django.db import connection, connections
from django.db.models import F
from django.utils import timezone

from monitoring.models import AlertEvent, AlertRule, DriftReport, Reference
from registry.models import Evaluation, EvaluationRow
from registry.services import prompts as prompt_services
from tests.integration.test_monitoring_tasks import VERSION_URL, amounts, fraud_with_reference, send_events, signed
from tests.prompts.conftest import brief_folder

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

POSTGRES = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


def test_an_evaluation_killed_while_calling_the_llm_is_finished_once_by_the_sweep(worker, spare_worker, site, api_as, editor):
    prompt_services.prompts_import(files=brief_folder(), actor=editor)
    victim = spare_worker()
    site.llm.hold_next()
    with victim.routing():
        queued = api_as(editor).post("/api/v1/prompts/summarize/versions/2/evaluations", {"provider": "openai"}, format="json")
    evaluation_id = queued.json()["id"]
    assert site.llm.arrived.wait(30), f"the worker never called the LLM:\n{victim.log_tail()}"
    victim.kill()
    site.llm.release.set()
    stuck = Evaluation.objects.get(pk=evaluation_id)

    too_soon = worker.beat("registry-evaluations-sweep").get(timeout=30)  # its worker might still be alive
    Evaluation.objects.filter(pk=evaluation_id).update(started_at=F("started_at") - timedelta(minutes=31))
    swept = worker.beat("registry-evaluations-sweep").get(timeout=30)
    worker.wait_for(lambda: Evaluation.objects.filter(pk=evaluation_id, status="done").exists(), "the swept evaluation finished")
    swept_again = worker.beat("registry-evaluations-sweep").get(timeout=30)
    redelivered = worker.send("registry.tasks.evaluation_compute", evaluation_id).get(timeout=30)

    assert queued.status_code == 202 and (stuck.status, stuck.attempts, stuck.finished_at) == ("running", 1, None)
    assert (too_soon, swept, swept_again, redelivered) == (0, 1, 0, "already claimed")
    evaluation = Evaluation.objects.get(pk=evaluation_id)
    assert (evaluation.status, evaluation.attempts, evaluation.error) == ("done", 2, "")
    assert evaluation.metrics["format_valid"] == 1.0
    assert EvaluationRow.objects.filter(evaluation=evaluation).count() == 2
    assert len(site.llm.requests) == 1 + 2  # the call the dead worker never saw answered, then each eval-set row once
    assert {r["authorization"] for r in site.llm.requests} == {f"Bearer {site.llm_api_key}"}  # the workers' own settings


def _locked_waiters(model) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE relation = %s::regclass AND NOT granted", [model._meta.db_table])
        return cursor.fetchone()[0]


@pytest.mark.postgres_only
@pytest.mark.skipif(not POSTGRES, reason="holds a worker with a PostgreSQL table lock (SQLite's readers never wait)")
@pytest.mark.parametrize("held", [Reference, AlertRule], ids=["while-computing", "while-recording-alerts"])
def test_a_drift_report_killed_mid_run_is_finished_once_by_the_sweep(worker, spare_worker, site, api_as, editor, held):
    client, rng = api_as(editor), np.random.default_rng(5)
    fraud_with_reference(client, editor, rng.normal(100, 10, 1000))
    start = (timezone.now() - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)  # older than the hourly schedule's window
    send_events(client, amounts(rng.normal(130, 10, 200), start))
    victim = spare_worker()
    locker = connections.create_connection("default")
    locker.set_autocommit(False)
    try:
        with locker.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {connection.ops.quote_name(held._meta.db_table)} IN ACCESS EXCLUSIVE MODE")
        with victim.routing():
            queued = client.post(f"{VERSION_URL}/drift-reports", {"start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()},
                                 format="json")
        victim.wait_for(lambda: _locked_waiters(held), f"the worker waits for the lock on {held._meta.db_table}")
        victim.kill()
    finally:
        locker.rollback()
        locker.close()
    report_id = queued.json()["id"]
    stuck = DriftReport.objects.get(pk=report_id)

    worker.beat("monitoring-stuck-work-sweep").get(timeout=30)
    worker.drain()
    too_soon = DriftReport.objects.get(pk=report_id).status  # its worker might still be alive
    DriftReport.objects.filter(pk=report_id).update(started_at=F("started_at") - timedelta(minutes=11))
    worker.beat("monitoring-stuck-work-sweep").get(timeout=30)
    worker.wait_for(lambda: AlertEvent.objects.filter(rule__metric="feature_psi", notified_at__isnull=False).exists(), "the alert was sent")
    worker.beat("monitoring-stuck-work-sweep").get(timeout=30)
    redelivered = worker.send("monitoring.tasks.drift_report_compute", report_id).get(timeout=30)
    worker.drain()

    assert queued.status_code == 202 and (stuck.status, stuck.attempts) == ("running", 1)
    assert too_soon == "running" and redelivered == "already claimed"
    report = DriftReport.objects.get(pk=report_id)
    assert (report.status, report.attempts, report.rows, report.drifted_columns) == ("done", 2, 200, 1)
    assert DriftReport.objects.count() == 1
    assert AlertEvent.objects.filter(rule__metric="feature_psi").count() == 1
    [hook] = site.inbox.posts(rule="Feature drift")
    assert hook["json"]["state"] == "alert" and hook["signature"] == signed(site, hook["raw"])
    assert len([m for m in site.mailbox.messages() if "Feature drift" in m["subject"]]) == 1

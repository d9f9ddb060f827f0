"""`manage.py seed_demo`: the demo users and a registry history, once."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from registry.models import AuditEvent, ModelVersion, PromotionRequest, RegisteredModel, StageChange
from registry.services.gates import gate_status

pytestmark = pytest.mark.django_db


def run(*args) -> list[str]:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().strip().splitlines()


def test_seed_demo_builds_a_history_once():
    run("seed_demo")
    counts = (RegisteredModel.objects.count(), ModelVersion.objects.count(), AuditEvent.objects.count())

    run("seed_demo")

    assert (RegisteredModel.objects.count(), ModelVersion.objects.count(), AuditEvent.objects.count()) == counts
    assert counts[0] >= 5 and counts[1] >= 40
    assert PromotionRequest.objects.filter(status="pending").count() >= 3
    assert StageChange.objects.filter(kind="rollback").exists()
    # Every model has a production version, but loan-approval: its first version failed the bias gate.
    assert ModelVersion.objects.filter(stage="production").count() == RegisteredModel.objects.count() - 1
    loan = {v.version: gate_status(version=v) for v in ModelVersion.objects.filter(model__name="loan-approval")}
    assert not loan[1].passed and loan[2].passed
    assert StageChange.objects.filter(prompt__name="summarize", stage="prod", kind="rollback").exists()
    assert PromotionRequest.objects.filter(prompt__name="summarize", status="pending").exists()


def test_seed_demo_history_lies_in_the_last_ninety_days_with_recent_pending_requests():
    run("seed_demo")

    now = timezone.now()
    times = AuditEvent.objects.values_list("at", flat=True)
    assert now - timedelta(days=93) < min(times) and max(times) < now
    pending = PromotionRequest.objects.filter(status="pending").values_list("requested_at", flat=True)
    assert all(now - timedelta(days=2) < at < now for at in pending)

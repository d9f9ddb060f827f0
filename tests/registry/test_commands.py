import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from registry.models import AuditEvent, ModelVersion, PromotionRequest, RegisteredModel, StageChange

pytestmark = pytest.mark.django_db


def run(*args) -> list[str]:
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().strip().splitlines()


def test_create_api_user_prints_a_working_token_last():
    lines = run("create_api_user", "ci-bot", "--role", "editor")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {lines[-1]}")

    response = client.get("/api/v1/me")

    assert response.json() == {"username": "ci-bot", "role": "editor"}


def test_create_api_user_updates_role_and_rotates_token():
    first = run("create_api_user", "ci-bot", "--role", "editor")[-1]
    second = run("create_api_user", "ci-bot", "--role", "approver", "--password", "s3cret")[-1]
    old, new = APIClient(), APIClient()
    old.credentials(HTTP_AUTHORIZATION=f"Token {first}")
    new.credentials(HTTP_AUTHORIZATION=f"Token {second}")

    assert first != second
    assert old.get("/api/v1/me").status_code == 401
    assert new.get("/api/v1/me").json()["role"] == "approver"
    assert APIClient().login(username="ci-bot", password="s3cret")


def test_create_api_user_rejects_unknown_role():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        run("create_api_user", "x", "--role", "superhero")


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
    from registry.services.gates import gate_status

    loan = {v.version: gate_status(version=v) for v in ModelVersion.objects.filter(model__name="loan-approval")}
    assert not loan[1].passed and loan[2].passed
    assert StageChange.objects.filter(prompt__name="summarize", stage="prod", kind="rollback").exists()
    assert PromotionRequest.objects.filter(prompt__name="summarize", status="pending").exists()


def test_seed_demo_history_lies_in_the_last_ninety_days_with_recent_pending_requests():
    from datetime import timedelta

    from django.utils import timezone

    run("seed_demo")

    now = timezone.now()
    times = AuditEvent.objects.values_list("at", flat=True)
    assert now - timedelta(days=93) < min(times) and max(times) < now
    pending = PromotionRequest.objects.filter(status="pending").values_list("requested_at", flat=True)
    assert all(now - timedelta(days=2) < at < now for at in pending)

"""The audit log and the registered versions keep their rows, and gate policy deletions are audited (issue 14 item 6)."""

from datetime import date

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.urls import reverse

from mlops_site.exceptions import Forbidden
from monitoring import services as monitoring_services
from registry import services
from registry.models import AuditEvent, GatePolicy, ModelVersion, PromptVersion, RegisteredModel
from registry.services.gates import DEFAULT_MODEL_CHECKS, gate_policy_delete, gate_policy_set
from tests.conftest import make_user
from tests.factories import register
from tests.prompts.conftest import brief_folder


def test_audit_log_refuses_deletes_in_the_database(editor):
    register("fraud", editor)
    event = AuditEvent.objects.get()

    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM registry_auditevent")

    assert list(AuditEvent.objects.values_list("pk", flat=True)) == [event.pk]


def test_registered_model_and_prompt_versions_refuse_deletes_in_the_database(editor):
    version = register("fraud", editor)
    services.prompts_import(files=brief_folder(), actor=editor)
    prompt_versions = PromptVersion.objects.count()

    with pytest.raises(DatabaseError), transaction.atomic():
        ModelVersion.objects.filter(pk=version.pk).delete()
    with pytest.raises(DatabaseError), transaction.atomic():
        PromptVersion.objects.all().delete()

    assert ModelVersion.objects.filter(pk=version.pk).exists()
    assert PromptVersion.objects.count() == prompt_versions > 0


@pytest.mark.django_db(transaction=True)
def test_flush_empties_the_guarded_tables_and_the_guards_come_back():
    editor = make_user("alice", "editor")
    register("fraud", editor)

    call_command("flush", interactive=False, verbosity=0)

    assert (AuditEvent.objects.count(), ModelVersion.objects.count()) == (0, 0)
    version = register("fraud", make_user("alice", "editor"))
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.all().delete()
    with pytest.raises(DatabaseError), transaction.atomic():
        ModelVersion.objects.filter(pk=version.pk).delete()
    assert AuditEvent.objects.count() == 1


def test_gate_policy_delete_is_audited_with_the_checks_it_held_and_needs_an_approver(editor, approver):
    register("fraud", editor)
    policy = gate_policy_set(model=RegisteredModel.objects.get(name="fraud"), checks=DEFAULT_MODEL_CHECKS, actor=approver)

    with pytest.raises(Forbidden):
        gate_policy_delete(policy_id=policy.pk, actor=editor)
    gate_policy_delete(policy_id=policy.pk, actor=approver)

    assert not GatePolicy.objects.exists()
    event = AuditEvent.objects.get(action="gate_policy_deleted")
    assert (event.actor_name, event.subject) == ("bob", "model:fraud")
    assert event.extra["before"] == {"checks": policy.checks, "enforced": True}


def test_admin_deleting_a_gate_policy_is_audited_as_the_admin(admin_user, editor, approver):
    register("fraud", editor)
    policy = gate_policy_set(model=RegisteredModel.objects.get(name="fraud"), checks=DEFAULT_MODEL_CHECKS, actor=approver)
    client = Client()
    client.force_login(admin_user)

    response = client.post(reverse("admin:registry_gatepolicy_delete", args=[policy.pk]), {"post": "yes"})
    bulk = gate_policy_set(model=RegisteredModel.objects.get(name="fraud"), checks=DEFAULT_MODEL_CHECKS, actor=approver)
    listing = client.post(reverse("admin:registry_gatepolicy_changelist"),
                          {"action": "delete_selected", "_selected_action": [bulk.pk], "post": "yes"})

    assert response.status_code == 302 and listing.status_code == 302
    assert not GatePolicy.objects.exists()
    assert list(AuditEvent.objects.filter(action="gate_policy_deleted").values_list("actor_name", flat=True)) == ["root", "root"]


def test_audit_page_shows_what_a_control_change_changed(editor, approver):
    register("fraud", editor)
    policy = gate_policy_set(model=RegisteredModel.objects.get(name="fraud"), checks=DEFAULT_MODEL_CHECKS, actor=approver)
    gate_policy_delete(policy_id=policy.pk, actor=approver)
    monitoring_services.price_set(pattern="gpt-4o", input_per_token=2e-06, output_per_token=8e-06, effective_from=date(2025, 1, 1), actor=editor)
    monitoring_services.price_set(pattern="gpt-4o", input_per_token=3e-06, output_per_token=8e-06, effective_from=date(2025, 6, 1), actor=editor)
    client = Client()
    client.force_login(get_user_model().objects.get(username="bob"))

    page = client.get(reverse("registry:audit-list"), {"action": "price_set"}).content.decode()

    assert "<code>input_per_token</code>: 2e-06 → 3e-06" in page
    assert "<code>effective_from</code>: 2025-01-01 → 2025-06-01" in page
    assert "<code>output_per_token</code>: — → 8e-06" in page  # the first price: nothing before
    assert "<code>output_per_token</code>: 8e-06" not in page  # the second: an unchanged field is not listed

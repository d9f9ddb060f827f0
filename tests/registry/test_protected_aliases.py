"""Protected aliases: an admin marks one (e.g. champion -> production) in the admin; from then on it names the stage's
holder for every model and an MLflow client moving it makes a promotion request. Marking and unmarking are audited."""

import pytest
from django.test import Client
from django.urls import reverse

from registry.models import AuditEvent, ModelAlias, PromotionRequest, ProtectedAlias
from registry.services.mlflow_registry import alias_get, alias_set
from tests.factories import promote, register

pytestmark = pytest.mark.django_db


def admin_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_protected_alias_added_in_the_admin_names_the_production_holder_and_is_audited(admin_user, editor, approver):
    v1 = register("fraud", editor)
    register("fraud", editor)
    promote(v1, "production", editor, approver)
    alias_set(name="fraud", alias="champion", version=2, actor=editor)  # an ordinary alias until protected

    answer = admin_client(admin_user).post(reverse("admin:registry_protectedalias_add"), {"alias": "Champion", "stage": "production"})

    assert answer.status_code == 302
    assert ProtectedAlias.objects.get().alias == "champion"
    assert not ModelAlias.objects.filter(alias="champion").exists()  # the stored one would be shadowed: removed
    assert alias_get(name="fraud", alias="champion").version == 1
    event = AuditEvent.objects.get(action="alias_protected")
    assert (event.actor, event.subject, event.to_stage) == (admin_user, "alias:champion", "production")
    assert event.extra["removed_aliases"] == [{"model": "fraud", "version": 2}]


def test_protected_alias_move_is_a_promotion_request(admin_user, editor):
    register("fraud", editor)
    ProtectedAlias.objects.create(alias="champion", stage="production")

    outcome = alias_set(name="fraud", alias="champion", version=1, actor=editor)

    assert outcome.promotion is not None and outcome.promotion.status == "pending"
    assert PromotionRequest.objects.get().to_stage == "production"
    assert not ModelAlias.objects.exists()


@pytest.mark.parametrize("alias", ["production", "STAGING", "v3", "latest", "bad alias", "<script>"])
def test_protected_alias_admin_refuses_names_it_cannot_protect(admin_user, alias):
    answer = admin_client(admin_user).post(reverse("admin:registry_protectedalias_add"), {"alias": alias, "stage": "production"})

    assert answer.status_code == 200  # the form again, with its error
    assert b"errorlist" in answer.content
    assert not ProtectedAlias.objects.exists()
    assert not AuditEvent.objects.filter(action="alias_protected").exists()


def test_protected_alias_delete_in_the_admin_is_audited(admin_user):
    row = ProtectedAlias.objects.create(alias="champion", stage="production")

    answer = admin_client(admin_user).post(reverse("admin:registry_protectedalias_delete", args=[row.pk]), {"post": "yes"})

    assert answer.status_code == 302
    assert not ProtectedAlias.objects.exists()
    assert AuditEvent.objects.get(action="alias_unprotected").subject == "alias:champion"


def test_protected_alias_admin_is_for_superusers_only(approver):
    answer = admin_client(approver).get(reverse("admin:registry_protectedalias_add"))

    assert answer.status_code in (302, 403)

import pytest
from django.apps import apps
from django.contrib import admin
from django.test import Client
from django.urls import reverse

from registry import services
from tests.factories import promote, register
from tests.prompts.conftest import brief_folder

pytestmark = pytest.mark.django_db


def test_every_registry_table_has_a_working_read_only_admin(admin_user, editor, approver):
    promote(register("fraud", editor), "production", editor, approver)
    services.prompts_import(files=brief_folder(), actor=editor)
    client = Client()
    client.force_login(admin_user)

    from registry.models import GatePolicy, RegisteredModel
    from registry.services.gates import DEFAULT_MODEL_CHECKS, gate_policy_set

    gate_policy_set(model=RegisteredModel.objects.get(name="fraud"), checks=DEFAULT_MODEL_CHECKS, actor=approver)
    configuration = {GatePolicy}  # edited here too, through the gate service
    for model in apps.get_app_config("registry").get_models():
        assert admin.site.is_registered(model), model
        changelist = client.get(reverse(f"admin:registry_{model._meta.model_name}_changelist"))
        assert changelist.status_code == 200, model
        obj = model.objects.first()
        if obj is None:
            continue  # evaluations, their rows and schemas: their services have their own tests
        change = client.get(reverse(f"admin:registry_{model._meta.model_name}_change", args=[obj.pk]))
        assert change.status_code == 200, model
        assert (b'name="_save"' in change.content) == (model in configuration), model  # read-only: no Save button


def test_monitoring_tables_have_an_admin(admin_user):
    client = Client()
    client.force_login(admin_user)

    for model in apps.get_app_config("monitoring").get_models():
        assert admin.site.is_registered(model), model
        assert client.get(reverse(f"admin:monitoring_{model._meta.model_name}_changelist")).status_code == 200, model

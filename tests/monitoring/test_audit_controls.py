"""Every change of a monitoring control is audited as the authenticated user (issue 14 item 6): prices, budgets,
alert acknowledgements, silences and rules, references, overwritten labels; long silences cannot be chained."""

import json
from datetime import timedelta

import numpy as np
import pytest
from django.contrib import admin
from django.core.management import call_command
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone

from mlops_site.exceptions import Conflict, Forbidden
from monitoring import services
from monitoring.models import AlertRule, Price
from monitoring.services.alerts import alert_rule_delete, default_rules_ensure
from registry.models import AuditEvent
from tests.factories import register
from tests.monitoring.test_reports import send
from tests.registry.test_api import assert_error_shape

PRICE = {"pattern": "gpt-4o", "input_per_token": 2.5e-06, "output_per_token": 1e-05, "effective_from": "2025-01-01"}


@pytest.fixture
def rule(editor):
    version = register("fraud", editor)
    default_rules_ensure(model=version.model)
    return AlertRule.objects.filter(model__name="fraud").first()


def test_price_api_refuses_a_source_or_actor_from_the_body_and_audits_the_authenticated_user(api_as, editor, approver):
    client = api_as(editor)

    with_source = client.post("/api/v1/prices", PRICE | {"source": "litellm"}, format="json")
    with_actor = client.post("/api/v1/prices", PRICE | {"actor": "bob"}, format="json")
    created = client.post("/api/v1/prices", PRICE, format="json")

    assert assert_error_shape(with_source, 400)["extra"]["fields"] == {"source": ["Unknown field."]}
    assert assert_error_shape(with_actor, 400)["extra"]["fields"] == {"actor": ["Unknown field."]}
    assert created.status_code == 201 and created.json()["source"] == "manual by alice"
    event = AuditEvent.objects.get(action="price_set")
    assert (event.actor_id, event.actor_name, event.subject) == (editor.pk, "alice", "price:gpt-4o")
    assert event.extra["before"] is None
    after = event.extra["after"]
    assert (after["input_per_token"], after["output_per_token"], after["cached_input_per_token"], after["source"]) == (
        2.5e-06, 1e-05, None, "manual by alice"
    )


def test_a_new_price_is_audited_with_the_price_it_follows(editor):
    client_args = {key: value for key, value in PRICE.items() if key != "effective_from"}
    services.price_set(**client_args, effective_from=timezone.datetime(2025, 1, 1).date(), actor=editor)

    services.price_set(**client_args | {"input_per_token": 3e-06}, effective_from=timezone.datetime(2025, 6, 1).date(), actor=editor)

    event = AuditEvent.objects.filter(action="price_set").first()  # newest first
    assert (event.extra["before"]["input_per_token"], event.extra["after"]["input_per_token"]) == (2.5e-06, 3e-06)
    assert (event.extra["before"]["effective_from"], event.extra["after"]["effective_from"]) == ("2025-01-01", "2025-06-01")


def test_admin_can_neither_add_nor_change_a_price(admin_user, editor):
    price = services.price_set(**{k: v for k, v in PRICE.items() if k != "effective_from"},
                               effective_from=timezone.datetime(2025, 1, 1).date(), actor=editor)
    client = Client()
    client.force_login(admin_user)

    added = client.post(reverse("admin:monitoring_price_add"), {"pattern": "x", "input_per_token": 0, "output_per_token": 0})
    change_page = client.get(reverse("admin:monitoring_price_change", args=[price.pk]))
    deleted = client.post(reverse("admin:monitoring_price_delete", args=[price.pk]), {"post": "yes"})

    assert added.status_code == 403 and deleted.status_code == 403
    assert change_page.status_code == 200 and b'name="_save"' not in change_page.content
    assert list(Price.objects.values_list("pattern", "input_per_token")) == [("gpt-4o", 2.5e-06)]


def test_budget_changes_are_audited_with_before_and_after_and_never_the_secret(api_as, editor, approver):
    api_as(approver).post("/api/v1/budgets", {"name": "llm", "amount_usd": 100, "webhook_secret": "s3cret-one"}, format="json")

    with_actor = api_as(editor).post("/api/v1/budgets", {"name": "llm", "amount_usd": 500, "actor": "bob"}, format="json")
    api_as(editor).post("/api/v1/budgets", {"name": "llm", "amount_usd": 500}, format="json")
    api_as(editor).post("/api/v1/budgets", {"name": "llm", "amount_usd": 500}, format="json")  # no change: no event
    api_as(approver).post("/api/v1/budgets", {"name": "llm", "amount_usd": 500, "webhook_secret": "s3cret-two"}, format="json")

    assert with_actor.status_code == 400  # the actor is who is logged in, never a field
    events = list(AuditEvent.objects.filter(action="budget_set").order_by("id"))
    assert [(e.actor_name, e.subject, e.reason) for e in events] == [
        ("bob", "budget:llm", "created"), ("alice", "budget:llm", "changed"), ("bob", "budget:llm", "changed"),
    ]
    assert (events[0].extra["before"], events[0].extra["after"]["amount_usd"], events[0].extra["after"]["webhook_secret"]) == (None, 100.0, "set")
    assert (events[1].extra["before"]["amount_usd"], events[1].extra["after"]["amount_usd"]) == (100.0, 500.0)
    assert (events[2].extra["before"]["webhook_secret"], events[2].extra["after"]["webhook_secret"]) == ("set", "changed")
    assert "s3cret" not in json.dumps([e.extra for e in events])


def test_acknowledge_and_silence_are_audited_as_the_authenticated_user(api_as, editor, rule):
    AlertRule.objects.filter(pk=rule.pk).update(state="alert", last_value=0.4)

    api_as(editor).post(f"/api/v1/alerts/{rule.pk}/acknowledge", {"actor": "bob"}, format="json")
    api_as(editor).post(f"/api/v1/alerts/{rule.pk}/silence", {"hours": 4}, format="json")
    api_as(editor).post(f"/api/v1/alerts/{rule.pk}/silence", {"hours": 0}, format="json")

    events = list(AuditEvent.objects.filter(action__in=["alert_acknowledged", "alert_silenced"]).order_by("id"))
    assert [(e.action, e.actor_name, e.subject, e.extra["rule_id"]) for e in events] == [
        ("alert_acknowledged", "alice", "model:fraud", rule.pk), ("alert_silenced", "alice", "model:fraud", rule.pk),
        ("alert_silenced", "alice", "model:fraud", rule.pk),
    ]
    assert events[0].extra["state"] == "alert"
    assert events[1].extra["after"]["silenced_until"] is not None and events[2].extra["after"]["silenced_until"] is None


def test_an_editor_cannot_chain_seven_day_silences_into_a_long_one(editor, approver, rule):
    services.alert_silence(rule_id=rule.pk, hours=24 * 7, actor=editor)
    six_days = timedelta(days=6)
    AlertRule.objects.filter(pk=rule.pk).update(silenced_since=rule.created_at - six_days, silenced_until=timezone.now() + timedelta(days=1))

    with pytest.raises(Forbidden) as refused:
        services.alert_silence(rule_id=rule.pk, hours=24 * 7, actor=editor)
    services.alert_silence(rule_id=rule.pk, hours=23, actor=editor)  # still within seven days in all
    services.alert_silence(rule_id=rule.pk, hours=24 * 7, actor=approver)

    assert "in all" in refused.value.message
    rule.refresh_from_db()
    assert rule.silenced_since == rule.created_at - six_days  # the approver's renewal continues the same silence
    assert rule.silenced_until - timezone.now() > timedelta(days=6, hours=23)


def test_a_silence_that_has_ended_does_not_count_towards_the_next(editor, rule):
    AlertRule.objects.filter(pk=rule.pk).update(silenced_since=timezone.now() - timedelta(days=8),
                                                silenced_until=timezone.now() - timedelta(minutes=1))

    services.alert_silence(rule_id=rule.pk, hours=24 * 7, actor=editor)

    rule.refresh_from_db()
    assert timezone.now() - rule.silenced_since < timedelta(minutes=1)


def test_replacing_a_reference_is_audited_with_the_reference_it_replaced(editor):
    version = register("fraud", editor)
    services.reference_set_from_columns(model_version=version, columns={"amount": np.arange(10.0)}, source="upload", description="first",
                                        actor=editor)

    services.reference_set_from_columns(model_version=version, columns={"amount": np.arange(25.0), "country": np.array(["DE"] * 25)},
                                        source="upload", description="second", actor=editor)

    events = list(AuditEvent.objects.filter(action="reference_set").order_by("id"))
    assert [(e.reason, e.subject, e.version, e.actor_name) for e in events] == [("set", "model:fraud", 1, "alice"), ("replaced", "model:fraud", 1, "alice")]
    assert (events[1].extra["before"]["description"], events[1].extra["before"]["rows"]) == ("first", 10)
    assert (events[1].extra["after"]["description"], events[1].extra["after"]["rows"], events[1].extra["after"]["columns"]) == ("second", 25, 2)


def test_a_label_that_overwrites_another_is_audited_with_old_and_new(api_as, editor, approver):
    register("fraud", editor)
    send(api_as, editor, [1.0, 2.0, 3.0])
    api_as(editor).post("/api/v1/labels", {"labels": [{"event_id": "e-0", "label": 1}, {"event_id": "e-1", "label": 0}]}, format="json")

    again = api_as(approver).post("/api/v1/labels", {"labels": [
        {"event_id": "e-0", "label": 0}, {"event_id": "e-1", "label": 0}, {"event_id": "e-2", "label": True},
    ]}, format="json")
    api_as(editor).post("/api/v1/labels", {"labels": [{"event_id": "e-2", "label": 1}]}, format="json")  # True -> 1: another label

    assert again.status_code == 202, again.content
    events = list(AuditEvent.objects.filter(action="labels_overwritten").order_by("id"))
    assert [(e.actor_name, e.subject, e.version, e.extra["count"]) for e in events] == [("bob", "model:fraud", 1, 1), ("alice", "model:fraud", 1, 1)]
    assert events[0].extra["labels"] == [{"event_id": "e-0", "before": 1, "after": 0}]
    assert events[1].extra["labels"] == [{"event_id": "e-2", "before": True, "after": 1}]
    client = Client()
    client.force_login(editor)
    page = client.get(reverse("registry:audit-list"), {"action": "labels_overwritten"}).content.decode()
    assert "<code>e-0</code>: 1 → 0" in page and "<code>e-2</code>: True → 1" in page


def test_admin_changes_of_an_alert_rule_go_through_the_service_as_the_admin(admin_user, rule):
    model_admin = admin.site._registry[AlertRule]
    request = RequestFactory().post("/")
    request.user = admin_user
    rule.threshold, rule.webhook_secret = 0.5, "a-new-secret"

    model_admin.save_model(request, rule, form=None, change=True)

    event = AuditEvent.objects.get(action="alert_rule_changed")
    assert (event.actor_name, event.subject, event.reason) == ("root", "model:fraud", "changed")
    assert (event.extra["before"]["threshold"], event.extra["after"]["threshold"]) == (0.25, 0.5)
    assert (event.extra["before"]["webhook_secret"], event.extra["after"]["webhook_secret"]) == ("", "set")
    assert "a-new-secret" not in json.dumps(event.extra)
    assert AlertRule.objects.get(pk=rule.pk).threshold == 0.5


def test_admin_deletes_a_rule_without_history_audited_and_cannot_delete_one_with_history(admin_user, rule):
    other = AlertRule.objects.filter(model__name="fraud").exclude(pk=rule.pk).first()
    other.events.create(from_state="ok", to_state="alert", value=1.0, message="drift")
    client = Client()
    client.force_login(admin_user)

    deleted = client.post(reverse("admin:monitoring_alertrule_delete", args=[rule.pk]), {"post": "yes"})
    refused = client.post(reverse("admin:monitoring_alertrule_delete", args=[other.pk]), {"post": "yes"})

    assert (deleted.status_code, refused.status_code) == (302, 403)
    with pytest.raises(Conflict):
        alert_rule_delete(rule_id=other.pk, actor=admin_user)
    assert not AlertRule.objects.filter(pk=rule.pk).exists() and AlertRule.objects.filter(pk=other.pk).exists()
    event = AuditEvent.objects.get(action="alert_rule_deleted")
    assert (event.actor_name, event.extra["rule"], event.extra["before"]["threshold"]) == ("root", rule.name, rule.threshold)


def test_a_price_import_is_audited_once_with_its_file_and_a_repeat_adds_nothing(tmp_path, editor):
    path = tmp_path / "prices.json"
    path.write_text('{"my-llm": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "mode": "chat"}}')

    call_command("import_prices", str(path), "--effective-from", "2025-03-01", "--user", "alice")
    call_command("import_prices", str(path), "--effective-from", "2025-03-01", "--user", "alice")  # unchanged: nothing to audit

    event = AuditEvent.objects.get(action="prices_imported")
    assert (event.actor_name, event.subject, event.reason) == ("alice", "prices", "import prices.json, in force from 2025-03-01")
    assert (event.extra["created"], event.extra["patterns"]) == (1, ["my-llm"])
    assert Price.objects.get().source == "import prices.json"


def test_setting_a_rules_action_is_audited_with_the_action_before_and_after(api_as, approver, rule):
    response = api_as(approver).post(f"/api/v1/alerts/{rule.pk}/action", {"action": "rollback_production"}, format="json")

    assert response.status_code == 200, response.content
    event = AuditEvent.objects.get(action="alert_action_set")
    assert (event.actor_name, event.subject, event.extra["rule_id"]) == ("bob", "model:fraud", rule.pk)
    assert (event.extra["before"], event.extra["after"]) == ({"action": "none"}, {"action": "rollback_production"})

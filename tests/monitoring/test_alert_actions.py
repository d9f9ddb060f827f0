"""Alert rules that act: a rule whose action is rollback_production rolls its model's production (its prompt's prod)
back as the system when it enters the alert state, once per change of state; refusals are recorded on the alert
event, never raised into the evaluation; only approvers set the action (service, API, page)."""

from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest

from monitoring import services
from monitoring.models import AlertEvent, AlertRule
from monitoring.services import alerts
from registry import services as registry_services
from registry.models import AuditEvent, ModelVersion, PromotionRequest, PromptDeployment, PromptVersion
from tests.factories import promote, register
from tests.prompts.conftest import brief_folder

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def traffic(editor, *, version: int, errors: int, total: int = 200, model: str = "fraud", prompt: str | None = None, tag: str = "a"):
    """`total` requests of one version in the 30 minutes before NOW, the first `errors` of them failed; rolled up."""
    subject = {"prompt": prompt} if prompt else {"model": model}
    services.events_ingest(payload={"events": [
        {"event_id": f"{tag}-{i}", **subject, "version": version, "timestamp": (NOW - timedelta(minutes=30) + timedelta(seconds=1800 * i / total)).isoformat(),
         "latency_ms": 20.0, "error": i < errors}
        for i in range(total)
    ]}, actor=editor)
    services.rollups_update()


@pytest.fixture
def fraud(editor, approver):
    """fraud: v1 was in production, v2 is now; the error-rate rule (> 1 %) rolls production back."""
    v1 = register("fraud", editor)
    promote(v1, "production", editor, approver)
    v2 = register("fraud", editor)
    promote(v2, "production", editor, approver)
    services.ops_rules_ensure(model=v1.model)
    rule = AlertRule.objects.get(model__name="fraud", metric="error_rate")
    services.alert_action_set(rule_id=rule.pk, action="rollback_production", actor=approver)
    return rule


def production(model: str = "fraud") -> int:
    return ModelVersion.objects.get(model__name=model, stage="production").version


def test_entering_alert_rolls_production_back_once_audited_by_the_system(fraud, editor):
    traffic(editor, version=2, errors=20)  # 10 % > 1 %

    first = services.ops_alerts_evaluate(now=NOW)
    second = services.ops_alerts_evaluate(now=NOW + timedelta(minutes=1))

    assert production() == 1
    assert ModelVersion.objects.get(model__name="fraud", version=2).stage == "archived"
    rollback = AuditEvent.objects.get(action="rolled_back")
    assert (rollback.actor_name, rollback.actor_id, rollback.version, rollback.to_stage) == ("system", None, 1, "production")
    assert rollback.reason == (f"Alert rule 'Error rate' (#{fraud.pk}) entered the alert state: error rate = 0.1 > 0.01; "
                               "its action rolls model fraud's production back.")
    event = AlertEvent.objects.get(rule=fraud)
    assert [e.pk for e in first if e.rule_id == fraud.pk] == [event.pk] and second == []
    assert rollback.extra == {"replaced_version": 2, "alert_rule_id": fraud.pk, "alert_event_id": event.pk, "metric": "error_rate",
                              "value": 0.1, "threshold": 0.01}
    assert (event.to_state, event.action_status, event.action_detail) == ("alert", "done", "production of model fraud rolled back to v1.")
    assert event.message.endswith("Action: production of model fraud rolled back to v1.")  # what the notification says


def test_a_rule_that_leaves_alert_and_enters_it_again_acts_again(fraud, editor, approver):
    v3 = register("fraud", editor)
    promote(v3, "production", editor, approver)
    traffic(editor, version=3, errors=20)
    services.ops_alerts_evaluate(now=NOW)
    traffic(editor, version=3, errors=0, total=2000, tag="b")  # 20 errors in 2,200 requests: 0.9 %, back to ok
    services.ops_alerts_evaluate(now=NOW + timedelta(minutes=1))
    traffic(editor, version=3, errors=40, total=40, tag="c")  # 60 / 2,240: 2.7 %

    services.ops_alerts_evaluate(now=NOW + timedelta(minutes=2))

    assert [e.to_state for e in AlertEvent.objects.filter(rule=fraud).order_by("id")] == ["alert", "ok", "alert"]
    assert AuditEvent.objects.filter(action="rolled_back").count() == 2
    assert production() == 1  # v3 -> v2 -> v1


def test_a_rule_without_an_action_only_changes_state(fraud, editor, approver):
    services.alert_action_set(rule_id=fraud.pk, action="none", actor=approver)
    traffic(editor, version=2, errors=20)

    services.ops_alerts_evaluate(now=NOW)

    assert AlertEvent.objects.get(rule=fraud).to_state == "alert"
    assert production() == 2
    assert not AuditEvent.objects.filter(action="rolled_back").exists()
    assert AlertEvent.objects.get(rule=fraud).action_status == ""


def test_a_warning_does_not_act(fraud, editor):
    AlertRule.objects.filter(pk=fraud.pk).update(warning_threshold=0.005, threshold=0.5)
    traffic(editor, version=2, errors=2)  # 1 %: warns, does not alert

    services.ops_alerts_evaluate(now=NOW)

    assert AlertEvent.objects.get(rule=fraud).to_state == "warning"
    assert production() == 2


def test_a_refused_rollback_is_recorded_on_the_event_and_the_evaluation_goes_on(editor, approver):
    v1 = register("fraud", editor)
    promote(v1, "production", editor, approver)  # nothing earlier to roll back to
    services.ops_rules_ensure(model=v1.model)
    rule = AlertRule.objects.get(model__name="fraud", metric="error_rate")
    services.alert_action_set(rule_id=rule.pk, action="rollback_production", actor=approver)
    traffic(editor, version=1, errors=20)

    changes = services.ops_alerts_evaluate(now=NOW)

    event = AlertEvent.objects.get(rule=rule)
    assert event in changes and event.to_state == "alert"
    assert event.action_status == "refused"
    assert event.action_detail == "Rollback of production refused (no_previous_version): fraud has no earlier production version to roll back to."
    assert "Action: Rollback of production refused" in event.message
    assert production() == 1 and not AuditEvent.objects.filter(action="rolled_back").exists()
    assert AlertRule.objects.get(pk=rule.pk).state == "alert"


def test_an_empty_production_is_a_refusal_too(editor, approver):
    v1 = register("fraud", editor)
    services.ops_rules_ensure(model=v1.model)
    rule = AlertRule.objects.get(model__name="fraud", metric="error_rate")
    services.alert_action_set(rule_id=rule.pk, action="rollback_production", actor=approver)
    traffic(editor, version=1, errors=20)

    services.ops_alerts_evaluate(now=NOW)

    assert AlertEvent.objects.get(rule=rule).action_detail == "Rollback of production refused (stage_empty): No version of fraud is in production."


def test_no_system_rollback_while_a_canary_rolls_out(fraud, editor, approver, monkeypatch):
    monkeypatch.setattr("registry.services.promotions.enqueue_on_commit", lambda *a: None)
    v3 = register("fraud", editor)
    canary = registry_services.promotion_request_create(version=v3, to_stage="production", reason="r", actor=editor, strategy="canary")
    registry_services.promotion_approve(promotion_id=canary.pk, actor=approver)
    traffic(editor, version=3, errors=20)  # the candidate's own errors fire the model's rule

    services.ops_alerts_evaluate(now=NOW)

    event = AlertEvent.objects.get(rule=fraud)
    assert (event.action_status, production()) == ("refused", 2)
    assert event.action_detail.startswith("Rollback of production refused (rollout_in_progress): v3 of fraud is rolling out into production")


def test_a_person_may_still_roll_back_during_a_canary(fraud, editor, approver, monkeypatch):
    monkeypatch.setattr("registry.services.promotions.enqueue_on_commit", lambda *a: None)
    v3 = register("fraud", editor)
    canary = registry_services.promotion_request_create(version=v3, to_stage="production", reason="r", actor=editor, strategy="canary")
    registry_services.promotion_approve(promotion_id=canary.pk, actor=approver)

    registry_services.model_rollback(model_name="fraud", stage="production", reason="baseline broken", actor=approver)

    assert production() == 1


def test_a_prompt_rule_rolls_prod_back(editor, approver):
    registry_services.prompts_import(files=brief_folder(), actor=editor)
    v2_prod = PromotionRequest.objects.get(prompt__name="summarize", to_stage="prod", status="pending")  # the folder's config asks for it
    registry_services.promotion_approve(promotion_id=v2_prod.pk, actor=approver)
    v3 = registry_services.promotion_request_create(
        version=PromptVersion.objects.get(prompt__name="summarize", version=3), to_stage="prod", reason="r", actor=editor)
    registry_services.promotion_approve(promotion_id=v3.pk, actor=approver)
    services.ops_rules_ensure(prompt=PromptVersion.objects.get(prompt__name="summarize", version=3).prompt)
    rule = AlertRule.objects.get(prompt__name="summarize", metric="error_rate")
    services.alert_action_set(rule_id=rule.pk, action="rollback_production", actor=approver)
    traffic(editor, version=3, errors=20, prompt="summarize")

    services.ops_alerts_evaluate(now=NOW)

    assert PromptDeployment.objects.get(prompt__name="summarize", environment="prod").version.version == 2
    audit = AuditEvent.objects.get(action="rolled_back")
    assert (audit.actor_name, audit.subject, audit.to_stage) == ("system", "prompt:summarize", "prod")
    assert AlertEvent.objects.get(rule=rule).action_detail == "prod of prompt summarize rolled back to v2."


def test_the_change_of_state_and_the_rollback_commit_together(fraud, editor):
    traffic(editor, version=2, errors=20)

    with mock.patch.object(alerts, "model_rollback", side_effect=RuntimeError("database went away")), pytest.raises(RuntimeError):
        services.ops_alerts_evaluate(now=NOW)

    assert AlertRule.objects.get(pk=fraud.pk).state == "ok" and not AlertEvent.objects.filter(rule=fraud).exists()
    services.ops_alerts_evaluate(now=NOW)  # the next evaluation enters the alert state, and acts, once
    assert production() == 1 and AuditEvent.objects.filter(action="rolled_back").count() == 1


def test_a_drift_rule_acts_through_the_same_state_change(editor, approver):
    v1 = register("fraud", editor)
    promote(v1, "production", editor, approver)
    v2 = register("fraud", editor)
    promote(v2, "production", editor, approver)
    rule = AlertRule.objects.create(model=v1.model, name="Prediction drift", metric="prediction_psi", threshold=0.2,
                                    action="rollback_production")

    event = alerts.rule_update(rule, 0.31, message=lambda state: f"[{state}] drift")

    assert production() == 1
    assert "prediction PSI = 0.31 > 0.2" in AuditEvent.objects.get(action="rolled_back").reason
    assert event.message == "[alert] drift Action: production of model fraud rolled back to v1."


# --- who sets the action --------------------------------------------------------------------------------------------


def test_setting_the_action_needs_an_approver_and_a_known_action(editor, approver):
    rule = services.ops_rules_ensure(model=register("fraud", editor).model)[0]

    with pytest.raises(Exception) as refused:
        services.alert_action_set(rule_id=rule.pk, action="rollback_production", actor=editor)
    with pytest.raises(Exception) as unknown:
        services.alert_action_set(rule_id=rule.pk, action="reboot", actor=approver)
    changed = services.alert_action_set(rule_id=rule.pk, action="rollback_production", actor=approver)

    assert (refused.value.code, refused.value.message) == ("role_required", "Setting an alert rule's action needs the approver role.")
    assert unknown.value.extra == {"fields": {"action": ["Not one of them: 'reboot'."]}}
    assert (changed.action, changed.action_set_by, AlertRule.objects.get(pk=rule.pk).action) == ("rollback_production", approver, "rollback_production")


def test_new_rules_only_notify(editor):
    rules = services.ops_rules_ensure(model=register("fraud", editor).model)

    assert {r.action for r in rules} == {"none"}


def test_api_sets_the_action(api_as, editor, approver, viewer):
    rule = services.ops_rules_ensure(model=register("fraud", editor).model)[0]
    url = f"/api/v1/alerts/{rule.pk}/action"

    as_editor = api_as(editor).post(url, {"action": "rollback_production"}, format="json")
    bad = api_as(approver).post(url, {"action": "reboot"}, format="json")
    extra = api_as(approver).post(url, {"action": "none", "hours": 3}, format="json")
    ok = api_as(approver).post(url, {"action": "rollback_production"}, format="json")
    missing = api_as(approver).post("/api/v1/alerts/999999/action", {"action": "none"}, format="json")
    listed = api_as(viewer).get("/api/v1/alerts?model=fraud").json()["results"]

    assert as_editor.status_code == 403 and as_editor.json()["code"] == "role_required"
    assert bad.status_code == 400 and "action" in bad.json()["extra"]["fields"]
    assert extra.status_code == 400 and "hours" in extra.json()["extra"]["fields"]
    assert ok.status_code == 200, ok.content
    assert (ok.json()["action"], ok.json()["action_set_by"]) == ("rollback_production", "bob")
    assert missing.status_code == 404
    assert {r["id"]: r["action"] for r in listed}[rule.pk] == "rollback_production"


def test_alerts_page_offers_the_action_to_approvers_only(client, editor, approver):
    rule = services.ops_rules_ensure(model=register("fraud", editor).model)[0]
    url = f"/monitoring/alerts/{rule.pk}/action/"

    client.force_login(editor)
    editor_page = client.get("/monitoring/alerts/").content.decode()
    refused = client.post(url, {"action": "rollback_production"}, follow=True)
    client.force_login(approver)
    approver_page = client.get("/monitoring/alerts/").content.decode()
    done = client.post(url, {"action": "rollback_production"}, follow=True)

    assert f'action="{url}"' not in editor_page and "notify only" in editor_page
    assert "needs the approver role" in refused.content.decode()
    assert AlertRule.objects.get(pk=rule.pk).action == "rollback_production"
    assert f'action="{url}"' in approver_page
    assert "roll production back when it enters the alert state" in done.content.decode()


def test_a_silenced_rule_still_acts(fraud, editor, approver):
    services.alert_silence(rule_id=fraud.pk, hours=24, actor=approver)
    traffic(editor, version=2, errors=20)

    services.ops_alerts_evaluate(now=NOW)

    event = AlertEvent.objects.get(rule=fraud)
    assert event.silenced and event.action_status == "done" and production() == 1

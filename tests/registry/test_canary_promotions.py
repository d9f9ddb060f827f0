"""A canary promotion's life in the registry: requested and approved like any promotion, but `rolling_out` without a
stage move; completed (the stage moves) or aborted (`rolled_back`) by the rollout controller as the system actor."""

import pytest
from django.db import IntegrityError, transaction

from mlops_site.exceptions import Conflict, Forbidden, NotFound, ValidationFailed
from registry import services
from registry.models import AuditEvent, ModelVersion, PromotionRequest, PromptDeployment, PromptVersion, StageChange
from registry.services import promotions
from tests.conftest import make_user
from tests.factories import promote, register
from tests.prompts.conftest import brief_folder

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(monkeypatch):
    """The tasks the promotion services queue after commit, by name, instead of sending them."""
    sent = []
    monkeypatch.setattr(promotions, "enqueue_on_commit", lambda name, *args: sent.append((name, *args)))
    return sent


@pytest.fixture
def fraud(editor, approver):
    """fraud v1 in production, v2 a candidate."""
    v1 = register("fraud", editor)
    promote(v1, "production", editor, approver)
    return v1, register("fraud", editor)


def canary(version, editor, **fields):
    fields = {"to_stage": "production", "reason": "v2 is faster", "strategy": "canary", **fields}
    return services.promotion_request_create(version=version, actor=editor, **fields)


def test_approving_a_canary_leaves_production_alone_and_queues_the_rollout_start(fraud, editor, approver, queued, settings):
    v1, v2 = fraud
    request = canary(v2, editor, policy="careful")
    changes_before = StageChange.objects.count()

    services.promotion_approve(promotion_id=request.pk, actor=approver, comment="go canary")

    request.refresh_from_db()
    assert (request.status, request.strategy, request.policy) == ("rolling_out", "canary", "careful")
    assert ModelVersion.objects.get(pk=v1.pk).stage == "production"
    assert ModelVersion.objects.get(pk=v2.pk).stage == "candidate"
    assert StageChange.objects.count() == changes_before
    assert queued == [(settings.MLOPS_ROLLOUT_START_TASK, request.pk)]
    approved = AuditEvent.objects.filter(action="promotion_approved").latest("id")
    assert (approved.actor_name, approved.version, approved.to_stage) == ("bob", 2, "production")
    assert approved.extra["strategy"] == "canary" and approved.extra["policy"] == "careful" and approved.extra["baseline_version"] == 1


def test_a_direct_approval_queues_no_rollout(fraud, editor, approver, queued):
    _, v2 = fraud
    request = services.promotion_request_create(version=v2, to_stage="production", reason="r", actor=editor)

    services.promotion_approve(promotion_id=request.pk, actor=approver)

    assert queued == []
    assert ModelVersion.objects.get(pk=v2.pk).stage == "production"


def test_a_canary_still_needs_a_second_person(fraud, approver):
    _, v2 = fraud
    request = canary(v2, approver)

    with pytest.raises(Forbidden) as caught:
        services.promotion_approve(promotion_id=request.pk, actor=approver)

    assert caught.value.code == "four_eyes"
    assert PromotionRequest.objects.get(pk=request.pk).status == "pending"


def test_a_canary_cannot_be_approved_by_its_versions_author(editor, approver, approver2, queued):
    promote(register("fraud", editor), "production", editor, approver)
    v2 = register("fraud", approver)
    request = canary(v2, editor)

    with pytest.raises(Forbidden) as caught:
        services.promotion_approve(promotion_id=request.pk, actor=approver)

    assert caught.value.code == "four_eyes"
    assert PromotionRequest.objects.get(pk=request.pk).status == "pending"
    assert queued == []
    services.promotion_approve(promotion_id=request.pk, actor=approver2)
    assert PromotionRequest.objects.get(pk=request.pk).status == "rolling_out"


@pytest.mark.parametrize(("fields", "field"), [
    ({"strategy": "blue-green"}, "strategy"),
    ({"to_stage": "staging"}, "strategy"),
    ({"strategy": "direct", "policy": "careful"}, "policy"),
    ({"policy": "no spaces"}, "policy"),
    ({"policy": "x" * 101}, "policy"),
])
def test_a_bad_canary_request_is_a_400_naming_the_field(fraud, editor, fields, field):
    _, v2 = fraud

    with pytest.raises(ValidationFailed) as caught:
        canary(v2, editor, **fields)

    assert field in caught.value.extra["fields"]
    assert not PromotionRequest.objects.filter(version=v2).exists()


def test_a_canary_of_the_version_already_in_production_is_refused(fraud, editor):
    v1, _ = fraud

    with pytest.raises(Conflict) as caught:
        canary(v1, editor)

    assert caught.value.code == "already_in_stage"


def test_a_second_rollout_of_one_model_is_refused_when_requested_and_when_approved(fraud, editor, approver, approver2, queued):
    _, v2 = fraud
    v3 = register("fraud", editor)
    first, second = canary(v2, editor), canary(v3, editor)
    services.promotion_approve(promotion_id=first.pk, actor=approver)

    with pytest.raises(Conflict) as at_request:
        canary(register("fraud", editor), editor)
    with pytest.raises(Conflict) as at_approval:
        services.promotion_approve(promotion_id=second.pk, actor=approver2)

    assert at_request.value.code == at_approval.value.code == "rollout_in_progress"
    assert at_approval.value.extra["promotion_id"] == first.pk
    assert PromotionRequest.objects.get(pk=second.pk).status == "pending"


def test_nothing_else_enters_production_while_a_canary_rolls_out(fraud, editor, approver, queued):
    _, v2 = fraud
    v3 = register("fraud", editor)
    services.promotion_approve(promotion_id=canary(v2, editor).pk, actor=approver)
    direct = services.promotion_request_create(version=v3, to_stage="production", reason="hotfix", actor=editor)

    with pytest.raises(Conflict) as caught:
        services.promotion_approve(promotion_id=direct.pk, actor=approver)

    assert caught.value.code == "rollout_in_progress"
    assert ModelVersion.objects.get(pk=v3.pk).stage == "candidate"


def test_staging_still_moves_while_production_rolls_out(fraud, editor, approver, queued):
    _, v2 = fraud
    v3 = register("fraud", editor)
    services.promotion_approve(promotion_id=canary(v2, editor).pk, actor=approver)

    promote(v3, "staging", editor, approver)

    assert ModelVersion.objects.get(pk=v3.pk).stage == "staging"


def test_the_database_holds_one_rollout_per_model(fraud, editor, approver, queued):
    _, v2 = fraud
    v3 = register("fraud", editor)
    services.promotion_approve(promotion_id=canary(v2, editor).pk, actor=approver)
    second = PromotionRequest.objects.create(model=v3.model, version=v3, to_stage="production", strategy="canary", requested_by=editor)

    with pytest.raises(IntegrityError), transaction.atomic():
        PromotionRequest.objects.filter(pk=second.pk).update(status="rolling_out")

    assert PromotionRequest.objects.get(pk=second.pk).status == "pending"


def test_the_database_refuses_a_canary_into_staging(fraud, editor):
    _, v2 = fraud

    with pytest.raises(IntegrityError), transaction.atomic():
        PromotionRequest.objects.create(model=v2.model, version=v2, to_stage="staging", strategy="canary", requested_by=editor)


def rolling_out(fraud, editor, approver, queued):
    _, v2 = fraud
    request = canary(v2, editor)
    services.promotion_approve(promotion_id=request.pk, actor=approver)
    return request


def test_completing_a_rollout_moves_production_as_a_direct_approval_would(fraud, editor, approver, queued):
    v1, v2 = fraud
    request = rolling_out(fraud, editor, approver, queued)
    stale = services.promotion_request_create(version=register("fraud", editor), to_stage="production", reason="next", actor=editor)

    services.promotion_rollout_complete(promotion_id=request.pk)

    request.refresh_from_db()
    assert request.status == "approved"
    assert (ModelVersion.objects.get(pk=v1.pk).stage, ModelVersion.objects.get(pk=v2.pk).stage) == ("archived", "production")
    change = StageChange.objects.latest("id")
    assert (change.version_id, change.previous_version_id, change.promotion_id, change.kind, change.actor_id) == (v2.pk, v1.pk, request.pk, "promotion", None)
    completed = AuditEvent.objects.get(action="promotion_completed")
    assert (completed.actor_name, completed.actor_id, completed.version, completed.from_stage, completed.to_stage) == ("system", None, 2, "candidate", "production")
    assert completed.extra["archived_version"] == 1 and completed.extra["promotion_id"] == request.pk
    assert PromotionRequest.objects.get(pk=stale.pk).status == "superseded"


def test_a_completed_rollout_can_be_rolled_back_to_the_baseline(fraud, editor, approver, queued):
    v1, _ = fraud
    request = rolling_out(fraud, editor, approver, queued)
    services.promotion_rollout_complete(promotion_id=request.pk)

    back = services.model_rollback(model_name="fraud", stage="production", reason="bad after all", actor=approver)

    assert back.pk == v1.pk


def test_completing_after_production_changed_or_twice_is_a_409_and_changes_nothing(fraud, editor, approver, queued):
    v1, v2 = fraud
    promote(v2, "production", editor, approver)
    request = canary(register("fraud", editor), editor)
    services.promotion_approve(promotion_id=request.pk, actor=approver)
    services.model_rollback(model_name="fraud", stage="production", reason="v2 misbehaves", actor=approver)

    with pytest.raises(Conflict) as changed:
        services.promotion_rollout_complete(promotion_id=request.pk)
    services.promotion_rollout_abort(promotion_id=request.pk, reason="production changed")
    with pytest.raises(Conflict) as twice:
        services.promotion_rollout_complete(promotion_id=request.pk)
    with pytest.raises(NotFound) as unknown:
        services.promotion_rollout_complete(promotion_id=999)

    assert changed.value.code == "stage_changed" and twice.value.code == "not_rolling_out"
    assert changed.value.message == "production of fraud changed during the rollout (was v2, now v1)."
    assert twice.value.message == f"Promotion #{request.pk} is rolled_back, not rolling out."
    assert unknown.value.message == "No promotion request 999."
    assert list(ModelVersion.objects.filter(stage="production").values_list("pk", flat=True)) == [v1.pk]
    assert not AuditEvent.objects.filter(action="promotion_completed").exists()


def test_aborting_a_rollout_keeps_production_and_audits_the_trigger_as_the_system(fraud, editor, approver, queued):
    v1, v2 = fraud
    request = rolling_out(fraud, editor, approver, queued)
    numbers = {"trigger": "error_rate", "value": 0.08, "limit": 0.05}

    services.promotion_rollout_abort(promotion_id=request.pk, reason="error_rate 0.08 > 0.05", extra=numbers)

    request.refresh_from_db()
    assert request.status == "rolled_back"
    assert (ModelVersion.objects.get(pk=v1.pk).stage, ModelVersion.objects.get(pk=v2.pk).stage) == ("production", "candidate")
    [event] = AuditEvent.objects.filter(action="rollout_rolled_back")
    assert (event.actor_name, event.actor_id, event.version, event.from_stage, event.to_stage, event.reason) == (
        "system", None, 2, "candidate", "production", "error_rate 0.08 > 0.05")
    assert event.extra == {"promotion_id": request.pk, "serving_version": 1, **numbers}


def test_after_a_rollback_the_model_may_roll_out_again(fraud, editor, approver, queued):
    request = rolling_out(fraud, editor, approver, queued)
    services.promotion_rollout_abort(promotion_id=request.pk, reason="errors")

    again = canary(register("fraud", editor), editor)

    assert again.status == "pending"


def test_abort_needs_a_reason_and_a_rolling_out_request(fraud, editor, approver, queued):
    request = rolling_out(fraud, editor, approver, queued)

    with pytest.raises(ValidationFailed):
        services.promotion_rollout_abort(promotion_id=request.pk, reason="  ")
    services.promotion_rollout_abort(promotion_id=request.pk, reason="errors")
    with pytest.raises(Conflict) as twice:
        services.promotion_rollout_abort(promotion_id=request.pk, reason="errors")

    assert twice.value.code == "not_rolling_out"
    assert AuditEvent.objects.filter(action="rollout_rolled_back").count() == 1


def test_a_person_completing_or_aborting_needs_the_approver_role_and_is_named(fraud, editor, approver, queued):
    request = rolling_out(fraud, editor, approver, queued)

    with pytest.raises(Forbidden):
        services.promotion_rollout_abort(promotion_id=request.pk, reason="no", actor=editor)
    with pytest.raises(Forbidden):
        services.promotion_rollout_complete(promotion_id=request.pk, actor=make_user("vic", "viewer"))
    services.promotion_rollout_complete(promotion_id=request.pk, actor=approver, reason="looks great")

    completed = AuditEvent.objects.get(action="promotion_completed")
    assert (completed.actor_name, completed.reason) == ("bob", "looks great")
    assert StageChange.objects.latest("id").actor_id == approver.pk


def test_a_prompt_canary_rolls_out_into_prod_only_and_completes_there(editor, approver, queued):
    services.prompts_import(files=brief_folder(), actor=editor)
    v2_prod = PromotionRequest.objects.get(prompt__name="summarize", to_stage="prod", status="pending")
    services.promotion_approve(promotion_id=v2_prod.pk, actor=approver)
    v3 = PromptVersion.objects.get(prompt__name="summarize", version=3)

    with pytest.raises(ValidationFailed):
        services.promotion_request_create(version=v3, to_stage="staging", reason="r", actor=editor, strategy="canary")
    request = services.promotion_request_create(version=v3, to_stage="prod", reason="r", actor=editor, strategy="canary")
    services.promotion_approve(promotion_id=request.pk, actor=approver)
    serving_during = PromptDeployment.objects.get(prompt__name="summarize", environment="prod").version.version
    services.promotion_rollout_complete(promotion_id=request.pk)

    assert serving_during == 2
    assert PromptDeployment.objects.get(prompt__name="summarize", environment="prod").version_id == v3.pk
    assert AuditEvent.objects.get(action="promotion_completed").extra["replaced_version"] == 2


# --- what a user reads and what the audit log keeps (each kills mutants of registry/services/promotions.py) ----


def test_a_person_completing_or_aborting_is_told_which_role_it_needs(fraud, editor, approver, queued):
    request = rolling_out(fraud, editor, approver, queued)

    with pytest.raises(Forbidden) as completing:
        services.promotion_rollout_complete(promotion_id=request.pk, actor=editor)
    with pytest.raises(Forbidden) as aborting:
        services.promotion_rollout_abort(promotion_id=request.pk, reason="no", actor=editor)

    assert completing.value.message == "Completing a rollout needs the approver role."
    assert aborting.value.message == "Rolling back a rollout needs the approver role."


def test_an_approver_rolling_back_a_rollout_is_named_and_gets_the_rolled_back_request(fraud, editor, approver, queued):
    request = rolling_out(fraud, editor, approver, queued)

    result = services.promotion_rollout_abort(promotion_id=request.pk, reason="error spike", actor=approver)

    assert result.status == "rolled_back"
    event = AuditEvent.objects.get(action="rollout_rolled_back")
    assert (event.actor_name, event.actor_id, event.reason) == ("bob", approver.pk, "error spike")


def test_a_completion_returns_the_approved_request_and_audits_the_default_reason(fraud, editor, approver, queued):
    request = rolling_out(fraud, editor, approver, queued)

    result = services.promotion_rollout_complete(promotion_id=request.pk)

    assert result.status == "approved"
    completed = AuditEvent.objects.get(action="promotion_completed")
    assert completed.reason == "The canary rollout completed."
    assert completed.extra == {"promotion_id": request.pk, "strategy": "canary", "archived_version": 1}


def test_completing_or_aborting_one_rollout_leaves_another_models_rollout_alone(fraud, editor, approver, queued):
    churn_v1 = register("churn", editor)
    promote(churn_v1, "production", editor, approver)
    fraud_rollout = rolling_out(fraud, editor, approver, queued)
    churn_rollout = canary(register("churn", editor), editor)
    services.promotion_approve(promotion_id=churn_rollout.pk, actor=approver)

    services.promotion_rollout_complete(promotion_id=fraud_rollout.pk)
    assert PromotionRequest.objects.get(pk=churn_rollout.pk).status == "rolling_out"
    fraud_next = canary(register("fraud", editor), editor)
    services.promotion_approve(promotion_id=fraud_next.pk, actor=approver)
    services.promotion_rollout_abort(promotion_id=fraud_next.pk, reason="errors")

    assert PromotionRequest.objects.get(pk=churn_rollout.pk).status == "rolling_out"


def test_a_canary_into_an_empty_production_completes_and_archives_nothing(editor, approver, queued):
    version = register("fresh", editor)
    request = canary(version, editor)
    services.promotion_approve(promotion_id=request.pk, actor=approver)

    services.promotion_rollout_complete(promotion_id=request.pk)

    assert AuditEvent.objects.get(action="promotion_approved").extra["baseline_version"] is None
    assert AuditEvent.objects.get(action="promotion_completed").extra["archived_version"] is None
    assert ModelVersion.objects.get(pk=version.pk).stage == "production"


def test_aborting_a_canary_into_an_empty_production_says_nothing_serves(editor, approver, queued):
    version = register("fresh", editor)
    request = canary(version, editor)
    services.promotion_approve(promotion_id=request.pk, actor=approver)

    services.promotion_rollout_abort(promotion_id=request.pk, reason="errors")

    assert AuditEvent.objects.get(action="rollout_rolled_back").extra == {"promotion_id": request.pk, "serving_version": None}


def test_the_system_never_rolls_back_a_stage_a_canary_rolls_out_into_and_a_person_may(fraud, editor, approver, queued):
    v1, v2 = fraud
    promote(v2, "production", editor, approver)
    request = canary(register("fraud", editor), editor)
    services.promotion_approve(promotion_id=request.pk, actor=approver)

    with pytest.raises(Conflict) as by_the_system:
        services.model_rollback(model_name="fraud", stage="production", reason="alert fired", actor=None)
    by_a_person = services.model_rollback(model_name="fraud", stage="production", reason="v2 misbehaves", actor=approver)

    assert (by_the_system.value.code, by_the_system.value.extra) == ("rollout_in_progress", {"promotion_id": request.pk})
    assert by_the_system.value.message == (
        f"v3 of fraud is rolling out into production (promotion #{request.pk}); wait until it completes or roll it back.")
    assert by_a_person.pk == v1.pk


def test_the_system_rolls_back_a_stage_no_canary_rolls_out_into(fraud, editor, approver):
    v1, v2 = fraud
    promote(v2, "production", editor, approver)

    back = services.model_rollback(model_name="fraud", stage="production", reason="alert fired", actor=None, extra={"alert_rule": 4})

    assert back.pk == v1.pk
    event = AuditEvent.objects.get(action="rolled_back")
    assert (event.actor_name, event.actor_id, event.extra) == ("system", None, {"replaced_version": 2, "alert_rule": 4})
    assert StageChange.objects.latest("id").actor_id is None


@pytest.mark.parametrize(("fields", "message", "field_message"), [
    ({"strategy": "blue-green"}, "'strategy' must be one of direct, canary.", "Not one of them: 'blue-green'."),
    ({"strategy": "direct", "policy": "careful"}, "A rollout policy goes with a canary only.", 'Only with "strategy": "canary".'),
    ({"to_stage": "staging"}, "A canary of a model rolls out into production, not staging.", "A canary goes to production only."),
    ({"policy": "no spaces"}, "'policy' must be a rollout policy's name.", "1 to 100 letters, digits, '.', '_' or '-'."),
    ({"policy": 5}, "'policy' must be a rollout policy's name.", "1 to 100 letters, digits, '.', '_' or '-'."),
])
def test_a_bad_canary_request_says_what_is_wrong(fraud, editor, fields, message, field_message):
    _, v2 = fraud

    with pytest.raises(ValidationFailed) as caught:
        canary(v2, editor, **fields)

    field = next(iter(caught.value.extra["fields"]))
    assert (caught.value.message, caught.value.extra["fields"][field]) == (message, [field_message])


def test_a_policy_name_is_trimmed_and_may_have_100_characters_and_a_blank_one_goes_with_a_direct_request(fraud, editor):
    _, v2 = fraud
    v3 = register("fraud", editor)

    trimmed = canary(v2, editor, policy="  careful ")
    longest = canary(v3, editor, to_stage="production", policy="p" * 100, reason="other")
    direct = services.promotion_request_create(version=register("fraud", editor), to_stage="production", reason="r", actor=editor, policy="  ")

    assert (trimmed.policy, longest.policy, direct.policy, direct.strategy) == ("careful", "p" * 100, "", "direct")


def test_a_canarys_approval_is_audited_with_the_request_and_the_default_policy(fraud, editor, approver, queued):
    _, v2 = fraud
    request = canary(v2, editor)
    services.promotion_approve(promotion_id=request.pk, actor=approver, comment="go canary")

    approved = AuditEvent.objects.get(action="promotion_approved", extra__promotion_id=request.pk)

    assert (approved.from_stage, approved.to_stage, approved.reason) == ("candidate", "production", "go canary")
    assert approved.extra == {"promotion_id": request.pk, "requested_by": "alice", "request_reason": "v2 is faster", "strategy": "canary",
                              "policy": "default", "baseline_version": 1}


def test_a_prompt_canary_into_an_environment_without_approval_rolls_out_at_once_and_says_direct(editor, approver, queued, settings):
    settings.MLOPS_PROMPT_DIRECT_ENVIRONMENTS = ["dev", "prod"]
    services.prompts_import(files=brief_folder(), actor=editor)
    v1 = PromptVersion.objects.get(prompt__name="summarize", version=1)

    request = services.promotion_request_create(version=v1, to_stage="prod", reason="r", actor=editor, strategy="canary")

    request.refresh_from_db()
    assert (request.status, request.decided_by_id, request.comment) == ("rolling_out", editor.pk, "Direct move: this environment needs no approval.")
    assert request.decided_at is not None
    approved = AuditEvent.objects.get(action="promotion_approved", extra__promotion_id=request.pk)
    assert approved.extra["direct"] is True and approved.extra["strategy"] == "canary"


def test_a_canary_request_is_audited_with_its_strategy_and_policy(fraud, editor):
    _, v2 = fraud

    request = canary(v2, editor)

    requested = AuditEvent.objects.get(action="promotion_requested", extra__promotion_id=request.pk)
    assert requested.extra == {"promotion_id": request.pk, "replaces_version": 1, "strategy": "canary", "policy": "default"}

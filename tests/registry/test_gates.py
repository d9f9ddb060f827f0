"""Gate policies, gate status and the promotion refusal (409 naming the checks), with the admin override."""

import pytest
from django.utils import timezone

from mlops_site.exceptions import Conflict, Forbidden, ValidationFailed
from registry import services
from registry.models import AuditEvent, Evaluation, RegisteredModel
from registry.services.gates import DEFAULT_MODEL_CHECKS, gate_policy_set, gate_status
from tests.conftest import make_user
from tests.factories import register
from tests.registry.test_api import assert_error_shape

pytestmark = pytest.mark.django_db


def evaluated(version, kind: str, **metrics):
    return Evaluation.objects.create(model_version=version, kind=kind, status="done", finished_at=timezone.now(), source="test.csv",
                                     metrics=metrics)


@pytest.fixture
def gated(editor, approver):
    version = register("fraud", editor)
    gate_policy_set(model=RegisteredModel.objects.get(name="fraud"), checks=DEFAULT_MODEL_CHECKS, actor=approver)
    return version


def test_status_says_passed_failed_and_not_run(gated):
    evaluated(gated, "model", accuracy=0.95, f1=0.85, demographic_parity_difference=0.04)

    status = gate_status(version=gated)

    by = {c.check: c for c in status.checks}
    assert (by["accuracy"].status, by["f1"].status, by["demographic_parity_difference"].status) == ("passed", "failed", "passed")
    assert by["schema_violations"].status == "not_run" and by["schema_violations"].value is None
    assert by["accuracy"].source == "test.csv" and not status.passed


def test_the_newest_evaluation_with_a_figure_counts(gated):
    evaluated(gated, "model", accuracy=0.80)
    evaluated(gated, "model", accuracy=0.96)

    assert {c.check: c.value for c in gate_status(version=gated).checks}["accuracy"] == 0.96


def test_a_failed_gate_refuses_the_request_and_the_approval(api_as, editor, approver, admin_user, gated):
    refused = api_as(editor).post("/api/v1/models/fraud/versions/1/promotions", {"to": "production", "reason": "ship"}, format="json")

    assert_error_shape(refused, 409, "gates_failed")
    assert "accuracy never ran" in refused.json()["message"]
    assert {f["check"] for f in refused.json()["extra"]["failed"]} == {"accuracy", "f1", "demographic_parity_difference", "schema_violations"}

    evaluated(gated, "model", accuracy=0.95, f1=0.93, demographic_parity_difference=0.02)
    evaluated(gated, "data", schema_violations=0)
    requested = api_as(editor).post("/api/v1/models/fraud/versions/1/promotions", {"to": "production", "reason": "ship"}, format="json")
    assert requested.status_code == 201
    evaluated(gated, "model", accuracy=0.95, f1=0.93, demographic_parity_difference=0.3)  # a later bias check fails
    approve = api_as(approver).post(f"/api/v1/promotions/{requested.json()['id']}/approve", {}, format="json")
    assert_error_shape(approve, 409, "gates_failed")
    assert "demographic_parity_difference 0.3 > 0.1" in approve.json()["message"]


def test_only_an_admin_overrides_with_a_reason_and_it_is_audited(editor, approver, admin_user, gated):
    with pytest.raises(Forbidden):
        services.promotion_request_create(version=gated, to_stage="staging", reason="try", actor=editor, override_reason="I know")

    promotion = services.promotion_request_create(version=gated, to_stage="staging", reason="try", actor=admin_user,
                                                  override_reason="hotfix for incident 42")

    assert promotion.status == "pending"
    event = AuditEvent.objects.get(action="gate_overridden")
    assert event.reason == "hotfix for incident 42" and "accuracy never ran" in event.extra["failed"]


def test_without_a_policy_promotions_work_as_before(editor, approver):
    version = register("free", editor)

    assert services.promotion_request_create(version=version, to_stage="staging", reason="ok", actor=editor).status == "pending"


@pytest.mark.parametrize(
    "checks",
    [[{"check": "accuracy", "op": "=>", "threshold": 1}], [{"check": "", "op": ">=", "threshold": 1}],
     [{"check": "a", "op": ">=", "threshold": float("nan")}], [{"check": "a", "op": ">=", "threshold": 1}] * 2, "accuracy"],
)
def test_bad_policies_are_refused(approver, gated, checks):
    with pytest.raises(ValidationFailed):
        gate_policy_set(model=RegisteredModel.objects.get(name="fraud"), checks=checks, actor=approver)


def test_editors_cannot_change_policies(editor, gated):
    with pytest.raises(Forbidden):
        gate_policy_set(model=RegisteredModel.objects.get(name="fraud"), checks=[], actor=editor)


def test_new_models_get_the_default_policy_when_the_setting_says_so(editor, settings):
    settings.MLOPS_GATE_POLICY_FOR_NEW = True

    register("gated-from-birth", editor)

    assert RegisteredModel.objects.get(name="gated-from-birth").gate_policy.checks == DEFAULT_MODEL_CHECKS



@pytest.mark.parametrize(
    ("op", "threshold", "value", "status"),
    [
        (">=", 0.92, 0.92, "passed"), (">=", 0.92, 0.9199, "failed"),
        (">", 0.92, 0.92, "failed"), (">", 0.92, 0.9201, "passed"),
        ("<=", 0.1, 0.1, "passed"), ("<=", 0.1, 0.1001, "failed"),
        ("<", 0.1, 0.1, "failed"), ("<", 0.1, 0.0999, "passed"),
        ("<=", 0, 0, "passed"), ("<", 0, 0, "failed"),
    ],
)
def test_a_check_at_exactly_its_threshold_passes_only_an_inclusive_comparison(editor, approver, op, threshold, value, status):
    version = register("fraud", editor)
    gate_policy_set(model=RegisteredModel.objects.get(name="fraud"), checks=[{"check": "figure", "op": op, "threshold": threshold}], actor=approver)
    evaluated(version, "model", figure=value)

    (check,) = gate_status(version=version).checks

    assert (check.value, check.threshold, check.status) == (value, threshold, status)


def test_a_version_exactly_at_the_default_thresholds_is_promoted(api_as, editor, approver, gated):
    # A pipeline's --min-accuracy 0.92 means 0.92 itself is enough.
    evaluated(gated, "model", accuracy=0.92, f1=0.9, demographic_parity_difference=0.1)
    evaluated(gated, "data", schema_violations=0)

    status = gate_status(version=gated)
    requested = api_as(editor).post("/api/v1/models/fraud/versions/1/promotions", {"to": "production", "reason": "at the bar"}, format="json")
    approved = api_as(approver).post(f"/api/v1/promotions/{requested.json()['id']}/approve", {}, format="json")

    assert [(c.check, c.status) for c in status.checks] == [
        ("accuracy", "passed"), ("f1", "passed"), ("demographic_parity_difference", "passed"), ("schema_violations", "passed"),
    ]
    assert requested.status_code == 201, requested.content
    assert approved.status_code == 200, approved.content
    assert api_as(editor).get("/api/v1/models/fraud/stages/production").json()["version"] == 1


@pytest.mark.parametrize(
    ("checks", "index", "problem"),
    [
        ([{"check": "accuracy", "op": ">=", "threshold": 1, "note": "x"}], 0, "an object with check, op and threshold"),
        (["accuracy"], 0, "an object with check, op and threshold"),
        (
            [{"check": "a", "op": ">", "threshold": 1}, {"check": " ", "op": ">", "threshold": 1}],
            1,
            "check: a figure name such as accuracy",
        ),
        ([{"check": "a" * 101, "op": ">=", "threshold": 1}], 0, "check: a figure name such as accuracy"),
        ([{"check": "accuracy", "op": "=>", "threshold": 1}], 0, "op: one of >=, >, <=, <"),
        ([{"check": "accuracy", "op": ">=", "threshold": True}], 0, "threshold: a finite number"),
        ([{"check": "a", "op": ">=", "threshold": 1}, {"check": "a", "op": "<", "threshold": 2}], 1, "a is listed twice"),
    ],
)
def test_bad_policy_items_are_named_by_index_and_rule(approver, gated, checks, index, problem):
    with pytest.raises(ValidationFailed) as refused:
        gate_policy_set(model=RegisteredModel.objects.get(name="fraud"), checks=checks, actor=approver)

    assert refused.value.message == f"checks[{index}]: {problem}."
    assert refused.value.extra == {"fields": {"checks": [f"[{index}] {problem}"]}}


def test_policy_checks_that_are_not_a_list_say_so(approver, gated):
    with pytest.raises(ValidationFailed) as refused:
        gate_policy_set(model=RegisteredModel.objects.get(name="fraud"), checks={"check": "accuracy"}, actor=approver)

    assert refused.value.message == "checks: a list of {check, op, threshold}."
    assert refused.value.extra == {"fields": {"checks": ["a list"]}}


def test_a_check_name_of_100_characters_is_accepted(approver, gated):
    checks = [{"check": "a" * 100, "op": "<", "threshold": 1}]

    policy = gate_policy_set(model=RegisteredModel.objects.get(name="fraud"), checks=checks, actor=approver)

    assert policy.checks == [{"check": "a" * 100, "op": "<", "threshold": 1.0}]


def test_a_policy_change_is_audited_with_the_checks_before_and_after(approver, gated):
    model = RegisteredModel.objects.get(name="fraud")
    new_checks = [{"check": "accuracy", "op": ">", "threshold": 0.5}]

    gate_policy_set(model=model, checks=new_checks, enforced=False, actor=approver)

    first, second = AuditEvent.objects.filter(action="gate_policy_set").order_by("id")
    as_stored = [{**c, "threshold": float(c["threshold"])} for c in DEFAULT_MODEL_CHECKS]
    assert (second.subject, second.actor, second.reason) == ("model:fraud", approver, "")
    assert second.extra == {"checks": [{"check": "accuracy", "op": ">", "threshold": 0.5}], "before": as_stored, "enforced": False,
                            "evidence_from_other_identity": False, "evidence_from_other_identity_before": False}
    assert first.extra["checks"] == as_stored and first.extra["enforced"] is True


def test_a_prompt_policy_is_audited_under_the_prompts_name(editor, approver):
    from registry.models import Prompt
    from registry.services import prompts as prompt_services
    from tests.prompts.conftest import brief_folder

    prompt_services.prompts_import(files=brief_folder(), actor=editor)

    gate_policy_set(prompt=Prompt.objects.get(name="summarize"), checks=[], actor=approver)

    assert AuditEvent.objects.get(action="gate_policy_set").subject == "prompt:summarize"


def test_an_editor_changing_a_policy_is_told_which_role_it_needs(editor, gated):
    with pytest.raises(Forbidden) as refused:
        gate_policy_set(model=RegisteredModel.objects.get(name="fraud"), checks=[], actor=editor)

    assert refused.value.message == "Changing a gate policy needs the approver role."


def test_the_refusal_lists_every_failed_check_and_needs_an_override_to_pass(editor, gated):
    from mlops_site.exceptions import Conflict
    from registry.services.gates import gates_require

    evaluated(gated, "model", accuracy=0.5, f1=0.95, demographic_parity_difference=0.2)

    with pytest.raises(Conflict) as refused:
        gates_require(version=gated, to_stage="production", actor=editor, requester=editor, subject="fraud")

    assert refused.value.message == (
        "Gates not passed for fraud v1: accuracy 0.5 < 0.92; demographic_parity_difference 0.2 > 0.1; schema_violations never ran."
    )


def test_only_finished_evaluations_of_this_version_count(editor, gated):
    other = register("fraud", editor)
    evaluated(other, "model", accuracy=0.99, f1=0.99, demographic_parity_difference=0.0)
    for status in ("pending", "running", "failed"):
        Evaluation.objects.create(model_version=gated, kind="model", status=status, finished_at=timezone.now(), metrics={"accuracy": 0.99})

    checks = gate_status(version=gated).checks

    assert [c.status for c in checks] == ["not_run"] * 4


def test_the_newest_finished_evaluation_wins_and_the_later_one_breaks_a_tie(gated):
    now = timezone.now()
    newest = evaluated(gated, "model", accuracy=0.95)
    Evaluation.objects.filter(pk=newest.pk).update(finished_at=now)
    Evaluation.objects.create(model_version=gated, kind="model", status="done", finished_at=now - timezone.timedelta(hours=1),
                              metrics={"accuracy": 0.5, "f1": 0.91})  # created later, finished earlier
    Evaluation.objects.create(model_version=gated, kind="data", status="done", finished_at=now, metrics={"f1": 0.93})
    tie_winner = Evaluation.objects.create(model_version=gated, kind="data", status="done", finished_at=now, metrics={"f1": 0.94})

    by = {c.check: c for c in gate_status(version=gated).checks}

    assert by["accuracy"].value == 0.95 and by["accuracy"].evaluation_id == newest.pk
    assert by["f1"].value == 0.94 and by["f1"].evaluation_id == tie_winner.pk


def test_each_check_says_where_its_value_came_from(gated):
    done = evaluated(gated, "model", accuracy=0.95)

    by = {c.check: c for c in gate_status(version=gated).checks}

    assert (by["accuracy"].evaluation_id, by["accuracy"].kind, by["accuracy"].ran_at, by["accuracy"].source) == (
        done.pk, "model", done.finished_at, "test.csv",
    )
    assert (by["f1"].evaluation_id, by["f1"].kind, by["f1"].ran_at, by["f1"].source) == (None, "", None, "")


def test_status_follows_the_policy_it_is_given(gated):
    from registry.models import GatePolicy

    evaluated(gated, "model", accuracy=0.5, f1=0.95)
    draft = GatePolicy(model=RegisteredModel.objects.get(name="fraud"), checks=[{"check": "f1", "op": ">=", "threshold": 0.9}])

    status = gate_status(version=gated, policy=draft)

    assert [(c.check, c.status) for c in status.checks] == [("f1", "passed")] and status.passed


def test_the_refusal_carries_each_failed_check_as_data(editor, gated):
    from mlops_site.exceptions import Conflict
    from registry.services.gates import gates_require

    evaluated(gated, "model", accuracy=0.5, f1=0.95, demographic_parity_difference=0.0)
    evaluated(gated, "data", schema_violations=0)

    with pytest.raises(Conflict) as refused:
        gates_require(version=gated, to_stage="production", actor=editor, requester=editor, subject="fraud", override_reason="")

    assert refused.value.code == "gates_failed"
    assert refused.value.extra["failed"] == [{"check": "accuracy", "status": "failed", "value": 0.5, "op": ">=", "threshold": 0.92,
                                              "problem": "accuracy 0.5 < 0.92"}]


def test_an_override_is_audited_with_the_version_and_stage_and_refused_to_non_admins(editor, admin_user, gated):
    with pytest.raises(Forbidden) as refused:
        services.promotion_request_create(version=gated, to_stage="staging", reason="try", actor=editor, override_reason="I know")

    services.promotion_request_create(version=gated, to_stage="staging", reason="try", actor=admin_user, override_reason="incident 42")

    assert refused.value.message == "Only an admin can override failed gates."
    event = AuditEvent.objects.get(action="gate_overridden")
    assert (event.subject, event.version, event.to_stage, event.actor) == ("model:fraud", 1, "staging", admin_user)


def test_new_prompts_get_the_default_prompt_policy_when_the_setting_says_so(editor, settings):
    from registry.models import Prompt
    from registry.services.audit import get_or_create_locked
    from registry.services.gates import DEFAULT_PROMPT_CHECKS

    settings.MLOPS_GATE_POLICY_FOR_NEW = True

    prompt = get_or_create_locked(Prompt, name="fresh", actor=editor)

    assert (prompt.gate_policy.model, prompt.gate_policy.checks) == (None, DEFAULT_PROMPT_CHECKS)


def test_the_audit_of_a_policy_change_records_what_it_replaced(editor, approver):
    register("fraud", editor)
    model = RegisteredModel.objects.get(name="fraud")
    first = [{"check": "accuracy", "op": ">=", "threshold": 0.9}]
    second = [{"check": "accuracy", "op": ">=", "threshold": 0.95}]

    gate_policy_set(model=model, checks=first, actor=approver)
    gate_policy_set(model=model, checks=second, actor=approver)

    created, changed = AuditEvent.objects.filter(action="gate_policy_set").order_by("id")
    assert (created.extra["before"], created.extra["checks"]) == ([], first)
    assert (changed.extra["before"], changed.extra["checks"]) == (first, second)


def test_an_approval_of_a_failing_version_needs_an_admins_override_at_approval_too(editor, approver, admin_user, gated):
    promotion = services.promotion_request_create(version=gated, to_stage="staging", reason="try", actor=admin_user, override_reason="incident 42")

    with pytest.raises(Conflict) as without_override:
        services.promotion_approve(promotion_id=promotion.pk, actor=approver)
    services.promotion_approve(promotion_id=promotion.pk, actor=make_user("ada", "admin"), override_reason="incident 42, approved")

    assert without_override.value.code == "gates_failed"
    assert without_override.value.message.startswith("Gates not passed for model:fraud v1: ")
    gated.refresh_from_db()
    assert gated.stage == "staging"
    overrides = AuditEvent.objects.filter(action="gate_overridden").order_by("id").values_list("actor_name", "subject", "version", "to_stage", "reason")
    assert list(overrides) == [("root", "model:fraud", 1, "staging", "incident 42"), ("ada", "model:fraud", 1, "staging", "incident 42, approved")]


def test_a_request_of_a_failing_version_without_an_override_is_a_409_naming_the_checks(editor, gated):
    with pytest.raises(Conflict) as caught:
        services.promotion_request_create(version=gated, to_stage="staging", reason="try", actor=editor)

    assert caught.value.code == "gates_failed"
    assert caught.value.message.startswith("Gates not passed for model:fraud v1: accuracy never ran")

"""Evidence computed outside the registry (an A/B test's result), recorded as a finished evaluation of kind experiment."""

import pytest
from django.test import Client

from mlops_site.exceptions import Forbidden, ValidationFailed
from registry.models import AuditEvent, Evaluation
from registry.services.evaluations import evaluation_record_external, evaluation_request
from registry.services.gates import gate_policy_set, gate_status
from tests.factories import register

pytestmark = pytest.mark.django_db

FIGURES = {"ab_lift": 0.21, "ab_p_value": 0.003, "ab_always_valid_low": 0.004, "ab_always_valid_high": 0.038, "ab_significant": 1.0}


@pytest.fixture
def fraud(editor):
    return register("fraud", editor)


def record(version, actor, **metrics):
    return evaluation_record_external(kind="experiment", model_version=version, metrics=metrics or FIGURES,
                                      details={"summary": "B vs A on conversion: +2.1 points"}, source="experiment:checkout-test", actor=actor)


def test_record_external_stores_a_finished_evaluation_and_audits_it(editor, fraud):
    evaluation = record(fraud, editor)

    stored = Evaluation.objects.get()
    assert (stored.pk, stored.kind, stored.status, stored.source) == (evaluation.pk, "experiment", "done", "experiment:checkout-test")
    assert stored.metrics == FIGURES and stored.finished_at is not None and stored.requested_by == editor
    event = AuditEvent.objects.get(action="evaluation_recorded")
    assert (event.subject, event.version, event.extra) == ("model:fraud", 1, {"evaluation_id": stored.pk, "kind": "experiment"})


def test_recorded_figures_are_gate_figures(editor, approver, fraud):
    gate_policy_set(model=fraud.model, checks=[{"check": "ab_p_value", "op": "<=", "threshold": 0.05}], actor=approver)

    before = gate_status(version=fraud)
    record(fraud, editor)
    after = gate_status(version=fraud)

    assert before.checks[0].status == "not_run"
    assert (after.checks[0].status, after.checks[0].value, after.checks[0].kind) == ("passed", 0.003, "experiment")


@pytest.mark.parametrize(("metrics", "field"), [
    ({"ab_lift": True}, "metrics.ab_lift"), ({"ab_lift": "0.2"}, "metrics.ab_lift"), ({"ab_lift": float("nan")}, "metrics.ab_lift"),
    ({"ab_lift": float("inf")}, "metrics.ab_lift"), ({}, "metrics"),
])
def test_record_external_refuses_figures_that_are_not_finite_numbers(editor, fraud, metrics, field):
    with pytest.raises(ValidationFailed) as refused:
        evaluation_record_external(kind="experiment", model_version=fraud, metrics=metrics, source="experiment:x", actor=editor)

    assert field in refused.value.extra["fields"] and not Evaluation.objects.exists()


def test_record_external_needs_an_editor_a_recordable_kind_and_a_source(viewer, editor, fraud):
    with pytest.raises(Forbidden):
        record(fraud, viewer)
    with pytest.raises(ValidationFailed, match="kind"):
        evaluation_record_external(kind="model", model_version=fraud, metrics=FIGURES, source="x", actor=editor)
    with pytest.raises(ValidationFailed, match="source"):
        evaluation_record_external(kind="experiment", model_version=fraud, metrics=FIGURES, source=" ", actor=editor)

    assert not Evaluation.objects.exists()


def test_an_experiment_evaluation_cannot_be_requested_to_run(editor, fraud):
    with pytest.raises(ValidationFailed, match="recorded by the A/B test"):
        evaluation_request(kind="experiment", model_version=fraud, data=b"label,prediction\n1,1\n", actor=editor)

    assert not Evaluation.objects.exists()


def test_gate_card_shows_the_newest_ab_result(editor, viewer, fraud):
    client = Client()
    client.force_login(viewer)
    without = client.get("/models/fraud/versions/1/").content.decode()
    record(fraud, editor, ab_lift=0.05, ab_p_value=0.4, ab_significant=0.0)
    newest = record(fraud, editor)

    html = client.get("/models/fraud/versions/1/").content.decode()

    assert 'id="ab-evidence"' not in without
    card = html[html.index('id="ab-evidence"'):]
    card = card[: card.index("</div>")]
    assert 'data-significant="true"' in card and "B vs A on conversion: +2.1 points" in card
    assert "lift <b>0.21</b>" in card and "p-value <b>0.003</b>" in card and "always-valid low <b>0.004</b>" in card
    assert f'href="/evaluations/{newest.pk}/"' in card and "experiment:checkout-test" in card

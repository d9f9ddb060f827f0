"""The experiments services: design, start, stop, assignment (exposures once, counts exact), outcomes, decisions."""

import hashlib
import math
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

from experiments import services
from experiments.models import Analysis, Experiment, Exposure, ExposureCount, Outcome, Variant
from experiments.services import assignment
from mlops_site.exceptions import Conflict, Forbidden, NotFound, ValidationFailed
from registry.models import AuditEvent, Evaluation, ModelVersion, PromotionRequest
from registry.services import promotion_approve
from registry.services.gates import gate_policy_set
from tests.experiments.conftest import CHECKOUT, counts_of, design, load_exposures

pytestmark = pytest.mark.django_db


def reference_bucket(key: str, unit_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{key}:{unit_id}".encode()).digest()[:8], "big") % 10_000


def analysed(experiment) -> Analysis:
    return services.analysis_run(analysis_id=services.analysis_request(experiment=experiment, enqueue=False).pk)


# --- design ------------------------------------------------------------------------------------------------------------


def test_create_stores_contiguous_bucket_ranges_and_the_statsmodels_sample_size(editor, checkout):
    expected = math.ceil(NormalIndPower().solve_power(effect_size=proportion_effectsize(0.12, 0.10), alpha=0.05, power=0.8, ratio=1))

    experiment = design(editor, variants=[{"name": "A", "version": 1, "weight": 50}, {"name": "B", "version": 2, "weight": 30.5},
                                          {"name": "C", "version": 3, "weight": "19.5"}])

    variants = list(Variant.objects.filter(experiment=experiment).order_by("position"))
    assert [(v.name, v.version.version, v.weight, v.bucket_start, v.bucket_end) for v in variants] == [
        ("A", 1, Decimal("50.00"), 0, 5000), ("B", 2, Decimal("30.50"), 5000, 8050), ("C", 3, Decimal("19.50"), 8050, 10000)]
    assert experiment.status == "draft" and experiment.sample_size_per_arm == expected == 3835
    assert [g["metric"] for g in experiment.guardrails] == ["error_rate", "latency_p95", "cost_per_request", "guardrail_rate"]
    event = AuditEvent.objects.get(action="experiment_created")
    assert event.subject == "model:checkout" and event.extra["experiment"] == "checkout-test" and event.reason == CHECKOUT["hypothesis"]


def test_create_sizes_a_mean_with_its_standard_deviation(editor, checkout):
    expected = math.ceil(NormalIndPower().solve_power(effect_size=0.5 / 4.0, alpha=0.01, power=0.9, ratio=1))

    experiment = design(editor, primary_metric={"name": "revenue", "kind": "mean"}, mde=0.5, baseline_rate=None, baseline_std=4.0,
                        alpha=0.01, power=0.9)

    assert experiment.sample_size_per_arm == expected


@pytest.mark.parametrize(("overrides", "field"), [
    ({"variants": [{"name": "A", "version": 1, "weight": 50}, {"name": "B", "version": 2, "weight": 40}]}, "variants"),
    ({"variants": [{"name": "A", "version": 1, "weight": 50}, {"name": "B", "version": 9, "weight": 50}]}, "variants[1].version"),
    ({"variants": [{"name": "A", "version": 1, "weight": 50}, {"name": "B", "weight": 50}]}, "variants[1].version"),
    ({"variants": [{"name": "A", "version": 1, "weight": 100}]}, "variants"),
    ({"variants": [{"name": "A", "version": 1, "weight": 50}, {"name": "A", "version": 2, "weight": 50}]}, "variants[1].name"),
    ({"variants": [{"name": "A", "version": 1, "weight": 33.333}, {"name": "B", "version": 2, "weight": 66.667}]}, "variants[0].weight"),
    ({"variants": [{"name": "A", "version": 1, "weight": True}, {"name": "B", "version": 2, "weight": 99}]}, "variants[0].weight"),
    ({"alpha": 0}, "alpha"), ({"alpha": 1}, "alpha"), ({"power": 1.5}, "power"), ({"power": True}, "power"),
    ({"mde": 0}, "mde"), ({"mde": float("nan")}, "mde"), ({"mde": "0.02"}, "mde"), ({"mde": 0.95}, "mde"),
    ({"baseline_rate": None}, "baseline_rate"), ({"baseline_rate": 1.2}, "baseline_rate"),
    ({"primary_metric": {"name": "revenue", "kind": "mean"}}, "baseline_std"),
    ({"primary_metric": {"name": "latency_ms", "kind": "proportion"}}, "primary_metric.kind"),
    ({"primary_metric": {"name": "conversion", "kind": "ratio"}}, "primary_metric.kind"),
    ({"secondary_metrics": [{"name": "conversion", "kind": "proportion"}]}, "secondary_metrics[0].name"),
    ({"guardrails": [{"metric": "accuracy", "max_degradation": 0.1}]}, "guardrails[0].metric"),
    ({"guardrails": [{"metric": "error_rate", "max_degradation": -1}]}, "guardrails[0].max_degradation"),
    ({"model": None, "prompt": None}, "subject"), ({"model": "nope"}, "subject.model"),
    ({"hypothesis": " "}, "hypothesis"),
])
def test_create_refuses_bad_designs_naming_the_field(editor, checkout, overrides, field):
    with pytest.raises(ValidationFailed) as refused:
        design(editor, **overrides)

    assert field in refused.value.extra["fields"], refused.value.message
    assert not Experiment.objects.exists() and not AuditEvent.objects.filter(action="experiment_created").exists()


@pytest.mark.parametrize("key", ["Upper", "sample-size", "new", "", "-x", "a" * 101, "with space"])
def test_create_refuses_bad_keys(editor, checkout, key):
    with pytest.raises(ValidationFailed) as refused:
        design(editor, key=key)

    assert "key" in refused.value.extra["fields"]


def test_create_refuses_a_key_in_use_and_a_viewer(editor, viewer, checkout):
    design(editor)

    with pytest.raises(Conflict) as taken:
        design(editor)
    with pytest.raises(Forbidden):
        design(viewer, key="other")

    assert taken.value.code == "already_exists" and Experiment.objects.count() == 1


def test_guardrails_default_when_left_out_and_none_when_empty(editor, checkout):
    none = design(editor, key="no-guardrails", guardrails=[])
    custom = design(editor, key="custom", guardrails=[{"metric": "latency_p95", "max_degradation": 0.2, "relative": True}])

    assert none.guardrails == [] and custom.guardrails == [{"metric": "latency_p95", "max_degradation": 0.2, "relative": True}]


def test_prompt_experiments_use_prompt_versions_and_event_metrics_default_their_direction(editor, prompt_versions):
    experiment = services.experiment_create(
        key="summarize-ab", hypothesis="v3 is judged better", prompt="summarize", actor=editor, mde=0.05, baseline_std=0.2,
        variants=[{"name": "A", "version": 2, "weight": 50}, {"name": "B", "version": 3, "weight": 50}],
        primary_metric={"name": "judge_score", "kind": "mean"}, secondary_metrics=[{"name": "latency_ms", "kind": "mean"}],
    )

    assert [v.prompt_version.version for v in experiment.variants.order_by("position")] == [2, 3]
    assert experiment.primary_metric_direction == "increase" and experiment.secondary_metrics[0]["direction"] == "decrease"
    assert experiment.subject == "prompt:summarize"


# --- start and stop ----------------------------------------------------------------------------------------------------


def test_start_runs_a_draft_once_and_audits_it(editor, checkout):
    experiment = design(editor)

    services.experiment_start(experiment=experiment, reason="ready", actor=editor)
    with pytest.raises(Conflict) as again:
        services.experiment_start(experiment=experiment, reason="again", actor=editor)

    experiment.refresh_from_db()
    assert experiment.status == "running" and experiment.started_at is not None and again.value.code == "not_draft"
    event = AuditEvent.objects.get(action="experiment_started")
    assert (event.subject, event.reason, event.extra) == ("model:checkout", "ready", {"experiment": "checkout-test", "variants": {"A": 1, "B": 2}})


def test_start_is_refused_while_a_variant_fails_its_enforced_gates(editor, approver, checkout):
    experiment = design(editor)
    gate_policy_set(model=checkout, checks=[{"check": "accuracy", "op": ">=", "threshold": 0.95}], actor=approver)

    with pytest.raises(Conflict) as refused:
        services.experiment_start(experiment=experiment, reason="go", actor=editor)
    gate_policy_set(model=checkout, checks=[{"check": "accuracy", "op": ">=", "threshold": 0.95}], enforced=False, actor=approver)
    services.experiment_start(experiment=experiment, reason="go", actor=editor)

    assert refused.value.code == "gates_failed" and "accuracy never ran" in refused.value.message
    assert [f["variant"] for f in refused.value.extra["failed"]] == ["A", "B"]
    assert Experiment.objects.get().status == "running"


def test_an_analysis_requested_by_a_person_needs_the_editor_role_and_the_scheduler_names_none(editor, viewer, running):
    with pytest.raises(Forbidden) as refused:
        services.analysis_request(experiment=running, actor=viewer, enqueue=False)
    by_editor = services.analysis_request(experiment=running, actor=editor, enqueue=False)
    by_scheduler = services.analysis_request(experiment=running, enqueue=False)

    assert refused.value.message == "Refreshing the results needs the editor role."
    assert by_editor.pk == by_scheduler.pk and Analysis.objects.count() == 1


def test_stop_ends_assignment_queues_a_final_analysis_and_audits(editor, running, django_capture_on_commit_callbacks):
    services.experiment_assign(key=running.key, unit_ids=["u1"], actor=editor)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.experiment_stop(experiment=running, reason="enough", actor=editor)
    with pytest.raises(Conflict) as assign_after:
        services.experiment_assign(key=running.key, unit_ids=["u1"], actor=editor)
    with pytest.raises(Conflict) as stop_again:
        services.experiment_stop(experiment=running, reason="again", actor=editor)

    running.refresh_from_db()
    assert running.status == "stopped" and running.stop_reason == "enough" and running.stopped_at is not None
    assert assign_after.value.code == stop_again.value.code == "experiment_not_running"
    assert Analysis.objects.filter(experiment=running, status="pending").count() == 1 and len(callbacks) >= 1
    assert AuditEvent.objects.get(action="experiment_stopped").reason == "enough"


# --- assignment --------------------------------------------------------------------------------------------------------


def test_assign_buckets_by_sha256_and_takes_the_variant_of_its_range(editor, running):
    units = [f"user-{i}" for i in range(2000)]

    out = services.experiment_assign(key=running.key, unit_ids=units, actor=editor)

    expected_buckets = [reference_bucket("checkout-test", u) for u in units]
    assert [a.unit_id for a in out] == units and [a.bucket for a in out] == expected_buckets
    assert [a.variant for a in out] == ["A" if b < 5000 else "B" for b in expected_buckets]
    assert [a.version for a in out] == [1 if b < 5000 else 2 for b in expected_buckets]
    stored = dict(Exposure.objects.filter(experiment=running).values_list("unit_id", "variant__name"))
    assert stored == {a.unit_id: a.variant for a in out}
    assert counts_of(running) == {"A": sum(b < 5000 for b in expected_buckets), "B": sum(b >= 5000 for b in expected_buckets)}


def test_assign_records_an_exposure_once_and_a_repeat_writes_nothing(editor, running):
    first = services.experiment_assign(key=running.key, unit_ids=["u1", "u2", "u1"], actor=editor)

    with CaptureQueriesContext(connection) as queries:
        again = services.experiment_assign(key=running.key, unit_ids=["u2", "u1"], actor=editor)
        single = services.experiment_assign(key=running.key, unit_ids=["u1"], actor=editor)

    assert [a.variant for a in first][0] == [a.variant for a in first][2] == single[0].variant
    assert [(a.unit_id, a.variant) for a in again] == [("u2", first[1].variant), ("u1", first[0].variant)]
    assert Exposure.objects.count() == 2 and sum(counts_of(running).values()) == 2
    writes = [q["sql"] for q in queries.captured_queries if not q["sql"].lstrip().upper().startswith(("SELECT", "SAVEPOINT", "RELEASE"))]
    assert writes == []


def test_assign_counts_only_the_exposures_its_insert_stored(editor, running, monkeypatch):
    services.experiment_assign(key=running.key, unit_ids=[f"u{i}" for i in range(50)], actor=editor)
    # As if a concurrent request had stored u0..u49 between this request's read and its write.
    monkeypatch.setattr(assignment, "_exposed", lambda experiment_id, unit_ids: {})

    services.experiment_assign(key=running.key, unit_ids=[f"u{i}" for i in range(100)], actor=editor)

    actual = {}
    for name in Exposure.objects.filter(experiment=running).values_list("variant__name", flat=True):
        actual[name] = actual.get(name, 0) + 1
    assert sum(actual.values()) == 100 and counts_of(running) == actual


def test_exposure_counts_rebuild_recounts_per_variant_and_day(editor, running):
    from tests.experiments.conftest import at

    load_exposures(running, [("a1", "A", at(0)), ("a2", "A", at(0, 14.9)), ("a3", "A", at(1)), ("b1", "B", at(2))])

    counted = services.exposure_counts_rebuild(experiment=running)

    rows = sorted((v, d.isoformat(), n) for v, d, n in ExposureCount.objects.filter(experiment=running).values_list("variant__name", "day", "units"))
    assert counted == 4 and rows == [("A", "2026-03-02", 2), ("A", "2026-03-03", 1), ("B", "2026-03-04", 1)]


def test_assign_refuses_unknown_draft_and_stopped_experiments(editor, checkout, running):
    draft = design(editor, key="draft-one")

    with pytest.raises(NotFound):
        services.experiment_assign(key="nope", unit_ids=["u1"], actor=editor)
    with pytest.raises(Conflict) as not_started:
        services.experiment_assign(key=draft.key, unit_ids=["u1"], actor=editor)

    assert not_started.value.code == "experiment_not_running" and not Exposure.objects.exists()


@pytest.mark.parametrize(("unit_ids", "field"), [
    ([], "unit_ids"), ("u1", "unit_ids"), ([f"u{i}" for i in range(10_001)], "unit_ids"), (["ok", 7], "unit_ids[1]"),
    (["ok", ""], "unit_ids[1]"), (["x" * 201], "unit_ids[0]"),
])
def test_assign_refuses_bad_unit_ids(editor, running, unit_ids, field):
    with pytest.raises(ValidationFailed) as refused:
        services.experiment_assign(key=running.key, unit_ids=unit_ids, actor=editor)

    assert field in refused.value.extra["fields"] and not Exposure.objects.exists()


def test_assign_reads_the_plan_from_the_cache_and_forgets_it_on_a_change(editor, running, django_capture_on_commit_callbacks):
    services.experiment_assign(key=running.key, unit_ids=["u1"], actor=editor)

    with CaptureQueriesContext(connection) as cached:
        services.experiment_assign(key=running.key, unit_ids=["u1"], actor=editor)
    with django_capture_on_commit_callbacks(execute=True):
        services.experiment_stop(experiment=running, reason="done", actor=editor)
    with pytest.raises(Conflict):
        services.experiment_assign(key=running.key, unit_ids=["u1"], actor=editor)

    table = Experiment._meta.db_table
    assert not any(f'"{table}"' in q["sql"] for q in cached.captured_queries)


def test_assign_falls_back_to_the_database_when_the_cache_is_down(editor, running, monkeypatch):
    class Down:
        def get(self, *args, **kwargs):
            raise ConnectionError("redis is down")

        set = delete = get

    monkeypatch.setattr(assignment, "cache", Down())

    out = services.experiment_assign(key=running.key, unit_ids=["u1"], actor=editor)

    assert out[0].bucket == reference_bucket(running.key, "u1") and Exposure.objects.count() == 1


# --- outcomes ----------------------------------------------------------------------------------------------------------


def outcome(unit: str, value=1, metric: str = "conversion", **extra) -> dict:
    return {"unit_id": unit, "metric": metric, "value": value, "timestamp": timezone.now().isoformat(), **extra}


def test_outcomes_are_stored_once_by_outcome_id_and_unexposed_ones_counted(editor, running):
    services.experiment_assign(key=running.key, unit_ids=["u1", "u2"], actor=editor)

    first = services.outcomes_ingest(payload={"outcomes": [outcome("u1", outcome_id="o1"), outcome("u2", 9.5, "revenue"), outcome("stranger")]},
                                     actor=editor)
    again = services.outcomes_ingest(payload={"outcomes": [outcome("u1", outcome_id="o1"), outcome("u1", outcome_id="o2"),
                                                           outcome("u1", outcome_id="o2")]}, actor=editor)

    assert (first.accepted, first.duplicates, first.unexposed) == (3, 0, 1)
    assert (again.accepted, again.duplicates, again.unexposed) == (1, 2, 0)
    assert sorted(Outcome.objects.values_list("unit_id", "metric", "value")) == [
        ("stranger", "conversion", 1.0), ("u1", "conversion", 1.0), ("u1", "conversion", 1.0), ("u2", "revenue", 9.5)]


@pytest.mark.parametrize(("bad", "field"), [
    ({"value": float("nan")}, "value"), ({"value": float("inf")}, "value"), ({"value": True}, "value"), ({"value": "3"}, "value"),
    ({"value": None}, "value"), ({"timestamp": "yesterday"}, "timestamp"), ({"timestamp": "2999-01-01T00:00:00Z"}, "timestamp"),
    ({"unit_id": ""}, "unit_id"), ({"unit_id": 12}, "unit_id"), ({"metric": "x" * 101}, "metric"), ({"outcome_id": 5}, "outcome_id"),
    ({"colour": "red"}, "colour"),
])
def test_a_bad_outcome_refuses_the_whole_batch_naming_index_and_field(editor, running, bad, field):
    with pytest.raises(ValidationFailed) as refused:
        services.outcomes_ingest(payload={"outcomes": [outcome("u1"), {**outcome("u2"), **bad}]}, actor=editor)

    assert refused.value.extra["errors"][0]["index"] == 1 and refused.value.extra["errors"][0]["field"] == field
    assert f"outcomes[1].{field}" in refused.value.message and not Outcome.objects.exists()


@pytest.mark.parametrize("payload", [None, [], {"outcomes": []}, {"outcomes": "x"}, {"outcomes": [outcome("u")] * 10_001}, {"events": []}])
def test_outcome_batches_must_be_a_list_of_1_to_10000(editor, payload):
    with pytest.raises(ValidationFailed) as refused:
        services.outcomes_ingest(payload=payload, actor=editor)

    assert refused.value.extra["errors"][0]["field"] == "outcomes"


# --- decisions ---------------------------------------------------------------------------------------------------------


def test_promote_records_the_result_on_bs_gate_card_and_opens_a_promotion(editor, approver, running):
    from tests.experiments.conftest import at, load_outcomes

    load_exposures(running, [(f"a{i}", "A", at(0)) for i in range(400)] + [(f"b{i}", "B", at(0)) for i in range(400)])
    load_outcomes([(f"a{i}", "conversion", 1, at(1)) for i in range(40)] + [(f"b{i}", "conversion", 1, at(1)) for i in range(120)])
    analysis = analysed(running)

    services.experiment_decide(experiment=running, decision="promote", variant="B", reason="B converts better", actor=editor)

    running.refresh_from_db()
    assert (running.status, running.decision, running.decision_variant, running.decided_by) == ("stopped", "promoted", "B", editor)
    evidence = Evaluation.objects.get(kind="experiment")
    comparison = analysis.results["metrics"][0]["comparisons"][0]
    assert evidence.model_version.version == 2 and evidence.source == "experiment:checkout-test"
    assert evidence.metrics["ab_diff"] == pytest.approx(0.2) and evidence.metrics["ab_p_value"] == comparison["p_value"]
    assert evidence.metrics["ab_always_valid_low"] == comparison["always_valid"]["ci_low"] and evidence.metrics["ab_significant"] == 1.0
    assert evidence.details["analysis_id"] == analysis.pk and "B vs A on conversion" in evidence.details["summary"]
    promotion = PromotionRequest.objects.get()
    assert (promotion.version.version, promotion.to_stage, promotion.status, running.promotion_id) == (2, "production", "pending", promotion.pk)
    actions = list(AuditEvent.objects.filter(subject="model:checkout").order_by("id").values_list("action", flat=True))
    assert actions[-4:] == ["evaluation_recorded", "promotion_requested", "experiment_stopped", "experiment_decided"]

    promotion_approve(promotion_id=promotion.pk, actor=approver)

    assert ModelVersion.objects.get(model=running.model, stage="production").version == 2


def test_promote_needs_results_and_a_tested_variant(editor, running):
    with pytest.raises(Conflict) as no_results:
        services.experiment_decide(experiment=running, decision="promote", variant="B", reason="r", actor=editor)
    analysed(running)
    with pytest.raises(ValidationFailed) as control:
        services.experiment_decide(experiment=running, decision="promote", variant="A", reason="r", actor=editor)
    with pytest.raises(ValidationFailed) as unknown:
        services.experiment_decide(experiment=running, decision="promote", variant="Z", reason="r", actor=editor)
    with pytest.raises(Conflict) as too_little:
        services.experiment_decide(experiment=running, decision="promote", variant="B", reason="r", actor=editor)

    assert no_results.value.code == too_little.value.code == "no_results"
    assert "variant" in control.value.extra["fields"] and "variant" in unknown.value.extra["fields"]
    assert Experiment.objects.get().decision == "" and not Evaluation.objects.exists() and not PromotionRequest.objects.exists()


def test_promote_refused_by_the_registry_records_nothing(editor, approver, running):
    from tests.experiments.conftest import at

    load_exposures(running, [(f"a{i}", "A", at(0)) for i in range(10)] + [(f"b{i}", "B", at(0)) for i in range(10)])
    analysed(running)
    gate_policy_set(model=running.model, checks=[{"check": "accuracy", "op": ">=", "threshold": 0.99}], actor=approver)

    with pytest.raises(Conflict) as refused:
        services.experiment_decide(experiment=running, decision="promote", variant="B", reason="r", actor=editor)

    running.refresh_from_db()
    assert refused.value.code == "gates_failed" and (running.status, running.decision) == ("running", "")
    assert not Evaluation.objects.exists() and not AuditEvent.objects.filter(action="experiment_decided").exists()


@pytest.mark.parametrize("decision", ["discard", "iterate"])
def test_discard_and_iterate_record_the_decision_once(editor, running, decision):
    services.experiment_decide(experiment=running, decision=decision, reason="no effect", actor=editor)
    with pytest.raises(Conflict) as again:
        services.experiment_decide(experiment=running, decision="discard", reason="twice", actor=editor)

    running.refresh_from_db()
    assert (running.status, running.decision, running.decision_reason) == ("stopped", {"discard": "discarded", "iterate": "iterate"}[decision], "no effect")
    assert again.value.code == "already_decided" and not PromotionRequest.objects.exists()
    event = AuditEvent.objects.get(action="experiment_decided")
    assert event.reason == "no effect" and event.extra["decision"] == running.decision


def test_decide_refuses_drafts_unknown_decisions_and_a_missing_reason(editor, viewer, checkout):
    draft = design(editor)

    with pytest.raises(Conflict) as not_started:
        services.experiment_decide(experiment=draft, decision="discard", reason="r", actor=editor)
    with pytest.raises(ValidationFailed):
        services.experiment_decide(experiment=draft, decision="ship", reason="r", actor=editor)
    with pytest.raises(ValidationFailed):
        services.experiment_decide(experiment=draft, decision="discard", reason=" ", actor=editor)
    with pytest.raises(Forbidden):
        services.experiment_decide(experiment=draft, decision="discard", reason="r", actor=viewer)

    assert not_started.value.code == "experiment_not_started"


def test_promoting_a_prompt_variant_asks_for_prod(editor, prompt_versions):
    from tests.experiments.conftest import at

    experiment = services.experiment_create(
        key="summarize-ab", hypothesis="v3 converts better", prompt="summarize", actor=editor, mde=0.05, baseline_rate=0.2,
        variants=[{"name": "A", "version": 2, "weight": 50}, {"name": "B", "version": 3, "weight": 50}],
        primary_metric={"name": "conversion", "kind": "proportion"}, guardrails=[],
    )
    experiment = services.experiment_start(experiment=experiment, reason="go", actor=editor)
    load_exposures(experiment, [(f"a{i}", "A", at(0)) for i in range(50)] + [(f"b{i}", "B", at(0)) for i in range(50)])
    analysed(experiment)

    services.experiment_decide(experiment=experiment, decision="promote", variant="B", reason="better", actor=editor)

    promotion = PromotionRequest.objects.get(prompt__name="summarize", status="pending", reason__startswith="A/B test")
    assert (promotion.prompt_version.version, promotion.to_stage) == (3, "prod")
    assert Evaluation.objects.get(kind="experiment").prompt_version.version == 3

"""The experiments API over HTTP: the contract, roles, the one error shape for every bad input, typed schema, query counts."""

import hashlib
import math

import pytest
from django.utils import timezone
from statsmodels.stats.power import NormalIndPower

from experiments import services
from experiments.models import Analysis, Experiment, Exposure, Outcome
from monitoring.models import Event
from tests.experiments.conftest import at, load_exposures, load_outcomes

pytestmark = pytest.mark.django_db

BODY = {
    "key": "checkout-test",
    "hypothesis": "v2 raises conversion by 2 points",
    "subject": {"model": "checkout"},
    "variants": [{"name": "A", "version": 1, "weight": 50}, {"name": "B", "version": 2, "weight": 50}],
    "primary_metric": {"name": "conversion", "kind": "proportion"},
    "secondary_metrics": [{"name": "revenue", "kind": "mean"}],
    "alpha": 0.05, "power": 0.8, "mde": 0.02, "baseline_rate": 0.1,
}


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"message", "code", "extra"}, body
    return body


def created(client, **changes):
    response = client.post("/api/v1/experiments", {**BODY, **changes}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


@pytest.fixture
def editor_api(api_as, editor, checkout):
    return api_as(editor)


@pytest.fixture
def live(editor_api):
    created(editor_api)
    assert editor_api.post("/api/v1/experiments/checkout-test/start", {"reason": "go"}, format="json").status_code == 200
    return editor_api


# --- design, start, stop ---------------------------------------------------------------------------------------------------


def test_create_answers_201_with_the_experiment(editor_api):
    body = created(editor_api)

    assert body["key"] == "checkout-test" and body["status"] == "draft" and body["subject"] == {"model": "checkout", "prompt": None}
    assert body["sample_size_per_arm"] == 3835 and body["primary_metric"] == {"name": "conversion", "kind": "proportion", "direction": "increase"}
    assert [(v["name"], v["version"], v["weight"], v["bucket_start"], v["bucket_end"], v["control"], v["units"]) for v in body["variants"]] == [
        ("A", 1, 50.0, 0, 5000, True, 0), ("B", 2, 50.0, 5000, 10000, False, 0)]
    assert body["secondary_metrics"] == [{"name": "revenue", "kind": "mean", "direction": "increase"}]
    assert len(body["guardrails"]) == 4 and body["latest_analysis"] is None and body["progress"] == 0.0 and body["days_running"] is None


@pytest.mark.parametrize(("changes", "field"), [
    ({"variants": [{"name": "A", "version": 1, "weight": 60}, {"name": "B", "version": 2, "weight": 50}]}, "variants"),
    ({"variants": [{"name": "A", "version": 1, "weight": 50}, {"name": "B", "weight": 50}]}, "variants[1].version"),
    ({"variants": [{"name": "A", "version": 1, "weight": 50}, {"name": "B", "version": 7, "weight": 50}]}, "variants[1].version"),
    ({"variants": [{"name": "A", "version": 1, "weight": 50}, {"name": "B", "version": 2, "weight": 50, "colour": "red"}]}, "variants[1].colour"),
    ({"alpha": 0}, "alpha"), ({"alpha": 1.0}, "alpha"), ({"power": -0.2}, "power"), ({"power": "0.8"}, "power"), ({"alpha": True}, "alpha"),
    ({"mde": 0}, "mde"), ({"mde": "big"}, "mde"), ({"baseline_rate": None}, "baseline_rate"),
    ({"subject": {"model": "checkout", "prompt": "summarize"}}, "subject"), ({"subject": {"model": "missing"}}, "subject.model"),
    ({"primary_metric": {"name": "conversion", "kind": "count"}}, "primary_metric.kind"), ({"typo": 1}, "typo"),
    ({"key": "sample-size"}, "key"), ({"key": "new"}, "key"),
])
def test_create_refuses_bad_designs_with_400_naming_the_field(editor_api, changes, field):
    response = editor_api.post("/api/v1/experiments", {**BODY, **changes}, format="json")

    body = error_of(response)
    assert response.status_code == 400 and body["code"] == "invalid" and field in body["extra"]["fields"], body
    assert not Experiment.objects.exists()


def test_create_refuses_a_key_in_use_a_viewer_and_an_anonymous_client(api_as, editor_api, viewer, client):
    created(editor_api)

    taken = editor_api.post("/api/v1/experiments", BODY, format="json")
    by_viewer = api_as(viewer).post("/api/v1/experiments", {**BODY, "key": "other"}, format="json")
    anonymous = client.post("/api/v1/experiments", BODY, content_type="application/json")

    assert (taken.status_code, error_of(taken)["code"]) == (409, "already_exists")
    assert by_viewer.status_code == 403 and anonymous.status_code in (401, 403)


def test_start_and_stop_take_a_reason_and_answer_with_the_experiment(editor_api):
    created(editor_api)

    no_reason = editor_api.post("/api/v1/experiments/checkout-test/start", {}, format="json")
    started = editor_api.post("/api/v1/experiments/checkout-test/start", {"reason": "go"}, format="json")
    twice = editor_api.post("/api/v1/experiments/checkout-test/start", {"reason": "go"}, format="json")
    stopped = editor_api.post("/api/v1/experiments/checkout-test/stop", {"reason": "done"}, format="json")
    unknown = editor_api.post("/api/v1/experiments/nope/stop", {"reason": "done"}, format="json")

    assert no_reason.status_code == 400 and "reason" in error_of(no_reason)["extra"]["fields"]
    assert started.status_code == 200 and started.json()["status"] == "running" and started.json()["days_running"] is not None
    assert (twice.status_code, error_of(twice)["code"]) == (409, "not_draft")
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped" and stopped.json()["stop_reason"] == "done"
    assert unknown.status_code == 404 and error_of(unknown)["code"] == "not_found"


def test_start_refused_by_the_gates_is_409_naming_the_checks(editor_api, approver, checkout):
    from registry.services.gates import gate_policy_set

    created(editor_api)
    gate_policy_set(model=checkout, checks=[{"check": "accuracy", "op": ">=", "threshold": 0.99}], actor=approver)

    response = editor_api.post("/api/v1/experiments/checkout-test/start", {"reason": "go"}, format="json")

    body = error_of(response)
    assert response.status_code == 409 and body["code"] == "gates_failed" and "accuracy never ran" in body["message"]


# --- assignment ------------------------------------------------------------------------------------------------------------


def test_assign_one_unit_and_a_batch(live):
    one = live.post("/api/v1/experiments/checkout-test/assign", {"unit_id": "user-1"}, format="json")
    batch = live.post("/api/v1/experiments/checkout-test/assign", {"unit_ids": ["user-1", "user-2", "user-3"]}, format="json")

    bucket = int.from_bytes(hashlib.sha256(b"checkout-test:user-1").digest()[:8], "big") % 10_000
    assert one.status_code == 200 and one.json() == {"unit_id": "user-1", "variant": "A" if bucket < 5000 else "B",
                                                      "version": 1 if bucket < 5000 else 2, "bucket": bucket}
    assert batch.status_code == 200 and [a["unit_id"] for a in batch.json()["assignments"]] == ["user-1", "user-2", "user-3"]
    assert batch.json()["assignments"][0] == one.json() and Exposure.objects.count() == 3


@pytest.mark.parametrize(("body", "field"), [
    ({}, "unit_id"), ({"unit_id": "a", "unit_ids": ["b"]}, "unit_id"), ({"unit_id": ""}, "unit_id"), ({"unit_id": 5}, "unit_id"),
    ({"unit_id": "x" * 201}, "unit_id"), ({"unit_ids": []}, "unit_ids"), ({"unit_ids": ["a", None]}, "unit_ids[1]"),
    ({"unit_ids": [f"u{i}" for i in range(10_001)]}, "unit_ids"), ({"user": "a"}, "unit_id"), ([], "unit_id"),
])
def test_assign_refuses_bad_bodies_with_400(live, body, field):
    response = live.post("/api/v1/experiments/checkout-test/assign", body, format="json")

    assert response.status_code == 400 and field in error_of(response)["extra"]["fields"]
    assert not Exposure.objects.exists()


def test_assign_for_an_unknown_draft_or_stopped_experiment(editor_api):
    created(editor_api)

    unknown = editor_api.post("/api/v1/experiments/nope/assign", {"unit_id": "u"}, format="json")
    draft = editor_api.post("/api/v1/experiments/checkout-test/assign", {"unit_id": "u"}, format="json")

    assert (unknown.status_code, error_of(unknown)["code"]) == (404, "not_found")
    assert (draft.status_code, error_of(draft)["code"]) == (409, "experiment_not_running")


def test_assign_after_stop_is_409(live, django_capture_on_commit_callbacks):
    live.post("/api/v1/experiments/checkout-test/assign", {"unit_id": "u"}, format="json")
    with django_capture_on_commit_callbacks(execute=True):
        live.post("/api/v1/experiments/checkout-test/stop", {"reason": "done"}, format="json")

    response = live.post("/api/v1/experiments/checkout-test/assign", {"unit_id": "u"}, format="json")

    assert (response.status_code, error_of(response)["code"]) == (409, "experiment_not_running")


def test_assign_needs_an_editor(live, api_as, viewer):
    response = api_as(viewer).post("/api/v1/experiments/checkout-test/assign", {"unit_id": "u"}, format="json")

    assert response.status_code == 403 and not Exposure.objects.exists()


# --- outcomes ----------------------------------------------------------------------------------------------------------------


def test_outcomes_answer_202_with_accepted_duplicates_and_unexposed(live):
    live.post("/api/v1/experiments/checkout-test/assign", {"unit_id": "u1"}, format="json")
    now = timezone.now().isoformat()
    batch = {"outcomes": [{"unit_id": "u1", "metric": "conversion", "value": 1, "timestamp": now, "outcome_id": "o-1"},
                          {"unit_id": "ghost", "metric": "conversion", "value": 1, "timestamp": now}]}

    first = live.post("/api/v1/outcomes", batch, format="json")
    again = live.post("/api/v1/outcomes", {"outcomes": batch["outcomes"][:1]}, format="json")

    assert first.status_code == 202 and first.json() == {"accepted": 2, "duplicates": 0, "unexposed": 1}
    assert again.status_code == 202 and again.json() == {"accepted": 0, "duplicates": 1, "unexposed": 0}


@pytest.mark.parametrize(("value", "message"), [("NaN", "not valid JSON"), ("Infinity", "not valid JSON"), ("true", "finite number"),
                                                  ('"12"', "finite number"), ("null", "finite number")])
def test_an_outcome_value_that_is_not_a_finite_number_refuses_the_batch(live, value, message):
    now = timezone.now().isoformat()
    first = f'{{"unit_id": "u1", "metric": "m", "value": 1, "timestamp": "{now}"}}'
    raw = f'{{"outcomes": [{first}, {{"unit_id": "u2", "metric": "m", "value": {value}, "timestamp": "{now}"}}]}}'

    response = live.post("/api/v1/outcomes", raw, content_type="application/json")

    body = error_of(response)
    assert response.status_code == 400 and message in body["message"] and not Outcome.objects.exists()
    if "errors" in body["extra"]:
        assert body["extra"]["errors"][0] == {"index": 1, "field": "value", "message": "required: a finite number"}


def test_outcomes_need_an_editor(live, api_as, viewer):
    response = api_as(viewer).post("/api/v1/outcomes", {"outcomes": []}, format="json")

    assert response.status_code == 403


# --- results, analyses, decisions -----------------------------------------------------------------------------------------------


def test_results_are_404_until_an_analysis_is_done_then_the_snapshot(live, django_capture_on_commit_callbacks):
    before = live.get("/api/v1/experiments/checkout-test/results")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        queued = live.post("/api/v1/experiments/checkout-test/analyses")
    waiting = live.get("/api/v1/experiments/checkout-test/results")
    experiment = Experiment.objects.get()
    load_exposures(experiment, [(f"a{i}", "A", at(0)) for i in range(300)] + [(f"b{i}", "B", at(0)) for i in range(300)])
    load_outcomes([(f"a{i}", "conversion", 1, at(1)) for i in range(30)] + [(f"b{i}", "conversion", 1, at(1)) for i in range(60)])
    services.analysis_run(analysis_id=queued.json()["id"])

    after = live.get("/api/v1/experiments/checkout-test/results")
    detail = live.get("/api/v1/experiments/checkout-test").json()

    assert (before.status_code, error_of(before)["code"], error_of(before)["extra"]) == (404, "no_results", {"analysis_status": None})
    assert queued.status_code == 202 and queued.json()["status"] == "pending" and len(callbacks) == 1
    assert error_of(waiting)["extra"] == {"analysis_status": "pending"}
    body = after.json()
    assert after.status_code == 200 and body["status"] == "done" and body["results"]["units_total"] == 600
    conversion = body["results"]["metrics"][0]
    assert [a["conversions"] for a in conversion["arms"]] == [30, 60] and conversion["comparisons"][0]["statistic_name"] == "z"
    assert body["results"]["recommendation"]["action"] in {"promote", "keep_running"} and len(body["results"]["series"]["days"]) == 1
    assert detail["latest_analysis"]["id"] == body["id"] and detail["units_total"] == 600
    assert detail["progress"] == pytest.approx(300 / 3835)


def test_analyses_of_a_draft_are_409(editor_api):
    created(editor_api)

    response = editor_api.post("/api/v1/experiments/checkout-test/analyses")

    assert (response.status_code, error_of(response)["code"]) == (409, "experiment_not_started") and not Analysis.objects.exists()


def test_decision_promote_opens_a_promotion_and_discard_needs_a_reason(live):
    experiment = Experiment.objects.get()
    load_exposures(experiment, [(f"a{i}", "A", at(0)) for i in range(500)] + [(f"b{i}", "B", at(0)) for i in range(500)])
    load_outcomes([(f"a{i}", "conversion", 1, at(1)) for i in range(50)] + [(f"b{i}", "conversion", 1, at(1)) for i in range(150)])
    services.analysis_run(analysis_id=services.analysis_request(experiment=experiment, enqueue=False).pk)

    no_reason = live.post("/api/v1/experiments/checkout-test/decision", {"decision": "discard"}, format="json")
    bad = live.post("/api/v1/experiments/checkout-test/decision", {"decision": "ship", "reason": "r"}, format="json")
    promoted = live.post("/api/v1/experiments/checkout-test/decision", {"decision": "promote", "variant": "B", "reason": "B wins"}, format="json")
    again = live.post("/api/v1/experiments/checkout-test/decision", {"decision": "discard", "reason": "r"}, format="json")

    assert no_reason.status_code == 400 and "reason" in error_of(no_reason)["extra"]["fields"]
    assert bad.status_code == 400 and "decision" in error_of(bad)["extra"]["fields"]
    body = promoted.json()
    assert promoted.status_code == 200 and (body["decision"], body["decision_variant"], body["status"]) == ("promoted", "B", "stopped")
    promotion = live.get(f"/api/v1/promotions/{body['promotion_id']}").json()
    assert (promotion["version"], promotion["to"], promotion["status"]) == (2, "production", "pending")
    assert (again.status_code, error_of(again)["code"]) == (409, "already_decided")


# --- the calculator ------------------------------------------------------------------------------------------------------------


def test_sample_size_for_a_proportion_and_the_duration_from_the_subjects_traffic(api_as, viewer, editor, checkout):
    from registry.models import ModelVersion

    v1 = ModelVersion.objects.get(model=checkout, version=1)
    now = timezone.now()
    Event.objects.bulk_create([Event(event_id=f"e{i}", model_version=v1, unit_id=f"user-{i % 700}", timestamp=now, latency_ms=5) for i in range(2000)])
    client = api_as(viewer)

    plain = client.get("/api/v1/experiments/sample-size?kind=proportion&baseline=0.1&mde=0.02&alpha=0.05&power=0.8")
    with_traffic = client.get("/api/v1/experiments/sample-size?kind=proportion&baseline=0.1&mde=0.02&model=checkout&arms=3")
    means = client.get("/api/v1/experiments/sample-size?kind=mean&std=4&mde=0.5")

    assert plain.status_code == 200 and plain.json() == {
        "kind": "proportion", "per_arm": 3835, "arms": 2, "total": 7670, "units_per_day": None, "days": None,
        "method": "statsmodels-equivalent NormalIndPower on Cohen's h, two-sided"}
    body = with_traffic.json()
    assert (body["per_arm"], body["total"], body["units_per_day"]) == (3835, 11505, 100.0)
    assert body["days"] == pytest.approx(115.05)
    assert means.json()["per_arm"] == math.ceil(NormalIndPower().solve_power(effect_size=0.5 / 4, alpha=0.05, power=0.8, ratio=1))
    assert means.json()["method"].endswith("Cohen's d = mde / std, two-sided")


@pytest.mark.parametrize(("query", "field"), [
    ("kind=proportion&mde=0.02", "baseline"), ("kind=mean&mde=0.5", "std"), ("kind=proportion&baseline=0.1&mde=0", "mde"),
    ("kind=proportion&baseline=0.1", "mde"), ("kind=proportion&baseline=0.1&mde=0.02&alpha=1", "alpha"),
    ("kind=proportion&baseline=0.1&mde=0.02&power=nan", "power"), ("kind=ratio&baseline=0.1&mde=0.02", "kind"),
    ("kind=proportion&baseline=abc&mde=0.02", "baseline"), ("kind=proportion&baseline=0.1&mde=0.95", "mde"),
    ("kind=proportion&baseline=0.1&mde=0.02&arms=1", "arms"),
])
def test_sample_size_refuses_bad_parameters_with_400(api_as, viewer, query, field):
    response = api_as(viewer).get(f"/api/v1/experiments/sample-size?{query}")

    assert response.status_code == 400 and field in error_of(response)["extra"]["fields"], response.json()


# --- lists, query counts, schema ----------------------------------------------------------------------------------------------------


def test_the_list_filters_and_uses_a_constant_number_of_queries(editor_api, api_as, viewer, editor, django_assert_max_num_queries):
    for i in range(12):
        created(editor_api, key=f"exp-{i}")
    for i in range(0, 12, 2):
        experiment = services.experiment_start(experiment=Experiment.objects.get(key=f"exp-{i}"), reason="go", actor=editor)
        services.experiment_assign(key=experiment.key, unit_ids=[f"u{k}" for k in range(20)], actor=editor)
        services.analysis_run(analysis_id=services.analysis_request(experiment=experiment, enqueue=False).pk)
    client = api_as(viewer)

    with django_assert_max_num_queries(6):  # token + user, role, count, experiments, variants
        everything = client.get("/api/v1/experiments?page_size=50")
    running = client.get("/api/v1/experiments?status=running").json()
    by_model = client.get("/api/v1/experiments?model=checkout").json()
    bad_status = client.get("/api/v1/experiments?status=finished")
    unknown_model = client.get("/api/v1/experiments?model=nope")

    assert everything.json()["count"] == 12 and running["count"] == 6 and by_model["count"] == 12
    first = next(e for e in running["results"] if e["key"] == "exp-0")
    assert first["units_total"] == 20 and sum(v["units"] for v in first["variants"]) == 20
    assert first["latest_analysis"]["recommendation"] == "keep_running"
    assert bad_status.status_code == 400 and unknown_model.status_code == 404


def test_every_experiments_endpoint_has_a_typed_response_in_the_schema(api_as, viewer):
    schema = api_as(viewer).get("/api/v1/schema/?format=json").json()
    components = schema["components"]["schemas"]

    def typed(node) -> bool:
        if "$ref" in node:
            return typed(components[node["$ref"].rsplit("/", 1)[1]])
        if "oneOf" in node:
            return all(typed(n) for n in node["oneOf"])
        if node.get("type") == "array":
            return typed(node["items"])
        return bool(node.get("properties")) or "allOf" in node

    ours = {path: ops for path, ops in schema["paths"].items() if path.startswith(("/api/v1/experiments", "/api/v1/outcomes"))}
    assert len(ours) == 10
    for path, operations in ours.items():
        for method, operation in operations.items():
            for code, response in operation["responses"].items():
                body = response["content"]["application/json"]["schema"]
                assert typed(body), f"{method.upper()} {path} {code} answers a bare object"

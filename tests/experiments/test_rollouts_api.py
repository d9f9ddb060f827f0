"""The rollouts API over HTTP: a canary requested through the registry's promotion endpoints, the route endpoint, the
rollouts list and page, a person's decisions, rollout policies; roles, the one error shape, query counts."""

from datetime import timedelta

import pytest

from experiments import services
from experiments.models import Rollout, RolloutPolicy
from monitoring.services import rollups_catch_up
from registry import services as registry_services
from registry.models import PromotionRequest
from tests.experiments.conftest import QUICK, canary_of, traffic
from tests.factories import promote, register

pytestmark = pytest.mark.django_db


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"message", "code", "extra"}, body
    return body


# --- asking for a canary (the registry's promotion endpoints) -----------------------------------------------------------


def test_a_canary_is_requested_and_approved_through_the_promotion_endpoints(fraud, api_as, editor, approver, quick, celery_eager,
                                                                              django_capture_on_commit_callbacks):
    body = {"to": "production", "strategy": "canary", "policy": "quick", "reason": "v2 is faster"}

    requested = api_as(editor).post("/api/v1/models/fraud/versions/2/promotions", body, format="json")
    with django_capture_on_commit_callbacks(execute=True):
        approved = api_as(approver).post(f"/api/v1/promotions/{requested.json()['id']}/approve", {}, format="json")

    assert requested.status_code == 201, requested.json()
    assert (requested.json()["strategy"], requested.json()["policy"], requested.json()["status"]) == ("canary", "quick", "pending")
    assert approved.status_code == 200 and approved.json()["status"] == "rolling_out"
    rollout = Rollout.objects.get(promotion_id=requested.json()["id"])
    assert (rollout.policy.name, rollout.candidate.version, rollout.baseline.version) == ("quick", 2, 1)


def test_a_plain_request_answers_the_direct_strategy(fraud, api_as, editor):
    response = api_as(editor).post("/api/v1/models/fraud/versions/2/promotions", {"to": "staging", "reason": "r"}, format="json")

    assert response.status_code == 201 and (response.json()["strategy"], response.json()["policy"]) == ("direct", "")


def test_canary_requests_refused_with_400_and_409(fraud, api_as, editor, approver):
    client = api_as(editor)
    url = "/api/v1/models/fraud/versions/{}/promotions"

    into_staging = client.post(url.format(2), {"to": "staging", "strategy": "canary", "reason": "r"}, format="json")
    unknown = client.post(url.format(2), {"to": "production", "strategy": "linear", "reason": "r"}, format="json")
    in_production = client.post(url.format(1), {"to": "production", "strategy": "canary", "reason": "r"}, format="json")
    first = client.post(url.format(2), {"to": "production", "strategy": "canary", "reason": "r"}, format="json").json()
    registry_services.promotion_approve(promotion_id=first["id"], actor=approver)
    register("fraud", editor)
    second = client.post(url.format(3), {"to": "production", "strategy": "canary", "reason": "r"}, format="json")

    assert "strategy" in error_of(into_staging, 400)["extra"]["fields"]
    assert "strategy" in error_of(unknown, 400)["extra"]["fields"]
    assert error_of(in_production, 409)["code"] == "already_in_stage"
    assert error_of(second, 409)["code"] == "rollout_in_progress"


def test_a_prompt_canary_goes_to_prod(editor, approver, api_as, prompt_versions):
    registry_services.promotion_approve(promotion_id=PromotionRequest.objects.get(prompt__name="summarize", to_stage="prod").pk, actor=approver)

    response = api_as(editor).post("/api/v1/prompts/summarize/versions/3/promotions", {"to": "prod", "strategy": "canary", "reason": "r"},
                                   format="json")

    assert response.status_code == 201 and response.json()["strategy"] == "canary"


# --- routing ---------------------------------------------------------------------------------------------------------------


def test_route_answers_production_without_a_rollout(fraud, api_as, viewer):
    response = api_as(viewer).get("/api/v1/route", {"model": "fraud", "unit_id": "user-7"})

    assert response.status_code == 200
    assert response.json() == {"version": 1, "stage": "production", "rollout": None, "shadow": None, "bucket": None}


def test_route_in_the_shadow_stage_names_the_candidate_to_mirror(fraud, api_as, viewer, editor, approver):
    rollout = canary_of(fraud[1], editor, approver)

    body = api_as(viewer).get("/api/v1/route", {"model": "fraud", "unit_id": "user-7"}).json()

    assert (body["version"], body["stage"], body["shadow"]) == (1, "production", {"version": 2})
    assert body["rollout"] == {"id": rollout.pk, "status": "running", "stage": "shadow", "stage_index": 0, "traffic_percent": 0.0,
                               "candidate": 2, "baseline": 1}
    assert 0 <= body["bucket"] < 10_000


def test_route_refuses_bad_input_and_unknown_subjects(fraud, api_as, viewer, client):
    api = api_as(viewer)

    missing = api.get("/api/v1/route", {"model": "fraud"})
    too_long = api.get("/api/v1/route", {"model": "fraud", "unit_id": "x" * 201})
    no_subject = api.get("/api/v1/route", {"unit_id": "u"})
    unknown = api.get("/api/v1/route", {"model": "nope", "unit_id": "u"})
    anonymous = client.get("/api/v1/route", {"model": "fraud", "unit_id": "u"})

    assert error_of(missing, 400)["extra"]["fields"] == {"unit_id": ["a string of 1 to 200 characters"]}
    assert "unit_id" in error_of(too_long, 400)["extra"]["fields"]
    assert "model" in error_of(no_subject, 400)["extra"]["fields"]
    assert error_of(unknown, 404)["code"] == "not_found"
    assert anonymous.status_code in (401, 403)


# --- rollouts ----------------------------------------------------------------------------------------------------------------


def test_the_list_filters_and_uses_a_constant_number_of_queries(fraud, api_as, viewer, editor, approver, quick, t0, django_assert_max_num_queries):
    first = canary_of(fraud[1], editor, approver, policy="quick", at=t0)
    services.rollout_rollback(rollout_id=first.pk, reason="no", actor=approver)
    for name in ("churn", "spam", "eta"):
        promote(register(name, editor), "production", editor, approver)
        if name == "eta":
            traffic(editor, version=2, at=t0 + timedelta(minutes=1), n=30, name="churn", shadow=True)
            rollups_catch_up()
            services.rollouts_tick(now=t0 + timedelta(minutes=3))
        canary_of(register(name, editor), editor, approver, policy="quick", at=t0)
    client = api_as(viewer)

    with django_assert_max_num_queries(5):  # token + user, role, count, rollouts
        everything = client.get("/api/v1/rollouts")
    running = client.get("/api/v1/rollouts", {"status": "running"}).json()
    churn = client.get("/api/v1/rollouts", {"model": "churn"}).json()
    bad_status = client.get("/api/v1/rollouts", {"status": "finished"})

    assert everything.status_code == 200 and everything.json()["count"] == 4
    assert running["count"] == 3
    [row] = churn["results"]
    assert (row["subject"], row["candidate"], row["baseline"], row["policy"]) == ({"model": "churn", "prompt": None}, 2, 1, {"name": "quick", "version": 1})
    assert (row["stage"], row["stage_index"], row["stages"], row["traffic_percent"], row["health"]) == ("shadow", 0, 4, 0.0, "healthy")
    assert row["last_numbers"]["candidate"]["requests"] == 30 and row["last_numbers"]["gate"]["state"] == "pass"
    others = {r["subject"]["model"]: r["health"] for r in everything.json()["results"]}
    assert (others["spam"], others["eta"], others["fraud"]) == ("waiting", "no_data", "waiting")
    assert "status" in error_of(bad_status, 400)["extra"]["fields"]


def test_the_detail_has_the_policy_and_every_decision_with_its_numbers(fraud, api_as, viewer, editor, approver, quick, t0):
    rollout = canary_of(fraud[1], editor, approver, policy="quick", at=t0)
    traffic(editor, version=2, at=t0 + timedelta(minutes=1), n=20, shadow=True)
    rollups_catch_up()
    services.rollout_tick(rollout_id=rollout.pk, now=t0 + timedelta(minutes=6))

    body = api_as(viewer).get(f"/api/v1/rollouts/{rollout.pk}").json()

    assert [s["name"] for s in body["policy_rules"]["stages"]] == ["shadow", "5%", "25%", "100%"]
    assert [(d["seq"], d["action"], d["from_stage"], d["to_stage"], d["traffic_percent"], d["actor"]) for d in body["decisions"]] == [
        (1, "start", 0, 0, 0.0, None), (2, "advance", 0, 1, 5.0, None)]
    assert body["decisions"][0]["numbers"] is None
    numbers = body["decisions"][1]["numbers"]
    assert (numbers["stage"], numbers["gate"]["name"], numbers["gate"]["state"], numbers["candidate"]["requests"]) == ("shadow", "no_errors", "pass", 20)
    assert {t["metric"] for t in numbers["triggers"]} == {"error_rate", "latency_p95", "guardrail_rate", "negative_feedback_rate", "cost_per_request"}
    assert (body["stage"], body["traffic_percent"], body["status"]) == ("5%", 5.0, "running")


def test_a_person_decides_through_the_api(fraud, api_as, editor, approver, quick, t0):
    rollout = canary_of(fraud[1], editor, approver, policy="quick", at=t0)
    api = api_as(approver)
    url = f"/api/v1/rollouts/{rollout.pk}"

    paused = api.post(f"{url}/pause", {"reason": "look first"}, format="json")
    resumed = api.post(f"{url}/resume", {"reason": "fine"}, format="json")
    advanced = api.post(f"{url}/advance", {"reason": "skip the shadow"}, format="json")
    rolled_back = api.post(f"{url}/rollback", {"reason": "complaints"}, format="json")
    again = api.post(f"{url}/rollback", {"reason": "twice"}, format="json")

    assert (paused.json()["status"], resumed.json()["status"], advanced.json()["stage_index"], rolled_back.json()["status"]) == (
        "paused", "running", 1, "rolled_back")
    assert [(d["action"], d["actor"]) for d in rolled_back.json()["decisions"]][1:] == [
        ("pause", "bob"), ("resume", "bob"), ("advance", "bob"), ("rollback", "bob")]
    assert error_of(again, 409)["code"] == "rollout_rolled_back"


def test_decisions_need_an_approver_a_reason_and_a_known_rollout(fraud, api_as, editor, approver, quick, t0):
    rollout = canary_of(fraud[1], editor, approver, policy="quick", at=t0)

    by_editor = api_as(editor).post(f"/api/v1/rollouts/{rollout.pk}/pause", {"reason": "x"}, format="json")
    no_reason = api_as(approver).post(f"/api/v1/rollouts/{rollout.pk}/pause", {}, format="json")
    extra_field = api_as(approver).post(f"/api/v1/rollouts/{rollout.pk}/pause", {"reason": "x", "force": True}, format="json")
    unknown = api_as(approver).post("/api/v1/rollouts/999999/pause", {"reason": "x"}, format="json")
    unknown_detail = api_as(approver).get("/api/v1/rollouts/999999")

    assert error_of(by_editor, 403)["code"] == "role_required"
    assert "reason" in error_of(no_reason, 400)["extra"]["fields"]
    assert "force" in error_of(extra_field, 400)["extra"]["fields"]
    assert error_of(unknown, 404)["code"] == "not_found" and unknown_detail.status_code == 404
    assert Rollout.objects.get(pk=rollout.pk).status == "running"


# --- rollout policies ----------------------------------------------------------------------------------------------------------


def test_policies_are_listed_created_in_versions_and_read(api_as, approver, viewer):
    api = api_as(approver)

    first = api.post("/api/v1/rollout-policies", {"name": "quick", **QUICK}, format="json")
    second = api.post("/api/v1/rollout-policies", {"name": "quick", "description": "no shadow", **QUICK, "stages": QUICK["stages"][1:]}, format="json")
    listed = api_as(viewer).get("/api/v1/rollout-policies").json()
    newest = api_as(viewer).get("/api/v1/rollout-policies/quick").json()
    older = api_as(viewer).get("/api/v1/rollout-policies/quick", {"version": 1}).json()
    default = api_as(viewer).get("/api/v1/rollout-policies/default").json()

    assert (first.status_code, first.json()["version"], second.json()["version"]) == (201, 1, 2)
    assert [(p["name"], p["version"]) for p in listed["results"]] == [("default", 1), ("quick", 2)]
    assert (newest["version"], newest["description"], newest["stages"][0]["name"]) == (2, "no shadow", "5%")
    assert (older["version"], older["stages"][0]["gate"]) == (1, {"name": "no_errors", "threshold": None})
    assert [s["traffic_percent"] for s in default["stages"]] == [0.0, 5.0, 25.0, 50.0, 100.0]
    assert default["triggers"][0] == {"metric": "error_rate", "threshold": 0.05, "relative": False, "action": "rollback"}


def test_a_bad_policy_is_a_400_naming_the_field_and_needs_an_approver(api_as, approver, editor):
    api = api_as(approver)
    decreasing = [{**QUICK["stages"][0], "traffic_percent": 25}, *QUICK["stages"][1:]]

    shares = api.post("/api/v1/rollout-policies", {"name": "odd", **QUICK, "stages": decreasing}, format="json")
    gate = api.post("/api/v1/rollout-policies", {"name": "odd", **QUICK, "stages": [{**QUICK["stages"][0], "gate": {"name": "accuracy"}},
                                                                                    *QUICK["stages"][1:]]}, format="json")
    threshold = api.post("/api/v1/rollout-policies", {"name": "odd", **QUICK, "triggers": [{**QUICK["triggers"][0], "threshold": 0}]}, format="json")
    unknown_key = api.post("/api/v1/rollout-policies", {"name": "odd", **QUICK, "stages": [{**QUICK["stages"][0], "minutes": 3},
                                                                                           *QUICK["stages"][1:]]}, format="json")
    by_editor = api_as(editor).post("/api/v1/rollout-policies", {"name": "odd", **QUICK}, format="json")
    unknown = api.get("/api/v1/rollout-policies/odd")

    assert error_of(shares, 400)["extra"]["fields"] == {"stages[1].traffic_percent": ["shares never decrease: 5 after 25"]}
    assert "stages[0].gate.name" in error_of(gate, 400)["extra"]["fields"]
    assert "triggers[0].threshold" in error_of(threshold, 400)["extra"]["fields"]
    assert "stages[0].minutes" in error_of(unknown_key, 400)["extra"]["fields"]
    assert error_of(by_editor, 403)["code"] == "role_required"
    assert error_of(unknown, 404)["code"] == "not_found"
    assert not RolloutPolicy.objects.filter(name="odd").exists()

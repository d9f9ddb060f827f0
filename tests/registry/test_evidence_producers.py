"""Who produced the evidence a gate reads, attacked as a hostile editor would: every evaluation records its producer (the
authenticated caller, never a request field) and how it was produced; a replay of typed-in responses never satisfies a
gate; a policy with `evidence_from_other_identity` refuses evidence produced by the promotion's own requester. Over HTTP,
with the gate card's page."""

import importlib
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from registry.models import AuditEvent, Evaluation, Prompt, RegisteredModel
from registry.services import prompts as prompt_services
from registry.services.evaluations import evaluation_record_external
from registry.services.gates import gate_policy_set
from tests.conftest import make_user
from tests.factories import register
from tests.prompts.conftest import brief_folder
from tests.registry.test_api import assert_error_shape

pytestmark = pytest.mark.django_db
MODEL = "/api/v1/models/fraud/versions/1"
PROMPT = "/api/v1/prompts/summarize/versions/2"
GOOD = "- moved\\n- to\\n- Tuesday"  # three bullets, no PII: passes format_valid and safety
CHECKS = [{"check": "accuracy", "op": ">=", "threshold": 0.9}]
PROMPT_CHECKS = [{"check": "format_valid", "op": ">", "threshold": 0.95}, {"check": "safety", "op": ">", "threshold": 0.99}]


def evaluated(version, producer, accuracy: float) -> Evaluation:
    """A finished model evaluation produced by `producer` (as evaluation_request records it)."""
    return Evaluation.objects.create(model_version=version, kind="model", status="done", finished_at=timezone.now(), source="holdout.csv",
                                     metrics={"accuracy": accuracy}, requested_by=producer, origin="uploaded_file")


@pytest.fixture
def ci(db):
    return make_user("ci", "editor")


@pytest.fixture
def fraud(editor):
    return register("fraud", editor)


@pytest.fixture
def recorded_summarize(editor):
    """summarize with an eval set whose rows carry recorded outputs (what `replay` without responses reads)."""
    folder = {path: text for path, text in brief_folder().items() if path != "config.yaml"}  # no requests made by the import
    folder["summarize/eval_set.jsonl"] = (
        f'{{"input": {{"text": "The meeting moved to Tuesday."}}, "expected": "- moved to Tuesday", "response": "{GOOD}"}}\n'
        f'{{"input": {{"text": "Sales grew 4% in Q3."}}, "expected": "- sales up 4%", "response": "{GOOD}"}}\n'
    )
    prompt_services.prompts_import(files=folder, actor=editor)


def run_prompt(client, capture, body) -> Evaluation:
    with capture(execute=True):
        queued = client.post(f"{PROMPT}/evaluations", body, format="json")
    assert queued.status_code == 202, queued.content
    return Evaluation.objects.get(pk=queued.json()["id"])


# --- producer and origin are recorded, never taken from the request ---------------------------------------------------


def test_an_upload_records_the_caller_as_producer_and_how_it_was_produced(celery_eager, api_as, editor, fraud,
                                                                            django_capture_on_commit_callbacks):
    body = b"label,prediction\n1,1\n0,0\n1,1\n0,0\n"

    with django_capture_on_commit_callbacks(execute=True):
        queued = api_as(editor).post(f"{MODEL}/evaluations", {"file": SimpleUploadedFile("preds.csv", body), "kind": "model"},
                                     format="multipart")

    assert queued.status_code == 202, queued.content
    assert (queued.json()["requested_by"], queued.json()["origin"]) == (editor.username, "uploaded_file")
    assert AuditEvent.objects.get(action="evaluation_requested").extra["origin"] == "uploaded_file"
    shown = api_as(editor).get(f"{MODEL}/gates").json()
    assert shown["requester"] == editor.username and shown["checks"] == []  # no policy yet: nothing judged


def test_a_request_cannot_name_its_own_producer_or_origin(api_as, editor, ci, recorded_summarize):
    client = api_as(editor)

    forged = client.post(f"{PROMPT}/evaluations", {"provider": "replay", "origin": "provider_run", "requested_by": ci.username},
                         format="json")

    body = assert_error_shape(forged, 400, "invalid")
    assert "Unknown option(s) for a prompt evaluation: origin, requested_by" in body["message"]
    assert not Evaluation.objects.exists()


def test_each_way_of_producing_evidence_gets_its_own_origin(api_as, editor, approver, recorded_summarize, settings):
    settings.MLOPS_LLM_BASE_URL = "http://127.0.0.1:9/v1"  # never called: the run is only queued
    client = api_as(editor)

    typed = client.post(f"{PROMPT}/evaluations", {"provider": "replay", "responses": {"0": "x"}}, format="json").json()
    typed_text = client.post(f"{PROMPT}/evaluations", {"provider": "replay", "responses": '{"index": 0, "output": "x"}'}, format="json").json()
    recorded = client.post(f"{PROMPT}/evaluations", {"provider": "replay"}, format="json").json()
    provider = client.post(f"{PROMPT}/evaluations", {"provider": "openai"}, format="json").json()
    version = Prompt.objects.get(name="summarize").versions.get(version=2)
    experiment = evaluation_record_external(kind="experiment", prompt_version=version, metrics={"ab_lift": 0.1}, source="experiment:x",
                                            actor=approver)

    assert [e["origin"] for e in (typed, typed_text, recorded, provider)] == ["typed_replay", "typed_replay", "recorded_replay", "provider_run"]
    assert {e["requested_by"] for e in (typed, typed_text, recorded, provider)} == {editor.username}
    assert (experiment.origin, experiment.requested_by) == ("experiment", approver)


def test_the_migration_fills_in_the_origin_of_existing_rows_from_what_they_ran():
    migration = importlib.import_module("registry.migrations.0010_evidence_origin")

    assert migration.origin_of("model", {}) == migration.origin_of("data", {"data_version": "d"}) == "uploaded_file"
    assert migration.origin_of("experiment", {}) == "experiment"
    assert migration.origin_of("prompt", {"provider": "openai"}) == "provider_run"
    assert migration.origin_of("prompt", {"provider": "replay", "responses": {"0": "x"}}) == "typed_replay"
    assert migration.origin_of("prompt", {"responses": ""}) == "typed_replay"  # a text, even empty, is read as typed responses
    assert migration.origin_of("prompt", {}) == migration.origin_of("prompt", {"responses": {}}) == "recorded_replay"


# --- typed-in replays never count -----------------------------------------------------------------------------------


def test_a_typed_in_replay_never_satisfies_a_gate_and_never_hides_the_evidence_that_counts(
    celery_eager, api_as, editor, approver, recorded_summarize, django_capture_on_commit_callbacks
):
    gate_policy_set(prompt=Prompt.objects.get(name="summarize"), checks=PROMPT_CHECKS, actor=approver)
    client = api_as(editor)
    perfect = {"0": GOOD.replace("\\n", "\n"), "1": GOOD.replace("\\n", "\n")}

    typed = run_prompt(client, django_capture_on_commit_callbacks, {"provider": "replay", "responses": perfect})
    refused = client.post(f"{PROMPT}/promotions", {"to": "prod", "reason": "ship"}, format="json")
    recorded = run_prompt(client, django_capture_on_commit_callbacks, {"provider": "replay"})
    typed_again = run_prompt(client, django_capture_on_commit_callbacks, {"provider": "replay", "responses": {"0": "bad", "1": "bad"}})
    card = client.get(f"{PROMPT}/gates").json()
    requested = client.post(f"{PROMPT}/promotions", {"to": "prod", "reason": "ship"}, format="json")

    assert typed.metrics == {"bullet_count": 1.0, "format_valid": 1.0, "safety": 1.0}  # computed and shown, only not counted
    body = assert_error_shape(refused, 409, "gates_failed")
    assert body["message"] == (f"Gates not passed for prompt:summarize v2: format_valid has no evidence that counts (#{typed.pk}: a replay of "
                               f"responses typed in with the request never counts for a gate); safety has no evidence that counts "
                               f"(#{typed.pk}: a replay of responses typed in with the request never counts for a gate).")
    assert recorded.origin == "recorded_replay" and recorded.metrics["format_valid"] == 1.0
    format_valid = card["checks"][0]
    assert (format_valid["status"], format_valid["evaluation_id"], format_valid["origin"], format_valid["produced_by"]) == (
        "passed", recorded.pk, "recorded_replay", editor.username)
    assert [(o["evaluation_id"], o["origin"], o["value"]) for o in format_valid["passed_over"]] == [(typed_again.pk, "typed_replay", 0.0)]
    assert requested.status_code == 201, requested.content


# --- evidence from another identity -----------------------------------------------------------------------------------


def test_policy_api_sets_the_option_and_a_put_without_it_keeps_it(api_as, approver, editor, fraud):
    client = api_as(approver)

    on = client.put("/api/v1/models/fraud/gate-policy", {"checks": CHECKS, "evidence_from_other_identity": True}, format="json")
    kept = client.put("/api/v1/models/fraud/gate-policy", {"checks": CHECKS}, format="json")
    bad = client.put("/api/v1/models/fraud/gate-policy", {"checks": CHECKS, "evidence_from_other_identity": "yes"}, format="json")
    by_editor = api_as(editor).put("/api/v1/models/fraud/gate-policy", {"checks": CHECKS, "evidence_from_other_identity": False},
                                   format="json")
    off = client.put("/api/v1/models/fraud/gate-policy", {"checks": CHECKS, "evidence_from_other_identity": False}, format="json")

    assert on.json()["evidence_from_other_identity"] is True and kept.json()["evidence_from_other_identity"] is True
    assert_error_shape(bad, 400, "invalid")
    assert_error_shape(by_editor, 403)
    assert off.json()["evidence_from_other_identity"] is False
    audited = [e.extra["evidence_from_other_identity"] for e in AuditEvent.objects.filter(action="gate_policy_set").order_by("id")]
    assert audited == [True, True, False]


def test_the_requesters_own_evidence_does_not_count_under_the_policy(api_as, editor, ci, approver, approver2, fraud):
    gate_policy_set(model=RegisteredModel.objects.get(name="fraud"), checks=CHECKS, evidence_from_other_identity=True, actor=approver)
    own = evaluated(fraud, editor, 0.99)

    refused = api_as(editor).post(f"{MODEL}/promotions", {"to": "production", "reason": "my numbers"}, format="json")
    as_ci = api_as(ci).get(f"{MODEL}/gates").json()
    as_editor = api_as(approver).get(f"{MODEL}/gates", {"requester": editor.username}).json()
    from_ci = evaluated(fraud, ci, 0.95)
    requested = api_as(editor).post(f"{MODEL}/promotions", {"to": "production", "reason": "CI's numbers"}, format="json")
    by_ci = api_as(ci).post(f"{MODEL}/promotions", {"to": "staging", "reason": "my own numbers"}, format="json")

    body = assert_error_shape(refused, 409, "gates_failed")
    assert body["message"] == (f"Gates not passed for model:fraud v1: accuracy has no evidence that counts (#{own.pk}: produced by "
                               f"{editor.username}, who requested the promotion; the policy needs evidence from another identity).")
    assert body["extra"]["failed"][0]["problem"] == body["message"][len("Gates not passed for model:fraud v1: "):-1]
    assert as_ci["passed"] is True and as_ci["checks"][0]["produced_by"] == editor.username  # someone else may ask with it
    assert as_editor["passed"] is False and as_editor["requester"] == editor.username and as_editor["evidence_from_other_identity"]
    assert as_editor["checks"][0]["passed_over"][0]["reason"].startswith(f"produced by {editor.username}, who requested the promotion")
    assert requested.status_code == 201, requested.content
    assert (requested.json()["requested_by"], from_ci.requested_by) == (editor.username, ci)
    # CI's newest evaluation is its own: for CI's request the editor's older one counts (0.99 passes), never CI's.
    assert by_ci.status_code == 201, by_ci.content


def test_the_approval_judges_the_evidence_against_the_requester_not_the_approver(api_as, editor, ci, approver, fraud):
    gate_policy_set(model=RegisteredModel.objects.get(name="fraud"), checks=CHECKS, evidence_from_other_identity=True, actor=approver)
    evaluated(fraud, ci, 0.95)
    requested = api_as(editor).post(f"{MODEL}/promotions", {"to": "production", "reason": "CI's numbers"}, format="json").json()
    evaluated(fraud, ci, 0.5)  # CI's newer run fails: it counts at approval
    evaluated(fraud, editor, 0.99)  # the requester's own newer run does not

    approve = api_as(approver).post(f"/api/v1/promotions/{requested['id']}/approve", {}, format="json")

    assert "accuracy 0.5 < 0.9" in assert_error_shape(approve, 409, "gates_failed")["message"]


def test_unknown_requester_on_the_gate_api_is_a_400(api_as, viewer, fraud):
    response = api_as(viewer).get(f"{MODEL}/gates", {"requester": "nobody"})

    assert "requester: no user 'nobody'" in assert_error_shape(response, 400, "invalid")["message"]


# --- the gate card --------------------------------------------------------------------------------------------------


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_gate_card_shows_who_produced_each_piece_of_evidence_and_why_some_does_not_count(approver, approver2, editor, ci, fraud):
    gate_policy_set(model=RegisteredModel.objects.get(name="fraud"), checks=CHECKS, evidence_from_other_identity=True, actor=approver)
    counted = evaluated(fraud, ci, 0.95)
    own = evaluated(fraud, editor, 0.3)
    promotion = api_as_editor_request(editor)

    html = logged_in(approver2).get("/models/fraud/versions/1/").content.decode()

    card = re.search(r'<section class="card gate-card".*?</section>', html, re.S).group(0)
    row = re.search(r'data-check="accuracy".*?</tr>', card, re.S).group(0)
    assert 'data-status="passed"' in row and f'href="/evaluations/{counted.pk}/"' in row
    assert '<span class="producer" data-producer="ci">produced by <b>ci</b></span> · <span class="origin">computed from an uploaded file</span>' in row
    passed_over = re.search(r'<div class="passed-over" data-evaluation="(\d+)">(.*?)</div>', row, re.S)
    assert passed_over.group(1) == str(own.pk)
    assert f"produced by <b>{editor.username}</b>) does not count: produced by {editor.username}, who requested the promotion" in passed_over.group(2)
    assert f"judged for a promotion requested by <b>{editor.username}</b>" in card
    assert f'id="approve-blocked-{promotion}"' not in html  # CI's evidence counts for the editor's request


def api_as_editor_request(editor) -> int:
    from tests.conftest import api_client_for

    response = api_client_for(editor).post(f"{MODEL}/promotions", {"to": "production", "reason": "CI's numbers"}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def test_gate_card_blocks_the_approval_of_a_request_backed_only_by_its_requesters_evidence(approver, editor, fraud):
    gate_policy_set(model=RegisteredModel.objects.get(name="fraud"), checks=CHECKS, enforced=False, evidence_from_other_identity=True,
                    actor=approver)
    promotion = api_as_editor_request(editor)  # not enforced yet, so the request goes through
    gate_policy_set(model=RegisteredModel.objects.get(name="fraud"), checks=CHECKS, enforced=True, actor=approver)
    own = evaluated(fraud, editor, 0.99)

    html = logged_in(approver).get("/models/fraud/versions/1/").content.decode()

    blocked = re.search(rf'<p class="gate-reason" id="approve-blocked-{promotion}">.*?</p>', html, re.S).group(0)
    assert f"accuracy has no evidence that counts (#{own.pk}: produced by {editor.username}, who requested the promotion" in blocked
    card = re.search(r'<section class="card gate-card".*?</section>', html, re.S).group(0)
    assert 'data-gates="failed"' in card and "no evidence that counts</span>" in card


def test_evaluation_page_names_its_producer_and_says_a_typed_replay_never_counts(api_as, editor, viewer, recorded_summarize):
    queued = api_as(editor).post(f"{PROMPT}/evaluations", {"provider": "replay", "responses": {"0": "x"}}, format="json").json()

    html = logged_in(viewer).get(f"/evaluations/{queued['id']}/").content.decode()

    assert f'produced by <span id="evaluation-producer">{editor.username}</span> (replay of responses typed in with the request)' in html
    assert 'id="typed-replay"' in html


def test_the_admin_sets_the_option_through_the_gate_service(admin_user, approver, fraud):
    from django.urls import reverse

    policy = gate_policy_set(model=RegisteredModel.objects.get(name="fraud"), checks=CHECKS, actor=approver)
    form = {"model": policy.model_id, "prompt": "", "checks": '[{"check": "accuracy", "op": ">=", "threshold": 0.9}]', "enforced": "on",
            "evidence_from_other_identity": "on"}

    response = logged_in(admin_user).post(reverse("admin:registry_gatepolicy_change", args=[policy.pk]), form)

    assert response.status_code == 302, response.content.decode()[:2000]
    policy.refresh_from_db()
    assert policy.evidence_from_other_identity is True
    event = AuditEvent.objects.filter(action="gate_policy_set").latest("id")
    assert (event.actor, event.extra["evidence_from_other_identity"], event.extra["evidence_from_other_identity_before"]) == (
        admin_user, True, False)


def test_gate_card_reads_the_evaluations_once_more_however_many_requesters_it_judges_for(approver, approver2, editor, ci, fraud):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.conftest import api_client_for

    gate_policy_set(model=RegisteredModel.objects.get(name="fraud"), checks=CHECKS, evidence_from_other_identity=True, actor=approver)
    evaluated(fraud, ci, 0.95)
    evaluated(fraud, approver, 0.96)  # counts for both requesters below
    api_as_editor_request(editor)  # production, asked by the editor
    staged = api_client_for(ci).post(f"{MODEL}/promotions", {"to": "staging", "reason": "to try"}, format="json")  # staging, by CI

    with CaptureQueriesContext(connection) as page:
        html = logged_in(approver2).get("/models/fraud/versions/1/").content.decode()

    reads = [q["sql"] for q in page.captured_queries  # the finished evaluations gates read (not the A/B result's, nor the list's)
             if 'FROM "registry_evaluation"' in q["sql"] and "'done'" in q["sql"] and "LIMIT" not in q["sql"]]
    assert staged.status_code == 201 and 'id="gate-card"' in html
    assert len(reads) == 2  # the card's own judging, then once for the staging request's requester and the viewer together

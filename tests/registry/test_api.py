import hashlib
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from registry.models import AuditEvent, ModelVersion, RegisteredModel
from tests.factories import promote, register

pytestmark = pytest.mark.django_db


def assert_error_shape(response, status: int, code: str | None = None):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"message", "code", "extra"}
    assert isinstance(body["message"], str) and body["message"]
    if code:
        assert body["code"] == code
    return body


def test_anonymous_gets_401_in_the_error_shape():
    response = APIClient().get("/api/v1/models")

    assert_error_shape(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Token")


def test_bad_token_gets_401(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token nope")

    assert_error_shape(client.get("/api/v1/models"), 401)


def test_register_json_creates_model_and_candidate_version(api_as, editor):
    client = api_as(editor)
    body = {"params": {"lr": 0.01}, "metrics": {"accuracy": 0.94, "f1": 0.91}, "tags": {"team": "risk"}, "code_commit": "abc", "artifact_uri": "s3://b/m.pkl"}

    first = client.post("/api/v1/models/fraud-detector/versions", body, format="json")
    second = client.post("/api/v1/models/fraud-detector/versions/", body, format="json")

    assert first.status_code == 201, first.content
    data = second.json()
    assert (data["model"], data["version"], data["stage"]) == ("fraud-detector", 2, "candidate")
    assert data["metrics"] == {"accuracy": 0.94, "f1": 0.91}
    assert data["artifact_url"] == "s3://b/m.pkl"
    assert data["created_by"] == "alice"


def test_register_multipart_artifact_round_trips(api_as, editor):
    client = api_as(editor)
    payload = bytes(range(256)) * 100
    meta = json.dumps({"metrics": {"auc": 0.97}, "data_version": "v7"})

    response = client.post("/api/v1/models/fraud/versions", {"artifact": SimpleUploadedFile("model.bin", payload), "meta": meta}, format="multipart")

    assert response.status_code == 201, response.content
    data = response.json()
    assert data["artifact_sha256"] == hashlib.sha256(payload).hexdigest()
    assert data["artifact_size"] == len(payload)
    assert (data["metrics"], data["data_version"]) == ({"auc": 0.97}, "v7")
    download = client.get(data["artifact_url"])
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == payload


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ('{"metrics": {"accuracy": NaN}}', "NaN"),
        ('{"metrics": {"accuracy": Infinity}}', "Infinity"),
        ('{"metrics": {"a": 1}, "metrics": {"a": 2}}', "duplicate key"),
        ('{"metrics": {"a": 1}', "Malformed JSON"),
        ('{"metric": {"a": 1}}', "metric"),
        ('{"metrics": {"a": "high"}}', "numbers"),
        ('{"params": []}', "params"),
        ('{"tags": {"team": 3}}', "strings"),
        ('["not", "an", "object"]', "object"),
    ],
)
def test_register_refuses_bad_input_with_400_and_writes_nothing(api_as, editor, raw, fragment):
    response = api_as(editor).post("/api/v1/models/fraud/versions", raw, content_type="application/json")

    body = assert_error_shape(response, 400)
    assert fragment in body["message"] or fragment in json.dumps(body["extra"])
    assert not RegisteredModel.objects.exists()
    assert not AuditEvent.objects.exists()


def test_register_field_errors_are_in_extra_fields(api_as, editor):
    unknown = api_as(editor).post("/api/v1/models/fraud/versions", {"oops": 1}, format="json")
    bad_metric = api_as(editor).post("/api/v1/models/fraud/versions", {"metrics": {"a": "x"}, "tags": {"t": 1}}, format="json")

    assert assert_error_shape(unknown, 400, "invalid")["extra"]["fields"] == {"oops": ["Unknown field."]}
    assert set(assert_error_shape(bad_metric, 400, "invalid")["extra"]["fields"]) == {"metrics", "tags"}


def test_register_oversized_artifact_is_413_and_nothing_written(api_as, editor, settings):
    settings.MLOPS_MAX_ARTIFACT_BYTES = 1000

    response = api_as(editor).post(
        "/api/v1/models/fraud/versions", {"artifact": SimpleUploadedFile("m.bin", b"x" * 1001), "meta": "{}"}, format="multipart"
    )

    assert_error_shape(response, 413, "too_large")
    assert not ModelVersion.objects.exists()


def test_register_huge_body_is_refused_before_reading(api_as, editor, settings):
    settings.MLOPS_MAX_ARTIFACT_BYTES = 10
    announced = settings.MLOPS_MAX_ARTIFACT_BYTES + 2 * 1024 * 1024

    # A tiny JSON body that announces a huge one: only the Content-Length check can refuse it.
    response = api_as(editor).post("/api/v1/models/fraud/versions", "{}", content_type="application/json", CONTENT_LENGTH=str(announced))

    assert_error_shape(response, 413, "too_large")
    assert not ModelVersion.objects.exists()


def test_register_needs_editor_role(api_as, viewer):
    assert_error_shape(api_as(viewer).post("/api/v1/models/fraud/versions", {}, format="json"), 403)


def test_unknown_model_and_version_are_404(api_as, viewer, editor):
    register("fraud", editor)
    client = api_as(viewer)

    assert_error_shape(client.get("/api/v1/models/nope"), 404, "not_found")
    assert_error_shape(client.get("/api/v1/models/fraud/versions/7"), 404, "not_found")
    assert_error_shape(client.get("/api/v1/no-such-endpoint"), 404)
    assert_error_shape(client.post("/api/v1/promotions/42/approve", {}, format="json"), 403)


def test_model_list_and_detail(api_as, viewer, editor, approver):
    register("fraud", editor)
    v2 = register("fraud", editor)
    register("churn", editor)
    promote(v2, "production", editor, approver)
    client = api_as(viewer)

    listing = client.get("/api/v1/models").json()
    detail = client.get("/api/v1/models/fraud").json()
    searched = client.get("/api/v1/models?search=chu").json()

    assert listing["count"] == 2
    fraud = next(m for m in listing["results"] if m["name"] == "fraud")
    assert (fraud["latest_version"], fraud["production_version"]) == (2, 2)
    assert [v["version"] for v in detail["versions"]] == [2, 1]
    assert [m["name"] for m in searched["results"]] == ["churn"]
    stage = client.get("/api/v1/models/fraud/stages/production").json()
    assert stage["version"] == 2


def test_promotion_flow_over_the_api(api_as, editor, approver, approver2):
    register("fraud", editor)
    register("fraud", editor)
    as_editor, as_bob, as_carol = api_as(editor), api_as(approver), api_as(approver2)
    first = as_editor.post("/api/v1/models/fraud/versions/1/promotions", {"to": "production", "reason": "baseline"}, format="json").json()
    assert as_bob.post(f"/api/v1/promotions/{first['id']}/approve", {}, format="json").status_code == 200

    created = as_bob.post("/api/v1/models/fraud/versions/2/promotions", {"to": "production", "reason": "better f1"}, format="json")
    assert created.status_code == 201
    promotion = created.json()
    assert (promotion["status"], promotion["from_version"], promotion["requested_by"]) == ("pending", 1, "bob")

    assert_error_shape(as_editor.post(f"/api/v1/promotions/{promotion['id']}/approve", {}, format="json"), 403)
    assert_error_shape(as_bob.post(f"/api/v1/promotions/{promotion['id']}/approve", {}, format="json"), 403, "four_eyes")
    approved = as_carol.post(f"/api/v1/promotions/{promotion['id']}/approve", {"comment": "ok"}, format="json")
    assert approved.status_code == 200
    assert approved.json()["status"] == "approved"
    assert as_carol.get("/api/v1/models/fraud/stages/production").json()["version"] == 2
    assert as_carol.get("/api/v1/models/fraud/versions/1").json()["stage"] == "archived"
    assert_error_shape(as_carol.post(f"/api/v1/promotions/{promotion['id']}/approve", {}, format="json"), 409, "not_pending")


def test_promotion_request_bad_input(api_as, editor):
    register("fraud", editor)
    client = api_as(editor)

    assert_error_shape(client.post("/api/v1/models/fraud/versions/1/promotions", {"to": "moon", "reason": "r"}, format="json"), 400)
    assert_error_shape(client.post("/api/v1/models/fraud/versions/1/promotions", {"to": "staging"}, format="json"), 400)
    assert_error_shape(client.post("/api/v1/models/fraud/versions/9/promotions", {"to": "staging", "reason": "r"}, format="json"), 404)
    client.post("/api/v1/models/fraud/versions/1/promotions", {"to": "staging", "reason": "r"}, format="json")
    assert_error_shape(client.post("/api/v1/models/fraud/versions/1/promotions", {"to": "staging", "reason": "r"}, format="json"), 409, "already_pending")


def test_reject_over_the_api(api_as, editor, approver):
    register("fraud", editor)
    promotion = api_as(editor).post("/api/v1/models/fraud/versions/1/promotions", {"to": "staging", "reason": "r"}, format="json").json()
    client = api_as(approver)

    assert_error_shape(client.post(f"/api/v1/promotions/{promotion['id']}/reject", {}, format="json"), 400)
    rejected = client.post(f"/api/v1/promotions/{promotion['id']}/reject", {"comment": "needs fairness check"}, format="json")

    assert rejected.status_code == 200
    assert (rejected.json()["status"], rejected.json()["comment"]) == ("rejected", "needs fairness check")


def test_requester_cannot_reject_own_request_over_the_api(api_as, approver, approver2):
    register("fraud", approver)
    as_bob = api_as(approver)
    promotion = as_bob.post("/api/v1/models/fraud/versions/1/promotions", {"to": "staging", "reason": "r"}, format="json").json()

    refused = as_bob.post(f"/api/v1/promotions/{promotion['id']}/reject", {"comment": "changed my mind"}, format="json")

    assert_error_shape(refused, 403, "four_eyes")
    assert as_bob.get(f"/api/v1/promotions/{promotion['id']}").json()["status"] == "pending"
    rejected = api_as(approver2).post(f"/api/v1/promotions/{promotion['id']}/reject", {"comment": "not yet"}, format="json")
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"


def test_the_author_of_a_version_cannot_approve_or_reject_its_promotion_over_the_api(api_as, editor, approver, approver2):
    register("fraud", approver)
    promotion = api_as(editor).post("/api/v1/models/fraud/versions/1/promotions", {"to": "staging", "reason": "r"}, format="json").json()
    as_bob = api_as(approver)

    approving = as_bob.post(f"/api/v1/promotions/{promotion['id']}/approve", {}, format="json")
    rejecting = as_bob.post(f"/api/v1/promotions/{promotion['id']}/reject", {"comment": "not mine to judge"}, format="json")

    assert_error_shape(approving, 403, "four_eyes")
    assert_error_shape(rejecting, 403, "four_eyes")
    assert as_bob.get(f"/api/v1/promotions/{promotion['id']}").json()["status"] == "pending"
    assert api_as(approver2).post(f"/api/v1/promotions/{promotion['id']}/approve", {}, format="json").status_code == 200


def test_approving_after_the_stage_changed_is_a_409_over_the_api(api_as, editor, approver):
    v1, _ = register("fraud", editor), register("fraud", editor)
    promote(v1, "staging", editor, approver)
    as_bob = api_as(approver)
    stale = api_as(editor).post("/api/v1/models/fraud/versions/2/promotions", {"to": "staging", "reason": "replaces v1"}, format="json").json()
    assert stale["from_version"] == 1
    promote(v1, "production", editor, approver)

    refused = as_bob.post(f"/api/v1/promotions/{stale['id']}/approve", {"comment": "ok"}, format="json")

    assert_error_shape(refused, 409, "not_pending")
    assert as_bob.get(f"/api/v1/promotions/{stale['id']}").json()["status"] == "superseded"
    assert as_bob.get("/api/v1/models/fraud/versions/2").json()["stage"] == "candidate"
    assert as_bob.get("/api/v1/models/fraud/stages/production").json()["version"] == 1
    assert not AuditEvent.objects.filter(action="promotion_approved", version=2).exists()


def test_rollback_over_the_api(api_as, editor, approver):
    v1, v2 = register("fraud", editor), register("fraud", editor)
    promote(v1, "production", editor, approver)
    client = api_as(approver)

    assert_error_shape(client.post("/api/v1/models/fraud/rollback", {"stage": "production", "reason": "r"}, format="json"), 409, "no_previous_version")
    promote(v2, "production", editor, approver)
    response = client.post("/api/v1/models/fraud/rollback", {"stage": "production", "reason": "latency"}, format="json")

    assert response.status_code == 200
    assert (response.json()["version"], response.json()["stage"]) == (1, "production")
    assert_error_shape(api_as(editor).post("/api/v1/models/fraud/rollback", {"stage": "production", "reason": "r"}, format="json"), 403)
    assert_error_shape(client.post("/api/v1/models/fraud/rollback", {"stage": "candidate", "reason": "r"}, format="json"), 400)


def test_audit_lists_events_newest_first_with_filters(api_as, editor, approver):
    v1 = register("fraud", editor)
    register("churn", editor)
    promote(v1, "staging", editor, approver)
    client = api_as(editor)

    events = client.get("/api/v1/audit?subject=model:fraud").json()["results"]
    approvals = client.get("/api/v1/audit?action=promotion_approved").json()["results"]

    assert [e["action"] for e in events] == ["promotion_approved", "promotion_requested", "registered"]
    assert set(events[0]) >= {"at", "actor", "action", "subject", "version", "from_stage", "to_stage", "reason"}
    assert (events[0]["actor"], events[0]["to_stage"]) == ("bob", "staging")
    assert len(approvals) == 1
    assert_error_shape(client.get("/api/v1/audit?action=bogus"), 400)


def test_promotion_list_filters_by_status(api_as, editor):
    register("fraud", editor)
    client = api_as(editor)
    client.post("/api/v1/models/fraud/versions/1/promotions", {"to": "staging", "reason": "r"}, format="json")

    assert client.get("/api/v1/promotions?status=pending").json()["count"] == 1
    assert client.get("/api/v1/promotions?status=approved").json()["count"] == 0
    assert_error_shape(client.get("/api/v1/promotions?status=weird"), 400)


def test_list_endpoints_use_a_constant_number_of_queries(api_as, editor, approver, django_assert_max_num_queries):
    for i in range(30):
        version = register(f"model-{i}", editor)
        if i % 3 == 0:
            promote(version, "production", editor, approver)
        register(f"model-{i}", editor)
    client = api_as(editor)
    version_count = ModelVersion.objects.count()

    # auth (token + user groups) + count + page
    with django_assert_max_num_queries(5):
        assert client.get("/api/v1/models?page_size=100").json()["count"] == 30
    with django_assert_max_num_queries(5):
        assert client.get("/api/v1/audit?page_size=100").status_code == 200
    with django_assert_max_num_queries(5):
        assert client.get("/api/v1/promotions?page_size=100").status_code == 200
    with django_assert_max_num_queries(6):
        assert client.get("/api/v1/models/model-0/versions").json()["count"] == 2
    with django_assert_max_num_queries(5):
        assert len(client.get("/api/v1/models/model-0").json()["versions"]) == 2
    assert version_count == 60


def test_schema_and_swagger_are_served_locally(api_as, viewer, client):
    schema = api_as(viewer).get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert "/api/v1/models/{name}/versions" in schema.content.decode()

    client.force_login(viewer)
    docs = client.get("/api/v1/docs/")
    assert docs.status_code == 200
    assert b"cdn" not in docs.content.lower()
    assert b"swagger-ui" in docs.content


def test_me_reports_the_role(api_as, approver):
    assert api_as(approver).get("/api/v1/me").json() == {"username": "bob", "role": "approver"}


def test_bad_model_name_in_the_url_is_a_400_that_explains_the_rule(api_as, editor):
    body = assert_error_shape(api_as(editor).post("/api/v1/models/bad name!/versions", {}, format="json"), 400, "invalid")

    assert "letters, digits" in body["message"]
    assert not RegisteredModel.objects.exists()


def test_malformed_content_length_is_a_400(api_as, editor):
    response = api_as(editor).post("/api/v1/models/fraud/versions", "{}", content_type="application/json", CONTENT_LENGTH="2x")

    assert_error_shape(response, 400)


def test_empty_stage_and_unknown_model_have_different_codes(api_as, editor):
    register("fraud", editor)
    client = api_as(editor)

    assert_error_shape(client.get("/api/v1/models/fraud/stages/production"), 404, "stage_empty")
    assert_error_shape(client.get("/api/v1/models/nope/stages/production"), 404, "not_found")
    assert_error_shape(client.get("/api/v1/models/fraud/stages/candidate"), 400)


def test_role_errors_say_which_role(api_as, viewer, editor):
    register("fraud", editor)

    body = assert_error_shape(api_as(viewer).post("/api/v1/models/fraud/versions/1/promotions", {"to": "staging", "reason": "r"}, format="json"), 403, "role_required")

    assert "editor" in body["message"]


def test_deeply_nested_json_is_a_400(api_as, editor):
    body = '{"params": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}}"

    assert_error_shape(api_as(editor).post("/api/v1/models/fraud/versions", body, content_type="application/json"), 400)
    assert_error_shape(api_as(editor).post("/api/v1/models/fraud/versions", {"meta": body[0:-1] + "}"}, format="multipart"), 400)


def test_artifact_sent_as_text_is_a_400(api_as, editor):
    response = api_as(editor).post("/api/v1/models/fraud/versions", {"artifact": "not a file", "meta": "{}"}, format="multipart")

    assert_error_shape(response, 400)
    assert not ModelVersion.objects.exists()


def test_audit_version_filter_refuses_non_ascii_digits(api_as, editor):
    assert_error_shape(api_as(editor).get("/api/v1/audit?version=%C2%B2"), 400)


def test_unknown_version_is_404_even_with_a_bad_body(api_as, editor, approver):
    register("fraud", editor)

    assert_error_shape(api_as(editor).post("/api/v1/models/fraud/versions/9/promotions", {"to": "moon"}, format="json"), 404)
    assert_error_shape(api_as(approver).post("/api/v1/models/nope/rollback", {}, format="json"), 404)


def test_model_detail_caps_versions_and_counts_them(api_as, editor):
    for _ in range(3):
        register("fraud", editor)
    client = api_as(editor)

    capped = client.get("/api/v1/models/fraud?versions=2").json()

    assert ([v["version"] for v in capped["versions"]], capped["version_count"]) == ([3, 2], 3)
    assert_error_shape(client.get("/api/v1/models/fraud?versions=0"), 400)


def test_promotions_search(api_as, editor):
    register("fraud", editor)
    register("churn", editor)
    client = api_as(editor)
    client.post("/api/v1/models/fraud/versions/1/promotions", {"to": "staging", "reason": "r"}, format="json")
    client.post("/api/v1/models/churn/versions/1/promotions", {"to": "staging", "reason": "quarterly refresh"}, format="json")

    assert [p["model"] for p in client.get("/api/v1/promotions?search=quarterly").json()["results"]] == ["churn"]
    assert [p["model"] for p in client.get("/api/v1/promotions?search=fra").json()["results"]] == ["fraud"]

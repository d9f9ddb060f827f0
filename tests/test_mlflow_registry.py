"""The MLflow model registry API over HTTP: a stage move from a client is a promotion request (asking twice makes
one), four eyes for an approver's own version, a direct move only for another approver whose gates pass (audited
as a request and a direct approval), protected aliases, None and Archived refused; get-latest-versions by stage;
registered-models/search filters, order, pages and limits."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from registry.models import AuditEvent, Evaluation, ModelAlias, ModelVersion, PromotionRequest, ProtectedAlias, RegisteredModel
from registry.services.gates import gate_policy_set
from tests.factories import promote
from tests.test_mlflow_api import assert_mlflow_error, bearer, get, new_run, post

pytestmark = pytest.mark.django_db


def register_version(client, name: str = "fraud") -> dict:
    """A model (created if needed) and a new version of it from a fresh run, as mlflow.register_model does."""
    post(client, "registered-models/create", {"name": name})
    run_id = new_run(client)
    response = post(client, "model-versions/create", {"name": name, "source": f"runs:/{run_id}/model", "run_id": run_id})
    assert response.status_code == 200, response.content
    return response.json()["model_version"]


def transition(client, stage: str, version: str = "1", name: str = "fraud"):
    return post(client, "model-versions/transition-stage", {"name": name, "version": version, "stage": stage,
                                                            "archive_existing_versions": False})


def gates(approver, *, accuracy: float | None, enforced: bool = True, name: str = "fraud", version: int = 1) -> None:
    """A policy with one check (accuracy >= 0.9) and, if given, a finished evaluation that measured it."""
    gate_policy_set(model=RegisteredModel.objects.get(name=name), checks=[{"check": "accuracy", "op": ">=", "threshold": 0.9}],
                    enforced=enforced, actor=approver)
    if accuracy is not None:
        Evaluation.objects.create(model_version=ModelVersion.objects.get(model__name=name, version=version), kind="model", status="done",
                                  finished_at=timezone.now(), source="holdout.csv", metrics={"accuracy": accuracy})


# --- stage transitions ----------------------------------------------------------------------------------------------


def test_transition_to_production_by_an_editor_is_a_pending_request_and_the_version_is_unchanged(editor):
    client = bearer(editor)
    register_version(client)

    response = transition(client, "Production")

    assert response.status_code == 200, response.content
    body = response.json()
    request = PromotionRequest.objects.get()
    assert (request.status, request.to_stage, request.requested_by) == ("pending", "production", editor)
    assert body["model_version"]["current_stage"] == "None"
    assert body["model_version"]["status_message"].startswith(f"Waiting for approval: promotion request #{request.pk}")
    assert body["message"] == body["model_version"]["status_message"]
    assert (body["promotion_id"], body["promotion_status"]) == (request.pk, "pending")
    assert ModelVersion.objects.get().stage == "candidate"


def test_transition_asked_twice_makes_one_request(editor):
    client = bearer(editor)
    register_version(client)

    first = transition(client, "Production")
    second = transition(client, "production")

    assert second.status_code == 200, second.content
    assert first.json()["promotion_id"] == second.json()["promotion_id"]
    assert PromotionRequest.objects.count() == 1
    assert AuditEvent.objects.filter(action="promotion_requested").count() == 1


def test_transition_by_an_approver_of_their_own_version_is_a_request(approver):
    client = bearer(approver)
    register_version(client)
    gates(approver, accuracy=0.95)

    response = transition(client, "Production")

    assert response.json()["model_version"]["current_stage"] == "None"
    assert PromotionRequest.objects.get().status == "pending"
    assert ModelVersion.objects.get().stage == "candidate"


def test_transition_by_another_approver_whose_gates_pass_moves_directly_and_is_audited(editor, approver):
    register_version(bearer(editor))
    gates(approver, accuracy=0.95)

    response = transition(bearer(approver), "Production")

    assert response.status_code == 200, response.content
    assert response.json()["model_version"]["current_stage"] == "Production"
    assert ModelVersion.objects.get().stage == "production"
    request = PromotionRequest.objects.get()
    assert (request.status, request.requested_by, request.decided_by) == ("approved", approver, approver)
    events = {e.action: e for e in AuditEvent.objects.filter(subject="model:fraud", version=1)}
    assert events["promotion_requested"].actor == approver
    assert events["promotion_approved"].actor == approver and events["promotion_approved"].extra["direct"] is True


@pytest.mark.parametrize(
    ("accuracy", "enforced"),
    [(None, False), (0.5, False)],
    ids=["never-ran", "failed"],
)
def test_transition_by_another_approver_whose_gates_do_not_pass_is_a_request(editor, approver, accuracy, enforced):
    register_version(bearer(editor))
    gates(approver, accuracy=accuracy, enforced=enforced)

    response = transition(bearer(approver), "Production")

    assert response.status_code == 200, response.content
    assert response.json()["model_version"]["current_stage"] == "None"
    assert PromotionRequest.objects.get().status == "pending"
    assert not AuditEvent.objects.filter(action="promotion_approved").exists()


def test_transition_by_another_approver_without_a_gate_policy_is_a_request(editor, approver):
    register_version(bearer(editor))

    response = transition(bearer(approver), "Staging")

    assert response.json()["model_version"]["current_stage"] == "None"
    assert PromotionRequest.objects.get().status == "pending"


def test_transition_with_an_enforced_gate_failing_is_refused_like_any_request(editor, approver):
    register_version(bearer(editor))
    gates(approver, accuracy=0.5)

    response = transition(bearer(approver), "Production")

    body = assert_mlflow_error(response, 409, "INVALID_STATE")
    assert body["code"] == "gates_failed"
    assert not PromotionRequest.objects.exists() and ModelVersion.objects.get().stage == "candidate"


@pytest.mark.parametrize("stage", ["Archived", "None"])
def test_transition_to_archived_or_none_is_permission_denied(editor, approver, stage):
    client = bearer(editor)
    register_version(client)
    promote(ModelVersion.objects.get(), "production", editor, approver)

    response = transition(bearer(approver), stage)

    assert_mlflow_error(response, 403, "PERMISSION_DENIED")
    assert ModelVersion.objects.get().stage == "production"


# --- aliases --------------------------------------------------------------------------------------------------------


def test_alias_set_by_an_editor_is_audited_and_read_back(editor):
    client = bearer(editor)
    register_version(client)
    register_version(client)

    response = post(client, "registered-models/alias", {"name": "fraud", "alias": "challenger", "version": "2"})
    read = get(client, "registered-models/alias", name="fraud", alias="challenger")

    assert response.status_code == 200, response.content
    assert read.json()["model_version"]["version"] == "2" and read.json()["model_version"]["aliases"] == ["challenger"]
    event = AuditEvent.objects.get(action="alias_set")
    assert (event.actor, event.subject, event.version, event.extra["alias"]) == (editor, "model:fraud", 2, "challenger")


def test_alias_protected_by_an_admin_is_a_promotion_request(editor):
    ProtectedAlias.objects.create(alias="champion", stage="production")
    client = bearer(editor)
    register_version(client)

    response = post(client, "registered-models/alias", {"name": "fraud", "alias": "Champion", "version": "1"})

    assert response.status_code == 200, response.content
    request = PromotionRequest.objects.get()
    assert (response.json()["promotion_id"], request.to_stage, request.status) == (request.pk, "production", "pending")
    assert not ModelAlias.objects.exists() and not AuditEvent.objects.filter(action="alias_set").exists()
    assert ModelVersion.objects.get().stage == "candidate"


@pytest.mark.parametrize("alias", ["champion", "production"])
def test_alias_get_of_a_protected_alias_answers_the_production_holder(editor, approver, alias):
    ProtectedAlias.objects.create(alias="champion", stage="production")
    client = bearer(editor)
    register_version(client)
    register_version(client)
    promote(ModelVersion.objects.get(version=2), "production", editor, approver)

    response = get(client, "registered-models/alias", name="fraud", alias=alias)

    assert response.status_code == 200, response.content
    assert response.json()["model_version"]["version"] == "2"
    assert set(response.json()["model_version"]["aliases"]) == {"champion", "production"}


@pytest.mark.parametrize("alias", ["champion", "production", "Staging"])
def test_alias_delete_of_a_protected_alias_is_permission_denied(editor, approver, alias):
    ProtectedAlias.objects.create(alias="champion", stage="production")
    client = bearer(editor)
    register_version(client)
    promote(ModelVersion.objects.get(), "production", editor, approver)

    response = bearer(approver).delete("/api/2.0/mlflow/registered-models/alias", {"name": "fraud", "alias": alias}, format="json")

    assert_mlflow_error(response, 403, "PERMISSION_DENIED")
    assert ModelVersion.objects.get().stage == "production"


def test_alias_get_unknown_alias_is_resource_does_not_exist(editor):
    # MLflow 3.17 answers 400 INVALID_PARAMETER_VALUE here; the site answers 404 as for any unknown object
    # (docs/mlflow.md), which MLflow's client raises the same way.
    client = bearer(editor)
    register_version(client)

    response = get(client, "registered-models/alias", name="fraud", alias="nobody")

    assert_mlflow_error(response, 404, "RESOURCE_DOES_NOT_EXIST")


# --- get-latest-versions --------------------------------------------------------------------------------------------


@pytest.fixture
def three_stages(editor, approver):
    """fraud v1 in production, v2 in staging, v3 and v4 candidates (None)."""
    client = bearer(editor)
    for _ in range(4):
        register_version(client)
    promote(ModelVersion.objects.get(version=1), "production", editor, approver)
    promote(ModelVersion.objects.get(version=2), "staging", editor, approver)
    return client


@pytest.mark.parametrize(
    ("stages", "expected"),
    [
        (["Production"], {("Production", "1")}),
        (["None", "staging"], {("None", "4"), ("Staging", "2")}),
        ([], {("Production", "1"), ("Staging", "2"), ("None", "4")}),
        (["Archived"], set()),
    ],
)
def test_latest_versions_per_stage(three_stages, stages, expected):
    by_post = post(three_stages, "registered-models/get-latest-versions", {"name": "fraud", "stages": stages})
    by_get = get(three_stages, "registered-models/get-latest-versions", name="fraud", stages=stages)

    for response in (by_post, by_get):
        assert response.status_code == 200, response.content
        assert {(v["current_stage"], v["version"]) for v in response.json().get("model_versions", [])} == expected


def test_latest_versions_unknown_stage_is_invalid_parameter_value(three_stages):
    response = post(three_stages, "registered-models/get-latest-versions", {"name": "fraud", "stages": ["Bogus"]})

    body = assert_mlflow_error(response, 400, "INVALID_PARAMETER_VALUE")
    assert "Invalid Model Version stage: Bogus" in body["message"]


# --- registered-models/search ---------------------------------------------------------------------------------------


@pytest.fixture
def catalogue(editor):
    client = bearer(editor)
    tagged = {"fraud": {"team": "risk"}, "fraud-eu": {"team": "risk"}, "Fraud-us": {"team": "growth"}, "churn": {},
              "a.b": {}, "aXb": {}, "summarize": {"mlflow.prompt.is_prompt": "true"}}
    for name, tags in tagged.items():
        response = post(client, "registered-models/create", {"name": name, "tags": [{"key": k, "value": v} for k, v in tags.items()]})
        assert response.status_code == 200, response.content
    return client


def names(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [m["name"] for m in response.json().get("registered_models", [])]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("name = 'fraud'", ["fraud"]),
        ("name != 'fraud'", ["Fraud-us", "a.b", "aXb", "churn", "fraud-eu", "summarize"]),
        ("name LIKE 'fraud%'", ["fraud", "fraud-eu"]),
        ("name ILIKE 'fraud%'", ["Fraud-us", "fraud", "fraud-eu"]),
        ("name LIKE '%u_'", ["Fraud-us", "fraud"]),
        ("name LIKE 'a.b'", ["a.b"]),
        ("name LIKE 'a_b'", ["a.b", "aXb"]),
        ("name LIKE '(fraud|churn)'", []),
        ("name LIKE 'fraud.*'", []),
        ("tags.team = 'risk'", ["fraud", "fraud-eu"]),
        ("tags.`team` = 'risk' AND name ILIKE '%eu'", ["fraud-eu"]),
        ("tags.team != 'risk'", ["Fraud-us", "a.b", "aXb", "churn", "summarize"]),
        ("tag.`mlflow.prompt.is_prompt` != 'true'", ["Fraud-us", "a.b", "aXb", "churn", "fraud", "fraud-eu"]),
        ("tag.\"mlflow.prompt.is_prompt\" = 'true'", ["summarize"]),
    ],
)
def test_search_filter(catalogue, query, expected):
    response = get(catalogue, "registered-models/search", filter=query)

    assert names(response) == expected


@pytest.mark.parametrize("query", ["name = fraud", "name ~ 'x'", "metrics.accuracy > 0.9", "name = 'a' OR name = 'b'", "tags. = 'x'"])
def test_search_bad_filter_is_invalid_parameter_value(catalogue, query):
    response = get(catalogue, "registered-models/search", filter=query)

    assert_mlflow_error(response, 400, "INVALID_PARAMETER_VALUE")


def test_search_order_by_name_descending_and_by_creation_time(catalogue):
    by_name = get(catalogue, "registered-models/search", order_by="name DESC")
    by_time = post(catalogue, "registered-models/search", {"order_by": ["creation_timestamp ASC"]})

    assert names(by_name) == ["summarize", "fraud-eu", "fraud", "churn", "aXb", "a.b", "Fraud-us"]
    assert names(by_time) == ["fraud", "fraud-eu", "Fraud-us", "churn", "a.b", "aXb", "summarize"]


def test_search_pages_cover_every_model_once(catalogue):
    seen, token, pages = [], None, 0
    while pages < 10:
        page = post(catalogue, "registered-models/search", {"max_results": 3, **({"page_token": token} if token else {})}).json()
        seen += [m["name"] for m in page["registered_models"]]
        pages += 1
        token = page.get("next_page_token")
        if not token:
            break

    assert pages == 3
    assert seen == sorted(RegisteredModel.objects.values_list("name", flat=True))


@pytest.mark.parametrize(
    "args",
    [{"page_token": "bm90LWEtdG9rZW4="}, {"page_token": "%%%"}, {"max_results": 1001}, {"max_results": 0}, {"order_by": ["size DESC"]}],
)
def test_search_bad_page_token_or_size_or_order_is_invalid_parameter_value(catalogue, args):
    response = post(catalogue, "registered-models/search", args)

    assert_mlflow_error(response, 400, "INVALID_PARAMETER_VALUE")


def test_search_query_count_does_not_grow_with_the_page(editor, approver):
    client = bearer(editor)
    register_version(client, "m0")
    get(client, "registered-models/search")

    with CaptureQueriesContext(connection) as one:
        assert len(names(get(client, "registered-models/search"))) == 1
    for i in range(1, 6):
        register_version(client, f"m{i}")
        register_version(client, f"m{i}")
        post(client, "registered-models/alias", {"name": f"m{i}", "alias": "challenger", "version": "2"})
    promote(ModelVersion.objects.get(model__name="m3", version=1), "production", editor, approver)
    with CaptureQueriesContext(connection) as six:
        assert len(names(get(client, "registered-models/search"))) == 6

    assert len(six) == len(one)

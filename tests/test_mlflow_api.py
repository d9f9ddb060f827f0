"""The MLflow REST API (/api/2.0/mlflow/) over real HTTP with real tokens: bad input answers MLflow's error codes
with the HTTP status a real MLflow 3.17 server answers (captured from `mlflow server` 3.17.2 on SQLite; the quoted
messages are its words), who may call (token, user name and password, the login lockout, roles, revoked tokens),
and log-batch (limits, exact values, NaN and infinities, history pages, params set once, tags overwritten, all or
nothing, a query count that does not grow with the batch)."""

from __future__ import annotations

import base64
import math
import random
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from mlops_site.roles import user_token_refresh
from registry.models import ApiToken, Run, RunMetric, RunParam, RunTag
from registry.services.tokens import api_token_revoke
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

API = "/api/2.0/mlflow/"


def bearer(user) -> APIClient:
    """What the MLflow client sends with MLFLOW_TRACKING_TOKEN."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {user_token_refresh(user=user)}")
    return client


def basic(username: str, password: str) -> APIClient:
    """What the MLflow client sends with MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD."""
    client = APIClient(REMOTE_ADDR="10.0.0.7")
    client.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(f"{username}:{password}".encode()).decode())
    return client


def post(client, endpoint: str, body: dict):
    return client.post(API + endpoint, body, format="json")


def get(client, endpoint: str, **params):
    return client.get(API + endpoint, params)


def assert_mlflow_error(response, status: int, error_code: str) -> dict:
    """MLflow's error body (error_code, message: what its client reads) with the site's code and extra beside it."""
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error_code"] == error_code
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["code"], str) and body["code"]
    assert isinstance(body["extra"], dict)
    return body


def new_run(client, **fields) -> str:
    response = post(client, "runs/create", {"experiment_id": "0", **fields})
    assert response.status_code == 200, response.content
    return response.json()["run"]["info"]["run_id"]


def metrics(count: int, *, key: str = "loss", start: int = 0) -> list[dict]:
    return [{"key": key, "value": float(i), "timestamp": 1_700_000_000_000 + i, "step": start + i} for i in range(count)]


# --- errors, as MLflow 3.17 answers them ----------------------------------------------------------------------------


def test_run_get_unknown_run_is_resource_does_not_exist(editor):
    response = get(bearer(editor), "runs/get", run_id="abc")

    body = assert_mlflow_error(response, 404, "RESOURCE_DOES_NOT_EXIST")
    assert body["message"] == "Run with id=abc not found"


def test_experiment_get_unknown_id_and_name_are_resource_does_not_exist(editor):
    client = bearer(editor)

    by_id = get(client, "experiments/get", experiment_id="424242")
    by_name = get(client, "experiments/get-by-name", experiment_name="nobody-made-this")

    assert_mlflow_error(by_id, 404, "RESOURCE_DOES_NOT_EXIST")
    assert_mlflow_error(by_name, 404, "RESOURCE_DOES_NOT_EXIST")


def test_experiment_create_existing_name_is_resource_already_exists(editor):
    client = bearer(editor)
    assert post(client, "experiments/create", {"name": "fraud"}).status_code == 200

    again = post(client, "experiments/create", {"name": "fraud"})

    assert_mlflow_error(again, 400, "RESOURCE_ALREADY_EXISTS")


def test_registered_model_create_existing_name_is_resource_already_exists(editor):
    client = bearer(editor)
    assert post(client, "registered-models/create", {"name": "fraud"}).status_code == 200

    again = post(client, "registered-models/create", {"name": "fraud"})

    assert_mlflow_error(again, 400, "RESOURCE_ALREADY_EXISTS")


def test_registry_unknown_model_and_version_are_resource_does_not_exist(editor):
    client = bearer(editor)
    assert post(client, "registered-models/create", {"name": "fraud"}).status_code == 200

    model = get(client, "registered-models/get", name="nobody-made-this")
    version = get(client, "model-versions/get", name="fraud", version="7")

    assert_mlflow_error(model, 404, "RESOURCE_DOES_NOT_EXIST")
    assert_mlflow_error(version, 404, "RESOURCE_DOES_NOT_EXIST")


@pytest.mark.parametrize(
    ("what", "count", "limit"),
    [("metrics", 1001, 1000), ("params", 101, 100), ("tags", 101, 100)],
)
def test_log_batch_over_the_limit_is_invalid_parameter_value(editor, what, count, limit):
    client = bearer(editor)
    run_id = new_run(client)
    items = metrics(count) if what == "metrics" else [{"key": f"k{i}", "value": "v"} for i in range(count)]

    response = post(client, "runs/log-batch", {"run_id": run_id, what: items})

    body = assert_mlflow_error(response, 400, "INVALID_PARAMETER_VALUE")
    assert f"A batch logging request can contain at most {limit} {what}. Got {count} {what}." in body["message"]
    assert not RunMetric.objects.exists() and not RunParam.objects.exists()


def test_log_batch_changing_a_param_value_is_refused(editor):
    client = bearer(editor)
    run_id = new_run(client)
    assert post(client, "runs/log-batch", {"run_id": run_id, "params": [{"key": "lr", "value": "0.01"}]}).status_code == 200

    changed = post(client, "runs/log-batch", {"run_id": run_id, "params": [{"key": "lr", "value": "0.02"}]})

    body = assert_mlflow_error(changed, 400, "INVALID_PARAMETER_VALUE")
    assert body["message"].startswith("Changing param values is not allowed.")
    assert dict(RunParam.objects.values_list("key", "value")) == {"lr": "0.01"}


@pytest.mark.parametrize("key", ["../x", "/abs", "a//b", "a/../b", "./a", "a\\b"])
def test_log_batch_metric_name_that_resolves_elsewhere_as_a_path_is_refused(editor, key):
    client = bearer(editor)
    run_id = new_run(client)

    response = post(client, "runs/log-batch", {"run_id": run_id, "metrics": [{"key": key, "value": 1.0, "timestamp": 1, "step": 0}]})

    assert_mlflow_error(response, 400, "INVALID_PARAMETER_VALUE")
    assert not RunMetric.objects.exists()


# (method, endpoint, arguments, status, error_code, the start of MLflow 3.17's message); "{run}" is a fresh run's id.
MLFLOW_ANSWERS = [
    ("GET", "runs/get", {}, 400, "INVALID_PARAMETER_VALUE", "Missing value for required parameter 'run_id'."),
    ("GET", "experiments/get", {"experiment_id": "abc"}, 400, "INVALID_PARAMETER_VALUE", ""),
    ("POST", "runs/log-batch", {"run_id": "nope", "metrics": []}, 404, "RESOURCE_DOES_NOT_EXIST", "Run with id=nope not found"),
    ("POST", "runs/log-batch", {"run_id": "{run}", "metrics": [{"key": "a", "value": 1}]}, 400, "INVALID_PARAMETER_VALUE",
     "Missing value for required parameter 'metrics[0].timestamp'."),
    ("POST", "runs/log-batch", {"run_id": "{run}", "tags": [{"key": "k" * 251, "value": "x"}]}, 400, "INVALID_PARAMETER_VALUE", ""),
    ("POST", "runs/delete-tag", {"run_id": "{run}", "key": "nope"}, 404, "RESOURCE_DOES_NOT_EXIST", "No tag with name: nope in run with id "),
    ("GET", "model-versions/get", {"name": "fraud", "version": "x"}, 400, "INVALID_PARAMETER_VALUE",
     "Parameter 'version' must be an integer, got 'x'."),
    ("POST", "experiments/create", {"name": ""}, 400, "INVALID_PARAMETER_VALUE", ""),
    ("GET", "registered-models/search", {"max_results": "1001"}, 400, "INVALID_PARAMETER_VALUE", ""),
    ("GET", "registered-models/search", {"page_token": "garbage"}, 400, "INVALID_PARAMETER_VALUE", ""),
    ("GET", "registered-models/search", {"filter": "name ~ 'x'"}, 400, "INVALID_PARAMETER_VALUE", ""),
    ("POST", "registered-models/get-latest-versions", {"name": "fraud", "stages": ["Bogus"]}, 400, "INVALID_PARAMETER_VALUE",
     "Invalid Model Version stage: Bogus. Value must be one of None, Staging, Production, Archived."),
]


@pytest.mark.parametrize(("method", "endpoint", "args", "status", "error_code", "message"), MLFLOW_ANSWERS,
                         ids=[f"{m} {e} {i}" for i, (m, e, *_) in enumerate(MLFLOW_ANSWERS)])
def test_bad_input_answers_as_mlflow_does(editor, method, endpoint, args, status, error_code, message):
    client = bearer(editor)
    run_id = new_run(client)
    post(client, "registered-models/create", {"name": "fraud"})
    args = {k: (v.replace("{run}", run_id) if isinstance(v, str) else v) for k, v in args.items()}

    response = get(client, endpoint, **args) if method == "GET" else post(client, endpoint, args)

    body = assert_mlflow_error(response, status, error_code)
    assert body["message"].startswith(message)


@pytest.mark.parametrize(
    ("endpoint", "args"),
    [("runs/outputs", {"run_id": "{run}", "models": 5}), ("runs/outputs", {"run_id": "{run}", "models": True}),
     ("registered-models/get-latest-versions", {"name": "fraud", "stages": 5}),
     ("registered-models/get-latest-versions", {"name": "fraud", "stages": {"a": 1}})],
)
def test_a_list_argument_of_another_json_type_is_invalid_parameter_value(editor, endpoint, args):
    client = bearer(editor)
    run_id = new_run(client)
    post(client, "registered-models/create", {"name": "fraud"})
    args = {k: (v.replace("{run}", run_id) if isinstance(v, str) else v) for k, v in args.items()}

    response = post(client, endpoint, args)

    assert_mlflow_error(response, 400, "INVALID_PARAMETER_VALUE")


@pytest.mark.parametrize(
    ("method", "endpoint", "args"),
    [
        ("GET", "experiments/get-by-name", {"experiment_name": "a\x00"}),
        ("GET", "metrics/get-history", {"run_id": "{run}", "metric_key": "\x00"}),
        ("GET", "registered-models/get", {"name": "fraud\x00"}),
        ("GET", "model-versions/get", {"name": "\x00", "version": "1"}),
        ("GET", "registered-models/alias", {"name": "\x00", "alias": "x"}),
        ("POST", "registered-models/get-latest-versions", {"name": "fraud\x00"}),
        ("POST", "model-versions/create", {"name": "\x00", "source": "runs:/{run}/m"}),
        ("POST", "model-versions/transition-stage", {"name": "\x00", "version": "1", "stage": "Staging"}),
        ("POST", "runs/outputs", {"run_id": "{run}", "models": [{"model_id": "m-\x00"}]}),
        ("POST", "registered-models/search", {"filter": "name = 'a\x00'"}),
        ("POST", "runs/log-batch", {"run_id": "{run}", "tags": [{"key": "team", "value": "a\x00"}]}),
    ],
)
def test_a_nul_anywhere_in_the_arguments_is_invalid_parameter_value(editor, method, endpoint, args):
    # PostgreSQL refuses a NUL in any text: found by sending one in every argument of every endpoint.
    client = bearer(editor)
    run_id = new_run(client)
    args = {k: (v.replace("{run}", run_id) if isinstance(v, str) else v) for k, v in args.items()}

    response = get(client, endpoint, **args) if method == "GET" else post(client, endpoint, args)

    body = assert_mlflow_error(response, 400, "INVALID_PARAMETER_VALUE")
    assert "NUL" in body["message"]
    assert not RunTag.objects.filter(key="team").exists()


def test_transition_to_an_unknown_stage_is_invalid_parameter_value(editor):
    client = bearer(editor)
    run_id = new_run(client)
    post(client, "registered-models/create", {"name": "fraud"})
    assert post(client, "model-versions/create", {"name": "fraud", "source": f"runs:/{run_id}/model", "run_id": run_id}).status_code == 200

    response = post(client, "model-versions/transition-stage", {"name": "fraud", "version": "1", "stage": "Bogus"})

    body = assert_mlflow_error(response, 400, "INVALID_PARAMETER_VALUE")
    assert body["message"] == "Invalid Model Version stage: Bogus. Value must be one of None, Staging, Production, Archived."


def test_artifact_path_with_dot_dot_is_invalid_parameter_value(editor):
    client = bearer(editor)
    run_id = new_run(client)

    response = client.get(f"/api/2.0/mlflow-artifacts/artifacts/0/{run_id}/artifacts/../x")

    body = assert_mlflow_error(response, 400, "INVALID_PARAMETER_VALUE")
    assert body["message"].startswith("Invalid path")


@pytest.mark.parametrize("method", ["get", "post"])
def test_unknown_endpoint_is_endpoint_not_found(editor, method):
    response = getattr(bearer(editor), method)(API + "runs/teleport", {}, format="json")

    assert_mlflow_error(response, 404, "ENDPOINT_NOT_FOUND")


def test_experiment_search_by_tag_equal_and_not_equal(editor):
    client = bearer(editor)
    for name, tags in {"fraud": {"team": "risk"}, "churn": {"team": "growth"}, "scratch": {}}.items():
        assert post(client, "experiments/create", {"name": name, "tags": [{"key": k, "value": v} for k, v in tags.items()]}).status_code == 200

    equal = post(client, "experiments/search", {"filter": "tags.team = 'risk'"})
    not_equal = post(client, "experiments/search", {"filter": "tags.team != 'risk'", "order_by": ["name"]})

    assert [e["name"] for e in equal.json()["experiments"]] == ["fraud"]
    assert [e["name"] for e in not_equal.json()["experiments"]] == ["Default", "churn", "scratch"]


# --- who may call ---------------------------------------------------------------------------------------------------


def test_no_credentials_is_401_with_both_challenges(db):
    response = get(APIClient(), "experiments/get-by-name", experiment_name="Default")

    assert_mlflow_error(response, 401, "UNAUTHENTICATED")
    assert "Bearer" in response["WWW-Authenticate"] and "Basic" in response["WWW-Authenticate"]


def test_a_token_nobody_issued_is_401(editor):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer mlops_" + "x" * 40)

    response = get(client, "experiments/get-by-name", experiment_name="Default")

    assert_mlflow_error(response, 401, "UNAUTHENTICATED")
    assert "WWW-Authenticate" in response


def test_basic_auth_with_the_users_password_reads(viewer):
    response = get(basic(viewer.username, PASSWORD), "experiments/get-by-name", experiment_name="Default")

    assert response.status_code == 200, response.content
    assert response.json()["experiment"]["name"] == "Default"


def test_basic_auth_wrong_password_is_401_and_the_fifth_failure_locks_even_the_right_password(viewer):
    wrong = [get(basic(viewer.username, f"guess-{i}"), "experiments/get-by-name", experiment_name="Default") for i in range(5)]

    right = get(basic(viewer.username, PASSWORD), "experiments/get-by-name", experiment_name="Default")

    assert [r.status_code for r in wrong[:4]] == [401, 401, 401, 401]
    assert_mlflow_error(right, 429, "REQUEST_LIMIT_EXCEEDED")


def test_basic_auth_lockout_is_per_user(viewer, editor):
    for i in range(5):
        get(basic(viewer.username, f"guess-{i}"), "experiments/get-by-name", experiment_name="Default")

    other = get(basic(editor.username, PASSWORD), "experiments/get-by-name", experiment_name="Default")

    assert other.status_code == 200, other.content


def test_revoked_token_is_401(editor):
    client = bearer(editor)
    assert get(client, "experiments/get-by-name", experiment_name="Default").status_code == 200
    api_token_revoke(actor=editor, token_id=ApiToken.objects.get(user=editor).pk)

    response = get(client, "experiments/get-by-name", experiment_name="Default")

    assert_mlflow_error(response, 401, "UNAUTHENTICATED")


def test_viewer_reads_but_every_write_is_permission_denied(viewer, editor):
    writer = bearer(editor)
    run_id = new_run(writer)
    post(writer, "registered-models/create", {"name": "fraud"})
    reader = bearer(viewer)

    read = get(reader, "runs/get", run_id=run_id)
    writes = {
        "runs/create": post(reader, "runs/create", {"experiment_id": "0"}),
        "runs/log-batch": post(reader, "runs/log-batch", {"run_id": run_id, "metrics": metrics(1)}),
        "registered-models/create": post(reader, "registered-models/create", {"name": "other"}),
        "model-versions/create": post(reader, "model-versions/create", {"name": "fraud", "source": f"runs:/{run_id}/m", "run_id": run_id}),
        "artifact PUT": reader.put(f"/api/2.0/mlflow-artifacts/artifacts/0/{run_id}/artifacts/a.txt", b"x",
                                   content_type="application/octet-stream"),
    }

    assert read.status_code == 200
    for endpoint, response in writes.items():
        assert response.status_code == 403, endpoint
        assert_mlflow_error(response, 403, "PERMISSION_DENIED")
    assert Run.objects.count() == 1 and not RunMetric.objects.exists()


# --- log-batch ------------------------------------------------------------------------------------------------------


def test_log_batch_stores_a_thousand_metric_values_exactly(editor):
    client = bearer(editor)
    run_id = new_run(client)
    rng = random.Random(17)
    sent = [{"key": f"m{i % 7}", "value": rng.uniform(-1e6, 1e6) * 10 ** rng.randint(-300, 290), "timestamp": 1_700_000_000_000 + i,
             "step": i} for i in range(1000)]

    response = post(client, "runs/log-batch", {"run_id": run_id, "metrics": sent})

    assert response.status_code == 200, response.content
    stored = {(m.key, m.step): m.value for m in RunMetric.objects.filter(run__run_id=run_id)}
    assert stored == {(m["key"], m["step"]): m["value"] for m in sent}


def test_log_batch_nan_and_infinities_come_back_as_mlflow_writes_them(editor):
    client = bearer(editor)
    run_id = new_run(client)
    values = ["NaN", "Infinity", "-Infinity", 1.5]
    sent = [{"key": "loss", "value": v, "timestamp": 1000 + i, "step": i} for i, v in enumerate(values)]

    assert post(client, "runs/log-batch", {"run_id": run_id, "metrics": sent}).status_code == 200
    history = get(client, "metrics/get-history", run_id=run_id, metric_key="loss").json()["metrics"]

    # MLflow keeps an infinity as the largest double of its sign (SqlAlchemyStore), and answers it so.
    assert [m["value"] for m in history] == ["NaN", 1.7976931348623157e308, -1.7976931348623157e308, 1.5]


def test_metric_history_is_in_step_order_in_pages(editor):
    client = bearer(editor)
    run_id = new_run(client)
    steps = [5, 0, 3, 1, 4, 2]
    sent = [{"key": "loss", "value": float(s) / 10, "timestamp": 2000 - s, "step": s} for s in steps]
    assert post(client, "runs/log-batch", {"run_id": run_id, "metrics": sent}).status_code == 200

    pages, token = [], None
    for _ in range(10):
        args = {"run_id": run_id, "metric_key": "loss", "max_results": "4", **({"page_token": token} if token else {})}
        page = get(client, "metrics/get-history", **args).json()
        pages.append([m["step"] for m in page["metrics"]])
        token = page.get("next_page_token")
        if not token:
            break

    assert pages == [[0, 1, 2, 3], [4, 5]]


def test_metric_history_bad_page_token_and_page_size_are_invalid_parameter_value(editor):
    client = bearer(editor)
    run_id = new_run(client)

    bad_token = get(client, "metrics/get-history", run_id=run_id, metric_key="loss", page_token="not-a-token")
    too_many = get(client, "metrics/get-history", run_id=run_id, metric_key="loss", max_results="25001")

    assert_mlflow_error(bad_token, 400, "INVALID_PARAMETER_VALUE")
    assert_mlflow_error(too_many, 400, "INVALID_PARAMETER_VALUE")


def test_log_batch_param_logged_again_with_the_same_value_is_fine(editor):
    client = bearer(editor)
    run_id = new_run(client)
    batch = {"run_id": run_id, "params": [{"key": "lr", "value": "0.01"}]}
    assert post(client, "runs/log-batch", batch).status_code == 200

    again = post(client, "runs/log-batch", batch)

    assert again.status_code == 200, again.content
    assert list(RunParam.objects.values_list("key", "value")) == [("lr", "0.01")]


def test_log_batch_tags_are_overwritten_and_run_name_tag_renames_the_run(editor):
    client = bearer(editor)
    run_id = new_run(client, run_name="first")
    assert post(client, "runs/log-batch", {"run_id": run_id, "tags": [{"key": "team", "value": "risk"}]}).status_code == 200

    response = post(client, "runs/log-batch", {"run_id": run_id, "tags": [{"key": "team", "value": "fraud"},
                                                                          {"key": "mlflow.runName", "value": "second"}]})

    assert response.status_code == 200, response.content
    run = get(client, "runs/get", run_id=run_id).json()["run"]
    assert run["info"]["run_name"] == "second"
    assert {t["key"]: t["value"] for t in run["data"]["tags"]} == {"team": "fraud", "mlflow.runName": "second"}
    assert RunTag.objects.filter(run__run_id=run_id, key="team").count() == 1


def test_log_batch_is_all_or_nothing(editor):
    client = bearer(editor)
    run_id = new_run(client)
    assert post(client, "runs/log-batch", {"run_id": run_id, "params": [{"key": "lr", "value": "0.01"}]}).status_code == 200
    good = metrics(50)

    bad_metric_last = post(client, "runs/log-batch", {"run_id": run_id, "metrics": [*good, {"key": "bad/../key", "value": 1, "timestamp": 1}],
                                                      "params": [{"key": "epochs", "value": "10"}], "tags": [{"key": "team", "value": "a"}]})
    param_changed_last = post(client, "runs/log-batch", {"run_id": run_id, "metrics": good, "tags": [{"key": "team", "value": "b"}],
                                                         "params": [{"key": "epochs", "value": "10"}, {"key": "lr", "value": "0.5"}]})

    assert_mlflow_error(bad_metric_last, 400, "INVALID_PARAMETER_VALUE")
    assert_mlflow_error(param_changed_last, 400, "INVALID_PARAMETER_VALUE")
    assert not RunMetric.objects.exists()
    assert list(RunParam.objects.values_list("key", "value")) == [("lr", "0.01")]
    assert not RunTag.objects.filter(key="team").exists()


def test_log_batch_query_count_does_not_grow_with_the_batch(editor):
    client = bearer(editor)
    run_id = new_run(client)
    params = [{"key": f"p{i}", "value": "v"} for i in range(5)]
    tags = [{"key": f"t{i}", "value": "v"} for i in range(5)]

    with CaptureQueriesContext(connection) as small:
        assert post(client, "runs/log-batch", {"run_id": run_id, "metrics": metrics(10, key="a"), "params": params[:1],
                                               "tags": tags[:1]}).status_code == 200
    with CaptureQueriesContext(connection) as large:
        assert post(client, "runs/log-batch", {"run_id": run_id, "metrics": metrics(980, key="b"), "params": params[1:],
                                               "tags": tags[1:]}).status_code == 200

    assert RunMetric.objects.filter(run__run_id=run_id).count() == 990
    small_inserts, large_inserts = metric_inserts(small), metric_inserts(large)
    assert len(large) - large_inserts == len(small) - small_inserts, [q["sql"][:120] for q in large.captured_queries]
    # The metric rows are one INSERT, split only where the database caps a statement's parameters (SQLite's 999).
    fields = [f for f in RunMetric._meta.concrete_fields if not f.primary_key]
    per_insert = connection.ops.bulk_batch_size(fields, [None] * 980)
    assert (small_inserts, large_inserts) == (1, math.ceil(980 / per_insert))


def metric_inserts(captured) -> int:
    return sum(bool(re.match(r'INSERT (OR IGNORE )?INTO "registry_runmetric"', q["sql"])) for q in captured.captured_queries)

"""Ids that cannot be ours (a slash, a space, too long) are simply not found, and a NUL anywhere in the arguments is
a 400: never a 500 (PostgreSQL refuses a NUL in a string parameter outright). The latest metric values are ranked in
the database as MLflow ranks them."""

import pytest

from registry.services import tracking

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("bad", "status", "error_code"), [
    ("\x00", 400, "INVALID_PARAMETER_VALUE"), ("abc\x00def", 400, "INVALID_PARAMETER_VALUE"),
    ("x" * 65, 404, "RESOURCE_DOES_NOT_EXIST"), ("a b", 404, "RESOURCE_DOES_NOT_EXIST"), ("../etc", 404, "RESOURCE_DOES_NOT_EXIST"),
])
def test_mlflow_ids_that_cannot_exist_are_refused_or_not_found(api_as, viewer, bad, status, error_code):
    client = api_as(viewer)

    run = client.get("/api/2.0/mlflow/runs/get", {"run_id": bad})
    history = client.get("/api/2.0/mlflow/metrics/get-history", {"run_id": bad, "metric_key": "loss"})
    model = client.get(f"/api/2.0/mlflow/logged-models/{bad.replace(chr(0), '%00').replace('/', '%2F')}")

    assert (run.status_code, run.json()["error_code"]) == (status, error_code)
    assert (history.status_code, history.json()["error_code"]) == (status, error_code)
    assert model.status_code in (400, 404)  # never a 500 (a decoded slash reaches no endpoint at all: 404 too)


def test_latest_metric_is_the_largest_step_then_the_latest_time_then_the_largest_value(editor):
    run = tracking.run_create(group_id="0", actor=editor)
    tracking.run_log_batch(run_id=run.run_id, actor=editor, metrics=[
        {"key": "a", "value": 5.0, "timestamp": 9, "step": 1},
        {"key": "a", "value": 1.0, "timestamp": 1, "step": 2},  # largest step wins over a later time
        {"key": "b", "value": 3.0, "timestamp": 2, "step": 0},
        {"key": "b", "value": 2.0, "timestamp": 3, "step": 0},  # same step: the latest time
        {"key": "c", "value": 1.0, "timestamp": 4, "step": 0},
        {"key": "c", "value": 7.0, "timestamp": 4, "step": 0},  # same step and time: the largest value
    ])

    latest = tracking.run_latest_metrics([run])[run.pk]

    assert {k: m.value for k, m in latest.items()} == {"a": 1.0, "b": 2.0, "c": 7.0}

"""Ids that cannot be ours (a NUL, a slash, too long) are simply not found: never a 500 (PostgreSQL refuses a NUL in
a string parameter outright), and the latest metric values are ranked in the database as MLflow ranks them."""

import pytest

from registry.services import tracking

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("bad", ["\x00", "abc\x00def", "x" * 65, "a b", "../etc"])
def test_mlflow_ids_that_cannot_exist_are_not_found(api_as, viewer, bad):
    client = api_as(viewer)

    run = client.get("/api/2.0/mlflow/runs/get", {"run_id": bad})
    history = client.get("/api/2.0/mlflow/metrics/get-history", {"run_id": bad, "metric_key": "loss"})

    assert (run.status_code, run.json()["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")
    assert (history.status_code, history.json()["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")


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

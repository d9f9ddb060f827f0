"""A viewer's write to the MLflow API is 403 PERMISSION_DENIED before its arguments are read (not a 400 for what it
left out), while the searches MLflow sends as POST stay open to viewers."""

import pytest

pytestmark = pytest.mark.django_db

WRITES = [
    ("post", "experiments/create"), ("post", "runs/create"), ("post", "runs/update"), ("post", "runs/log-batch"), ("post", "runs/outputs"),
    ("post", "runs/log-metric"), ("post", "runs/log-parameter"), ("post", "runs/set-tag"), ("post", "runs/delete-tag"), ("post", "runs/delete"),
    ("post", "runs/restore"), ("post", "logged-models"), ("patch", "logged-models/m-0123"), ("patch", "logged-models/m-0123/tags"),
    ("post", "registered-models/create"), ("post", "registered-models/alias"), ("delete", "registered-models/alias"),
    ("post", "model-versions/create"), ("post", "model-versions/transition-stage"),
]
READS = ["runs/search", "experiments/search", "registered-models/search", "registered-models/get-latest-versions"]


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_mlflow_write_by_a_viewer_is_403_whatever_it_sends(api_as, viewer, method, path):
    answer = getattr(api_as(viewer), method)(f"/api/2.0/mlflow/{path}", {}, format="json")

    assert answer.status_code == 403
    assert answer.json()["error_code"] == "PERMISSION_DENIED"


def test_mlflow_artifact_upload_by_a_viewer_is_403(api_as, viewer):
    answer = api_as(viewer).put("/api/2.0/mlflow-artifacts/artifacts/0/abc/artifacts/x.txt", b"data", content_type="application/octet-stream")

    assert (answer.status_code, answer.json()["error_code"]) == (403, "PERMISSION_DENIED")


@pytest.mark.parametrize("path", READS)
def test_mlflow_searches_sent_as_post_are_open_to_viewers(api_as, viewer, path):
    answer = api_as(viewer).post(f"/api/2.0/mlflow/{path}", {"experiment_ids": ["0"], "name": "nope"}, format="json")

    assert answer.status_code != 403, answer.content

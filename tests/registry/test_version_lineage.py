"""A version an MLflow client registered from a run names that run on the site's own API, with the run's params,
latest metrics and git commit; a version registered through /api/v1 has none."""

import hashlib
import io

import pytest

from registry.services import mlflow_registry, run_artifacts, tracking
from tests.factories import register

pytestmark = pytest.mark.django_db


def test_version_api_names_the_run_that_produced_it(editor, viewer, api_as):
    run = tracking.run_create(group_id="0", actor=editor, run_name="train", tags=[{"key": "mlflow.source.git.commit", "value": "abc123"}])
    tracking.run_log_batch(run_id=run.run_id, actor=editor, params=[{"key": "lr", "value": "0.1"}],
                           metrics=[{"key": "auc", "value": 0.8, "timestamp": 1, "step": 0}, {"key": "auc", "value": 0.9, "timestamp": 2, "step": 1}])
    mlflow_registry.model_create(name="fraud", actor=editor)
    mlflow_registry.version_create(name="fraud", actor=editor, source="s3://bucket/model", run_id=run.run_id)
    register("fraud", editor)

    first = api_as(viewer).get("/api/v1/models/fraud/versions/1").json()
    second = api_as(viewer).get("/api/v1/models/fraud/versions/2").json()

    assert (first["run_id"], first["params"], first["metrics"], first["code_commit"]) == (run.run_id, {"lr": "0.1"}, {"auc": 0.9}, "abc123")
    assert first["artifact_uri"] == "s3://bucket/model"
    assert second["run_id"] is None


def test_version_from_a_logged_model_is_pinned_by_the_digest_of_its_files(editor, viewer, api_as):
    run = tracking.run_create(group_id="0", actor=editor)
    logged = tracking.logged_model_create(group_id="0", actor=editor, name="model", source_run_id=run.run_id)
    files = {"MLmodel": b"flavors: {}\n", "data/model.bin": bytes(range(256)) * 9000}
    for path, content in files.items():
        run_artifacts.artifact_put(path=f"{logged.artifact_folder}/{path}", body=io.BytesIO(content), actor=editor)
    tracking.logged_model_finalize(model_id=logged.model_id, actor=editor, status="LOGGED_MODEL_READY")
    mlflow_registry.model_create(name="fraud", actor=editor)

    version = mlflow_registry.version_create(name="fraud", actor=editor, source=f"models:/{logged.model_id}")

    manifest = "".join(f"{path}\t{len(content)}\t{hashlib.sha256(content).hexdigest()}\n" for path, content in sorted(files.items()))
    shown = api_as(viewer).get("/api/v1/models/fraud/versions/1").json()
    assert (shown["artifact_sha256"], shown["artifact_size"]) == (hashlib.sha256(manifest.encode()).hexdigest(), sum(map(len, files.values())))
    assert version.logged_model == logged and version.run == run

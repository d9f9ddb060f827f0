"""The official MLflow client (mlflow-skinny 3.17, in a venv of its own: .venv-mlflow, made by `make test`) runs the
training snippet of docs/mlflow.md unchanged against the live server: a run with params and metrics,
`mlflow.sklearn.log_model(..., registered_model_name="fraud-detector")`, then `transition_model_version_stage(...,
"Production")`. The version waits for approval; after a second person approves it on the site,
`load_model("models:/fraud-detector/Production")` loads a model that predicts what the trained one predicts."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from django.test import Client

from mlops_site.roles import user_token_refresh
from registry.models import AuditEvent, ModelVersion, PromotionRequest, PromotionStatus, Run, Stage
from registry.services import promotion_approve
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
MLFLOW_PYTHON = ROOT / ".venv-mlflow" / "bin" / "python"

TRAIN = '''
import json
import mlflow
import numpy as np
from sklearn.linear_model import LogisticRegression

rng = np.random.RandomState(0)
X = rng.randn(200, 4)
y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
model = LogisticRegression().fit(X, y)

# Log model during training (the snippet of docs/mlflow.md, unchanged)
with mlflow.start_run():
    mlflow.log_params({"lr": 0.01, "epochs": 10})
    mlflow.log_metrics({"accuracy": 0.94, "f1": 0.91})
    mlflow.sklearn.log_model(model, "model", registered_model_name="fraud-detector")

run_id = mlflow.last_active_run().info.run_id
client = mlflow.tracking.MlflowClient()
version = client.get_latest_versions("fraud-detector", stages=["None"])[0].version

# Promote model version
client = mlflow.tracking.MlflowClient()
answer = client.transition_model_version_stage(
    name="fraud-detector",
    version=version,
    stage="Production"
)

client.set_registered_model_alias("fraud-detector", "challenger", version)
by_alias = client.get_model_version_by_alias("fraud-detector", "challenger")
loaded = mlflow.pyfunc.load_model(f"models:/fraud-detector/{version}")
probe = np.random.RandomState(1).randn(50, 4)
print(json.dumps({
    "run_id": run_id, "version": version, "stage_after_transition": answer.current_stage,
    "status_message": answer.status_message, "alias_version": by_alias.version,
    "expected": model.predict(probe).tolist(), "loaded": [int(v) for v in loaded.predict(probe)],
    "history": [m.value for m in client.get_metric_history(run_id, "accuracy")],
}))
'''

LOAD_PRODUCTION = '''
import json
import mlflow
import numpy as np

model = mlflow.pyfunc.load_model("models:/fraud-detector/Production")
probe = np.random.RandomState(1).randn(50, 4)
print(json.dumps({"predicted": [int(v) for v in model.predict(probe)],
                  "production": mlflow.tracking.MlflowClient().get_latest_versions("fraud-detector", stages=["Production"])[0].version}))
'''


def run_client(script: str, tmp_path: Path, env: dict) -> dict:
    """Run `script` with the MLflow venv's Python, against the live server; its last line of output is JSON."""
    path = tmp_path / "script.py"
    path.write_text(script)
    done = subprocess.run(
        [str(MLFLOW_PYTHON), str(path)], cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
             "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false", **env},
    )
    assert done.returncode == 0, f"the MLflow client failed:\n{done.stderr[-4000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def mlflow_python():
    if not MLFLOW_PYTHON.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{MLFLOW_PYTHON} is missing: `make test` builds it from requirements-mlflow.txt")
        pytest.skip(f"{MLFLOW_PYTHON} is missing: `make test` builds it from requirements-mlflow.txt")
    return MLFLOW_PYTHON


def test_mlflow_client_training_snippet_waits_for_approval_then_loads_from_production(
    mlflow_python, live_server, editor, approver, viewer, tmp_path
):
    trainer = {"MLFLOW_TRACKING_URI": live_server.url, "MLFLOW_TRACKING_TOKEN": user_token_refresh(user=editor)}

    trained = run_client(TRAIN, tmp_path, trainer)

    assert trained["loaded"] == trained["expected"]  # models:/fraud-detector/1 loads what was trained
    assert trained["stage_after_transition"] == "None"  # unchanged: the request waits for approval
    assert "Waiting for approval" in trained["status_message"]
    assert trained["alias_version"] == trained["version"] == "1"
    assert trained["history"] == [0.94]
    run = Run.objects.get(run_id=trained["run_id"])
    assert dict(run.params.values_list("key", "value")) == {"lr": "0.01", "epochs": "10"}
    assert run.status == "FINISHED" and run.user == editor
    version = ModelVersion.objects.get(model__name="fraud-detector", version=1)
    assert version.run == run and version.stage == Stage.CANDIDATE and version.created_by == editor
    assert version.params == {"lr": "0.01", "epochs": "10"} and version.metrics == {"accuracy": 0.94, "f1": 0.91}
    assert version.logged_model.run == run and version.artifact_uri == f"models:/{version.logged_model.model_id}"
    pending = PromotionRequest.objects.get(version=version)
    assert (pending.status, pending.to_stage, pending.requested_by) == (PromotionStatus.PENDING, "production", editor)
    assert AuditEvent.objects.filter(action="promotion_requested", subject="model:fraud-detector", version=1).count() == 1

    pages = Client()
    pages.force_login(approver)
    waiting = pages.get("/promotions/")
    assert waiting.status_code == 200 and f"/promotions/{pending.pk}/approve/" in waiting.content.decode()
    assert run.run_id in pages.get("/models/fraud-detector/versions/1/").content.decode()
    run_page = pages.get(f"/runs/r/{run.run_id}/").content.decode()
    assert "/models/fraud-detector/versions/1/" in run_page and "epochs" in run_page and version.logged_model.model_id in run_page
    assert run.name in pages.get("/runs/0/").content.decode()

    promotion_approve(promotion_id=pending.pk, actor=approver, comment="Reviewed the run.")
    reader = {"MLFLOW_TRACKING_URI": live_server.url, "MLFLOW_TRACKING_USERNAME": viewer.username, "MLFLOW_TRACKING_PASSWORD": PASSWORD}

    production = run_client(LOAD_PRODUCTION, tmp_path, reader)

    assert production == {"predicted": trained["expected"], "production": "1"}


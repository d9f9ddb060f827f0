"""MLflow's JSON for runs, run groups (experiments), logged models, registered models and versions.

Numbers that MLflow's protobuf types as int64 (timestamps, steps) are written as JSON numbers, ids and version
numbers as strings, as an MLflow server writes them."""

from __future__ import annotations

from datetime import datetime

from ..models import LoggedModel, ModelVersion, RegisteredModel, Run, RunGroup, RunMetric
from ..services.mlflow_registry import STAGE_NAMES


def ms(when: datetime | None) -> int | None:
    return int(when.timestamp() * 1000) if when is not None else None


def pairs(mapping: dict) -> list[dict]:
    return [{"key": k, "value": v} for k, v in mapping.items()]


def metric(row: RunMetric) -> dict:
    """NaN as protobuf's JSON writes it; an infinity is stored, and answered, as the largest float of its sign (as
    MLflow's own server answers it)."""
    return {"key": row.key, "value": "NaN" if row.is_nan else row.value, "timestamp": row.timestamp, "step": row.step}


def experiment(group: RunGroup) -> dict:
    return {
        "experiment_id": str(group.pk), "name": group.name, "artifact_location": group.artifact_location,
        "lifecycle_stage": group.lifecycle_stage, "last_update_time": ms(group.updated_at), "creation_time": ms(group.created_at),
        "tags": pairs(group.tags),
    }


def run_info(run: Run) -> dict:
    info = {
        "run_id": run.run_id, "run_uuid": run.run_id, "experiment_id": str(run.group_id), "run_name": run.name,
        "user_id": run.user_name, "status": run.status, "start_time": run.start_time, "artifact_uri": run.artifact_uri,
        "lifecycle_stage": run.lifecycle_stage,
    }
    if run.end_time is not None:
        info["end_time"] = run.end_time
    return info


def run(run: Run, *, latest: dict[str, RunMetric], params: list, tags: list, outputs: list[LoggedModel]) -> dict:
    """A run with its latest metric values (one per key), params, tags and the logged models it produced."""
    return {
        "info": run_info(run),
        "data": {
            "metrics": [metric(m) for m in latest.values()],
            "params": [{"key": k, "value": v} for k, v in params],
            "tags": [{"key": k, "value": v} for k, v in tags],
        },
        "inputs": {},
        "outputs": {"model_outputs": [{"model_id": m.model_id, "step": 0} for m in outputs]},
    }


def logged_model(model: LoggedModel) -> dict:
    return {
        "info": {
            "model_id": model.model_id, "experiment_id": str(model.group_id), "name": model.name,
            "creation_timestamp_ms": model.created_at, "last_updated_timestamp_ms": model.updated_at,
            "artifact_uri": model.artifact_uri, "status": model.status, "model_type": model.model_type,
            "source_run_id": model.run.run_id if model.run_id else "", "tags": pairs(model.tags),
        },
        "data": {"params": pairs(model.params), "metrics": []},
    }


def model_version(version: ModelVersion, *, aliases: list[str] | None = None, message: str = "") -> dict:
    body = {
        "name": version.model.name, "version": str(version.version), "creation_timestamp": ms(version.created_at),
        "last_updated_timestamp": ms(version.created_at), "current_stage": STAGE_NAMES[version.stage],
        "description": version.description, "source": version.artifact_location, "run_id": version.run.run_id if version.run_id else "",
        "status": "READY", "run_link": "", "tags": pairs(version.tags), "aliases": aliases or [],
        "user_id": version.created_by.get_username() if version.created_by_id else "",
    }
    if message:
        body["status_message"] = message
    return body


def registered_model(model: RegisteredModel, *, latest: list[ModelVersion], aliases: dict[str, ModelVersion]) -> dict:
    updated = max([model.created_at, *(v.created_at for v in latest)])
    return {
        "name": model.name, "creation_timestamp": ms(model.created_at), "last_updated_timestamp": ms(updated),
        "description": model.description, "latest_versions": [model_version(v) for v in latest], "tags": pairs(model.tags),
        "aliases": [{"alias": a, "version": str(v.version)} for a, v in sorted(aliases.items())],
    }

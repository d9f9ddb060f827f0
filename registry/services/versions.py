"""Registering versions (immutable once written) and describing models."""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from mlops_site.exceptions import TooLarge, ValidationFailed
from mlops_site.roles import EDITOR, require_role

from ..models import NAME_PATTERN, AuditAction, ModelVersion, RegisteredModel, Stage, WebhookEvent, artifact_path
from .audit import audit_record, get_or_create_locked
from .subjects import ModelSubject
from .webhooks import webhooks_fire

TEXT_LIMITS = {"code_commit": 64, "data_version": 255, "image_tag": 255, "artifact_uri": 1000, "description": 20_000}
NAME_RULE = "Use 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit."


def _bad_values(value: Any, path: str) -> list[str]:
    """Paths inside a JSON value that hold a non-finite number or a NUL character (PostgreSQL refuses NUL)."""
    if isinstance(value, float) and not math.isfinite(value):
        return [path]
    if isinstance(value, str) and "\x00" in value:
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in ([f"{path}.<key>"] if "\x00" in k else []) + _bad_values(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _bad_values(v, f"{path}[{i}]")]
    return []


def _validate_version_fields(*, params, metrics, tags, texts: dict[str, str]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for field, value in (("params", params), ("metrics", metrics), ("tags", tags)):
        if not isinstance(value, dict):
            errors[field] = ["Must be a JSON object."]
        elif any(not isinstance(k, str) or not k.strip() or len(k) > 200 for k in value):
            errors[field] = ["Keys must be non-empty strings of at most 200 characters."]
        else:
            bad = _bad_values(value, field)
            if bad:
                errors[field] = [f"Values must be finite numbers (no NaN or Infinity) and text without NUL characters: {', '.join(bad)}."]
    if "metrics" not in errors:
        not_numbers = [k for k, v in metrics.items() if isinstance(v, bool) or not isinstance(v, (int, float))]
        if not_numbers:
            errors["metrics"] = [f"Metric values must be numbers: {', '.join(sorted(not_numbers))}."]
    if "tags" not in errors:
        not_strings = [k for k, v in tags.items() if not isinstance(v, str)]
        if not_strings:
            errors["tags"] = [f"Tag values must be strings: {', '.join(sorted(not_strings))}."]
    for field, text in texts.items():
        if not isinstance(text, str):
            errors[field] = ["Must be a string."]
        elif len(text) > TEXT_LIMITS[field]:
            errors[field] = [f"At most {TEXT_LIMITS[field]} characters."]
        elif "\x00" in text:
            errors[field] = ["NUL characters are not allowed."]
    return errors


def _store_artifact(model_name: str, upload: UploadedFile) -> tuple[str, str, int]:
    """Hash and store the upload under a fresh folder; returns (stored name, sha256, size).

    Runs BEFORE the registering transaction: copying hundreds of megabytes while
    holding the database write lock would stall every other writer.
    """
    digest, size = hashlib.sha256(), 0
    for chunk in upload.chunks():
        digest.update(chunk)
        size += len(chunk)
    upload.seek(0)
    placeholder = ModelVersion(model=RegisteredModel(name=model_name))
    stored = default_storage.save(artifact_path(placeholder, upload.name or "artifact"), upload)
    return stored, digest.hexdigest(), size


def model_version_register(
    *,
    model_name: str,
    actor,
    params: dict | None = None,
    metrics: dict | None = None,
    tags: dict | None = None,
    code_commit: str = "",
    data_version: str = "",
    image_tag: str = "",
    description: str = "",
    artifact: UploadedFile | None = None,
    artifact_uri: str = "",
    run=None,
    logged_model=None,
    files_digest: tuple[str, int] | None = None,
) -> ModelVersion:
    """Register the next version of `model_name` (created on its first version) as a candidate.

    The version number is max + 1 under the model's row lock, so concurrent
    registrations get 1, 2, 3... with no gaps or duplicates. An uploaded artifact
    is stored through Django's default storage with its size and sha256; if the
    row is not written, the file is removed again.

    An MLflow client's version also records its lineage (`run`, `logged_model`) and, for files already stored
    elsewhere in the site, `files_digest` = (sha256, total bytes) in place of an upload's. All are written with the
    row: a version is never changed afterwards (a database trigger refuses it).
    """
    require_role(actor, EDITOR, "Registering a version")
    params = {} if params is None else params
    metrics = {} if metrics is None else metrics
    tags = {} if tags is None else tags
    texts = {"code_commit": code_commit, "data_version": data_version, "image_tag": image_tag, "description": description, "artifact_uri": artifact_uri}
    errors = _validate_version_fields(params=params, metrics=metrics, tags=tags, texts=texts)
    if not isinstance(model_name, str) or not re.fullmatch(NAME_PATTERN, model_name):
        errors["model"] = [NAME_RULE]
    if artifact is not None and artifact_uri:
        errors["artifact"] = ["Give either an uploaded artifact or an artifact_uri, not both."]
    if artifact is not None and files_digest is not None:
        errors["artifact"] = ["An uploaded artifact has its own digest."]
    if errors:
        raise ValidationFailed("Invalid version: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()), fields=errors)
    if artifact is not None and artifact.size is not None and artifact.size > settings.MLOPS_MAX_ARTIFACT_BYTES:
        raise TooLarge(f"Artifact is {artifact.size} bytes; the limit is {settings.MLOPS_MAX_ARTIFACT_BYTES} bytes.")

    stored, sha256, size = _store_artifact(model_name, artifact) if artifact is not None else ("", *(files_digest or ("", None)))
    try:
        with transaction.atomic():
            model = get_or_create_locked(RegisteredModel, name=model_name, actor=actor)
            last = ModelVersion.objects.filter(model=model).order_by("-version").values_list("version", flat=True).first()
            version = ModelVersion(
                model=model,
                version=(last or 0) + 1,
                params=params,
                metrics=metrics,
                tags=tags,
                created_by=actor,
                artifact=stored,
                artifact_sha256=sha256,
                artifact_size=size,
                run=run,
                logged_model=logged_model,
                **texts,
            )
            version.save()
            registered = audit_record(
                actor=actor,
                action=AuditAction.REGISTERED,
                subject=f"model:{model.name}",
                version=version.version,
                to_stage=Stage.CANDIDATE,
                reason=description[:500],
                extra={"artifact_sha256": sha256} if sha256 else {},
            )
            webhooks_fire(registered, WebhookEvent.VERSION_REGISTERED)
    except BaseException:
        if stored:
            default_storage.delete(stored)
        raise
    return version


def model_describe(*, model_name: str, description: str, actor) -> RegisteredModel:
    """Change a model's description (the only mutable field of a model), with an audit event."""
    require_role(actor, EDITOR, "Describing a model")
    if not isinstance(description, str) or len(description) > TEXT_LIMITS["description"] or "\x00" in description:
        raise ValidationFailed("Invalid description.", fields={"description": [f"Text of at most {TEXT_LIMITS['description']} characters."]})
    with transaction.atomic():
        model = ModelSubject.lock(model_name).parent
        previous = model.description
        model.description = description
        model.save(update_fields=["description"])
        audit_record(
            actor=actor, action=AuditAction.MODEL_UPDATED, subject=f"model:{model.name}",
            reason="description changed", extra={"previous_description": previous[:500]},
        )
    return model

"""References: the distribution a model version's traffic is compared with, prepared once when it is set.

From a file (CSV, JSON lines or Parquet), from columns in memory (the demo's simulator), or from a
window of the version's own past traffic. Each column is sorted (numeric) or counted (categorical)
once here, and stored packed (monitoring/columnar.py): a drift report never sorts the reference again.
"""

from __future__ import annotations

import numpy as np
from django.db import transaction

from mlops_site.exceptions import ValidationFailed
from mlops_site.roles import EDITOR, require_role
from registry import tables
from registry.models import AuditAction, ModelVersion
from registry.services import audit_record

from .. import columnar, drift
from ..models import Reference, ReferenceSource
from ..selectors.drift import window_columns
from .alerts import default_rules_ensure


def _profile(columns: dict[str, np.ndarray]) -> tuple[dict, bytes]:
    """Prepare each column once (sorted values or category counts) and pack them for storage."""
    meta, arrays = {}, {}
    for name, values in columns.items():
        if name == columnar.TS:
            continue
        kind = "categorical" if values.dtype.kind in "US" else "numeric"
        prepared = drift.prepare_reference(values if kind == "numeric" else np.where(values == "", None, values).astype(object), kind)
        meta[name] = {"kind": kind, "missing": prepared.missing, "n": prepared.n, "std": prepared.std}
        if kind == "numeric":
            arrays[f"{name}::sorted"] = prepared.sorted_values if prepared.sorted_values is not None else np.array([], float)
            if prepared.cuts is not None:
                arrays[f"{name}::cuts"] = prepared.cuts
        else:
            arrays[f"{name}::categories"] = np.asarray(prepared.categories, dtype=str)
            arrays[f"{name}::counts"] = np.asarray(prepared.counts if prepared.counts is not None else [], dtype=np.int64)
    return meta, columnar.encode(arrays)


def reference_set_from_columns(*, model_version: ModelVersion, columns: dict[str, np.ndarray], source: str, description: str, actor) -> Reference:
    """Set (or replace) the reference distribution of a model version, prepared once now.

    Columns named `prediction` and `label` are the model's output and the
    ground truth: they are compared with the events' `prediction` (prediction
    drift) and `label` (label drift, once labels arrive).
    """
    require_role(actor, EDITOR, "Setting a reference")
    renames = {"prediction": columnar.PREDICTION, "label": columnar.LABEL}
    columns = {(renames[k] if k in renames and renames[k] not in columns else k): v for k, v in columns.items()}
    rows = max((len(v) for v in columns.values()), default=0)
    if rows == 0:
        raise ValidationFailed("The reference has no rows.")
    meta, profile = _profile(columns)
    with transaction.atomic():
        replaced = Reference.objects.select_for_update().filter(model_version=model_version).first()
        before = _audited(replaced) if replaced else None
        Reference.objects.filter(model_version=model_version).delete()
        reference = Reference.objects.create(model_version=model_version, source=source, description=description[:300], rows=rows, columns=meta, profile=profile)
        default_rules_ensure(model=model_version.model)
        audit_record(actor=actor, action=AuditAction.REFERENCE_SET, subject=f"model:{model_version.model.name}", version=model_version.version,
                     reason="replaced" if replaced else "set", extra={"before": before, "after": _audited(reference)})
    return reference


def _audited(reference: Reference) -> dict:
    return {"source": reference.source, "description": reference.description, "rows": reference.rows,
            "columns": len(reference.columns), "created_at": reference.created_at.isoformat()}


def reference_set_from_file(*, model_version: ModelVersion, data: bytes, actor, filename: str = "") -> Reference:
    """A reference file: CSV with a header row, JSON lines or Parquet (registry.tables reads them).
    Numbers become numeric columns, anything else categorical; empty cells are missing."""
    require_role(actor, EDITOR, "Setting a reference")
    try:
        table = tables.read_table(data, filename=filename)
    except tables.TableError as exc:
        raise ValidationFailed(f"Reference file refused: {exc}") from None
    return reference_set_from_columns(
        model_version=model_version, columns=table.columns, source=ReferenceSource.UPLOAD, description=filename or f"{table.format} upload", actor=actor
    )


def reference_set_from_window(*, model_version: ModelVersion, start, end, actor) -> Reference:
    """Use a window of the version's own past traffic as its reference (e.g. the first week in production)."""
    columns = window_columns(model_version_id=model_version.pk, start=start, end=end)
    if not columns:
        raise ValidationFailed("No traffic of this version in that window.")
    return reference_set_from_columns(
        model_version=model_version, columns=columns, source=ReferenceSource.WINDOW,
        description=f"traffic {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC", actor=actor,
    )

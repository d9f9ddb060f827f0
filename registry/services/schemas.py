"""Dataset schemas (the format of registry/validation/schema.py): set by hand, or inferred from a reference file."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from mlops_site.exceptions import ValidationFailed
from mlops_site.roles import EDITOR, require_role

from .. import tables, validation
from ..models import AuditAction, DatasetSchema, RegisteredModel
from .audit import audit_record


def dataset_schema_set(*, model: RegisteredModel, schema: dict, actor, source: str = "edited") -> DatasetSchema:
    """Create or replace a model's dataset schema, validated; the audit log keeps the one before."""
    require_role(actor, EDITOR, "Setting a dataset schema")
    try:
        cleaned = validation.SchemaSpec.from_dict(schema).to_dict()
    except validation.SchemaError as exc:
        raise ValidationFailed(f"Schema refused: {exc}") from None
    with transaction.atomic():
        row, created = DatasetSchema.objects.select_for_update().get_or_create(model=model, defaults={"schema": cleaned})
        before = None if created else row.schema
        row.schema, row.source, row.updated_at, row.updated_by = cleaned, source[:300], timezone.now(), actor
        row.save()
        audit_record(actor=actor, action=AuditAction.SCHEMA_SET, subject=f"model:{model.name}", reason=source[:300],
                     extra={"columns": [c["name"] for c in cleaned["columns"]], "replaced": before is not None})
    return row


def dataset_schema_infer(*, model: RegisteredModel, data: bytes, filename: str = "", actor) -> DatasetSchema:
    """The schema of a reference file (types, ranges, categories, missing shares), stored as the model's schema."""
    require_role(actor, EDITOR, "Setting a dataset schema")
    try:
        table = tables.read_table(data, filename=filename)
    except tables.TableError as exc:
        raise ValidationFailed(f"Reference file refused: {exc}") from None
    schema = validation.infer_schema(table)
    return dataset_schema_set(model=model, schema=schema.to_dict(), actor=actor, source=f"inferred from {filename or 'an upload'} ({table.rows} rows)")

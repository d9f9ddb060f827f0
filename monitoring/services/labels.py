"""Labels: ground truth that arrives after the events it belongs to, joined by event_id."""

from __future__ import annotations

import math
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from mlops_site.exceptions import ValidationFailed
from mlops_site.roles import EDITOR, require_role
from registry.models import AuditAction
from registry.services import audit_record

from ..models import Event

MAX_LABELS = 10_000


def _label_ok(value) -> bool:
    return isinstance(value, (str, bool)) or (isinstance(value, (int, float)) and math.isfinite(value))


def labels_attach(*, payload, actor, now: datetime | None = None) -> dict:
    """`{"labels": [{"event_id", "label"}, ...]}`: set the label of each stored event, all or nothing, and the
    time it was stored (`now`), from which the performance windows measure the label delay.
    Ids not (yet) stored are counted and listed, not an error: labels often outrun a slow pipeline.
    A label sent for an event that has another one already is an overwrite: one audit event per version
    whose labels changed, with the old and new label of each (the first 100) and how many."""
    require_role(actor, EDITOR, "Sending labels")
    rows = payload.get("labels") if isinstance(payload, dict) else None
    if not isinstance(rows, list) or not rows:
        raise ValidationFailed('Send {"labels": [{"event_id": ..., "label": ...}, ...]}.', fields={"labels": ["a non-empty list"]})
    if len(rows) > MAX_LABELS:
        raise ValidationFailed(f"At most {MAX_LABELS} labels per request, got {len(rows)}.", fields={"labels": ["too many"]})
    bad = [
        {"index": i, "message": "an object with event_id (string) and label (number, string or boolean)"}
        for i, row in enumerate(rows)
        if not isinstance(row, dict) or set(row) != {"event_id", "label"} or not isinstance(row["event_id"], str) or not _label_ok(row["label"])
    ]
    if bad:
        raise ValidationFailed(f"Labels refused, nothing stored: labels[{bad[0]['index']}] must be {bad[0]['message']}.", fields={"labels": bad[:100]})
    prep = Event._meta.get_field("label").get_db_prep_save
    quote = connection.ops.quote_name
    at = Event._meta.get_field("labelled_at").get_db_prep_save(now or timezone.now(), connection)
    sql = f"UPDATE {quote(Event._meta.db_table)} SET {quote('label')} = %s, {quote('labelled_at')} = %s WHERE {quote('event_id')} = %s"
    ids = [row["event_id"] for row in rows]
    with transaction.atomic():
        stored = {event_id: (label, subject) for event_id, label, subject in _stored_labels(ids)}
        with connection.cursor() as cursor:
            cursor.executemany(sql, [(prep(row["label"], connection), at, row["event_id"]) for row in rows])
        _audit_overwrites(rows, stored, actor)
        known = set(stored)
    unknown = [i for i in ids if i not in known]
    return {"updated": len(ids) - len(unknown), "unknown": len(unknown), "unknown_ids": unknown[:100]}


def _stored_labels(ids: list[str]):
    """(event_id, label, (subject, version)) of each stored event among `ids`, locked until the transaction ends."""
    events = (
        Event.objects.select_for_update(of=("self",)).filter(event_id__in=ids)
        .values_list("event_id", "label", "model_version__model__name", "model_version__version", "prompt_version__prompt__name",
                     "prompt_version__version")
    )
    for event_id, label, model, model_v, prompt, prompt_v in events:
        yield event_id, label, (f"model:{model}", model_v) if model else (f"prompt:{prompt}", prompt_v)


def _audit_overwrites(rows: list[dict], stored: dict, actor) -> None:
    changed: dict[tuple[str, int], list[dict]] = {}
    for row in rows:
        old = stored.get(row["event_id"])
        # Labels are JSON: True and 1 are different labels, so the type counts too.
        if old is not None and old[0] is not None and (type(old[0]), old[0]) != (type(row["label"]), row["label"]):
            changed.setdefault(old[1], []).append({"event_id": row["event_id"], "before": old[0], "after": row["label"]})
    for (subject, version), overwrites in sorted(changed.items()):
        audit_record(actor=actor, action=AuditAction.LABELS_OVERWRITTEN, subject=subject, version=version,
                     reason=f"{len(overwrites)} label(s) replaced", extra={"count": len(overwrites), "labels": overwrites[:100]})

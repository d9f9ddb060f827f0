"""Labels: ground truth that arrives after the events it belongs to, joined by event_id."""

from __future__ import annotations

import math

from django.db import connection, transaction

from mlops_site.exceptions import ValidationFailed
from mlops_site.roles import EDITOR, require_role

from ..models import Event

MAX_LABELS = 10_000


def _label_ok(value) -> bool:
    return isinstance(value, (str, bool)) or (isinstance(value, (int, float)) and math.isfinite(value))


def labels_attach(*, payload, actor) -> dict:
    """`{"labels": [{"event_id", "label"}, ...]}`: set the label of each stored event, all or nothing.
    Ids not (yet) stored are counted and listed, not an error: labels often outrun a slow pipeline."""
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
    sql = f"UPDATE {quote(Event._meta.db_table)} SET {quote('label')} = %s WHERE {quote('event_id')} = %s"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(sql, [(prep(row["label"], connection), row["event_id"]) for row in rows])
        ids = [row["event_id"] for row in rows]
        known = set(Event.objects.filter(event_id__in=ids).values_list("event_id", flat=True))
    unknown = [i for i in ids if i not in known]
    return {"updated": len(ids) - len(unknown), "unknown": len(unknown), "unknown_ids": unknown[:100]}

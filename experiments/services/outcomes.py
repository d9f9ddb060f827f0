"""Outcomes: business results of units (conversions, revenue), sent by unit id, stored once.

An outcome belongs to no experiment: it counts for every experiment that exposed its unit at or
before its timestamp (the analysis joins them). A batch is all or nothing, like event ingestion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from mlops_site.exceptions import ValidationFailed
from mlops_site.roles import EDITOR, require_role

from ..models import Decision, Experiment, ExperimentStatus, Exposure, Outcome
from . import sql

MAX_OUTCOMES = 10_000
MAX_ERRORS = 100
FUTURE_SLACK = timedelta(minutes=5)  # clocks of the senders drift a little
FIELDS = {"outcome_id", "unit_id", "metric", "value", "timestamp"}
CHUNK = 2000


@dataclass(frozen=True)
class OutcomeResult:
    accepted: int
    duplicates: int  # re-sent outcome_ids (stored before, or twice in this batch)
    unexposed: int  # outcomes of units no live experiment exposed: stored, but they count for nothing now


@dataclass(frozen=True)
class _Clean:
    outcome_id: str | None
    unit_id: str
    metric: str
    value: float
    timestamp: datetime


def _timestamp(value, latest: datetime) -> tuple[datetime | None, str]:
    if not isinstance(value, str):
        return None, "an ISO 8601 date and time"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None, "not an ISO 8601 date and time"
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if parsed > latest:
        return None, "is in the future"
    return parsed, ""


def _validate(payload) -> list[_Clean]:
    """The outcomes of `{"outcomes": [...]}`; every problem of the batch as {index, field, message}."""
    if not isinstance(payload, dict) or not isinstance(payload.get("outcomes"), list) or set(payload) - {"outcomes"}:
        raise _refused([{"index": None, "field": "outcomes", "message": 'send {"outcomes": [...]}'}])
    items = payload["outcomes"]
    if not items:
        raise _refused([{"index": None, "field": "outcomes", "message": "the batch is empty"}])
    if len(items) > MAX_OUTCOMES:
        raise _refused([{"index": None, "field": "outcomes", "message": f"at most {MAX_OUTCOMES} outcomes a request, got {len(items)}"}])
    latest = timezone.now() + FUTURE_SLACK
    errors: list[dict] = []
    clean: list[_Clean] = []
    for i, item in enumerate(items):
        if len(errors) >= MAX_ERRORS:
            break
        bad = lambda field, message, i=i: errors.append({"index": i, "field": field, "message": message})  # noqa: E731
        if not isinstance(item, dict):
            bad("", "each outcome must be an object")
            continue
        before = len(errors)
        unknown = sorted(set(item) - FIELDS)
        if unknown:
            bad(unknown[0], "unknown field")
        unit_id, metric, value = item.get("unit_id"), item.get("metric"), item.get("value")
        if not isinstance(unit_id, str) or not unit_id or len(unit_id) > 200:
            bad("unit_id", "required: a string of 1 to 200 characters")
        if not isinstance(metric, str) or not metric or len(metric) > 100:
            bad("metric", "required: a string of 1 to 100 characters")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            bad("value", "required: a finite number")
        ts, problem = _timestamp(item.get("timestamp"), latest)
        if problem:
            bad("timestamp", problem)
        outcome_id = item.get("outcome_id")
        if outcome_id is not None and (not isinstance(outcome_id, str) or not outcome_id or len(outcome_id) > 100):
            bad("outcome_id", "a string of 1 to 100 characters (or leave it out)")
        if len(errors) == before:
            clean.append(_Clean(outcome_id=outcome_id, unit_id=unit_id, metric=metric, value=float(value), timestamp=ts))
    if errors:
        raise _refused(errors)
    return clean


def _refused(errors: list[dict]) -> ValidationFailed:
    shown = "; ".join(f"outcomes[{e['index']}].{e['field']}: {e['message']}" if e["index"] is not None else f"{e['field']}: {e['message']}"
                      for e in errors[:5])
    error = ValidationFailed(f"Batch refused, nothing stored: {shown}" + (f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""))
    error.extra["errors"] = errors
    return error


def _unexposed(outcomes: list[_Clean]) -> int:
    """How many of the outcomes belong to a unit no live experiment (running, or stopped and not decided) exposed."""
    live = list(Experiment.objects.filter(status__in=[ExperimentStatus.RUNNING, ExperimentStatus.STOPPED], decision=Decision.NONE)
                .values_list("pk", flat=True))
    units = list({o.unit_id for o in outcomes})
    exposed: set[str] = set()
    if live:
        unit, experiment = sql.column(Exposure, "unit_id"), sql.column(Exposure, "experiment")
        with connection.cursor() as cursor:
            for start in range(0, len(units), CHUNK):
                chunk = units[start : start + CHUNK]
                cursor.execute(
                    f"SELECT DISTINCT {unit} FROM {sql.table(Exposure)} WHERE {experiment} IN ({', '.join(['%s'] * len(live))}) "
                    f"AND {unit} IN ({', '.join(['%s'] * len(chunk))})",
                    [*live, *chunk],
                )
                exposed.update(row[0] for row in cursor.fetchall())
    return sum(1 for o in outcomes if o.unit_id not in exposed)


def outcomes_ingest(*, payload, actor) -> OutcomeResult:
    """Store a batch of outcomes `{"outcomes": [{"unit_id", "metric", "value", "timestamp", "outcome_id"?}]}` (editors),
    all or nothing: a bad outcome refuses the batch with 400 naming each index and field (`extra.errors`).
    An outcome_id already stored (or repeated in the batch) is a duplicate, stored once."""
    require_role(actor, EDITOR, "Sending outcomes")
    outcomes = _validate(payload)
    prep_time = Outcome._meta.get_field("timestamp").get_db_prep_save
    received = prep_time(timezone.now(), connection)
    fields = ("outcome_id", "unit_id", "metric", "value", "timestamp", "received_at")
    statement = (
        f"INSERT INTO {sql.table(Outcome)} ({', '.join(sql.column(Outcome, f) for f in fields)}) VALUES ({', '.join(['%s'] * len(fields))}) "
        f"ON CONFLICT ({sql.column(Outcome, 'outcome_id')}) DO NOTHING"
    )
    rows = [(o.outcome_id, o.unit_id, o.metric, o.value, prep_time(o.timestamp, connection), received) for o in outcomes]
    stored = 0
    with transaction.atomic(), connection.cursor() as cursor:
        for start in range(0, len(rows), CHUNK):
            cursor.executemany(statement, rows[start : start + CHUNK])
            stored += cursor.rowcount
    return OutcomeResult(accepted=stored, duplicates=len(outcomes) - stored, unexposed=_unexposed(outcomes))

"""Ingestion: store a batch of served-request events (events_ingest), all or nothing, idempotent by event_id.

Validation is monitoring/events.py's (no Django); this module resolves the registry versions, prices
the events (prices.event_costs), and writes the narrow event rows and one columnar FeatureBatch per
model version with plain SQL, the only way to keep up with 10,000-event batches.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from mlops_site.exceptions import ValidationFailed
from mlops_site.roles import EDITOR, require_role
from registry.models import ModelVersion, PromptVersion

from .. import columnar
from ..events import BatchInvalid, CleanEvent, validate_batch
from ..models import Event, FeatureBatch, FeatureNames
from .prices import event_costs


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicates: int


def _resolve_versions(events) -> tuple[dict, dict[tuple, str], list[dict]]:
    """The version id of each (kind, name, version), the LLM of each prompt version named, and the unknown ones as errors."""
    wanted = {(e.kind, e.name, e.version) for e in events}
    found: dict = {}
    prompt_llms: dict[tuple, str] = {}
    model_keys = [(n, v) for k, n, v in wanted if k == "model"]
    prompt_keys = [(n, v) for k, n, v in wanted if k == "prompt"]
    if model_keys:
        names = {n for n, _ in model_keys}
        for pk, name, number in ModelVersion.objects.filter(model__name__in=names).values_list("pk", "model__name", "version"):
            found[("model", name, number)] = pk
    if prompt_keys:
        names = {n for n, _ in prompt_keys}
        rows = PromptVersion.objects.filter(prompt__name__in=names).values_list("pk", "prompt__name", "version", "llm_model")
        for pk, name, number, llm_model in rows:
            found[("prompt", name, number)] = pk
            prompt_llms[("prompt", name, number)] = llm_model
    errors = [
        {"index": e.index, "field": "version", "message": f"no {e.kind} {e.name!r} version {e.version} in the registry"}
        for e in events if (e.kind, e.name, e.version) not in found
    ]
    return found, prompt_llms, errors[:100]


def events_ingest(*, payload=None, events: list[CleanEvent] | None = None, actor) -> IngestResult:
    """Store a batch of served-request events, all or nothing.

    A batch with any invalid event is refused whole (400 naming index and
    field); events for unknown models or versions are refused, never created.
    A re-sent event_id is ignored and counted as a duplicate. Feature values
    are stored once more column by column (one FeatureBatch per version), for
    drift. An event with tokens and no cost of its own is priced here, with the
    price of its LLM in force at its time (prices.event_costs), or flagged pricing
    missing. Needs no Celery broker: Redis being down does not stop ingestion.
    `events` instead of `payload`: a batch events.validate_body has already accepted.
    """
    require_role(actor, EDITOR, "Ingesting events")
    if events is None:
        try:
            events = validate_batch(payload)
        except BatchInvalid as exc:
            raise _invalid(exc.errors) from None
    _check_feature_count(events)
    versions, prompt_llms, errors = _resolve_versions(events)
    if errors:
        raise _invalid(errors)
    seen = _known_event_ids([e.event_id for e in events])
    fresh = []
    for e in events:
        if e.event_id not in seen:
            seen.add(e.event_id)
            fresh.append(e)
    # Everything is prepared before the transaction: on SQLite a write transaction locks the whole
    # database, so the other web workers wait only for the INSERTs themselves.
    new_names, known_names = _new_feature_names([e for e in fresh if e.kind == "model"], versions)
    feature_batches = _feature_batches([e for e in fresh if e.kind == "model"], versions)
    rows = _event_rows(fresh, versions, prompt_llms, event_costs(fresh, prompt_llms=prompt_llms))
    with transaction.atomic():
        _record_feature_names(new_names, known_names, versions)
        batch_of = {version_id: FeatureBatch.objects.create(**fields).pk for version_id, fields in feature_batches.items()}
        stored = _insert_events(rows, batch_of)
        if stored < len(rows):
            # A concurrent request stored some of these events between the check above and this
            # write (ON CONFLICT kept its rows): their features are that request's, not ours.
            _keep_features_of_stored_events([e for e in fresh if e.kind == "model"], versions, batch_of)
    return IngestResult(accepted=stored, duplicates=len(events) - stored)


def _check_feature_count(events) -> None:
    """Refuse a batch naming more distinct feature names than MLOPS_MAX_FEATURES: each name becomes a
    column of its FeatureBatch, so the cap bounds the memory a request's columns take."""
    cap = settings.MLOPS_MAX_FEATURES
    names: set[str] = set()
    for e in events:
        names.update(e.features)
    if len(names) > cap:
        raise _invalid([{"index": None, "field": "features", "message": f"{len(names)} distinct feature names in the batch, at most {cap} (MLOPS_MAX_FEATURES)"}])


def _version_names(events, versions) -> dict[int, set[str]]:
    """The feature names the events name, by model version id."""
    named: dict[int, set[str]] = defaultdict(set)
    for e in events:
        if e.features:
            named[versions[(e.kind, e.name, e.version)]].update(e.features)
    return named


def _over_the_cap(named: dict[int, set[str]], stored: dict[int, list[str]], versions) -> list[dict]:
    """A problem for each version whose stored feature names and these together pass MLOPS_MAX_FEATURES."""
    cap, label = settings.MLOPS_MAX_FEATURES, {pk: key for key, pk in versions.items() if key[0] == "model"}
    problems = []
    for version_id, names in named.items():
        total = len(names.union(stored.get(version_id, ())))
        if total > cap:
            _, model, number = label[version_id]
            problems.append({"index": None, "field": "features", "message": (
                f"model {model!r} version {number} would hold {total} distinct feature names, at most {cap} (MLOPS_MAX_FEATURES)")})
    return problems


def _new_feature_names(events, versions) -> tuple[dict[int, set[str]], set[int]]:
    """The feature names of each model version these events name; refused (400) when a version would
    pass MLOPS_MAX_FEATURES with the names it already holds. Checked before any column is built.
    Also the versions that have a stored set already."""
    named = _version_names(events, versions)
    stored = dict(FeatureNames.objects.filter(model_version_id__in=named).values_list("model_version_id", "names"))
    problems = _over_the_cap(named, stored, versions)
    if problems:
        raise _invalid(problems)
    return named, set(stored)


def _record_feature_names(named: dict[int, set[str]], known, versions) -> None:
    """Add the names to each version's stored set, inside the write transaction; checked again under the
    row lock, so two concurrent batches cannot together pass the cap."""
    if not named:
        return
    # A version's first names: its row is created (a concurrent request may create it first) before it is locked.
    FeatureNames.objects.bulk_create([FeatureNames(model_version_id=pk, names=sorted(named[pk])) for pk in named if pk not in known], ignore_conflicts=True)
    rows = {row.model_version_id: row for row in FeatureNames.objects.select_for_update().filter(model_version_id__in=named)}
    problems = _over_the_cap(named, {pk: row.names for pk, row in rows.items()}, versions)
    if problems:
        raise _invalid(problems)
    for version_id, names in named.items():
        row = rows[version_id]
        if not names <= set(row.names):
            row.names = sorted(names.union(row.names))
            row.save(update_fields=["names"])


EVENT_COLUMNS = [
    "event_id", "model_version", "prompt_version", "timestamp", "received_at", "latency_ms", "error", "unit_id", "prediction", "label",
    "input_tokens", "output_tokens", "cost_usd", "ttft_ms", "guardrail_triggered", "feedback", "judge_score",
    "cached_tokens", "reasoning_tokens", "llm_model", "pricing_missing", "faithfulness", "shadow", "cache_creation_tokens", "batch",
]
CHUNK = 2000


def _known_event_ids(ids: list[str]) -> set[str]:
    """The ids among `ids` already stored. Plain SQL in chunks: the ORM takes longer to compile
    `event_id IN (10,000 values)` than the database takes to answer it."""
    quote = connection.ops.quote_name
    column = quote(Event._meta.get_field("event_id").column)
    found: set[str] = set()
    with connection.cursor() as cursor:
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            cursor.execute(f"SELECT {column} FROM {quote(Event._meta.db_table)} WHERE {column} IN ({', '.join(['%s'] * len(chunk))})", chunk)
            found.update(row[0] for row in cursor.fetchall())
    return found


def _row_adapters():
    """How a timestamp and a JSON value go into the INSERT. On SQLite exactly what Django's backend
    stores (naive UTC text, json.dumps) without its per-value call chain, which was a third of
    ingestion's time; elsewhere Django's own field preparation."""
    if connection.vendor == "sqlite":
        return (lambda ts: str(ts.astimezone(UTC).replace(tzinfo=None))), (lambda value: None if value is None else json.dumps(value))
    time_field, json_field = Event._meta.get_field("timestamp"), Event._meta.get_field("prediction")
    return (lambda ts: time_field.get_db_prep_save(ts, connection)), (lambda value: json_field.get_db_prep_save(value, connection))


def _event_rows(events, versions: dict, prompt_llms: dict, priced: list[tuple[float | None, bool]]) -> list[tuple]:
    """The INSERT parameters of each event, the batch id (known only inside the transaction) left out.
    `priced`: each event's (cost_usd, pricing_missing), from prices.event_costs."""
    prep_time, prep_json = _row_adapters()
    received = prep_time(timezone.now())
    rows = []
    for e, (cost_usd, pricing_missing) in zip(events, priced, strict=True):
        key = (e.kind, e.name, e.version)
        version_id = versions[key]
        is_model = e.kind == "model"
        # A prompt event runs its prompt version's LLM (the YAML's `model`) unless the client names
        # another: stored on the row, so roll-ups and pages group by it as they price by it.
        llm_model = e.llm_model or ("" if is_model else prompt_llms[key])
        rows.append((
            e.event_id, version_id if is_model else None, None if is_model else version_id, prep_time(e.timestamp), received,
            e.latency_ms, e.error, e.unit_id, prep_json(e.prediction), prep_json(e.label),
            e.input_tokens, e.output_tokens, cost_usd, e.ttft_ms, e.guardrail_triggered, e.feedback, e.judge_score,
            e.cached_tokens, e.reasoning_tokens, llm_model, pricing_missing, e.faithfulness, e.shadow, e.cache_creation_tokens,
        ))
    return rows


def _insert_events(rows: list[tuple], batch_of: dict[int, int]) -> int:
    """One prepared INSERT run with executemany: the ORM's bulk_create compiles SQL per row and,
    on SQLite, packs only 55 rows of 18 columns into a statement. A concurrent request
    with the same event_id: ON CONFLICT keeps the first (SQLite >= 3.24 and PostgreSQL).
    Returns how many rows were stored (both drivers sum executemany's row counts)."""
    fields = [Event._meta.get_field(name) for name in EVENT_COLUMNS]
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(Event._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))}) ON CONFLICT ({quote(fields[0].column)}) DO NOTHING"
    )
    stored = 0
    with connection.cursor() as cursor:
        for start in range(0, len(rows), CHUNK):
            # row[1] is the model version (None for a prompt event): its FeatureBatch, if any.
            cursor.executemany(sql, [row + (batch_of.get(row[1]),) for row in rows[start : start + CHUNK]])
            stored += cursor.rowcount
    return stored


def _keep_features_of_stored_events(events, versions: dict, batch_of: dict[int, int]) -> None:
    """Rebuild each FeatureBatch of this request from the events it really stored (those whose row
    points at it), and drop a batch none of whose events were stored."""
    mine = set(Event.objects.filter(batch_id__in=batch_of.values()).values_list("event_id", flat=True))
    rebuilt = _feature_batches([e for e in events if e.event_id in mine], versions)
    for version_id, batch_id in batch_of.items():
        if version_id in rebuilt:
            FeatureBatch.objects.filter(pk=batch_id).update(**rebuilt[version_id])
        else:
            FeatureBatch.objects.filter(pk=batch_id).delete()


def _invalid(errors: list[dict]) -> ValidationFailed:
    shown = "; ".join(f"events[{e['index']}].{e['field']}: {e['message']}" if e["index"] is not None else f"{e['field']}: {e['message']}" for e in errors[:5])
    error = ValidationFailed(f"Batch refused, nothing stored: {shown}" + (f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""))
    error.extra["errors"] = errors
    return error


def _feature_batches(events, versions) -> dict[int, dict]:
    """The FeatureBatch fields for each model version in this request: its events' columns in one blob."""
    by_version = defaultdict(list)
    for e in events:
        by_version[versions[(e.kind, e.name, e.version)]].append(e)
    out = {}
    for version_id, rows in by_version.items():
        columns, kinds = columnar.build_batch(
            [e.timestamp.timestamp() for e in rows], [e.prediction for e in rows], [e.label for e in rows], [e.features for e in rows]
        )
        out[version_id] = {
            "model_version_id": version_id,
            "first_ts": min(e.timestamp for e in rows),
            "last_ts": max(e.timestamp for e in rows),
            "rows": len(rows),
            "columns": kinds,
            "data": columnar.encode(columns),
        }
    return out

"""Training runs as MLflow clients log them: run groups, runs, params, tags, metric history and logged models.

The limits and naming rules are MLflow's own (a client that works against an MLflow server works here, and what
MLflow refuses is refused here with the same words): at most 1,000 metrics, 100 params and 100 tags per batch and
1,000 entries in all; keys of at most 250 characters made of letters, digits, `_ - . : /` and spaces that stay the
same when read as a path; param values up to 6,000 characters and set once; tag values up to 8,000 characters.
Writing needs the editor role; each write is one transaction.
"""

from __future__ import annotations

import math
import posixpath
import re
import sys
import time
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from mlops_site.exceptions import Conflict, NotFound, ValidationFailed
from mlops_site.roles import EDITOR, require_role

from ..models import LoggedModel, LoggedModelStatus, Run, RunGroup, RunMetric, RunParam, RunStatus, RunTag
from ..models.runs import ENTITY_ID, Lifecycle, new_run_id

MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_ENTITIES_PER_BATCH = 1000
MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
MAX_GROUP_NAME_LENGTH = 500
DEFAULT_GROUP_ID = 0
KEY_PATTERN = re.compile(r"^[/\w.\- :]*$")

# Tags MLflow clients set that mean something for the run itself.
RUN_NAME_TAG = "mlflow.runName"
USER_TAG = "mlflow.user"
GIT_COMMIT_TAG = "mlflow.source.git.commit"


def now_ms() -> int:
    return int(time.time() * 1000)


def _invalid(message: str) -> ValidationFailed:
    return ValidationFailed(message, code="invalid_parameter_value")


def check_key(key, what: str) -> str:
    """MLflow's rule for metric, param and tag names: a key is sometimes a file name, so it must not resolve to
    another name as a path (no `..`, no leading `/`, no `a//b`)."""
    if not isinstance(key, str) or not key:
        raise _invalid(f"{what} name is missing.")
    if len(key) > MAX_KEY_LENGTH:
        raise _invalid(f"{what} name '{key[:50]}...' is {len(key)} characters; the limit is {MAX_KEY_LENGTH}.")
    if not KEY_PATTERN.match(key):
        raise _invalid(f"Invalid {what.lower()} name '{key}': use letters, digits, underscores, dashes, periods, colons, "
                       "spaces and slashes only.")
    normal = posixpath.normpath(key)
    if normal != key or normal == "." or normal.startswith("..") or normal.startswith("/"):
        raise _invalid(f"Invalid {what.lower()} name '{key}': names may be treated as files, and this one would resolve to "
                       f"'{normal}'.")
    return key


def _text(value, what: str, limit: int) -> str:
    if not isinstance(value, str):
        raise _invalid(f"{what} must be a string.")
    if len(value) > limit:
        raise _invalid(f"{what} is {len(value)} characters; the limit is {limit}.")
    if "\x00" in value:
        raise _invalid(f"{what} contains a NUL character.")
    return value


def _integer(value, what: str, *, default: int | None = None) -> int | None:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise _invalid(f"{what} must be an integer.")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise _invalid(f"{what} must be an integer, not {str(value)[:50]!r}.") from None
    if isinstance(value, float) and value != number:
        raise _invalid(f"{what} must be an integer.")
    if not -(2**63) <= number < 2**63:
        raise _invalid(f"{what} is out of range.")
    return number


def _pairs(items, what: str) -> list[tuple[str, str]]:
    """[{key, value}] as MLflow sends tags and params."""
    if items is None:
        return []
    if not isinstance(items, list) or any(not isinstance(i, dict) for i in items):
        raise _invalid(f"{what} must be a list of {{key, value}} objects.")
    return [(i.get("key"), i.get("value")) for i in items]


def tag_values(items, *, limit: int = MAX_TAG_VALUE_LENGTH) -> dict[str, str]:
    """MLflow's [{key, value}] tags as a dict: each key by MLflow's rule, each value text of at most `limit` characters
    (a missing value is "")."""
    return {check_key(k, "Tag"): _text(v if v is not None else "", f"Tag '{k}' value", limit) for k, v in _pairs(items, "tags")}


# ---------------------------------------------------------------- run groups


def run_group_default() -> RunGroup:
    """The group with id 0, "Default", where a run goes when its client names no group (as in MLflow)."""
    group, _ = RunGroup.objects.get_or_create(pk=DEFAULT_GROUP_ID, defaults={"name": "Default"})
    return group


def run_group_get(group_id) -> RunGroup:
    number = _integer(group_id, "experiment_id")
    if number is None:
        raise _invalid("Missing value for required parameter 'experiment_id'.")
    if number == DEFAULT_GROUP_ID:
        return run_group_default()
    try:
        return RunGroup.objects.get(pk=number)
    except RunGroup.DoesNotExist:
        raise NotFound(f"No Experiment with id={number} exists", code="resource_does_not_exist") from None


def run_group_by_name(name) -> RunGroup:
    if not isinstance(name, str) or not name:
        raise _invalid("Missing value for required parameter 'experiment_name'.")
    if name == "Default":
        return run_group_default()
    try:
        return RunGroup.objects.get(name=name)
    except RunGroup.DoesNotExist:
        raise NotFound(f"Could not find experiment with name '{name}'", code="resource_does_not_exist") from None


def run_group_create(*, name, actor, tags=None) -> RunGroup:
    require_role(actor, EDITOR, "Creating a run group")
    name = _text(name, "Experiment name", MAX_GROUP_NAME_LENGTH).strip() if name is not None else ""
    if not name:
        raise _invalid("Experiment name must not be empty.")
    pairs = tag_values(tags)
    if name == "Default":
        run_group_default()
    try:
        with transaction.atomic():
            return RunGroup.objects.create(name=name, tags=pairs, created_by=actor)
    except IntegrityError:
        raise Conflict(f"Experiment(name={name}) already exists.", code="resource_already_exists") from None


# ---------------------------------------------------------------- runs


def run_get(run_id) -> Run:
    if not isinstance(run_id, str) or not run_id:
        raise _invalid("Missing value for required parameter 'run_id'.")
    try:
        if not ENTITY_ID.fullmatch(run_id):
            raise Run.DoesNotExist
        return Run.objects.select_related("group").get(run_id=run_id)
    except Run.DoesNotExist:
        raise NotFound(f"Run with id={run_id[:64]} not found", code="resource_does_not_exist") from None


def _active(run: Run) -> Run:
    if run.lifecycle_stage != Lifecycle.ACTIVE:
        raise _invalid(f"The run {run.run_id} must be in the 'active' state. Current state is {run.lifecycle_stage}.")
    return run


def run_create(*, group_id, actor, run_name: str = "", start_time=None, tags=None, user_id: str = "") -> Run:
    """A RUNNING run in the group (`group_id` "0" or missing: Default); the name comes from `run_name` or the
    `mlflow.runName` tag (else `run-<first 8 characters of its id>`), the user is the authenticated caller (the
    client's own user_id is kept beside it)."""
    require_role(actor, EDITOR, "Creating a run")
    tag_map = tag_values(tags)
    if len(tag_map) > MAX_PARAMS_TAGS_PER_BATCH:
        raise _invalid(f"A run can be created with at most {MAX_PARAMS_TAGS_PER_BATCH} tags. Got {len(tag_map)} tags.")
    name = _text(run_name or tag_map.get(RUN_NAME_TAG, "") or "", "run_name", 250)
    user_name = _text(user_id or tag_map.get(USER_TAG, "") or "", "user_id", 250)
    start = _integer(start_time, "start_time", default=now_ms())
    group = run_group_default() if group_id in (None, "", str(DEFAULT_GROUP_ID), DEFAULT_GROUP_ID) else run_group_get(group_id)
    if group.lifecycle_stage != Lifecycle.ACTIVE:
        raise _invalid(f"The experiment {group.pk} must be in the 'active' state.")
    run_id = new_run_id()
    name = name or f"run-{run_id[:8]}"  # MLflow names an unnamed run too
    with transaction.atomic():
        run = Run.objects.create(run_id=run_id, group=group, name=name, start_time=start, user=actor,
                                 user_name=user_name or actor.get_username())
        tag_map[RUN_NAME_TAG] = name
        RunTag.objects.bulk_create([RunTag(run=run, key=k, value=v) for k, v in tag_map.items()])
        RunGroup.objects.filter(pk=group.pk).update(updated_at=run.created_at)
    return run


def run_update(*, run_id, actor, status=None, end_time=None, run_name=None) -> Run:
    require_role(actor, EDITOR, "Updating a run")
    if status not in (None, "") and status not in RunStatus.values:
        raise _invalid(f"Invalid run status {str(status)[:50]!r}: use one of {', '.join(RunStatus.values)}.")
    end = _integer(end_time, "end_time")
    with transaction.atomic():
        run = _active(run_get(run_id))
        fields = []
        if status:
            run.status = status
            fields.append("status")
        if end is not None:
            run.end_time = end
            fields.append("end_time")
        if run_name:
            run.name = _text(run_name, "run_name", 250)
            fields.append("name")
            RunTag.objects.update_or_create(run=run, key=RUN_NAME_TAG, defaults={"value": run.name})
        if fields:
            run.save(update_fields=fields)
    return run


@dataclass(frozen=True)
class Batch:
    metrics: list[RunMetric]
    params: dict[str, str]
    tags: dict[str, str]


def _metric(item, run: Run, index: int) -> RunMetric:
    if not isinstance(item, dict):
        raise _invalid(f"metrics[{index}] must be an object with key, value, timestamp and step.")
    key = check_key(item.get("key"), "Metric")
    raw = item.get("value")
    if isinstance(raw, str) and raw in ("NaN", "Infinity", "-Infinity"):  # how protobuf JSON writes them
        raw = float(raw.replace("Infinity", "inf"))
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise _invalid(f"Got invalid value {str(raw)[:50]!r} for metric '{key}' (timestamp={item.get('timestamp')}). "
                       "Please specify value as a valid double (64-bit floating point)")
    value = float(raw)
    is_nan = math.isnan(value)
    if is_nan:
        value = 0.0
    elif math.isinf(value):
        value = sys.float_info.max if value > 0 else -sys.float_info.max
    timestamp = _integer(item.get("timestamp"), f"metrics[{index}].timestamp")
    if timestamp is None:
        raise _invalid(f"Missing value for required parameter 'metrics[{index}].timestamp'.")
    step = _integer(item.get("step"), f"metrics[{index}].step", default=0)
    return RunMetric(run=run, key=key, value=value, is_nan=is_nan, timestamp=timestamp, step=step)


def _batch(run: Run, *, metrics, params, tags) -> Batch:
    metrics = metrics if metrics is not None else []
    if not isinstance(metrics, list):
        raise _invalid("metrics must be a list.")
    param_pairs, tag_pairs = _pairs(params, "params"), _pairs(tags, "tags")
    for what, count, limit in (("metrics", len(metrics), MAX_METRICS_PER_BATCH), ("params", len(param_pairs), MAX_PARAMS_TAGS_PER_BATCH),
                               ("tags", len(tag_pairs), MAX_PARAMS_TAGS_PER_BATCH)):
        if count > limit:
            raise _invalid(f"A batch logging request can contain at most {limit} {what}. Got {count} {what}. "
                           f"Please split up {what} across multiple requests and try again.")
    total = len(metrics) + len(param_pairs) + len(tag_pairs)
    if total > MAX_ENTITIES_PER_BATCH:
        raise _invalid(f"A batch logging request can contain at most {MAX_ENTITIES_PER_BATCH} total metrics, params and tags. "
                       f"Got {total}. Please split up across multiple requests and try again.")
    rows = [_metric(item, run, i) for i, item in enumerate(metrics)]
    param_map: dict[str, str] = {}
    for key, value in param_pairs:
        check_key(key, "Param")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        value = _text(value if value is not None else "", f"Param '{key}' value", MAX_PARAM_VALUE_LENGTH)
        if key in param_map and param_map[key] != value:
            raise _invalid(f"Duplicate parameter keys have been submitted: ['{key}']. Please ensure the request contains only "
                           "one param value per param key.")
        param_map[key] = value
    tag_map = tag_values(tags)
    return Batch(metrics=rows, params=param_map, tags=tag_map)


def run_log_batch(*, run_id, actor, metrics=None, params=None, tags=None) -> None:
    """Log up to 1,000 metric values, 100 params and 100 tags at once, all or nothing.

    A param keeps its first value: logging it again with the same value is fine, with another value is refused
    (MLflow's rule: params describe how the run was made). Tags are overwritten. The metrics are one bulk INSERT
    (SQLite splits it by its limit of variables per statement), so the queries do not grow with the batch."""
    require_role(actor, EDITOR, "Logging to a run")
    run = _active(run_get(run_id))
    batch = _batch(run, metrics=metrics, params=params, tags=tags)
    with transaction.atomic():
        if batch.params:
            existing = dict(RunParam.objects.filter(run=run, key__in=list(batch.params)).values_list("key", "value"))
            changed = [{"key": k, "old_value": existing[k], "new_value": v} for k, v in batch.params.items() if k in existing and existing[k] != v]
            if changed:
                raise _invalid(f"Changing param values is not allowed. Params were already logged='{changed}' for run ID='{run.run_id}'.")
            RunParam.objects.bulk_create([RunParam(run=run, key=k, value=v) for k, v in batch.params.items() if k not in existing])
        if batch.tags:
            RunTag.objects.bulk_create([RunTag(run=run, key=k, value=v) for k, v in batch.tags.items()],
                                       update_conflicts=True, unique_fields=["run", "key"], update_fields=["value"])
            if RUN_NAME_TAG in batch.tags:
                Run.objects.filter(pk=run.pk).update(name=batch.tags[RUN_NAME_TAG][:250])
        if batch.metrics:
            RunMetric.objects.bulk_create(batch.metrics, ignore_conflicts=True)  # a value logged twice is kept once


def run_latest_metrics(runs: list[Run]) -> dict[int, dict[str, RunMetric]]:
    """Each run's latest value per key, as MLflow defines it: the largest step, then the latest timestamp, then the
    largest value. One query for all the runs."""
    latest: dict[int, dict[str, RunMetric]] = {run.pk: {} for run in runs}
    for row in RunMetric.objects.filter(run__in=[r.pk for r in runs]).latest():
        latest[row.run_id][row.key] = row
    return latest


def run_outputs(*, run_id, actor, models=None) -> None:
    """`log_outputs`: the logged models a run produced (MLflow 3 calls it right after creating the model)."""
    require_role(actor, EDITOR, "Logging a run's outputs")
    run = _active(run_get(run_id))
    if models is not None and not isinstance(models, list):
        raise _invalid("models must be a list of {model_id, step} objects.")
    ids = []
    for item in models or []:
        if not isinstance(item, dict) or not isinstance(item.get("model_id"), str):
            raise _invalid("models must be a list of {model_id, step} objects.")
        ids.append(item["model_id"])
    found = set(LoggedModel.objects.filter(model_id__in=ids).values_list("model_id", flat=True))
    missing = sorted(set(ids) - found)
    if missing:
        raise NotFound(f"Logged model with ID '{missing[0]}' not found.", code="resource_does_not_exist")
    LoggedModel.objects.filter(model_id__in=ids, run__isnull=True).update(run=run)


def logged_model_get(model_id) -> LoggedModel:
    if not isinstance(model_id, str) or not model_id:
        raise _invalid("Missing value for required parameter 'model_id'.")
    try:
        if not ENTITY_ID.fullmatch(model_id):
            raise LoggedModel.DoesNotExist
        return LoggedModel.objects.select_related("run").get(model_id=model_id)
    except LoggedModel.DoesNotExist:
        raise NotFound(f"Logged model with ID '{model_id[:64]}' not found.", code="resource_does_not_exist") from None


def logged_model_create(*, group_id, actor, name: str = "", model_type: str = "", source_run_id: str = "", params=None, tags=None) -> LoggedModel:
    require_role(actor, EDITOR, "Logging a model")
    group = run_group_get(group_id if group_id not in (None, "") else DEFAULT_GROUP_ID)
    run = _active(run_get(source_run_id)) if source_run_id else None
    if run is not None and run.group_id != group.pk:
        raise _invalid(f"Run {run.run_id} belongs to experiment {run.group_id}, not {group.pk}.")
    param_map = {check_key(k, "Param"): _text(str(v) if v is not None else "", f"Param '{k}' value", MAX_PARAM_VALUE_LENGTH)
                 for k, v in _pairs(params, "params")}
    tag_map = tag_values(tags)
    stamp = now_ms()
    return LoggedModel.objects.create(
        group=group, run=run, name=_text(name or "model", "name", 250), model_type=_text(model_type or "", "model_type", 250),
        params=param_map, tags=tag_map, created_by=actor, created_at=stamp, updated_at=stamp,
    )


def logged_model_finalize(*, model_id, actor, status) -> LoggedModel:
    """PENDING -> READY (every file uploaded) or UPLOAD_FAILED. A READY model's files are final: the artifact proxy
    refuses to write into its folder from then on, so a registered version cannot change under its approvers."""
    require_role(actor, EDITOR, "Finalizing a logged model")
    if status not in (LoggedModelStatus.READY, LoggedModelStatus.FAILED):
        raise _invalid(f"Invalid status {str(status)[:50]!r}: use LOGGED_MODEL_READY or LOGGED_MODEL_UPLOAD_FAILED.")
    with transaction.atomic():
        model = logged_model_get(model_id)
        if model.status != status:
            if model.status != LoggedModelStatus.PENDING:
                raise _invalid(f"Logged model {model.model_id} is {model.status}; only a pending model can be finalized.")
            model.status, model.updated_at = status, now_ms()
            model.save(update_fields=["status", "updated_at"])
    return model


def logged_model_set_tags(*, model_id, actor, tags) -> LoggedModel:
    require_role(actor, EDITOR, "Tagging a logged model")
    pairs = tag_values(tags)
    with transaction.atomic():
        model = LoggedModel.objects.select_for_update().get(pk=logged_model_get(model_id).pk)
        model.tags = {**model.tags, **pairs}
        model.updated_at = now_ms()
        model.save(update_fields=["tags", "updated_at"])
    return model


def run_tag_delete(*, run_id, key, actor) -> None:
    require_role(actor, EDITOR, "Deleting a run's tag")
    run = _active(run_get(run_id))
    check_key(key, "Tag")
    deleted, _ = RunTag.objects.filter(run=run, key=key).delete()
    if not deleted:
        raise NotFound(f"No tag with name: {key} in run with id {run.run_id}", code="resource_does_not_exist")


def run_lifecycle_set(*, run_id, actor, deleted: bool) -> Run:
    """MLflow's delete_run and restore_run: a soft delete (the run stays, its lifecycle says deleted; a deleted run
    takes no more logging). A run that produced a registered version cannot be deleted: the version's lineage points to it."""
    require_role(actor, EDITOR, "Deleting a run" if deleted else "Restoring a run")
    with transaction.atomic():
        run = run_get(run_id)
        if deleted and run.model_versions.exists():
            raise Conflict(f"Run {run.run_id} produced registered versions; it cannot be deleted.", code="invalid_state")
        run.lifecycle_stage = Lifecycle.DELETED if deleted else Lifecycle.ACTIVE
        run.save(update_fields=["lifecycle_stage"])
    return run

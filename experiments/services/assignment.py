"""Assignment: which variant serves a unit, and its exposure, recorded once.

Serving code asks on every request, so the common path is two cheap reads: the experiment's plan
(variants and bucket ranges) from the shared cache, and the units already exposed. Only units seen
for the first time write: their exposures (INSERT ... ON CONFLICT DO NOTHING, so two concurrent
requests for the same unit record it once) and, in the same transaction, the per-day exposure
counts of exactly the rows that INSERT stored (RETURNING).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from mlops_site.exceptions import Conflict, NotFound, ValidationFailed
from mlops_site.roles import EDITOR, require_role

from .. import stats
from ..models import Experiment, ExperimentStatus, Exposure, ExposureCount, Variant
from . import sql

logger = logging.getLogger(__name__)

MAX_UNITS = 10_000
MAX_UNIT_LENGTH = 200
# The plan is cached this long and deleted after every commit that changes the experiment (start, stop,
# decide); the TTL only bounds how long a plan read in a race with such a commit can outlive it.
PLAN_TTL_S = 30
# SQLite allows 32,766 parameters a statement: 2,000 rows of 5 columns stay well below.
CHUNK = 2000


@dataclass(frozen=True)
class Arm:
    variant_id: int
    name: str
    version: int  # the version number of the model or prompt this arm serves
    weight: float


@dataclass(frozen=True)
class Plan:
    """What assignment needs of an experiment, small enough to cache: its state and its arms in order."""

    experiment_id: int
    key: str
    status: str
    arms: tuple[Arm, ...]

    @property
    def weights(self) -> list[float]:
        return [a.weight for a in self.arms]

    def as_cached(self) -> dict:
        return {"experiment_id": self.experiment_id, "key": self.key, "status": self.status,
                "arms": [[a.variant_id, a.name, a.version, a.weight] for a in self.arms]}

    @classmethod
    def from_cached(cls, data: dict) -> Plan:
        return cls(experiment_id=data["experiment_id"], key=data["key"], status=data["status"],
                   arms=tuple(Arm(variant_id=v, name=n, version=ver, weight=w) for v, n, ver, w in data["arms"]))


@dataclass(frozen=True)
class Assignment:
    unit_id: str
    variant: str
    version: int
    bucket: int


def plan_cache_key(key: str) -> str:
    return f"experiment:{key}"


def _plan_from_db(key: str) -> Plan:
    experiment = Experiment.objects.filter(key=key).only("pk", "key", "status").first()
    if experiment is None:
        raise NotFound(f"No experiment {key!r}.")
    variants = Variant.objects.filter(experiment=experiment).select_related("model_version", "prompt_version").order_by("position")
    arms = tuple(Arm(variant_id=v.pk, name=v.name, version=v.version.version, weight=float(v.weight)) for v in variants)
    return Plan(experiment_id=experiment.pk, key=experiment.key, status=experiment.status, arms=arms)


def plan_get(key: str) -> Plan:
    """The experiment's plan from the shared cache, else from the database (then cached for PLAN_TTL_S).
    A cache that does not answer (Redis down) costs its short timeout and falls back to the database."""
    cache_key = plan_cache_key(key)
    try:
        cached = cache.get(cache_key)
    except Exception as exc:  # noqa: BLE001 - redis-py raises several types for "unreachable"; the database answers instead
        logger.warning("assignment cache unavailable (%s); reading the plan of %s from the database", exc, key)
        return _plan_from_db(key)
    if cached is not None:
        return Plan.from_cached(cached)
    plan = _plan_from_db(key)
    try:
        cache.set(cache_key, plan.as_cached(), PLAN_TTL_S)
    except Exception as exc:  # noqa: BLE001 - as above
        logger.warning("assignment cache unavailable (%s)", exc)
    return plan


def plan_forget(key: str) -> None:
    """Drop the cached plan once the current transaction commits (every change of an experiment calls this)."""

    def forget():
        try:
            cache.delete(plan_cache_key(key))
        except Exception as exc:  # noqa: BLE001 - the TTL retires it anyway
            logger.warning("could not drop the cached plan of %s: %s", key, exc)

    transaction.on_commit(forget)


def _check_units(unit_ids, field: str) -> list[str]:
    if not isinstance(unit_ids, list) or not unit_ids:
        raise ValidationFailed(f"{field}: a non-empty list of unit ids.", fields={field: ["a non-empty list"]})
    if len(unit_ids) > MAX_UNITS:
        raise ValidationFailed(f"{field}: at most {MAX_UNITS:,} units a request, got {len(unit_ids):,}.", fields={field: [f"at most {MAX_UNITS}"]})
    for i, unit in enumerate(unit_ids):
        if not isinstance(unit, str) or not unit or len(unit) > MAX_UNIT_LENGTH:
            name = field if field == "unit_id" else f"{field}[{i}]"
            raise ValidationFailed(f"{name}: a string of 1 to {MAX_UNIT_LENGTH} characters.", fields={name: [f"a string of 1 to {MAX_UNIT_LENGTH} characters"]})
    return unit_ids


def _exposed(experiment_id: int, unit_ids: list[str]) -> dict[str, int]:
    """{unit_id: variant_id} of the units among `unit_ids` already exposed (read from the covering index)."""
    found: dict[str, int] = {}
    unit, variant, experiment = sql.column(Exposure, "unit_id"), sql.column(Exposure, "variant"), sql.column(Exposure, "experiment")
    with connection.cursor() as cursor:
        for start in range(0, len(unit_ids), CHUNK):
            chunk = unit_ids[start : start + CHUNK]
            cursor.execute(
                f"SELECT {unit}, {variant} FROM {sql.table(Exposure)} WHERE {experiment} = %s AND {unit} IN ({', '.join(['%s'] * len(chunk))})",
                [experiment_id, *chunk],
            )
            found.update(cursor.fetchall())
    return found


def _record(plan: Plan, new: list[tuple[str, int, int]]) -> None:
    """Store the exposures of units seen for the first time [(unit_id, variant_id, bucket)], and add the rows really
    stored (a concurrent request may have stored some first) to today's exposure counts."""
    now = timezone.now()
    exposed_at = Exposure._meta.get_field("exposed_at").get_db_prep_save(now, connection)
    day = ExposureCount._meta.get_field("day").get_db_prep_save(now.date(), connection)
    columns = ", ".join(sql.column(Exposure, f) for f in ("experiment", "unit_id", "variant", "bucket", "exposed_at"))
    conflict = f"{sql.column(Exposure, 'experiment')}, {sql.column(Exposure, 'unit_id')}"
    stored: Counter[int] = Counter()
    with transaction.atomic():
        # Checked again inside the transaction: a stop committed after the (cached) plan was read records nothing more.
        if not Experiment.objects.filter(pk=plan.experiment_id, status=ExperimentStatus.RUNNING).exists():
            raise Conflict(f"Experiment {plan.key} is not running.", code="experiment_not_running")
        with connection.cursor() as cursor:
            for start in range(0, len(new), CHUNK):
                chunk = new[start : start + CHUNK]
                params = [value for unit_id, variant_id, bucket in chunk for value in (plan.experiment_id, unit_id, variant_id, bucket, exposed_at)]
                cursor.execute(
                    f"INSERT INTO {sql.table(Exposure)} ({columns}) VALUES {sql.placeholders(len(chunk), 5)} "
                    f"ON CONFLICT ({conflict}) DO NOTHING RETURNING {sql.column(Exposure, 'variant')}",
                    params,
                )
                stored.update(row[0] for row in cursor.fetchall())
            if stored:
                # Sorted: concurrent requests lock the count rows in the same order (no deadlock on PostgreSQL).
                rows = sorted(stored.items())
                units = sql.column(ExposureCount, "units")
                cursor.execute(
                    f"INSERT INTO {sql.table(ExposureCount)} ({sql.column(ExposureCount, 'experiment')}, {sql.column(ExposureCount, 'variant')}, "
                    f"{sql.column(ExposureCount, 'day')}, {units}) VALUES {sql.placeholders(len(rows), 4)} "
                    f"ON CONFLICT ({sql.column(ExposureCount, 'variant')}, {sql.column(ExposureCount, 'day')}) "
                    f"DO UPDATE SET {units} = {sql.table(ExposureCount)}.{units} + excluded.{units}",
                    [value for variant_id, n in rows for value in (plan.experiment_id, variant_id, day, n)],
                )


def experiment_assign(*, key: str, unit_ids: list[str], actor, field: str = "unit_ids") -> list[Assignment]:
    """The variant of each unit (editors: serving code), in the order asked; up to 10,000 units a call.

    bucket = stats.bucket(key, unit_id); the variant is the one whose contiguous bucket range holds it, so a unit
    never changes variant. A unit's first assignment is its exposure, recorded once; asking again writes nothing.
    404 for an unknown experiment, 409 `experiment_not_running` unless it runs. `field` names the input in errors
    (the API's single-unit form passes "unit_id").
    """
    require_role(actor, EDITOR, "Assigning units")
    unit_ids = _check_units(unit_ids, field)
    plan = plan_get(key)
    if plan.status != ExperimentStatus.RUNNING:
        raise Conflict(f"Experiment {key} is {plan.status}, not running: nothing is assigned.", code="experiment_not_running")
    if len(unit_ids) == 1:
        bucket_values = [stats.bucket(key, unit_ids[0])]
        arm_indices = [stats.variant_index(bucket_values[0], plan.weights)]
    else:
        as_array = stats.buckets(key, unit_ids)
        arm_indices = stats.variant_indices(as_array, plan.weights).tolist()
        bucket_values = as_array.tolist()
    unique = list(dict.fromkeys(unit_ids))
    known = _exposed(plan.experiment_id, unique)
    if len(known) < len(unique):
        first = {}
        for unit, index, bucket in zip(unit_ids, arm_indices, bucket_values, strict=True):
            if unit not in known and unit not in first:
                first[unit] = (unit, plan.arms[index].variant_id, bucket)
        _record(plan, list(first.values()))
    arm_of = {a.variant_id: a for a in plan.arms}
    out = []
    for unit, index, bucket in zip(unit_ids, arm_indices, bucket_values, strict=True):
        # An exposed unit keeps the variant it was recorded in.
        arm = arm_of[known[unit]] if unit in known else plan.arms[index]
        out.append(Assignment(unit_id=unit, variant=arm.name, version=arm.version, bucket=bucket))
    return out


def exposure_counts_rebuild(*, experiment: Experiment) -> int:
    """Recount the per-day exposure counts of an experiment from its exposures (after exposures were loaded by other
    means than assignment, or to check the counts). One INSERT ... SELECT ... GROUP BY. Returns the units counted."""
    day = sql.utc_day(sql.column(Exposure, "exposed_at"))
    variant, experiment_col = sql.column(Exposure, "variant"), sql.column(Exposure, "experiment")
    with transaction.atomic():
        ExposureCount.objects.filter(experiment=experiment).delete()
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {sql.table(ExposureCount)} ({sql.column(ExposureCount, 'experiment')}, {sql.column(ExposureCount, 'variant')}, "
                f"{sql.column(ExposureCount, 'day')}, {sql.column(ExposureCount, 'units')}) "
                f"SELECT {experiment_col}, {variant}, {day}, COUNT(*) FROM {sql.table(Exposure)} WHERE {experiment_col} = %s "
                f"GROUP BY {experiment_col}, {variant}, {day}",
                [experiment.pk],
            )
    return sum(ExposureCount.objects.filter(experiment=experiment).values_list("units", flat=True))

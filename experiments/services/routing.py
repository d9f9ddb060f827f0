"""Routing: which version serves a unit of a model (or prompt) now, production or a canary's candidate.

Serving code asks on every request, so the answer comes from the subject's routing plan in the shared cache
(what serves production, and the active rollout's versions, salt and share), read from the database at most every
ROUTE_TTL_S seconds per subject. Every stage change of a rollout deletes the plan after its commit; the TTL bounds
how long a plan read in a race with such a commit, or one of a production change made in the registry (which
cannot reach this cache), can outlive it. Routing reads and writes nothing else.

A unit's bucket is stats.bucket(salt, unit id); the candidate takes the lowest `traffic_percent` % of the buckets
(stats.in_share), so raising the share only adds units. In the shadow stage (0 %) every unit gets the baseline and
the answer names the candidate to mirror the request to.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.core.cache import cache
from django.db import transaction

from mlops_site.exceptions import NotFound, ValidationFailed
from registry.models import CANARY_STAGES, ModelVersion, Prompt, PromptDeployment, RegisteredModel

from .. import stats
from ..models import ACTIVE_ROLLOUT, Rollout

logger = logging.getLogger(__name__)

ROUTE_TTL_S = 5
MAX_UNIT_LENGTH = 200
CANARY = "canary"  # the `stage` of an answer served by a rollout's candidate


@dataclass(frozen=True)
class RolloutPlan:
    id: int
    status: str
    stage_index: int
    stage_name: str
    traffic_percent: float
    candidate: int  # version numbers
    baseline: int | None
    salt: str


@dataclass(frozen=True)
class RoutePlan:
    """What routing needs of a subject, small enough to cache."""

    kind: str
    name: str
    stage: str  # production (models) or prod (prompts)
    production: int | None  # the version in that stage, if any
    rollout: RolloutPlan | None

    def as_cached(self) -> dict:
        return {"kind": self.kind, "name": self.name, "stage": self.stage, "production": self.production,
                "rollout": None if self.rollout is None else vars(self.rollout)}

    @classmethod
    def from_cached(cls, data: dict) -> RoutePlan:
        rollout = data["rollout"]
        return cls(kind=data["kind"], name=data["name"], stage=data["stage"], production=data["production"],
                   rollout=None if rollout is None else RolloutPlan(**rollout))


@dataclass(frozen=True)
class Route:
    """The answer for one unit: the version that serves it and where it comes from."""

    version: int
    stage: str  # "production" / "prod", or "canary" when the rollout's candidate serves the unit
    rollout: RolloutPlan | None
    shadow: int | None  # the shadow stage: the candidate's version, to mirror the request to (never served)
    bucket: int | None  # the unit's bucket under the rollout's salt


def route_cache_key(kind: str, name: str) -> str:
    return f"rollout-route:{kind}:{name}"


def route_plan_read(kind: str, name: str) -> RoutePlan:
    """The subject's routing plan from the database, never the cache (route_plan_get caches it; a caller inside a
    transaction that changes rollouts, such as the demo seed's, reads it here: the cache is forgotten only at the commit)."""
    stage = CANARY_STAGES[kind]
    if kind == "model":
        subject = RegisteredModel.objects.filter(name=name).only("pk").first()
        if subject is None:
            raise NotFound(f"No model named {name!r}.")
        production = ModelVersion.objects.filter(model=subject, stage=stage).values_list("version", flat=True).first()
        rollouts = Rollout.objects.filter(model=subject).select_related("candidate_model_version", "baseline_model_version", "policy")
    else:
        subject = Prompt.objects.filter(name=name).only("pk").first()
        if subject is None:
            raise NotFound(f"No prompt named {name!r}.")
        production = PromptDeployment.objects.filter(prompt=subject, environment=stage).values_list("version__version", flat=True).first()
        rollouts = Rollout.objects.filter(prompt=subject).select_related("candidate_prompt_version", "baseline_prompt_version", "policy")
    rollout = rollouts.filter(status__in=ACTIVE_ROLLOUT).first()
    plan = None
    if rollout is not None:
        stages = rollout.policy.stages
        plan = RolloutPlan(
            id=rollout.pk, status=rollout.status, stage_index=rollout.stage_index, stage_name=stages[rollout.stage_index]["name"],
            traffic_percent=float(rollout.traffic_percent), candidate=rollout.candidate.version,
            baseline=rollout.baseline.version if rollout.baseline else None, salt=rollout.salt,
        )
    return RoutePlan(kind=kind, name=name, stage=stage, production=production, rollout=plan)


def route_plan_get(kind: str, name: str) -> RoutePlan:
    """The subject's routing plan from the shared cache, else from the database (then cached for ROUTE_TTL_S).
    A cache that does not answer (Redis down) costs its short timeout and falls back to the database."""
    key = route_cache_key(kind, name)
    try:
        cached = cache.get(key)
    except Exception as exc:  # noqa: BLE001 - redis-py raises several types for "unreachable"; the database answers instead
        logger.warning("routing cache unavailable (%s); reading the plan of %s:%s from the database", exc, kind, name)
        return route_plan_read(kind, name)
    if cached is not None:
        return RoutePlan.from_cached(cached)
    plan = route_plan_read(kind, name)
    try:
        cache.set(key, plan.as_cached(), ROUTE_TTL_S)
    except Exception as exc:  # noqa: BLE001 - as above
        logger.warning("routing cache unavailable (%s)", exc)
    return plan


def route_forget(kind: str, name: str) -> None:
    """Drop the cached plan once the current transaction commits (every change of a rollout's stage or status calls
    this). A cache that does not answer is logged: the plan then lives out its TTL."""

    def forget():
        try:
            cache.delete(route_cache_key(kind, name))
        except Exception as exc:  # noqa: BLE001 - the TTL retires it anyway
            logger.warning("could not drop the cached routing plan of %s:%s: %s", kind, name, exc)

    transaction.on_commit(forget)


def route(*, unit_id, model: str | None = None, prompt: str | None = None) -> Route:
    """The version that serves `unit_id` of a model (its production) or a prompt (its prod) now.

    No active rollout: the stage's version. A running or paused rollout: the candidate when the unit's bucket is in
    the candidate's share, else the baseline; in the shadow stage (0 %) the baseline, with the candidate to mirror to.
    400 for a missing or too long unit id or not exactly one subject; 404 for an unknown subject, or no version to
    serve (nothing in production and the unit is not the candidate's).
    """
    if (model is None) == (prompt is None):
        raise ValidationFailed("Give either model or prompt (a name).", fields={"model": ["give model or prompt"]})
    if not isinstance(unit_id, str) or not 1 <= len(unit_id) <= MAX_UNIT_LENGTH:
        raise ValidationFailed(f"unit_id: a string of 1 to {MAX_UNIT_LENGTH} characters.",
                               fields={"unit_id": [f"a string of 1 to {MAX_UNIT_LENGTH} characters"]})
    kind, name = ("model", model) if model is not None else ("prompt", prompt)
    return route_in(route_plan_get(kind, name), unit_id)


def route_in(plan: RoutePlan, unit_id: str) -> Route:
    """The route of `unit_id` under a plan already read (`route` checks the unit id first)."""
    name = plan.name
    rollout = plan.rollout
    if rollout is None:
        if plan.production is None:
            raise NotFound(f"No version of {name} is in {plan.stage}.", code="no_production_version")
        return Route(version=plan.production, stage=plan.stage, rollout=None, shadow=None, bucket=None)
    bucket = stats.bucket(rollout.salt, unit_id)
    if stats.in_share(bucket, rollout.traffic_percent):
        return Route(version=rollout.candidate, stage=CANARY, rollout=rollout, shadow=None, bucket=bucket)
    if rollout.baseline is None:
        raise NotFound(f"No version of {name} is in {plan.stage}; only the canary's share is served.", code="no_production_version")
    shadow = rollout.candidate if rollout.traffic_percent == 0 else None
    return Route(version=rollout.baseline, stage=plan.stage, rollout=rollout, shadow=shadow, bucket=bucket)

"""Fixtures of the experiments tests: an in-process cache (unit tests need no Redis), a model with three versions,
the sample prompts folder, and experiments built through the services; for canary rollouts a model with a version in
production, a short policy, canaries approved and started through the services, and served traffic."""

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from experiments import canary, services
from experiments.models import Exposure, ExposureCount, Outcome, Variant
from monitoring import services as monitoring_services
from registry import services as registry_services
from registry.models import ModelVersion, PromptVersion
from tests.factories import promote, register
from tests.prompts.conftest import brief_folder

CHECKOUT = {
    "hypothesis": "v2 raises conversion by 2 points",
    "variants": [{"name": "A", "version": 1, "weight": 50}, {"name": "B", "version": 2, "weight": 50}],
    "primary_metric": {"name": "conversion", "kind": "proportion"},
    "alpha": 0.05, "power": 0.8, "mde": 0.02, "baseline_rate": 0.1,
}


@pytest.fixture(autouse=True)
def _local_cache(settings):
    """The assignment plan's cache in this process, emptied per test (production: Redis)."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "experiments-tests"}}
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def checkout(editor):
    """Model `checkout` with v1, v2 and v3."""
    versions = [register("checkout", editor) for _ in range(3)]
    return versions[0].model


@pytest.fixture
def prompt_versions(editor):
    registry_services.prompts_import(files=brief_folder(), actor=editor)
    return {v.version: v for v in PromptVersion.objects.filter(prompt__name="summarize")}


def design(editor, key: str = "checkout-test", **overrides):
    fields = {**CHECKOUT, "model": "checkout", **overrides}
    return services.experiment_create(key=key, actor=editor, **fields)


@pytest.fixture
def running(editor, checkout):
    """checkout-test: A (v1) against B (v2), 50/50, started."""
    experiment = design(editor)
    services.experiment_start(experiment=experiment, reason="go", actor=editor)
    experiment.refresh_from_db()
    return experiment


def load_exposures(experiment, rows: list[tuple[str, str, datetime]]) -> None:
    """Exposures written directly, [(unit_id, variant name, exposed_at)] (data for the analysis with chosen times and
    arms, which assignment would not give), then the per-day counts recounted as exposure_counts_rebuild does."""
    by_name = {v.name: v for v in Variant.objects.filter(experiment=experiment)}
    Exposure.objects.bulk_create([
        Exposure(experiment=experiment, unit_id=unit, variant=by_name[name], bucket=0, exposed_at=at) for unit, name, at in rows
    ])
    services.exposure_counts_rebuild(experiment=experiment)


def load_outcomes(rows: list[tuple[str, str, float, datetime]]) -> None:
    """[(unit_id, metric, value, timestamp)]."""
    Outcome.objects.bulk_create([Outcome(unit_id=u, metric=m, value=v, timestamp=t) for u, m, v, t in rows])


def counts_of(experiment) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, units in ExposureCount.objects.filter(experiment=experiment).values_list("variant__name", "units"):
        out[name] = out.get(name, 0) + units
    return out


T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def at(days: float = 0, hours: float = 0) -> datetime:
    return T0 + timedelta(days=days, hours=hours)


# --- canary rollouts ------------------------------------------------------------------------------------------------------

# A short policy for the tests: shadow, 5 %, 25 %, then everyone, minutes not hours, small minimums.
QUICK = {
    "stages": [
        {"name": "shadow", "traffic_percent": 0, "min_minutes": 5, "max_minutes": 30, "gate": {"name": "no_errors"}},
        {"traffic_percent": 5, "min_minutes": 10, "max_minutes": 60, "gate": {"name": "error_rate", "threshold": 0.005}},
        {"traffic_percent": 25, "min_minutes": 10, "max_minutes": 60, "gate": {"name": "latency_p95", "threshold": 1.1}},
        {"traffic_percent": 100, "min_minutes": 5},
    ],
    "triggers": canary.DEFAULT_POLICY.triggers_json(),
    "gate_min_requests": 20,
    "trigger_min_requests": 10,
}
_event_ids = itertools.count()


@pytest.fixture
def t0():
    """When the tests' rollouts start: a whole minute, a day and a half ago (their events are all in the past)."""
    return timezone.now().replace(second=0, microsecond=0) - timedelta(hours=36)


@pytest.fixture
def fraud(editor, approver):
    """Model `fraud`: v1 in production (the baseline), v2 registered (the candidate)."""
    v1 = register("fraud", editor)
    promote(v1, "production", editor, approver)
    return v1, register("fraud", editor)


@pytest.fixture
def quick(approver):
    return services.rollout_policy_create(name="quick", actor=approver, **QUICK)


def canary_of(version, editor, approver, *, policy: str = "", at=None):
    """A canary promotion of `version` requested and approved (its start task goes to the unused test broker), then
    its rollout started as that task would, at `at`."""
    target = "production" if isinstance(version, ModelVersion) else "prod"
    request = registry_services.promotion_request_create(version=version, to_stage=target, reason="try it on a few", actor=editor,
                                                         strategy="canary", policy=policy)
    registry_services.promotion_approve(promotion_id=request.pk, actor=approver)
    return services.rollout_start(promotion_id=request.pk, now=at)


def traffic(editor, *, version: int, at: datetime, n: int, errors: int = 0, name: str = "fraud", kind: str = "model", unit: str = "u",
            **fields) -> None:
    """`n` served requests of `name` v`version`, one a second from `at`, the first `errors` of them failed; `fields` (latency_ms,
    cost_usd, feedback...) on every event; unit ids `<unit>-0`, `<unit>-1`..."""
    events = [{"event_id": f"ev-{next(_event_ids)}", kind: name, "version": version, "timestamp": (at + timedelta(seconds=i)).isoformat(),
               "latency_ms": 50.0, "error": i < errors, "unit_id": f"{unit}-{i}", **fields} for i in range(n)]
    for start in range(0, n, 10_000):
        monitoring_services.events_ingest(payload={"events": events[start : start + 10_000]}, actor=editor)

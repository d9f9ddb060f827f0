"""Fixtures of the experiments tests: an in-process cache (unit tests need no Redis), a model with three versions,
the brief's prompts folder, and experiments built through the services."""

from datetime import UTC, datetime, timedelta

import pytest

from experiments import services
from experiments.models import Exposure, ExposureCount, Outcome, Variant
from registry import services as registry_services
from registry.models import PromptVersion
from tests.factories import register
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

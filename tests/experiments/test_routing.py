"""Routing a unit: production without a rollout; during one, the candidate for the lowest buckets of the rollout's salt
(sticky as the share grows), the baseline for the rest, the baseline with the candidate to mirror in the shadow stage;
bad input; the cached plan, forgotten on every stage change."""

import hashlib
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache

from experiments import services
from experiments.models import Rollout
from experiments.services import routing
from mlops_site.exceptions import NotFound, ValidationFailed
from registry import services as registry_services
from registry.models import PromotionRequest
from tests.experiments.conftest import canary_of, traffic
from tests.factories import register

pytestmark = pytest.mark.django_db

UNITS = [f"user-{i}" for i in range(20_000)]


def reference_bucket(salt: str, unit_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{salt}:{unit_id}".encode()).digest()[:8], "big") % 10_000


def share(rollout, percent: int) -> None:
    Rollout.objects.filter(pk=rollout.pk).update(traffic_percent=Decimal(percent))
    cache.clear()


def served(units=UNITS) -> dict[str, int]:
    return {unit: services.route(model="fraud", unit_id=unit).version for unit in units}


def test_without_a_rollout_every_unit_gets_production(fraud):
    route = services.route(model="fraud", unit_id="user-1")

    assert (route.version, route.stage, route.rollout, route.shadow) == (1, "production", None, None)


def test_a_prompt_routes_to_its_prod(editor, approver, prompt_versions):
    registry_services.promotion_approve(promotion_id=PromotionRequest.objects.get(prompt__name="summarize", to_stage="prod").pk, actor=approver)

    route = services.route(prompt="summarize", unit_id="user-1")

    assert (route.version, route.stage) == (2, "prod")


def test_units_on_the_candidate_at_5_percent_stay_on_it_at_25_percent(fraud, editor, approver):
    rollout = canary_of(fraud[1], editor, approver)
    share(rollout, 5)
    at_5 = served()
    share(rollout, 25)

    at_25 = served()

    on_5 = {u for u, v in at_5.items() if v == 2}
    on_25 = {u for u, v in at_25.items() if v == 2}
    assert on_5 <= on_25
    assert on_5 == {u for u in UNITS if reference_bucket(rollout.salt, u) < 500}
    assert on_25 == {u for u in UNITS if reference_bucket(rollout.salt, u) < 2500}
    # 20,000 units: the shares are within 4 standard deviations of 5 % and 25 %.
    assert abs(len(on_5) - 1000) < 4 * (20_000 * 0.05 * 0.95) ** 0.5
    assert abs(len(on_25) - 5000) < 4 * (20_000 * 0.25 * 0.75) ** 0.5
    assert set(at_25.values()) == {1, 2}


def test_the_answer_names_the_rollout_and_the_unit_bucket(fraud, editor, approver):
    rollout = canary_of(fraud[1], editor, approver)
    share(rollout, 50)
    unit = next(u for u in UNITS if reference_bucket(rollout.salt, u) < 5000)

    route = services.route(model="fraud", unit_id=unit)

    assert (route.version, route.stage, route.bucket, route.shadow) == (2, "canary", reference_bucket(rollout.salt, unit), None)
    assert (route.rollout.id, route.rollout.stage_name, route.rollout.traffic_percent, route.rollout.candidate, route.rollout.baseline) == (
        rollout.pk, "shadow", 50.0, 2, 1)


def test_shadow_never_serves_the_candidate_and_names_it_for_mirroring(fraud, editor, approver):
    canary_of(fraud[1], editor, approver)

    routes = [services.route(model="fraud", unit_id=u) for u in UNITS]

    assert {r.version for r in routes} == {1}
    assert {r.shadow for r in routes} == {2}
    assert {r.stage for r in routes} == {"production"}


def test_a_paused_rollout_keeps_its_share(fraud, editor, approver):
    rollout = canary_of(fraud[1], editor, approver)
    share(rollout, 25)
    before = served(UNITS[:2000])
    services.rollout_pause(rollout_id=rollout.pk, reason="look first", actor=approver)
    cache.clear()

    assert served(UNITS[:2000]) == before


def test_a_finished_rollout_routes_as_no_rollout(fraud, editor, approver):
    rollout = canary_of(fraud[1], editor, approver)
    share(rollout, 25)
    services.rollout_rollback(rollout_id=rollout.pk, reason="no", actor=approver)
    cache.clear()

    assert set(served(UNITS[:2000]).values()) == {1}
    assert services.route(model="fraud", unit_id="user-1").rollout is None


def test_the_cached_plan_is_forgotten_when_the_stage_changes(fraud, editor, approver, django_capture_on_commit_callbacks):
    rollout = canary_of(fraud[1], editor, approver)
    before = served(UNITS[:2000])

    with django_capture_on_commit_callbacks(execute=True):
        services.rollout_advance(rollout_id=rollout.pk, reason="skip the shadow", actor=approver)
    after = served(UNITS[:2000])

    assert set(before.values()) == {1}
    assert {u for u, v in after.items() if v == 2} == {u for u in UNITS[:2000] if reference_bucket(rollout.salt, u) < 500}


def test_a_tick_that_advances_forgets_the_cached_plan(fraud, editor, approver, quick, t0, django_capture_on_commit_callbacks):
    rollout = canary_of(fraud[1], editor, approver, policy="quick", at=t0)
    traffic(editor, version=2, at=t0 + timedelta(minutes=1), n=20, shadow=True)
    before = served(UNITS[:2000])

    with django_capture_on_commit_callbacks(execute=True):
        report = services.rollouts_tick(now=t0 + timedelta(minutes=6))
    after = served(UNITS[:2000])

    assert report.actions == {"advance": 1} and set(before.values()) == {1}
    assert {u for u, v in after.items() if v == 2} == {u for u in UNITS[:2000] if reference_bucket(rollout.salt, u) < 500}


def test_the_plan_is_read_once_then_cached(fraud, editor, approver, django_assert_num_queries):
    canary_of(fraud[1], editor, approver)
    services.route(model="fraud", unit_id="user-1")

    with django_assert_num_queries(0):
        services.route(model="fraud", unit_id="user-2")


def test_a_cache_that_does_not_answer_falls_back_to_the_database(fraud, editor, approver, monkeypatch):
    rollout = canary_of(fraud[1], editor, approver)
    share(rollout, 100)

    class Down:
        def get(self, *args, **kwargs):
            raise ConnectionError("redis is down")

        set = delete = get

    monkeypatch.setattr(routing, "cache", Down())

    assert services.route(model="fraud", unit_id="user-1").version == 2


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"model": "fraud", "unit_id": ""}, "unit_id"),
    ({"model": "fraud", "unit_id": "x" * 201}, "unit_id"),
    ({"model": "fraud", "unit_id": None}, "unit_id"),
    ({"unit_id": "u"}, "model"),
    ({"model": "fraud", "prompt": "summarize", "unit_id": "u"}, "model"),
])
def test_bad_input_is_a_400_naming_the_field(fraud, kwargs, field):
    with pytest.raises(ValidationFailed) as caught:
        services.route(**kwargs)

    assert field in caught.value.extra["fields"]


def test_an_unknown_subject_or_an_empty_production_is_a_404(editor):
    register("new-model", editor)

    with pytest.raises(NotFound) as unknown:
        services.route(model="no-such-model", unit_id="u")
    with pytest.raises(NotFound) as empty:
        services.route(model="new-model", unit_id="u")
    with pytest.raises(NotFound):
        services.route(prompt="no-such-prompt", unit_id="u")

    assert unknown.value.code == "not_found" and empty.value.code == "no_production_version"


def test_a_canary_into_an_empty_production_serves_its_share_only(editor, approver):
    rollout = canary_of(register("brand-new", editor), editor, approver)
    share(rollout, 25)
    inside = next(u for u in UNITS if reference_bucket(rollout.salt, u) < 2500)
    outside = next(u for u in UNITS if reference_bucket(rollout.salt, u) >= 2500)

    assert services.route(model="brand-new", unit_id=inside).version == 1
    with pytest.raises(NotFound) as caught:
        services.route(model="brand-new", unit_id=outside)

    assert caught.value.code == "no_production_version" and rollout.baseline is None

"""Two controller ticks (two beat processes by mistake) and a person at the same moment, each on its own connection:
the rollout acts once. Meaningful on PostgreSQL (row locks); on SQLite the IMMEDIATE transactions serialise them."""

from datetime import timedelta

import pytest

from experiments import services
from experiments.models import Rollout, RolloutDecision
from monitoring.services import rollups_catch_up
from registry.models import AuditEvent, ModelVersion, PromotionRequest
from tests.conftest import make_user
from tests.experiments.conftest import QUICK, canary_of, traffic
from tests.factories import promote, register
from tests.registry.test_concurrency import run_at_once

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def people():
    return make_user("alice", "editor"), make_user("bob", "approver")


def rollout_ready_to_advance(people, t0):
    editor, approver = people
    promote(register("fraud", editor), "production", editor, approver)
    services.rollout_policy_create(name="quick", actor=approver, **QUICK)
    rollout = canary_of(register("fraud", editor), editor, approver, policy="quick", at=t0)
    traffic(editor, version=2, at=t0 + timedelta(minutes=1), n=20, shadow=True)
    rollups_catch_up()
    return rollout


def test_two_ticks_at_once_advance_the_rollout_once(people, t0):
    rollout = rollout_ready_to_advance(people, t0)
    now = t0 + timedelta(minutes=6)

    outcomes = run_at_once([lambda: services.rollout_tick(rollout_id=rollout.pk, now=now) for _ in range(2)])

    assert sorted((kind, str(value)) for kind, value in outcomes) == [("ok", "None"), ("ok", "advance")], outcomes
    assert Rollout.objects.get(pk=rollout.pk).stage_index == 1
    assert list(RolloutDecision.objects.filter(rollout=rollout).order_by("seq").values_list("action", flat=True)) == ["start", "advance"]
    assert AuditEvent.objects.filter(action="rollout_advanced").count() == 1


def test_two_whole_ticks_at_once_complete_the_promotion_once(people, t0):
    rollout = rollout_ready_to_advance(people, t0)
    Rollout.objects.filter(pk=rollout.pk).update(stage_index=3, traffic_percent=100)
    now = t0 + timedelta(minutes=6)

    outcomes = run_at_once([lambda: services.rollouts_tick(now=now) for _ in range(2)])

    assert [kind for kind, _ in outcomes] == ["ok", "ok"], outcomes
    # One tick completes it; the other either waited on its lock and skipped it, or (on a loaded machine) listed the
    # running rollouts only after the first had finished and found none: either way it never completes it again.
    assert sorted(tuple(value.actions.items()) for _, value in outcomes) in ([(("complete", 1),), (("skipped", 1),)], [(), (("complete", 1),)])
    assert PromotionRequest.objects.get(pk=rollout.promotion_id).status == "approved"
    assert ModelVersion.objects.get(stage="production").version == 2
    assert AuditEvent.objects.filter(action="promotion_completed").count() == 1


def test_a_tick_and_a_person_rolling_back_at_once_roll_back_once(people, t0):
    rollout = rollout_ready_to_advance(people, t0)
    editor, approver = people
    traffic(editor, version=2, at=t0 + timedelta(minutes=2), n=20, errors=20, shadow=True)
    rollups_catch_up()
    now = t0 + timedelta(minutes=6)

    outcomes = run_at_once([
        lambda: services.rollout_tick(rollout_id=rollout.pk, now=now),
        lambda: services.rollout_rollback(rollout_id=rollout.pk, reason="errors", actor=approver, now=now),
    ])

    kinds = sorted(kind for kind, _ in outcomes)
    assert kinds in (["error", "ok"], ["ok", "ok"]), outcomes
    assert Rollout.objects.get(pk=rollout.pk).status == "rolled_back"
    assert RolloutDecision.objects.filter(rollout=rollout, action="rollback").count() == 1
    assert AuditEvent.objects.filter(action="rollout_rolled_back").count() == 1

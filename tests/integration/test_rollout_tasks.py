"""Canary rollouts through a real worker on committed rows: the approval queues the start, an error spike in the
candidate's events rolls it back within one tick of the beat entry (events -> roll-ups -> tick), the routing answer
changes at once in the cache web and worker share, and a start whose message was lost is made by the next tick."""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from experiments.models import Rollout
from experiments.services.routing import route_cache_key
from registry.models import AuditEvent, ModelVersion, PromotionRequest
from tests.factories import promote, register

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def shared_cache(redis_url, settings):
    """This process and the worker share the routing plans' cache on the layer's Redis with the same key prefix (the
    project's, which the worker reads from its settings), as web and workers do."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url, "KEY_PREFIX": "mlops"}}
    cache.delete(route_cache_key("model", "fraud"))  # an earlier test's plan (its database is gone)


def events(model: str, version: int, n: int, errors: int = 0, prefix: str = "e", shadow: bool = False, at=None) -> list[dict]:
    at = at or timezone.now() - timedelta(seconds=1)
    return [{"event_id": f"{prefix}-{version}-{i}", "model": model, "version": version, "timestamp": at.isoformat(), "latency_ms": 40.0,
             "error": i < errors, "unit_id": f"u{i}", **({"shadow": True} if shadow else {})} for i in range(n)]


def canary_approved(api_as, editor, approver) -> int:
    promote(register("fraud", editor), "production", editor, approver)
    register("fraud", editor)
    asked = api_as(editor).post("/api/v1/models/fraud/versions/2/promotions", {"to": "production", "strategy": "canary", "reason": "faster"},
                                format="json")
    assert asked.status_code == 201, asked.content
    approved = api_as(approver).post(f"/api/v1/promotions/{asked.json()['id']}/approve", {"comment": "go"}, format="json")
    assert approved.status_code == 200 and approved.json()["status"] == "rolling_out", approved.content
    return asked.json()["id"]


def test_an_error_spike_rolls_the_canary_back_within_one_tick_of_the_beat(worker, api_as, editor, approver, viewer):
    promotion_id = canary_approved(api_as, editor, approver)
    rollout = worker.wait_for(lambda: Rollout.objects.filter(promotion_id=promotion_id).first(), "the worker started the rollout")
    route = api_as(viewer).get("/api/v1/route", {"model": "fraud", "unit_id": "u1"}).json()
    # Served inside the stage's window: a second before now could fall before the worker started the stage.
    at = rollout.stage_started_at + timedelta(milliseconds=1)
    sent = api_as(editor).post("/api/v1/events", {"events": events("fraud", 1, 100, at=at) + events("fraud", 2, 40, errors=10, shadow=True, at=at)},
                               format="json")

    worker.beat("monitoring-rollups").get(timeout=30)
    ticked = worker.beat("experiments-rollouts-tick").get(timeout=30)

    assert (route["version"], route["shadow"]) == (1, {"version": 2}) and sent.status_code == 202
    assert ticked.endswith("1 rollback."), ticked
    rollout.refresh_from_db()
    assert rollout.status == "rolled_back"
    assert PromotionRequest.objects.get(pk=promotion_id).status == "rolled_back"
    assert ModelVersion.objects.get(stage="production").version == 1
    event = AuditEvent.objects.get(action="rollout_rolled_back")
    assert event.actor_name == "system" and "error_rate 0.25 > 0.05" in event.reason
    assert event.extra["triggers"][0]["requests"] == 40
    after = api_as(viewer).get("/api/v1/route", {"model": "fraud", "unit_id": "u1"}).json()
    assert (after["version"], after["rollout"], after["shadow"]) == (1, None, None)


def test_a_start_lost_to_a_broker_outage_is_made_by_the_next_tick(worker, broker_down, api_as, editor, approver):
    with broker_down():
        promotion_id = canary_approved(api_as, editor, approver)
    worker.drain()
    assert not Rollout.objects.filter(promotion_id=promotion_id).exists()

    ticked = worker.beat("experiments-rollouts-tick").get(timeout=30)
    again = worker.beat("experiments-rollouts-tick").get(timeout=30)

    assert "1 rollouts started" in ticked and "0 rollouts started" in again
    rollout = Rollout.objects.get(promotion_id=promotion_id)
    assert (rollout.status, rollout.stage_index, rollout.baseline.version) == ("running", 0, 1)

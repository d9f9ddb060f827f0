"""The demo's canary rollouts, run on the demo clock through the traffic streams, the route and the controller (`seed_demo`).

Each rollout is asked for and approved through the registry, started by the rollouts service, and fed minute by
minute by the same streams the traffic commands send, each event from the version `GET /api/v1/route` answers for its
unit (here the routing service in this process); after each minute the roll-ups catch up and the controller ticks,
as beat does. All under the `demo-fast` policy: 5 % for at least 2 minutes (error rate gate: below the baseline's + 5
points, lenient because 20 requests is a small sample), 25 % for at least 3 minutes (P95 gate) where a person must
press Advance, then everyone for 2 minutes.

- demand-forecast v4: completed. 5 % passed, bob advanced it at 25 %, everyone for 2 minutes: v4 is in production.
- product-recommender v5: rolled back. 5 % passed; at 25 %, waiting for a person, 30 % of the candidate's requests
  started failing: the error-rate trigger rolled it back within the minute (the charts, the audit log, production v3).
- classify-ticket v2 (prompt): paused at 5 %: its requests use three times the tokens, so its cost per request is
  more than twice the baseline's.
- fraud-detector v11: running at 5 % from the end of the seed, for `make run`'s live traffic: the beat advances it to
  25 % within a few minutes, where it waits for a person (or an injected fault: docs/rollouts.md).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from demo.simulation import PROFILES, profile_for
from demo.simulation_llm import CLASSIFY
from demo.streams import LlmStream, ModelStream, Routes
from demo.traffic import RealTime
from experiments import canary, services
from experiments.models import Rollout, RolloutStatus
from monitoring.services import rollups_catch_up
from registry.models import ModelVersion, PromptVersion
from registry.services import promotion_approve, promotion_request_create

SEED = 11
POLICY = "demo-fast"
DEMO_FAST = {
    "stages": [
        {"name": "5%", "traffic_percent": 5, "min_minutes": 2, "max_minutes": 30, "gate": {"name": "error_rate", "threshold": 0.05}},
        {"name": "25%", "traffic_percent": 25, "min_minutes": 3, "max_minutes": 60, "gate": {"name": "latency_p95", "threshold": 1.5}, "manual": True},
        {"name": "100%", "traffic_percent": 100, "min_minutes": 2},
    ],
    "triggers": canary.DEFAULT_POLICY.triggers_json(),
    "gate_min_requests": 20,
    "trigger_min_requests": 20,
}
PER_MINUTE = 400  # requests a minute: 20 on the candidate at 5 %
FINISHED = (RolloutStatus.COMPLETED, RolloutStatus.ROLLED_BACK, RolloutStatus.PAUSED)


def _canary(version, *, alice, bob, clock, reason: str) -> Rollout:
    """Asked by alice, approved by bob a little later, started as the worker would."""
    target = "production" if isinstance(version, ModelVersion) else "prod"
    request = promotion_request_create(version=version, to_stage=target, reason=reason, actor=alice, strategy="canary", policy=POLICY)
    clock.advance(minutes=20)
    promotion_approve(promotion_id=request.pk, actor=bob, comment="Canary it under demo-fast.")
    clock.now_value = clock.now_value.replace(second=0, microsecond=0)  # stages change on whole minutes, as the roll-ups count
    return services.rollout_start(promotion_id=request.pk, now=clock.now_value)


def _serve(stream, sink, clock, rollout: Rollout, *, minutes: int, during=None) -> Rollout:
    """`minutes` minutes of traffic from the clock's time, each minute's events routed then stored, then the roll-ups
    caught up and the rollout ticked at the minute's end; `during(rollout)` after each tick. Stops once it finished
    or paused."""
    begin = clock.now_value
    labels = []
    for m in range(minutes):
        clock.now_value = begin + timedelta(minutes=m)
        batch = stream.build(m * PER_MINUTE, (m + 1) * PER_MINUTE)
        clock.now_value = begin + timedelta(minutes=m, seconds=59)
        sink.post_events(batch.events)
        labels += batch.labels
        clock.now_value = begin + timedelta(minutes=m + 1)
        rollups_catch_up()
        services.rollout_tick(rollout_id=rollout.pk, now=clock.now_value)
        rollout.refresh_from_db()
        if during is not None:
            during(rollout)
        if rollout.status in FINISHED:
            break
    sink.labels_arrive(labels)  # what has arrived by now of their late labels
    return rollout


def _model_stream(sink, *, model: str, version: int, run_id: str, begin: datetime, minutes: int, **faults) -> tuple[ModelStream, Routes]:
    routes = Routes(sink, kind="model", name=model, version=version, seed=SEED, ttl=None, **faults)
    schedule = RealTime(begin.timestamp(), PER_MINUTE / 60, minutes * PER_MINUTE)
    stream = ModelStream(profile=PROFILES[profile_for(model)], seed=SEED, run_id=run_id, schedule=schedule, model=model, version=version,
                         routes=routes)
    return stream, routes


def rollouts_seed(users: dict, clock, sink, real_now: datetime) -> None:
    """The demo-fast policy and the four rollouts of the module's docstring."""
    alice, bob = users["alice"], users["bob"]
    clock.now_value = real_now - timedelta(days=3)
    services.rollout_policy_create(
        name=POLICY, actor=bob, description="Demo: minutes instead of hours (5 %, 25 % signed off by a person, everyone).", **DEMO_FAST)

    # Completed: demand-forecast v4 replaces v3.
    clock.now_value = real_now - timedelta(days=2, hours=3)
    rollout = _canary(ModelVersion.objects.get(model__name="demand-forecast", version=4), alice=alice, bob=bob, clock=clock,
                      reason="v4 forecasts the weekend peaks better offline; roll it out on live traffic.")
    stream, _ = _model_stream(sink, model="demand-forecast", version=3, run_id="canary-demand-v4", begin=clock.now_value, minutes=20)

    def sign_off(current: Rollout) -> None:
        if current.stage_index == 1 and current.status == RolloutStatus.RUNNING and clock.now_value - current.stage_started_at >= timedelta(minutes=3):
            services.rollout_advance(rollout_id=current.pk, reason="Errors and P95 on par with v3 at 25 %; everyone.", actor=bob,
                                     now=clock.now_value)
            current.refresh_from_db()

    _serve(stream, sink, clock, rollout, minutes=20, during=sign_off)

    # Rolled back: product-recommender v5 against v3; its error rate jumps at 25 %.
    clock.now_value = real_now - timedelta(days=1, hours=5)
    rollout = _canary(ModelVersion.objects.get(model__name="product-recommender", version=5), alice=alice, bob=bob, clock=clock,
                      reason="v5's two-tower retrieval with the new embeddings; canary before it takes the home feed.")
    stream, routes = _model_stream(sink, model="product-recommender", version=3, run_id="canary-recommender-v5", begin=clock.now_value,
                                   minutes=20)

    def embeddings_time_out(current: Rollout) -> None:
        if current.stage_index == 1 and clock.now_value - current.stage_started_at >= timedelta(minutes=2):
            routes.error_rate = 0.3  # the embedding service v5 calls starts timing out

    _serve(stream, sink, clock, rollout, minutes=20, during=embeddings_time_out)

    # Paused on cost: classify-ticket v2 against v1 (prod); v2's answers take three times the tokens.
    clock.now_value = real_now - timedelta(hours=6)
    rollout = _canary(PromptVersion.objects.get(prompt__name="classify-ticket", version=2), alice=alice, bob=bob, clock=clock,
                      reason="v2 adds the 'other' label; canary it on live tickets.")
    routes = Routes(sink, kind="prompt", name="classify-ticket", version=1, seed=SEED, ttl=None, cost_factor=3.0)
    llm_model = PromptVersion.objects.get(prompt__name="classify-ticket", version=1).llm_model
    stream = LlmStream(profile=CLASSIFY, seed=SEED, run_id="canary-classify-v2", prompt="classify-ticket", version=1, llm_model=llm_model,
                       schedule=RealTime(clock.now_value.timestamp(), PER_MINUTE / 60, 10 * PER_MINUTE), routes=routes)
    _serve(stream, sink, clock, rollout, minutes=10)

    # Running: fraud-detector v11 against production (v6) from now on, for the live traffic of `make run`.
    clock.now_value = real_now - timedelta(minutes=21)
    _canary(ModelVersion.objects.get(model__name="fraud-detector", version=11), alice=alice, bob=bob, clock=clock,
            reason="v11 cuts false declines offline; canary it on the live stream.")
    clock.now_value = real_now

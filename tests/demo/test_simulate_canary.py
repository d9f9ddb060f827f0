"""The traffic commands and canary rollouts: each unit served by the version GET /api/v1/route answers, the shadow stage
mirrored, and the --candidate-* switches that change the candidate's events only."""

import io
from collections import Counter

import pytest
from django.core.management import CommandError, call_command

from demo.simulation import FRAUD
from demo.simulation_llm import SUMMARIZE
from demo.streams import LlmStream, ModelStream, Routes
from demo.traffic import RealTime
from experiments import services
from monitoring.models import Event
from registry import services as registry_services
from tests.conftest import make_user
from tests.factories import promote, register

T0 = 1_780_000_000.0


@pytest.fixture(autouse=True)
def _local_cache(settings):
    """The routing plan's cache in this process (the live server's thread shares it): no Redis in unit tests."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "demo-canary-tests"}}
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


class FakeRoutes:
    """A route for the streams without a server: units whose number is even go to the candidate (v2), the others to
    production (v1); `shadow`: everyone to v1, mirrored to v2."""

    def __init__(self, shadow: bool = False):
        self.shadow, self.asked = shadow, []

    def route(self, kind, name, unit_ids):
        self.asked.append(list(unit_ids))
        if self.shadow:
            return [{"version": 1, "stage": "production", "shadow": {"version": 2}} for _ in unit_ids]
        return [{"version": 2, "stage": "canary", "shadow": None} if int(u[-6:]) % 2 == 0 else {"version": 1, "stage": "production", "shadow": None}
                for u in unit_ids]


def model_events(routes: Routes | None, n: int = 2000) -> list[dict]:
    stream = ModelStream(profile=FRAUD, seed=4, run_id="r", schedule=RealTime(T0, 100, n), model="fraud-detector", version=1, routes=routes)
    return stream.build(0, n).events


def llm_events(routes: Routes | None, n: int = 2000) -> list[dict]:
    stream = LlmStream(profile=SUMMARIZE, seed=4, run_id="r", schedule=RealTime(T0, 100, n), prompt="summarize", version=1,
                       llm_model="claude-sonnet-4", routes=routes)
    return stream.build(0, n).events


def test_each_event_takes_its_units_routed_version_asked_once_per_unit_and_batch():
    sink = FakeRoutes()

    events = model_events(Routes(sink, kind="model", name="fraud-detector", version=1, seed=4))

    assert all(e["version"] == (2 if int(e["unit_id"][-6:]) % 2 == 0 else 1) for e in events)
    assert len(sink.asked) == 1 and sorted(sink.asked[0]) == sorted({e["unit_id"] for e in events})


def test_the_error_switch_fails_the_candidates_events_only():
    plain = model_events(Routes(FakeRoutes(), kind="model", name="fraud-detector", version=1, seed=4))
    routes = Routes(FakeRoutes(), kind="model", name="fraud-detector", version=1, seed=4, error_rate=0.4)

    faulty = model_events(routes)

    baseline = [(a, b) for a, b in zip(plain, faulty, strict=True) if a["version"] == 1]
    candidate = [(a, b) for a, b in zip(plain, faulty, strict=True) if a["version"] == 2]
    assert all(a == b for a, b in baseline) and len(baseline) > 800
    failed = [b for a, b in candidate if b["error"] and not a["error"]]
    assert 0.35 < len(failed) / sum(not a["error"] for a, _ in candidate) < 0.45
    assert all("prediction" not in b for b in failed)
    assert all(a == b for a, b in candidate if not b["error"] or a["error"])  # the others untouched
    assert routes.tally.injected_errors == len(failed) and routes.tally.candidate == len(candidate)


def test_the_cost_switch_multiplies_the_candidates_tokens_only():
    plain = llm_events(Routes(FakeRoutes(), kind="prompt", name="summarize", version=1, seed=4))

    dearer = llm_events(Routes(FakeRoutes(), kind="prompt", name="summarize", version=1, seed=4, cost_factor=3.0))

    for a, b in zip(plain, dearer, strict=True):
        if a["version"] == 1:
            assert a == b and b["llm_model"] == "claude-sonnet-4"
        elif "input_tokens" in a:
            assert [b[k] for k in ("input_tokens", "cached_tokens", "output_tokens")] == [
                round(a[k] * 3) for k in ("input_tokens", "cached_tokens", "output_tokens")]
            assert "llm_model" not in b  # priced by the candidate's own LLM


def test_the_shadow_stage_mirrors_every_request_to_the_candidate_as_a_shadow_event():
    served = llm_events(None, n=500)

    events = llm_events(Routes(FakeRoutes(shadow=True), kind="prompt", name="summarize", version=1, seed=4, error_rate=1.0), n=500)

    assert events[:500] == served  # the baseline answers, untouched
    mirrors = events[500:]
    assert [m["event_id"] for m in mirrors] == [f"{e['event_id']}-shadow" for e in served]
    assert all(m["version"] == 2 and m["shadow"] is True and m["error"] and "feedback" not in m for m in mirrors)


# --- against a live server -----------------------------------------------------------------------------------------------------


@pytest.fixture
def canary_at_25(db):
    """fraud-detector v1 in production, v2 rolling out at 25 % (a policy whose first stage is 25 %)."""
    alice, bob = make_user("alice", "editor"), make_user("bob", "approver")
    promote(register("fraud-detector", alice), "production", alice, bob)
    candidate = register("fraud-detector", alice)
    services.rollout_policy_create(name="quarter", actor=bob, triggers=[],
                                   stages=[{"traffic_percent": 25, "min_minutes": 60}, {"traffic_percent": 100, "min_minutes": 5}])
    request = registry_services.promotion_request_create(version=candidate, to_stage="production", reason="r", actor=alice, strategy="canary",
                                                         policy="quarter")
    registry_services.promotion_approve(promotion_id=request.pk, actor=bob)
    return services.rollout_start(promotion_id=request.pk)


def simulate(*args: str) -> str:
    out = io.StringIO()
    call_command("simulate_traffic", *args, stdout=out)
    return out.getvalue()


def test_a_real_time_run_routes_each_unit_and_fails_the_candidates_requests_only(live_server, canary_at_25):
    out = simulate("--model", "fraud-detector", "--stage", "production", "--events", "200", "--rate", "2000", "--batch", "200",
                   "--drift-at", "none", "--seed", "5", "--candidate-error-rate", "1", "--url", live_server.url)

    rows = list(Event.objects.values_list("unit_id", "model_version__version", "error", "shadow"))
    assert len(rows) == 200 and not any(shadow for *_, shadow in rows)
    assert all(version == services.route(model="fraud-detector", unit_id=unit).version for unit, version, _, _ in rows)
    by_version = Counter(version for _, version, _, _ in rows)
    assert 0.15 < by_version[2] / 200 < 0.35
    assert all(error for _, version, error, _ in rows if version == 2)
    assert sum(error for _, version, error, _ in rows if version == 1) / by_version[1] < 0.05  # the simulated errors only
    assert "Routing each unit through GET /api/v1/route (canary of v2 against v1, stage 25% (25 %, running))" in out
    assert f"{by_version[2]:,} served by a canary's candidate, 0 mirrored to it as shadow events" in out


def test_the_candidate_switches_need_a_real_time_run_of_production(live_server, canary_at_25):
    with pytest.raises(CommandError, match="need a real-time run"):
        simulate("--model", "fraud-detector", "--events", "10", "--backfill-hours", "1", "--candidate-error-rate", "0.5", "--url", live_server.url)
    with pytest.raises(CommandError, match="need a run of the version in production"):
        simulate("--model", "fraud-detector", "--version", "2", "--events", "10", "--candidate-error-rate", "0.5", "--url", live_server.url)
    with pytest.raises(CommandError, match="--candidate-error-rate must be a share from 0 to 1"):
        simulate("--model", "fraud-detector", "--events", "10", "--candidate-error-rate", "2", "--url", live_server.url)
    with pytest.raises(CommandError, match="a model's events carry no tokens"):
        simulate("--model", "fraud-detector", "--events", "10", "--candidate-cost-factor", "3", "--url", live_server.url)
    assert not Event.objects.exists()


def test_a_live_run_says_when_the_routes_canary_changes_stage_or_ends():
    answers = iter([
        {"version": 1, "stage": "production", "shadow": None, "rollout": {"id": 7, "stage": "5%", "traffic_percent": 5.0, "status": "running",
                                                                          "candidate": 2, "baseline": 1}},
        {"version": 1, "stage": "production", "shadow": None, "rollout": {"id": 7, "stage": "5%", "traffic_percent": 5.0, "status": "running",
                                                                          "candidate": 2, "baseline": 1}},
        {"version": 1, "stage": "production", "shadow": None, "rollout": {"id": 7, "stage": "25%", "traffic_percent": 25.0, "status": "running",
                                                                          "candidate": 2, "baseline": 1}},
        {"version": 1, "stage": "production", "shadow": None, "rollout": None},
    ])

    class Changing:
        def route(self, kind, name, unit_ids):
            answer = next(answers)
            return [answer for _ in unit_ids]

    said = []
    routes = Routes(Changing(), kind="model", name="fraud-detector", version=1, seed=4, ttl=None, say=said.append)

    for start in range(4):
        routes.apply([{"event_id": f"e{start}", "version": 1, "unit_id": "card-000001", "error": False}], start)

    assert said == ["Canary of fraud-detector v2 against v1: stage 5% (5 %), running.",
                    "Canary of fraud-detector v2 against v1: stage 25% (25 %), running.",
                    "The route names no canary now: v1 serves every unit of fraud-detector."]

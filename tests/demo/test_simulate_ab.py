"""The traffic commands serve running A/B tests: against a live server, a real-time run assigns each batch's units,
serves each event from its unit's variant and sends the units' outcomes; a test started or stopped during the run is
picked up. The true effect of the simulated units is checked on many units, without a server."""

import http.server
import io
import json
import re
import threading
import time
from collections import Counter
from datetime import timedelta

import numpy as np
import pytest
from django.core.management import call_command
from django.db import connection

from demo import traffic
from demo.seed import demo_prompts_folder
from demo.simulation_ab import EVENT_METRICS, AbMetric, UnitDraws, outcome_values, quality_shift, version_effects
from demo.simulation_llm import SUMMARIZE
from demo.streams import Experiments, NotRunning
from experiments import selectors, services
from experiments.api.serializers import ExperimentOut
from experiments.models import EventMetric, Experiment, Exposure, Outcome
from mlops_site.roles import user_token_refresh
from monitoring.models import Event
from registry import services as registry_services
from registry.models import PromotionRequest
from tests.conftest import make_user
from tests.factories import register


@pytest.fixture(autouse=True)
def _local_cache(settings):
    """The assignment plan's cache in this process (the live server's thread shares it): no Redis in unit tests."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "demo-ab-tests"}}
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def simulate(command: str, *args: str) -> str:
    out = io.StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue()


def design(alice, key: str = "fraud-ab", **fields):
    fields = {"model": "fraud-detector", "hypothesis": "v2 converts better", "mde": 0.02, "baseline_rate": 0.1,
              "variants": [{"name": "A", "version": 1, "weight": 50}, {"name": "B", "version": 2, "weight": 50}],
              "primary_metric": {"name": "conversion", "kind": "proportion"}, "secondary_metrics": [{"name": "revenue", "kind": "mean"}],
              **fields}
    return services.experiment_create(key=key, actor=alice, **fields)


def start(experiment, alice):
    return services.experiment_start(experiment=experiment, reason="go", actor=alice)


@pytest.fixture
def alice(db):
    return make_user("alice", "editor")


@pytest.fixture
def fraud(alice):
    """fraud-detector v1 and v2."""
    return [register("fraud-detector", alice) for _ in range(2)]


def served(prefix: str = "sim-") -> list[tuple[str, int, object]]:
    """(unit_id, version, timestamp) of the stored model events, in time order."""
    return list(Event.objects.filter(event_id__startswith=prefix).order_by("timestamp")
                .values_list("unit_id", "model_version__version", "timestamp"))


def exposures(key: str) -> dict[str, tuple[str, int, object]]:
    """unit_id -> (variant, its version, exposed_at)."""
    rows = Exposure.objects.filter(experiment__key=key).values_list("unit_id", "variant__name", "variant__model_version__version",
                                                                  "variant__prompt_version__version", "exposed_at")
    return {u: (name, mv or pv, at) for u, name, mv, pv, at in rows}


# --- the simulated units, without a server -------------------------------------------------------------------------------


def test_the_newest_version_gets_the_whole_lift_the_oldest_none():
    assert version_effects([6, 7]) == [0.0, 1.0]
    assert version_effects([9, 3, 5]) == [1.0, 0.0, 0.5]
    assert version_effects([4, 4]) == [0.0, 0.0]


def test_units_convert_at_the_base_rate_moved_by_the_lift_in_the_metrics_direction():
    units = np.arange(200_000)
    draws = UnitDraws(3, "k", "conversion").take(units)
    rate = {}

    for direction in ("increase", "decrease"):
        metric = AbMetric(name="conversion", kind="proportion", direction=direction, base=0.2)
        for effect in (0.0, 1.0):
            rate[(direction, effect)] = np.mean(~np.isnan(outcome_values(metric, np.full(len(units), effect), draws, 0.05)))

    se = (0.25 * 0.75 / len(units)) ** 0.5
    assert rate[("increase", 0.0)] == pytest.approx(0.20, abs=4 * se) and rate[("increase", 1.0)] == pytest.approx(0.25, abs=4 * se)
    assert rate[("decrease", 1.0)] == pytest.approx(0.15, abs=4 * se)


def test_a_mean_metrics_values_scale_by_one_plus_the_lift_and_a_unit_keeps_its_fate():
    units = np.arange(100_000)
    metric = AbMetric(name="revenue", kind="mean", direction="increase", base=0.1)
    draws = UnitDraws(3, "k", "revenue").take(units)

    control = outcome_values(metric, np.zeros(len(units)), draws, 0.10)
    newest = outcome_values(metric, np.ones(len(units)), draws, 0.10)
    again = outcome_values(metric, np.zeros(3), UnitDraws(3, "k", "revenue").take(np.array([99_999, 5, 12_345])), 0.10)

    buying = ~np.isnan(control)
    assert np.array_equal(buying, ~np.isnan(newest)) and 0.29 < buying.mean() < 0.31
    np.testing.assert_allclose(newest[buying], np.round(control[buying] / 1.0 * 1.1, 2), atol=0.011)
    np.testing.assert_array_equal(again, control[[99_999, 5, 12_345]])


def test_the_quality_shift_moves_the_median_judge_score_by_the_relative_lift():
    shift = quality_shift(0.10, SUMMARIZE.judge_median)

    median = 1 / (1 + np.exp(-(np.log(SUMMARIZE.judge_median / (1 - SUMMARIZE.judge_median)) + shift)))
    assert median == pytest.approx(SUMMARIZE.judge_median * 1.1, rel=1e-12)
    assert quality_shift(0.0, 0.84) == 0.0 and quality_shift(-0.1, 0.84) < 0


def test_the_metrics_read_from_events_are_the_experiments_apps():
    assert EVENT_METRICS == set(EventMetric.values)


# --- the commands against a live server ------------------------------------------------------------------------------------


def test_a_real_time_run_assigns_serves_each_units_variant_and_sends_its_outcomes_once(live_server, alice, fraud):
    start(design(alice), alice)

    # one batch a second: building the next one (its units' assignment) has a second to finish before its requests happen,
    # even on a loaded machine
    out = simulate("simulate_traffic", "--model", "fraud-detector", "--version", "1", "--events", "4000", "--rate", "1000", "--batch", "1000",
                   "--drift-at", "none", "--seed", "5", "--url", live_server.url)

    events, exposed = served(), exposures("fraud-ab")
    assert len(events) == 4000 and {u for u, _, _ in events} == set(exposed)
    assert all(version == exposed[unit][1] for unit, version, _ in events)  # each event from its unit's variant
    assert all(at >= exposed[unit][2] for unit, _, at in events)  # assigned before its requests
    counts = Counter(name for name, _, _ in exposed.values())
    assert 0.45 < counts["B"] / len(exposed) < 0.55

    outcomes = list(Outcome.objects.values_list("unit_id", "metric", "value", "timestamp", "outcome_id"))
    assert len({(u, m) for u, m, _, _, _ in outcomes}) == len(outcomes)  # once per unit and metric
    assert all(u in exposed and t >= exposed[u][2] for u, _, _, t, _ in outcomes)
    assert all(o.startswith("ab-5-") for *_, o in outcomes)
    converted = {u for u, m, v, _, _ in outcomes if m == "conversion" and v == 1.0}
    rate = {arm: sum(1 for u, (name, _, _) in exposed.items() if name == arm and u in converted) / counts[arm] for arm in "AB"}
    assert rate["A"] == pytest.approx(0.10, abs=0.025) and rate["B"] - rate["A"] == pytest.approx(0.05, abs=0.03)  # the default lift
    buyers = Counter(exposed[u][0] for u, m, _, _, _ in outcomes if m == "revenue")
    assert 0.25 < buyers["A"] / counts["A"] < 0.35 and 0.25 < buyers["B"] / counts["B"] < 0.35
    assert "Serving experiment fraud-ab: A v1 (50 %), B v2 (50 %)" in out
    assert f"4,000 served by A/B tests (experiment fraud-ab: A {sum(1 for u, _, _ in events if exposed[u][0] == 'A'):,} events" in out
    assert f", {len(outcomes):,} outcomes; {len(outcomes):,} outcomes accepted" in out  # each sent once


def test_a_run_again_with_the_same_seed_sends_its_outcomes_as_duplicates(live_server, alice, fraud):
    start(design(alice), alice)
    args = ("--model", "fraud-detector", "--version", "1", "--events", "600", "--rate", "2000", "--drift-at", "none", "--seed", "3",
            "--url", live_server.url)

    simulate("simulate_traffic", *args, "--run-id", "r1")
    stored = Outcome.objects.count()
    again = simulate("simulate_traffic", *args, "--run-id", "r2")

    assert stored > 0 and Outcome.objects.count() == stored and "0 outcomes accepted" in again
    assert Event.objects.count() == 1200


def test_a_backfill_and_no_ab_serve_no_experiment(live_server, alice, fraud):
    start(design(alice), alice)

    backfill = simulate("simulate_traffic", "--model", "fraud-detector", "--version", "1", "--events", "200", "--backfill-hours", "2",
                        "--seed", "1", "--url", live_server.url)
    simulate("simulate_traffic", "--model", "fraud-detector", "--version", "1", "--events", "100", "--rate", "1000", "--no-ab", "--seed", "2",
             "--url", live_server.url)

    assert {v for _, v, _ in served()} == {1} and not Exposure.objects.exists() and not Outcome.objects.exists()
    assert "Running experiments of model fraud-detector (fraud-ab) are not served by a backfill" in backfill


def test_assignment_of_an_experiment_stopped_since_it_was_read_is_not_running(live_server, alice, fraud):
    experiment = start(design(alice), alice)
    api = traffic.Api(live_server.url, user_token_refresh(user=alice))
    running = api.running_experiments("model", "fraud-detector")

    services.experiment_stop(experiment=experiment, reason="enough", actor=alice)

    assert [e["key"] for e in running] == ["fraud-ab"]
    with pytest.raises(NotRunning, match="Experiment fraud-ab is stopped, not running: nothing is assigned"):
        api.assign("fraud-ab", ["card-000001"])
    with pytest.raises(NotRunning, match="No experiment 'gone'"):
        api.assign("gone", ["card-000001"])


def test_reading_the_running_experiments_is_retried_after_a_5xx():
    answers = [(503, {"message": "restarting", "code": "unavailable"}), (200, {"results": [{"key": "k"}], "next": "page 2"}),
               (200, {"results": [{"key": "l"}], "next": None})]
    seen = []

    class Restarting(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.path)
            status, body = answers.pop(0)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Restarting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        api = traffic.Api(f"http://127.0.0.1:{server.server_port}", "t", sleep=lambda seconds: None)
        found = api.running_experiments("model", "fraud detector")
    finally:
        server.shutdown()
        server.server_close()

    assert [e["key"] for e in found] == ["k", "l"] and api.retries == 1
    assert seen == ["/api/v1/experiments?status=running&model=fraud+detector&page=1"] * 2 + ["/api/v1/experiments?status=running&model=fraud+detector&page=2"]


class StoppedSink:
    """Lists one running experiment, but assignment answers that it stopped (it did, after the list was read)."""

    def __init__(self, experiment):
        self.listed = [ExperimentOut(selectors.experiment_get(key=experiment.key)).data]
        self.reads = 0

    def running_experiments(self, kind, name):
        self.reads += 1
        return self.listed if self.reads == 1 else []

    def assign(self, key, unit_ids):
        raise NotRunning(f"Experiment {key} is stopped")


def test_an_experiment_whose_assignment_is_refused_is_dropped_and_its_units_served_the_runs_version(alice, fraud):
    sink = StoppedSink(start(design(alice), alice))
    said = []
    router = Experiments(sink, kind="model", name="fraud-detector", version=1, unit_prefix="card-", seed=1, refresh_every=None, say=said.append)

    first = router.serve(np.array([1, 2, 3]), np.array([10.0, 11.0, 12.0]))
    second = router.serve(np.array([4]), np.array([13.0]))

    assert first.versions.tolist() == [1, 1, 1] and first.outcomes == [] and first.events == 0
    assert second.versions.tolist() == [1] and sink.reads == 2  # read again before the next batch
    assert said[-1] == "Experiment fraud-ab no longer runs (Experiment fraud-ab is stopped): its units get v1 again."


def in_thread(action):
    """Run `action` in a thread with its own database connection; the thread's exception, if any, is re-raised by join()."""
    failure = []

    def target():
        try:
            action()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            failure.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=target)
    thread.start()

    def join():
        thread.join(60)
        if failure:
            raise failure[0]

    return join


def wait_for(condition, what: str, deadline: float = 30.0) -> None:
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_an_experiment_started_and_stopped_during_a_live_run_is_served_in_between(live_server, alice, fraud):
    experiment = design(alice)
    moments = {}

    def operator():
        wait_for(lambda: Event.objects.count() >= 300, "the first events")
        moments["started"] = start(experiment, alice).started_at
        wait_for(lambda: Event.objects.filter(model_version__version=2).count() >= 200, "events of B")
        moments["stopped"] = services.experiment_stop(experiment=Experiment.objects.get(pk=experiment.pk), reason="enough", actor=alice).stopped_at

    join = in_thread(operator)
    out = simulate("simulate_traffic", "--model", "fraud-detector", "--version", "1", "--events", "2000", "--rate", "200", "--ab-refresh", "0.3",
                   "--drift-at", "none", "--seed", "8", "--url", live_server.url)
    join()

    events, exposed = served(), exposures("fraud-ab")
    before = [e for e in events if e[2] < moments["started"]]
    # A batch is built (its units assigned) a second ahead of its requests, and real time sends about one a second.
    during = [e for e in events if moments["started"] + timedelta(seconds=2.5) < e[2] < moments["stopped"]]
    after = [e for e in events if e[2] > moments["stopped"] + timedelta(seconds=2.5)]
    assert len(events) == 2000 and before and during and after
    assert {v for _, v, _ in before} == {1} and not any(u in exposed and exposed[u][2] <= t for u, _, t in before)
    assert all(u in exposed and v == exposed[u][1] for u, v, _ in during)  # every unit assigned, served by its variant
    assert {v for _, v, _ in after} == {1}
    assert "Serving experiment fraud-ab: A v1 (50 %), B v2 (50 %); outcomes conversion, revenue with the newest version better by +5 points and +10 %.\n" in out
    # on a line of its own, below the progress bar; seen by the next read of the running tests, or by the assignment's 409 (with its reason)
    # when a batch is built before that read
    assert re.search(r"\nExperiment fraud-ab no longer runs( \([^\n]*\))?: its units get v1 again\.\n", out), out


@pytest.fixture
def summarize(live_server, alice):
    """The demo's prompts: summarize v2 in prod (claude-sonnet-4-5), v4 (claude-haiku-4-5) in dev."""
    bob = make_user("bob", "approver")
    registry_services.prompts_import(files=demo_prompts_folder(), actor=alice)
    for promotion in PromotionRequest.objects.filter(prompt__isnull=False, status="pending").order_by("id"):
        registry_services.promotion_approve(promotion_id=promotion.pk, actor=bob, comment="ok")


def test_an_llm_run_serves_a_prompt_test_whose_newest_version_is_judged_better(live_server, alice, summarize):
    start(services.experiment_create(
        key="summarize-ab", prompt="summarize", actor=alice, hypothesis="v4 is judged better", mde=0.02, baseline_std=0.15,
        variants=[{"name": "A", "version": 2, "weight": 50}, {"name": "B", "version": 4, "weight": 50}],
        primary_metric={"name": "judge_score", "kind": "mean"}, secondary_metrics=[{"name": "conversion", "kind": "proportion"}],
    ), alice)

    out = simulate("simulate_llm_traffic", "--prompt", "summarize", "--environment", "prod", "--events", "3000", "--rate", "3000",
                   "--batch", "1500", "--seed", "4", "--url", live_server.url)

    exposed = exposures("summarize-ab")
    rows = list(Event.objects.values_list("unit_id", "prompt_version__version", "llm_model", "judge_score"))
    assert len(rows) == 3000 and all(v == exposed[u][1] for u, v, _, _ in rows)
    assert {(v, m) for _, v, m, _ in rows} == {(2, "claude-sonnet-4-5"), (4, "claude-haiku-4-5")}  # B's LLM: the server's, from its version
    judge = {v: np.mean([s for _, version, _, s in rows if version == v and s is not None]) for v in (2, 4)}
    assert 0.04 < judge[4] - judge[2] < 0.12  # the median 0.84 raised by 10 %: about +0.08 on the mean
    assert set(Outcome.objects.values_list("metric", flat=True)) == {"conversion"}  # judge_score comes with the events
    assert "Serving experiment summarize-ab: A v2 (50 %), B v4 (50 %); outcomes conversion" in out

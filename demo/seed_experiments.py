"""The demo's A/B tests, run on the demo clock through the traffic streams and the services (`seed_demo`).

Four experiments, each fed by the same streams and `Experiments` router the traffic commands use, with
a sink that calls the services in this process instead of the HTTP API: a batch's units are assigned at
the time of its first request (their exposures), its events and outcomes stored when its last request
has happened. Then each is analysed as the worker would.

- sentiment-v4-routing (sentiment-classifier v3 against v4): ran two weeks, reached its planned sample,
  v4 significantly better by the fixed-horizon test; promoted, and the promotion approved: v4 is in production.
- churn-v7-offers (churn-predictor v6 against v7): running for 8 days, v7 significantly better by the
  always-valid interval before its planned sample: "promote B".
- credit-v10-limits (credit-scoring v9 against v10): running; v10's serving path loses about one unit in
  eight before assignment, so B has too few units: a sample ratio mismatch.
- summarize-v3-exec (prompt summarize v2 against v3, judge score and thumbs up from the prompt events):
  running; v3's answers are judged worse: "discard". Its requests end before today (UTC), so they take
  nothing from the prompt's daily budget that `make run`'s LLM traffic sizes on its own spend.
"""

from __future__ import annotations

import contextlib
import logging
import math
from datetime import UTC, datetime, timedelta

import numpy as np

from demo.simulation import PROFILES, profile_for
from demo.simulation_llm import SUMMARIZE
from demo.streams import LABEL_JOB_S, Experiments, Label, LlmStream, ModelStream, NotRunning, label_jobs
from demo.traffic import DEFAULT_USER, Backfill
from experiments import selectors, services
from experiments.api.serializers import ExperimentOut, RouteOut
from experiments.models import Experiment
from experiments.services.routing import route_in, route_plan_read
from mlops_site.exceptions import Conflict, NotFound
from mlops_site.roles import user_set_role
from monitoring.services import events_ingest
from monitoring.services.labels import labels_attach
from registry import selectors as registry_selectors
from registry.models import ModelVersion, PromptVersion
from registry.services import promotion_approve

SEED = 7
BATCHES_PER_DAY = 2  # exposures are stamped at their batch's first request: two a day keep the daily series smooth


class LocalSink:
    """The traffic streams' sink for the seed: the services in this process, as `actor`, on the demo clock."""

    def __init__(self, actor, until: datetime | None = None):
        self.actor = actor
        self.until = until  # the real now: labels due later are still on their way

    def labels_arrive(self, labels: list[Label]) -> int:
        """Each label when it arrived (a labelling job every LABEL_JOB_S), through the labels service on the demo clock;
        how many were stored. Ground truth never rides inside the seed's events either."""
        until = (self.until or datetime.now(UTC)).timestamp()
        return sum(labels_attach(payload={"labels": [x.payload() for x in job]}, actor=self.actor, now=datetime.fromtimestamp(at, UTC))["updated"]
                   for at, job in label_jobs(labels, every=LABEL_JOB_S, until=until))

    def post_events(self, events: list[dict]) -> dict:
        result = events_ingest(payload={"events": events}, actor=self.actor)
        return {"accepted": result.accepted, "duplicates": result.duplicates}

    def post_outcomes(self, outcomes: list[dict]) -> dict:
        result = services.outcomes_ingest(payload={"outcomes": outcomes}, actor=self.actor)
        return {"accepted": result.accepted, "duplicates": result.duplicates, "unexposed": result.unexposed}

    def assign(self, key: str, unit_ids: list[str]) -> list[dict]:
        try:
            found = services.experiment_assign(key=key, unit_ids=unit_ids, actor=self.actor)
        except (Conflict, NotFound) as exc:
            raise NotRunning(exc.message) from None
        return [{"unit_id": a.unit_id, "variant": a.variant, "version": a.version, "bucket": a.bucket} for a in found]

    def route(self, kind: str, name: str, unit_ids: list[str]) -> list[dict]:
        # From the database: the seed's one transaction defers the forgetting of a cached plan to its end.
        plan = route_plan_read(kind, name)
        return [RouteOut(route_in(plan, unit)).data for unit in unit_ids]

    def running_experiments(self, kind: str, name: str) -> list[dict]:
        subject = {"model": registry_selectors.model_get(name=name)} if kind == "model" else {"prompt": registry_selectors.prompt_get(name=name)}
        return ExperimentOut(selectors.experiment_list(status="running", **subject), many=True).data


@contextlib.contextmanager
def assignment_quiet():
    """Without Redis (`make demo`), assignment reads each plan from the database and logs it on every call (one per batch
    here), and each change of an experiment logs that no cached plan could be dropped (none was cached)."""
    log = logging.getLogger("experiments.services.assignment")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _epoch(at: datetime) -> float:
    return at.timestamp()


def _feed(stream, sink: LocalSink, clock, begin: datetime, end: datetime, total: int) -> None:
    """Send `total` requests spread over [begin, end] in batches, each assigned at its first request and stored after its last."""
    days = max((end - begin).total_seconds() / 86400, 1 / 24)
    per_batch = max(1, math.ceil(total / (days * BATCHES_PER_DAY)))
    labels = []
    for start in range(0, total, per_batch):
        stop = min(total, start + per_batch)
        first = float(stream.schedule.times(np.array([start]), np.array([0.0]))[0])
        clock.now_value = datetime.fromtimestamp(first, UTC)
        batch = stream.build(start, stop)
        clock.now_value = datetime.fromtimestamp(batch.last_ts + 1, UTC)
        sink.post_events(batch.events)
        if batch.outcomes:
            sink.post_outcomes(batch.outcomes)
        labels += batch.labels
    if labels:
        sink.labels_arrive(labels)


def _router(sink: LocalSink, clock, *, kind: str, name: str, version: int, unit_prefix: str, lift: float | None = None,
            lose: dict | None = None) -> Experiments:
    return Experiments(sink, kind=kind, name=name, version=version, unit_prefix=unit_prefix, seed=SEED, lift=lift, refresh_every=None,
                       now=lambda: clock.now_value.timestamp(), lose=lose)


def _model_test(sink, clock, alice, *, key: str, hypothesis: str, model: str, versions: tuple[int, int], begin: datetime, end: datetime,
                events: int, design: dict, lose: dict | None = None) -> Experiment:
    """Design and start the test at `begin`, then `events` requests of the model until `end` served through it."""
    clock.now_value = begin - timedelta(hours=2)
    experiment = services.experiment_create(
        key=key, hypothesis=hypothesis, model=model, actor=alice,
        variants=[{"name": "A", "version": versions[0], "weight": 50}, {"name": "B", "version": versions[1], "weight": 50}], **design,
    )
    clock.now_value = begin
    experiment = services.experiment_start(experiment=experiment, reason="Design reviewed; sample size from the calculator.", actor=alice)
    profile = PROFILES[profile_for(model)]
    router = _router(sink, clock, kind="model", name=model, version=versions[0], unit_prefix=profile.unit_prefix, lose=lose)
    stream = ModelStream(profile=profile, seed=SEED, run_id=key, schedule=Backfill(_epoch(begin), _epoch(end), events), model=model,
                         version=versions[0], experiments=router)
    _feed(stream, sink, clock, begin, end, events)
    return experiment


def _analyse(experiment: Experiment):
    analysis = services.analysis_run(analysis_id=services.analysis_request(experiment=experiment, enqueue=False).pk)
    if analysis is None or analysis.status != "done":
        raise RuntimeError(f"demo analysis of {experiment.key} did not finish: {getattr(analysis, 'error', 'claimed elsewhere')}")
    return analysis


def experiments_seed(users: dict, clock, real_now: datetime) -> None:
    """The four demo A/B tests (see the module's docstring), their traffic, outcomes and analyses."""
    alice, bob = users["alice"], users["bob"]
    sink = LocalSink(user_set_role(username=DEFAULT_USER, role="editor"), until=real_now)
    # A finished test: two weeks after v4 was registered, promoted, approved the same day.
    v4 = ModelVersion.objects.get(model__name="sentiment-classifier", version=4)
    begin = v4.created_at + timedelta(days=3)
    finished = _model_test(
        sink, clock, alice, key="sentiment-v4-routing", model="sentiment-classifier", versions=(3, 4), begin=begin,
        end=begin + timedelta(days=14), events=10_000,
        hypothesis="v4 flags angry tickets earlier, so more of them reach a senior agent in time: the share of tickets rated "
                   "'good' rises by 4 points (60 % today), and fewer are reopened.",
        design={"primary_metric": {"name": "csat_good", "kind": "proportion"},
                "secondary_metrics": [{"name": "reopened", "kind": "proportion", "direction": "decrease"}],
                "mde": 0.04, "baseline_rate": 0.6},
    )
    clock.now_value = begin + timedelta(days=14)
    finished = services.experiment_stop(experiment=finished, reason="Planned sample size reached after two weeks.", actor=alice)
    _analyse(finished)
    clock.advance(hours=4)
    decided = services.experiment_decide(experiment=finished, decision="promote", variant="B", actor=alice,
                                         reason="CSAT up by the fixed-horizon test, reopened tickets down, guardrails clean.")
    clock.advance(hours=5)
    promotion_approve(promotion_id=decided.promotion_id, actor=bob, comment="A/B result on the gate card; approved.")

    # A running test with a clear winner by the always-valid interval.
    running = _model_test(
        sink, clock, alice, key="churn-v7-offers", model="churn-predictor", versions=(6, 7), begin=real_now - timedelta(days=8),
        end=real_now - timedelta(minutes=10), events=14_000,
        hypothesis="v7 ranks the customers about to leave better, so retention offers reach them: 30-day retention rises by "
                   "2 points (70 % today) and revenue per customer does not fall.",
        design={"primary_metric": {"name": "retained_30d", "kind": "proportion"},
                "secondary_metrics": [{"name": "revenue", "kind": "mean"}], "mde": 0.02, "baseline_rate": 0.7},
    )
    # A running test whose B arm loses units before assignment: a sample ratio mismatch.
    mismatched = _model_test(
        sink, clock, alice, key="credit-v10-limits", model="credit-scoring", versions=(9, 10), begin=real_now - timedelta(days=6),
        end=real_now - timedelta(minutes=10), events=10_000, lose={"credit-v10-limits": ("B", 0.12)},
        hypothesis="v10 approves more applicants who repay: repaid loans per applicant rise by 3 points (85 % today).",
        design={"primary_metric": {"name": "loan_repaid", "kind": "proportion"}, "mde": 0.03, "baseline_rate": 0.85},
    )
    prompt_test = _prompt_test(sink, clock, alice, real_now)
    clock.now_value = real_now
    for experiment in (running, mismatched, prompt_test):
        _analyse(experiment)


def _prompt_test(sink, clock, alice, real_now: datetime) -> Experiment:
    """summarize v2 (prod) against v3 (the tighter executive summary, rolled back from prod), judged worse."""
    begin = real_now - timedelta(days=5)
    today = real_now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    end = today - timedelta(minutes=1)
    clock.now_value = begin - timedelta(hours=2)
    experiment = services.experiment_create(
        key="summarize-v3-exec", prompt="summarize", actor=alice,
        hypothesis="v3's tighter executive summaries are judged at least as good as v2's, by the LLM judge and by readers' thumbs.",
        variants=[{"name": "A", "version": 2, "weight": 50}, {"name": "B", "version": 3, "weight": 50}],
        primary_metric={"name": "judge_score", "kind": "mean"}, secondary_metrics=[{"name": "thumbs_up", "kind": "mean"}],
        mde=0.01, baseline_std=0.15,
    )
    clock.now_value = begin
    experiment = services.experiment_start(experiment=experiment, reason="Settle the judge-score question before moving v3 to prod again.",
                                           actor=alice)
    llm_model = PromptVersion.objects.get(prompt__name="summarize", version=2).llm_model
    router = _router(sink, clock, kind="prompt", name="summarize", version=2, unit_prefix=SUMMARIZE.unit_prefix, lift=-0.10)
    events = 8_000
    stream = LlmStream(profile=SUMMARIZE, seed=SEED, run_id="summarize-v3-exec", schedule=Backfill(_epoch(begin), _epoch(end), events),
                       prompt="summarize", version=2, llm_model=llm_model, experiments=router)
    _feed(stream, sink, clock, begin, end, events)
    return experiment

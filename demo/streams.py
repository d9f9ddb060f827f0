"""What a traffic run sends, batch by batch: the events of a model's requests (ModelStream) or of a prompt's
(LlmStream), each served by the version its unit's A/B test assigned, and the outcomes those units convert to.
No Django.

Shared by `simulate_traffic` and `simulate_llm_traffic`, which post to the HTTP API, and by the demo seed,
which calls the services in-process on a simulated clock: both hand the streams a sink with the same five
operations (`Sink`).

Canary rollouts: a stream given `Routes` asks `GET /api/v1/route` which version serves each unit (the answers kept a
few seconds), sends each event from that version, mirrors the shadow stage's requests to the candidate as shadow
events, and may inject errors or cost into the candidate's events only (the traffic commands' --candidate-* switches).

Experiments: for the model or prompt it simulates, a run serves the running experiments of that subject
(`Experiments`). Each batch's units are assigned in one call per experiment (its exposures), before the
batch's events happen; each event then carries the version of its unit's variant, and each unit's outcome
of every outcome metric of the experiment is sent once, at its first request, with the true effect of
simulation_ab.py. A unit belongs to one experiment of its subject at a time (two tests of one model cannot
both serve the same request): a new unit goes to one of them by its number, and stays there while that
one runs. The running experiments are read again every `refresh_every` seconds, so a test started
during a live run is served from then on, and one stopped (assignment answers 409) is dropped at once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import numpy as np

from experiments import stats

from .simulation import Draws, Profile, after_point, growth, label_delays, simulate, unit_numbers
from .simulation_ab import AbTest, LossDraws, UnitDraws, ab_test, lift_of, outcome_values, quality_shift
from .simulation_llm import LlmDraws, LlmProfile, simulate_llm

MAX_BATCH = 10_000  # the API's limit per request (events, unit ids, outcomes)
LABEL_JOB_S = 600.0  # simulated history: labels arrive as a labelling job sends them, every 10 minutes


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def unit_ids(prefix: str, units) -> list[str]:
    """The unit ids events and assignments carry: the profile's prefix and the unit's number."""
    return [f"{prefix}{u:06d}" for u in units]


class NotRunning(Exception):
    """Assignment refused: the experiment stopped (or is gone) since it was read."""


class Sink(Protocol):
    """Where a run's batches go: the HTTP API (traffic.Api) or, for the demo seed, the services in this process."""

    def post_events(self, events: list[dict]) -> dict: ...

    def post_outcomes(self, outcomes: list[dict]) -> dict: ...

    def assign(self, key: str, unit_ids: list[str]) -> list[dict]:
        """[{"unit_id", "variant", "version", "bucket"}] in the order asked; NotRunning when the experiment does not run."""
        ...

    def running_experiments(self, kind: str, name: str) -> list[dict]:
        """The running experiments of model or prompt `name`, shaped as `GET /api/v1/experiments` lists them."""
        ...

    def route(self, kind: str, name: str, unit_ids: list[str]) -> list[dict]:
        """Which version serves each unit now, in the order asked, each shaped as `GET /api/v1/route` answers:
        {"version", "stage", "rollout", "shadow", "bucket"}."""
        ...


@dataclass(frozen=True)
class Label:
    """A ground-truth label that arrives `arrives` (epoch seconds) after the event it belongs to was served."""

    arrives: float
    event_id: str
    label: int

    def payload(self) -> dict:
        return {"event_id": self.event_id, "label": self.label}


def label_jobs(labels: list[Label], *, every: float, until: float) -> list[tuple[float, list[Label]]]:
    """The labels that have arrived by `until`, as a labelling job sends them: every `every` seconds (on whole multiples
    since the epoch), what arrived since its last run; [(the job's time, capped at `until`, its labels)] in time order."""
    jobs: dict[float, list[Label]] = {}
    for label in sorted(labels, key=lambda x: x.arrives):
        if label.arrives <= until:
            jobs.setdefault(min(math.ceil(label.arrives / every) * every, until), []).append(label)
    return sorted(jobs.items())


@dataclass(frozen=True)
class Batch:
    events: list[dict]
    last_ts: float  # the time of the last event: real time sends the batch then
    errors: int
    changed: np.ndarray  # bool per event: after the drift or change point
    counts: dict[str, int] = field(default_factory=dict)
    outcomes: list[dict] = field(default_factory=list)  # to POST /api/v1/outcomes after the events
    labels: list[Label] = field(default_factory=list)  # to POST /api/v1/labels once each has arrived, never inside the events


@dataclass(frozen=True)
class Served:
    """Which version serves each event of a batch, with the share of the lift its arm gets, and the outcomes to send."""

    versions: np.ndarray  # int per event
    effect: np.ndarray  # float per event: 0 outside an experiment
    outcomes: list[dict]
    events: int  # events served by an experiment


@dataclass
class ArmTally:
    events: int = 0
    units: set = field(default_factory=set)


class Experiments:
    """The running experiments of one model or prompt, as a traffic run serves them (see the module's docstring).

    `version`: the version that serves units outside any experiment. `lift`: the newest version's true effect
    (None: simulation_ab.DEFAULT_LIFT). `refresh_every`: seconds between two reads of the running experiments
    (None: read once). `now`: the time assignments happen at (the demo seed's clock). `lose`: {key: (variant,
    share)}, a share of that variant's units never reaches assignment and is served by the control's version
    unexposed: the demo's sample ratio mismatch. `say`: where a line goes when an experiment starts or stops being served.
    """

    def __init__(self, sink: Sink, *, kind: str, name: str, version: int, unit_prefix: str, seed: int, lift: float | None = None,
                 refresh_every: float | None = 30.0, now: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic,
                 lose: dict[str, tuple[str, float]] | None = None, say: Callable[[str], None] = lambda line: None):
        self.sink, self.kind, self.name, self.version, self.prefix, self.seed = sink, kind, name, version, unit_prefix, seed
        self.lift, self.refresh_every, self.now, self.monotonic, self.lose, self.say = lift, refresh_every, now, monotonic, lose or {}, say
        self.tests: dict[str, AbTest] = {}
        self.read_at = -math.inf
        self.home: dict[int, str] = {}  # unit -> the experiment serving it
        self.sent: set[tuple[str, int]] = set()  # (experiment, unit) whose outcomes were sent
        self.tally: dict[str, dict[str, ArmTally]] = {}
        self.outcomes_sent: Counter[str] = Counter()
        self.arm_order: dict[str, list[str]] = {}
        self._draws: dict[tuple[str, str], UnitDraws] = {}
        self._loss: dict[str, LossDraws] = {}

    # -- which experiments run ------------------------------------------------------------------------------------

    def refresh(self) -> list[AbTest]:
        """Read the running experiments again; say which start and stop being served."""
        found = {t.key: t for t in (ab_test(e) for e in self.sink.running_experiments(self.kind, self.name))}
        for key in sorted(set(found) - set(self.tests)):
            test = found[key]
            arms = ", ".join(f"{a.name} v{a.version} ({a.weight:g} %)" for a in test.arms)
            self.say(f"Serving experiment {key}: {arms}; " + (
                f"outcomes {', '.join(m.name for m in test.metrics)} with the newest version better by {self._lift_text(test)}." if test.metrics
                else "no outcome metric to send (its metrics come from the events)."))
        for key in sorted(set(self.tests) - set(found)):
            self.say(f"Experiment {key} no longer runs: its units get v{self.version} again.")
        self.tests = dict(sorted(found.items()))
        self.arm_order.update({key: [a.name for a in test.arms] for key, test in found.items()})
        self.read_at = self.monotonic()
        return list(self.tests.values())

    def _lift_text(self, test: AbTest) -> str:
        kinds = dict.fromkeys(m.kind for m in test.metrics)
        return " and ".join(f"{lift_of(k, self.lift) * 100:+g} points" if k == "proportion" else f"{lift_of(k, self.lift) * 100:+g} %" for k in kinds)

    def _drop(self, key: str, reason: str) -> None:
        self.tests.pop(key, None)
        self.read_at = -math.inf  # read them again before the next batch
        self.say(f"Experiment {key} no longer runs ({reason}): its units get v{self.version} again.")

    # -- serving one batch --------------------------------------------------------------------------------------------

    def serve(self, units: np.ndarray, ts: np.ndarray) -> Served:
        """Assign the batch's units (one call per experiment, up to MAX_BATCH units each) and say who serves each event."""
        if self.refresh_every is not None and self.monotonic() - self.read_at >= self.refresh_every or self.read_at == -math.inf:
            self.refresh()
        n = len(units)
        versions = np.full(n, self.version, dtype=np.int64)
        effect = np.zeros(n)
        if not self.tests:
            return Served(versions, effect, [], 0)
        keys = list(self.tests)
        distinct, first = np.unique(units, return_index=True)
        groups: dict[str, list[int]] = {}
        for u in distinct.tolist():
            key = self.home.get(u)
            if key not in self.tests:
                key = self.home[u] = keys[u % len(keys)]
            groups.setdefault(key, []).append(u)
        first_ts = dict(zip(distinct.tolist(), ts[first].tolist(), strict=True))
        arm_of: dict[int, tuple[int, float]] = {}  # unit -> (version, effect)
        outcomes: list[dict] = []
        served_units: dict[int, tuple[str, str]] = {}  # unit -> (experiment, variant) for the tally
        for key, members in groups.items():
            test = self.tests.get(key)
            if test is None:
                continue
            exposed, lost = self._split_lost(test, members)
            for u in lost:
                control = test.arms[0]
                arm_of[u] = (control.version, control.effect)
            assigned: dict[int, str] = {}
            try:
                for start in range(0, len(exposed), MAX_BATCH):
                    chunk = exposed[start : start + MAX_BATCH]
                    for u, answer in zip(chunk, self.sink.assign(key, unit_ids(self.prefix, chunk)), strict=True):
                        assigned[u] = answer["variant"]
            except NotRunning as exc:
                self._drop(key, str(exc))
                continue
            assigned_at = self.now()
            for u, variant in assigned.items():
                arm = test.arm(variant)
                arm_of[u] = (arm.version, arm.effect)
                served_units[u] = (key, variant)
            outcomes += self._outcomes(test, [u for u in assigned if (key, u) not in self.sent], assigned, first_ts, assigned_at)
        in_test = 0
        tallies = {}
        for j, u in enumerate(units.tolist()):
            found = arm_of.get(u)
            if found is None:
                continue
            versions[j], effect[j] = found
            if u in served_units:
                in_test += 1
                key, variant = served_units[u]
                tally = tallies.get((key, variant))
                if tally is None:
                    tally = tallies[(key, variant)] = self.tally.setdefault(key, {}).setdefault(variant, ArmTally())
                tally.events += 1
                tally.units.add(u)
        return Served(versions, effect, outcomes, in_test)

    def _split_lost(self, test: AbTest, members: list[int]) -> tuple[list[int], list[int]]:
        """(units to assign, units a lossy arm loses before assignment)."""
        if test.key not in self.lose:
            return members, []
        variant, share = self.lose[test.key]
        names = [a.name for a in test.arms]
        # Where the server will put each unit, computed here exactly as it does (stats.bucket on "<key>:<unit id>").
        index = stats.variant_indices(stats.buckets(test.key, unit_ids(self.prefix, members)), test.weights)
        draws = self._loss.setdefault(test.key, LossDraws(self.seed, test.key)).take(np.array(members))["lost"]
        lost = (np.array(names)[index] == variant) & (draws < share)
        return [u for u, gone in zip(members, lost.tolist(), strict=True) if not gone], [u for u, gone in zip(members, lost.tolist(), strict=True) if gone]

    def _outcomes(self, test: AbTest, fresh: list[int], assigned: dict[int, str], first_ts: dict[int, float], assigned_at: float) -> list[dict]:
        """Each fresh unit's outcomes of the experiment's outcome metrics, stamped at its first request of the batch
        (never before its assignment: an outcome counts from the exposure on)."""
        if not fresh or not test.metrics:
            self.sent.update((test.key, u) for u in fresh)
            return []
        members = np.array(fresh, dtype=np.int64)
        effect = np.array([test.arm(assigned[u]).effect for u in fresh])
        ids = unit_ids(self.prefix, fresh)
        out = []
        for metric in test.metrics:
            draws = self._draws.setdefault((test.key, metric.name), UnitDraws(self.seed, test.key, metric.name)).take(members)
            values = outcome_values(metric, effect, draws, lift_of(metric.kind, self.lift))
            for i in np.flatnonzero(~np.isnan(values)).tolist():
                u = fresh[i]
                digest = hashlib.sha256(f"{test.key}:{metric.name}:{u}".encode()).hexdigest()[:24]
                out.append({"outcome_id": f"ab-{self.seed}-{digest}", "unit_id": ids[i], "metric": metric.name, "value": float(values[i]),
                            "timestamp": iso(max(first_ts[u], assigned_at))})
            self.outcomes_sent[test.key] += int((~np.isnan(values)).sum())
        self.sent.update((test.key, u) for u in fresh)
        return out

    def quality(self, effect: np.ndarray, judge_median: float) -> np.ndarray:
        """LLM quality shift of each event: its arm's share of the lift on the judge score (a mean: relative)."""
        return effect * quality_shift(lift_of("mean", self.lift), judge_median)

    def summary(self) -> str:
        """What the run served, per experiment and variant: '' when no experiment served anything."""
        parts = []
        for key, arms in self.tally.items():
            order = self.arm_order.get(key, [])
            ranked = sorted(arms.items(), key=lambda item: (order.index(item[0]) if item[0] in order else len(order), item[0]))
            served = ", ".join(f"{name} {t.events:,} events of {len(t.units):,} units" for name, t in ranked)
            parts.append(f"experiment {key}: {served}, {self.outcomes_sent[key]:,} outcomes")
        return "; ".join(parts)


# --- canary rollouts ------------------------------------------------------------------------------------------------------

CANARY = "canary"  # the route answer's stage when the rollout's candidate serves the unit
# Fields a failed request does not report (streams.model_events / llm_events leave them out of an error's event).
_FAILED_DROPS = ("prediction", "input_tokens", "cached_tokens", "output_tokens", "ttft_ms", "guardrail_triggered")
_TOKEN_FIELDS = ("input_tokens", "cached_tokens", "output_tokens")


@dataclass
class RouteTally:
    candidate: int = 0  # events the candidate served
    shadow: int = 0  # requests mirrored to the candidate
    injected_errors: int = 0
    lookups: int = 0  # route answers asked for


class Routes:
    """Which version serves each request of one model or prompt, as serving code asks it: `GET /api/v1/route` per unit
    (`Sink.route`, once per batch for the units without a fresh answer), each answer kept `ttl` seconds (the server's own
    plan is cached 5 s; None: asked again every batch).

    An event takes the version of its unit's answer. In a shadow stage the answer also names the candidate: the request
    is mirrored to it, a second event of the candidate's version with `"shadow": true` (no feedback: nobody saw it).
    Units an A/B test serves (an event whose version is not `version`, the run's) keep their variant.

    Faults injected into the candidate's events only (its served and mirrored requests), never the baseline's:
    `error_rate`, the share of them that fail (on top of the simulated errors); `cost_factor`, their tokens (input,
    cached, output) times X, so the server prices them X times dearer.
    """

    def __init__(self, sink: Sink, *, kind: str, name: str, version: int, seed: int, ttl: float | None = 5.0, error_rate: float = 0.0,
                 cost_factor: float = 1.0, monotonic: Callable[[], float] = time.monotonic, say: Callable[[str], None] = lambda line: None):
        self.sink, self.kind, self.name, self.version, self.seed, self.ttl = sink, kind, name, version, seed, ttl
        self.error_rate, self.cost_factor, self.monotonic, self.say = error_rate, cost_factor, monotonic, say
        self.answers: dict[str, tuple[float, dict]] = {}
        self.tally = RouteTally()
        self.rollout: tuple | None = None  # the rollout the last answers named: (id, stage, share, status)

    def _answers(self, unit_ids: list[str]) -> dict[str, dict]:
        """The answer of each unit: those kept less than `ttl` seconds, the others asked for (one call for the batch)."""
        now = self.monotonic()
        if self.ttl is None:
            self.answers.clear()
        elif len(self.answers) > 100_000:  # a live run meets many units over days: keep the memory bounded
            self.answers = {u: kept for u, kept in self.answers.items() if now - kept[0] < self.ttl}
        wanted = [u for u in dict.fromkeys(unit_ids) if u not in self.answers or (self.ttl is not None and now - self.answers[u][0] >= self.ttl)]
        if wanted:
            found = self.sink.route(self.kind, self.name, wanted)
            self.answers.update((u, (now, answer)) for u, answer in zip(wanted, found, strict=True))
            self.tally.lookups += len(wanted)
            self._follow(found[-1])
        return {u: self.answers[u][1] for u in unit_ids}

    def _follow(self, answer: dict) -> None:
        """Say when the route's rollout changes (a new stage, a pause, its end): a live run's log follows the canary."""
        rollout = answer.get("rollout")
        state = None if rollout is None else (rollout["id"], rollout["stage"], rollout["traffic_percent"], rollout["status"])
        if state == self.rollout:
            return
        if state is None:
            self.say(f"The route names no canary now: v{answer['version']} serves every unit of {self.name}.")
        else:
            self.say(f"Canary of {self.name} v{rollout['candidate']} against v{rollout['baseline']}: stage {rollout['stage']} "
                     f"({rollout['traffic_percent']:g} %), {rollout['status']}.")
        self.rollout = state

    def apply(self, events: list[dict], start: int) -> list[dict]:
        """The batch's events each from its unit's routed version, the mirrored ones added after them, faults injected.
        `start`: the batch's first event index (its draws of the injected faults)."""
        rng = np.random.default_rng([self.seed, 13, start])
        draws = rng.random(2 * len(events))
        answers = self._answers([e["unit_id"] for e in events if e["version"] == self.version])
        out, mirrored = [], []
        for j, event in enumerate(events):
            if event["version"] != self.version:
                out.append(event)
                continue
            found = answers[event["unit_id"]]
            if found["version"] != event["version"]:
                event["version"] = found["version"]
                event.pop("llm_model", None)  # the run's version's LLM: the server prices another version's event with its own
            if found["stage"] == CANARY:
                self.tally.candidate += 1
                self._inject(event, draws[2 * j])
            out.append(event)
            if found.get("shadow"):
                mirror = {key: value for key, value in event.items() if key not in ("feedback", "llm_model")}
                mirror.update(event_id=f"{event['event_id']}-shadow", version=found["shadow"]["version"], shadow=True)
                self.tally.shadow += 1
                self._inject(mirror, draws[2 * j + 1])
                mirrored.append(mirror)
        return out + mirrored

    def _inject(self, event: dict, draw: float) -> None:
        if not event["error"] and draw < self.error_rate:
            event["error"] = True
            for key in _FAILED_DROPS:
                event.pop(key, None)
            self.tally.injected_errors += 1
        if self.cost_factor != 1 and not event["error"]:
            for key in _TOKEN_FIELDS:
                if key in event:
                    event[key] = int(round(event[key] * self.cost_factor))


# --- the streams ---------------------------------------------------------------------------------------------------------


class ModelStream:
    """A model's requests: features, prediction, label, latency and error from simulation.py, with a drift from a
    point and a latency that grows; each event served by `version` or by its unit's experiment variant."""

    def __init__(self, *, profile: Profile, seed: int, run_id: str, schedule, model: str, version: int, experiments: Experiments | None = None,
                 drift_index: int | None = None, drift_ts: float | None = None, drift_size: float = 0.0, drift_features=frozenset(),
                 latency_growth: float = 1.0, latency_start: float = 1.0, routes: Routes | None = None, label_delay: float = 3600.0):
        self.profile, self.schedule, self.model, self.version, self.experiments = profile, schedule, model, version, experiments
        self.routes = routes
        self.draws = Draws(profile, seed, stream=0)
        self.prefix = f"sim-{seed}-{run_id}-"
        self.drift = (drift_index, drift_ts, drift_size, set(drift_features))
        self.latency = (latency_growth, latency_start)
        self.label_delay = label_delay  # seconds, the shortest: see simulation.label_delays

    def build(self, start: int, stop: int) -> Batch:
        d = self.draws.rows(start, stop)
        index = np.arange(start, stop)
        ts = self.schedule.times(index, d["jitter"])
        drift_index, drift_ts, size, features = self.drift
        drifted = after_point(index, ts, drift_index, drift_ts)
        begin, end = self.schedule.bounds
        slower = growth(ts, begin, end, self.latency[0], initial=self.latency[1])
        rows = simulate(self.profile, d, drifted, size, features, latency_factor=slower)
        served = self.experiments.serve(rows["unit"], ts) if self.experiments else None
        versions = served.versions if served else np.full(len(ts), self.version)
        events = model_events(rows, ts, self.prefix, start, self.model, versions, self.profile)
        counts = {"in_experiments": served.events if served else 0}
        errors = int(rows["error"].sum())
        # Ground truth comes later, as it does for a real model (a chargeback, a churned customer): the labelled rows'
        # labels leave the events and arrive on their own, each after its delay.
        arrives = ts + label_delays(d["label_delay"], self.label_delay)
        labels = [Label(float(arrives[j]), f"{self.prefix}{start + j}", int(rows["label"][j])) for j in np.flatnonzero(rows["labelled"])]
        if self.routes is not None:
            events, errors = routed(self.routes, events, start, counts, errors)
        return Batch(events, float(ts[-1]), errors, drifted, counts, served.outcomes if served else [], labels)


def routed(routes: Routes, events: list[dict], start: int, counts: dict, errors: int) -> tuple[list[dict], int]:
    """The batch's events through `routes`; the batch's counts take what routing did (served by the candidate,
    mirrored, errors injected)."""
    before = dataclasses.replace(routes.tally)
    events = routes.apply(events, start)
    after = routes.tally
    counts.update(canary=after.candidate - before.candidate, shadow=after.shadow - before.shadow,
                  injected_errors=after.injected_errors - before.injected_errors)
    return events, errors + after.injected_errors - before.injected_errors


def model_events(rows: dict, ts: np.ndarray, prefix: str, start: int, model: str, versions: np.ndarray, profile: Profile) -> list[dict]:
    """The events of `POST /api/v1/events`, one per row, without labels (ModelStream sends those later)."""
    features = {name: values.tolist() for name, values in rows["features"].items()}
    names = list(features)
    prediction, error = rows["prediction"].tolist(), rows["error"].tolist()
    latency, unit, version = rows["latency_ms"].tolist(), rows["unit"].tolist(), versions.tolist()
    events = []
    for j in range(len(ts)):
        event = {
            "event_id": f"{prefix}{start + j}",
            "model": model,
            "version": version[j],
            "timestamp": iso(float(ts[j])),
            "latency_ms": latency[j],
            "error": error[j],
            "unit_id": f"{profile.unit_prefix}{unit[j]:06d}",
            "features": {name: features[name][j] for name in names},
        }
        if not error[j]:
            event["prediction"] = prediction[j]
        events.append(event)
    return events


class LlmStream:
    """A prompt's requests: tokens, latency, feedback and judge scores from simulation_llm.py, with answers growing from a
    point; each served by `version` or by its unit's experiment variant, whose quality follows the variant's share of the lift."""

    def __init__(self, *, profile: LlmProfile, seed: int, run_id: str, schedule, prompt: str, version: int, llm_model: str,
                 experiments: Experiments | None = None, change_index: int | None = None, change_ts: float | None = None, output_growth: float = 1.0,
                 routes: Routes | None = None):
        self.profile, self.schedule, self.prompt, self.version, self.llm_model = profile, schedule, prompt, version, llm_model
        self.routes = routes
        self.experiments = experiments
        self.draws = LlmDraws(seed, stream=0)
        self.prefix = f"llm-{seed}-{run_id}-"
        self.change = (change_index, change_ts, output_growth)

    def build(self, start: int, stop: int) -> Batch:
        d = self.draws.rows(start, stop)
        index = np.arange(start, stop)
        ts = self.schedule.times(index, d["jitter"])
        change_index, change_ts, output_growth = self.change
        changed = after_point(index, ts, change_index, change_ts)
        served = None
        shift: np.ndarray | float = 0.0
        if self.experiments:
            served = self.experiments.serve(unit_numbers(self.profile.units, d["unit"]), ts)
            shift = self.experiments.quality(served.effect, self.profile.judge_median)
        rows = simulate_llm(self.profile, d, changed, output_growth, quality_shift=shift)
        versions = served.versions if served else np.full(len(ts), self.version)
        counts = {"feedback": int((rows["feedback"] != 0).sum()), "judged": int((~np.isnan(rows["judge_score"])).sum()),
                  "guardrail": int(rows["guardrail"].sum()), "in_experiments": served.events if served else 0}
        events = llm_events(rows, ts, self.prefix, start, self.prompt, versions, self.version, self.llm_model, self.profile)
        errors = int(rows["error"].sum())
        if self.routes is not None:
            events, errors = routed(self.routes, events, start, counts, errors)
        return Batch(events, float(ts[-1]), errors, changed, counts, served.outcomes if served else [])


def llm_events(rows: dict, ts: np.ndarray, prefix: str, start: int, prompt: str, versions: np.ndarray, version: int, llm_model: str,
               profile: LlmProfile) -> list[dict]:
    """The events of `POST /api/v1/events`, one per row. Events of the run's own version name `llm_model`; those an
    experiment serves from another version name none, so the server prices them with that version's LLM."""
    columns = {key: rows[key].tolist() for key in ("error", "input_tokens", "cached_tokens", "output_tokens", "ttft_ms", "latency_ms",
                                                   "guardrail", "feedback", "judge_score", "faithfulness", "unit")}
    error, judge, faithfulness, feedback = columns["error"], columns["judge_score"], columns["faithfulness"], columns["feedback"]
    served_by = versions.tolist()
    events = []
    for j in range(len(ts)):
        event = {
            "event_id": f"{prefix}{start + j}",
            "prompt": prompt,
            "version": served_by[j],
            "timestamp": iso(float(ts[j])),
            "latency_ms": columns["latency_ms"][j],
            "error": error[j],
            "unit_id": f"{profile.unit_prefix}{columns['unit'][j]:06d}",
        }
        if served_by[j] == version:
            event["llm_model"] = llm_model
        if not error[j]:
            event.update(
                input_tokens=columns["input_tokens"][j], cached_tokens=columns["cached_tokens"][j], output_tokens=columns["output_tokens"][j],
                ttft_ms=columns["ttft_ms"][j], guardrail_triggered=columns["guardrail"][j],
            )
        if feedback[j]:
            event["feedback"] = feedback[j]
        if judge[j] == judge[j]:  # not NaN: sampled for the judge
            event["judge_score"] = judge[j]
            event["faithfulness"] = faithfulness[j]
        events.append(event)
    return events

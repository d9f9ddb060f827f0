"""What the units of a demo A/B test do: which arm serves the better version, by how much, and what each unit converts to. No Django.

The true effect goes to the arm that serves the newest version: `lift` points on a proportion metric
(10 % -> 15 % with 0.05), a factor (1 + lift) on a mean metric, always in the metric's direction (a
"decrease" metric gets lower). The arm of the oldest version gets none; arms in between get a share by
the order of their versions. On the quality of LLM answers (judge score and thumbs up, the metrics the
analysis reads from monitoring events) the same relative lift moves the median judge score by the factor
(1 + lift), on the logit scale simulation_llm.py shifts quality on.

A unit's fate in a metric is drawn once: its random numbers come from the block seeded by (seed,
experiment and metric, unit // BLOCK), whatever batch the unit shows up in, and its arm only moves the
threshold it is compared with. So a seed gives the same outcomes, and a unit converts (or not) once
however many requests it makes.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .simulation import BLOCK, BlockDraws
from .simulation_llm import logit

# The metrics the experiments app reads from the monitoring events of each variant's version
# (experiments.models.EventMetric): never sent as outcomes.
EVENT_METRICS = frozenset({"judge_score", "thumbs_up", "latency_ms", "cost_usd"})
PROPORTION, MEAN = "proportion", "mean"
INCREASE, DECREASE = "increase", "decrease"
# A clear effect by default: a test sized for 2 points on a 10 % rate shows it well before its planned sample.
DEFAULT_LIFT = {PROPORTION: 0.05, MEAN: 0.10}
DEFAULT_RATE = 0.10  # a proportion's control rate when the design names no baseline_rate
PURCHASE_SHARE = 0.3  # a mean metric (revenue): the units with a value; the others add 0
AMOUNT_MEDIAN = 30.0
AMOUNT_SIGMA = 0.8


@dataclass(frozen=True)
class AbArm:
    name: str
    version: int
    weight: float  # percent
    effect: float  # the share of the lift this arm's version gets: 0 for the oldest, 1 for the newest


@dataclass(frozen=True)
class AbMetric:
    name: str
    kind: str  # proportion | mean
    direction: str  # increase | decrease
    base: float  # proportions: the control's rate


@dataclass(frozen=True)
class AbTest:
    """A running experiment as the traffic serves it: its arms in order (the control first) and its outcome metrics."""

    key: str
    arms: tuple[AbArm, ...]
    metrics: tuple[AbMetric, ...]  # outcome metrics, the primary first; event metrics come with the events

    @property
    def weights(self) -> list[float]:
        return [a.weight for a in self.arms]

    def arm(self, name: str) -> AbArm:
        return next(a for a in self.arms if a.name == name)


def version_effects(versions: Sequence[int]) -> list[float]:
    """Each arm's share of the lift: 0 for the oldest version, 1 for the newest, evenly by rank in between."""
    distinct = sorted(set(versions))
    if len(distinct) < 2:
        return [0.0] * len(versions)
    rank = {v: i / (len(distinct) - 1) for i, v in enumerate(distinct)}
    return [rank[v] for v in versions]


def ab_test(experiment: dict) -> AbTest:
    """An experiment as `GET /api/v1/experiments` answers it (ExperimentOut), as the traffic needs it."""
    variants = sorted(experiment["variants"], key=lambda v: v["position"])
    effects = version_effects([int(v["version"]) for v in variants])
    arms = tuple(AbArm(name=v["name"], version=int(v["version"]), weight=float(v["weight"]), effect=e) for v, e in zip(variants, effects, strict=True))
    primary = experiment["primary_metric"]
    baseline = experiment.get("baseline_rate")
    metrics = []
    for i, m in enumerate([primary, *(experiment.get("secondary_metrics") or [])]):
        if m["name"] in EVENT_METRICS:
            continue
        base = float(baseline) if i == 0 and baseline is not None and 0 < float(baseline) < 1 else DEFAULT_RATE
        metrics.append(AbMetric(name=m["name"], kind=m["kind"], direction=m.get("direction") or INCREASE, base=base))
    return AbTest(key=experiment["key"], arms=arms, metrics=tuple(metrics))


def lift_of(kind: str, lift: float | None) -> float:
    """The lift the run simulates on a metric of this kind: the one given, else DEFAULT_LIFT's."""
    return DEFAULT_LIFT[kind] if lift is None else lift


class UnitDraws(BlockDraws):
    """The random numbers of units in one metric of one experiment: unit u is row u of the blocks seeded (seed, stream, u // BLOCK)."""

    def __init__(self, seed: int, key: str, metric: str):
        super().__init__(seed, stream=zlib.crc32(f"{key}:{metric}".encode()))

    def _draw(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {"fate": rng.random(BLOCK), "amount": rng.standard_normal(BLOCK)}


def outcome_values(metric: AbMetric, effect: np.ndarray, draws: dict[str, np.ndarray], lift: float) -> np.ndarray:
    """Each unit's outcome of `metric`, NaN for none: 1.0 when it converts (proportions: the rate is the base moved by
    lift x effect in the metric's direction), or what it spends (means: the purchasing share spends a log-normal
    amount, scaled by 1 + lift x effect in the metric's direction)."""
    sign = 1.0 if metric.direction == INCREASE else -1.0
    if metric.kind == PROPORTION:
        rate = np.clip(metric.base + sign * lift * effect, 0.0, 1.0)
        return np.where(draws["fate"] < rate, 1.0, np.nan)
    amount = AMOUNT_MEDIAN * np.exp(AMOUNT_SIGMA * draws["amount"]) * np.maximum(1.0 + sign * lift * effect, 0.0)
    return np.where(draws["fate"] < PURCHASE_SHARE, np.round(amount, 2), np.nan)


class LossDraws(BlockDraws):
    """One uniform per unit of an experiment: whether a lossy arm loses it (a sample ratio mismatch on purpose)."""

    def __init__(self, seed: int, key: str):
        super().__init__(seed, stream=zlib.crc32(f"{key}:lost".encode()))

    def _draw(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {"lost": rng.random(BLOCK)}


def quality_shift(lift: float, judge_median: float) -> float:
    """The logit shift that moves the median judge score m to m x (1 + lift), kept within (0.01, 0.99)."""
    target = min(max(judge_median * (1 + lift), 0.01), 0.99)
    return logit(target) - logit(judge_median)

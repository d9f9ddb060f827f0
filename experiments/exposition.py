"""The experiments' series on `/metrics` (monitoring's scrape endpoint; registered in `apps.ExperimentsConfig.ready`).

Gauges for shares and states, as Argo Rollouts and kube-state-metrics expose them, so a dashboard can draw a canary's
traffic next to its version's error rate and latency, and alert on a rollout that stopped or rolled back:

- `mlops_rollout_traffic_share{subject,name,rollout,version}`: the candidate's share of the stage's traffic in each
  model's and prompt's newest rollout, 0 to 1 (0 in a shadow stage and after a rollback, 1 once completed);
- `mlops_rollout_status{subject,name,rollout,version,status}`: 1 for the status that rollout is in, 0 for the others;
- `mlops_experiment_traffic_share{experiment,subject,name,variant,version}`: each running A/B test's variants' configured
  weights (the split as designed; the split as assigned is the rate of the next one);
- `mlops_experiment_exposed_units_total{...same}`: the units each of those variants has been assigned so far (a counter:
  a unit is exposed once and never moves).

Two queries whatever the number of rollouts and experiments.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from . import selectors
from .models import RolloutStatus

ROLLOUT_LABELS = ["subject", "name", "rollout", "version"]
VARIANT_LABELS = ["experiment", "subject", "name", "variant", "version"]


class ExperimentsCollector(Collector):
    """The rollout and A/B families of one scrape, read from the database when `collect` runs."""

    def __init__(self, *, now=None):
        """`now` is what every collector of the scrape is given; these series are states and need none."""

    def collect(self) -> Iterator[Metric]:
        yield from self._rollouts()
        yield from self._experiments()

    def _rollouts(self) -> Iterator[Metric]:
        share = GaugeMetricFamily(
            "mlops_rollout_traffic_share",
            "The candidate's share of the traffic in each model's and prompt's newest canary rollout (0 after a rollback, 1 once completed).",
            labels=ROLLOUT_LABELS,
        )
        status = GaugeMetricFamily(
            "mlops_rollout_status", "1 for the status each model's and prompt's newest rollout is in, 0 for the others.", labels=[*ROLLOUT_LABELS, "status"]
        )
        for rollout in selectors.rollout_latest_list():
            labels = [rollout.subject_kind, rollout.subject_name, str(rollout.pk), str(rollout.candidate.version)]
            share.add_metric(labels, float(rollout.traffic_percent) / 100)
            for value in RolloutStatus.values:
                status.add_metric([*labels, value], 1.0 if rollout.status == value else 0.0)
        yield from (share, status)

    def _experiments(self) -> Iterator[Metric]:
        share = GaugeMetricFamily(
            "mlops_experiment_traffic_share", "Each running A/B test's variants: the share of units each is configured to get.", labels=VARIANT_LABELS
        )
        units = CounterMetricFamily(
            "mlops_experiment_exposed_units", "Units assigned to each variant of a running A/B test so far.", labels=VARIANT_LABELS
        )
        for variant in selectors.variant_list(running=True):
            experiment = variant.experiment
            labels = [experiment.key, experiment.subject_kind, experiment.subject_name, variant.name, str(variant.version.version)]
            share.add_metric(labels, float(variant.weight) / 100)
            units.add_metric(labels, variant.units)
        yield from (share, units)

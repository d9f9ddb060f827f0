"""Every write of the experiments app: design, start, stop and decide an experiment; assign units (their
exposures); store outcomes; request and run analyses; canary rollouts (policies, start, the controller's tick, a
person's advance / pause / resume / rollback) and the routing they serve.

Each service takes plain keyword arguments, checks the actor's role itself, runs in one transaction
and, for a change of an experiment's state, writes one audit event in the registry's log.
"""

from .analysis import analyses_schedule, analysis_request, analysis_run, analysis_time_out
from .assignment import experiment_assign, exposure_counts_rebuild
from .design import experiment_create, experiment_decide, experiment_start, experiment_stop
from .outcomes import outcomes_ingest
from .rollout_policies import rollout_policy_create, rollout_policy_default_ensure
from .rollouts import rollout_advance, rollout_pause, rollout_resume, rollout_rollback, rollout_start, rollout_tick, rollouts_tick
from .routing import route

__all__ = [
    "analyses_schedule",
    "analysis_request",
    "analysis_run",
    "analysis_time_out",
    "experiment_assign",
    "experiment_create",
    "experiment_decide",
    "experiment_start",
    "experiment_stop",
    "exposure_counts_rebuild",
    "outcomes_ingest",
    "rollout_advance",
    "rollout_pause",
    "rollout_policy_create",
    "rollout_policy_default_ensure",
    "rollout_resume",
    "rollout_rollback",
    "rollout_start",
    "rollout_tick",
    "rollouts_tick",
    "route",
]

"""Every write of the experiments app: design, start, stop and decide an experiment; assign units (their
exposures); store outcomes; request and run analyses.

Each service takes plain keyword arguments, checks the actor's role itself, runs in one transaction
and, for a change of an experiment's state, writes one audit event in the registry's log.
"""

from .analysis import analyses_schedule, analysis_request, analysis_run
from .assignment import experiment_assign, exposure_counts_rebuild
from .design import experiment_create, experiment_decide, experiment_start, experiment_stop
from .outcomes import outcomes_ingest

__all__ = [
    "analyses_schedule",
    "analysis_request",
    "analysis_run",
    "experiment_assign",
    "experiment_create",
    "experiment_decide",
    "experiment_start",
    "experiment_stop",
    "exposure_counts_rebuild",
    "outcomes_ingest",
]

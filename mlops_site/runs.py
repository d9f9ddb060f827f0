"""Ending a worker's run that ran out of time: evaluations, drift reports and analyses alike.

Each is a row with a status (pending, running, done, failed), started_at, finished_at, error and attempts,
that a worker claims with a conditional UPDATE; a row left `running` longer than its app's stale window is
claimed again (its worker died). A run that runs out of time must end there, `failed` with the reason, and
never loop: interrupted at its soft time limit (SoftTimeLimitExceeded, caught by the task), it is failed at
once, as running it again would take as long; killed at the hard limit (or losing its worker any other way)
MAX_ATTEMPTS times, it is failed instead of being claimed again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import QuerySet
from django.utils import timezone

RUNNING, FAILED = "running", "failed"  # the same values in EvaluationStatus, ReportStatus and AnalysisStatus
MAX_ATTEMPTS = 3


def _duration(seconds: float) -> str:
    return f"{seconds / 60:g} minutes" if seconds % 60 == 0 else f"{seconds:g} seconds"


def run_time_out(runs: QuerySet, *, soft_limit_s: float) -> int:
    """The run(s) interrupted at their soft time limit: failed for good, saying so. A finished run is left alone."""
    return runs.filter(status__in=(RUNNING, FAILED)).update(
        status=FAILED,
        finished_at=timezone.now(),
        error=f"Stopped after {_duration(soft_limit_s)}, its time limit (running it again would take as long).",
    )


def runs_give_up(runs: QuerySet, *, stale_after: timedelta, time_limit_s: float, now: datetime | None = None) -> int:
    """Runs left `running` past `stale_after` by a lost worker MAX_ATTEMPTS times: failed, never claimed again."""
    now = now or timezone.now()
    return runs.filter(status=RUNNING, started_at__lt=now - stale_after, attempts__gte=MAX_ATTEMPTS).update(
        status=FAILED,
        finished_at=now,
        error=f"Gave up after {MAX_ATTEMPTS} attempts: each lost its worker (killed, or past the time limit of {_duration(time_limit_s)}).",
    )

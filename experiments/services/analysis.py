"""Analyses: a row per run, claimed by a worker, filled with the results snapshot (services/results.py).

Requested by the Refresh button / `POST /api/v1/experiments/{key}/analyses`, by stopping an
experiment, and hourly by beat for every running experiment (`analyses_schedule`). A worker claims
the row with a conditional UPDATE, so a second delivery of the same message does nothing; a run
left `running` by a dead worker for more than STALE_RUN is claimed again, and the hourly schedule
re-queues rows whose message was lost (a broker outage). `manage.py analyze_experiments` runs the
same `analysis_run` synchronously.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from mlops_site.exceptions import Conflict
from mlops_site.queue import enqueue_on_commit
from mlops_site.roles import EDITOR, require_role
from mlops_site.runs import run_time_out, runs_give_up

from .. import stats
from ..models import Analysis, AnalysisStatus, Experiment, ExperimentStatus
from .results import experiment_results_compute

logger = logging.getLogger(__name__)

STALE_RUN = timedelta(minutes=10)
# A pending row older than this lost its message (the broker was down when it was queued): queued again.
LOST_AFTER = timedelta(minutes=10)


def _enqueue(analysis_id: int) -> None:
    enqueue_on_commit("experiments.tasks.analysis_compute", analysis_id)


def analysis_request(*, experiment: Experiment, actor=None, enqueue: bool = True) -> Analysis:
    """Queue an analysis of a started experiment (editors; 409 for a draft). An analysis already waiting is reused, so
    pressing Refresh twice computes once. `actor` None: the scheduler or an operator's command. `enqueue=False`:
    the caller runs it (the management command)."""
    if actor is not None:
        require_role(actor, EDITOR, "Refreshing the results")
    if experiment.status == ExperimentStatus.DRAFT:
        raise Conflict(f"Experiment {experiment.key} has not started: there is nothing to analyse.", code="experiment_not_started")
    with transaction.atomic():
        waiting = Analysis.objects.filter(experiment=experiment, status=AnalysisStatus.PENDING).order_by("-requested_at").first()
        if waiting is not None:
            return waiting
        analysis = Analysis.objects.create(experiment=experiment)
        if enqueue:
            _enqueue(analysis.pk)
    return analysis


def _claim(analysis_id: int) -> bool:
    now = timezone.now()
    _give_up(Analysis.objects.filter(pk=analysis_id), now)
    claimable = Q(status=AnalysisStatus.PENDING) | Q(status=AnalysisStatus.RUNNING, started_at__lt=now - STALE_RUN)
    return bool(Analysis.objects.filter(claimable, pk=analysis_id).update(status=AnalysisStatus.RUNNING, started_at=now, attempts=F("attempts") + 1))


def _give_up(analyses: QuerySet, now: datetime) -> int:
    """Analyses that lost their worker MAX_ATTEMPTS times (mlops_site.runs): failed instead of claimed again."""
    return runs_give_up(analyses, stale_after=STALE_RUN, time_limit_s=settings.CELERY_TASK_TIME_LIMIT, now=now)


def analysis_time_out(*, analysis_id: int) -> None:
    """An analysis interrupted at its soft time limit (the task catches it): failed for good, saying so."""
    run_time_out(Analysis.objects.filter(pk=analysis_id), soft_limit_s=settings.CELERY_TASK_SOFT_TIME_LIMIT)


def analysis_run(*, analysis_id: int) -> Analysis | None:
    """Compute one analysis (the Celery task and the command). None when another worker has it or it is finished.

    Input the statistics cannot use ends the run `failed` with the reason; a database error propagates (the task
    retries it)."""
    if not _claim(analysis_id):
        return None
    analysis = Analysis.objects.select_related("experiment").get(pk=analysis_id)
    try:
        snapshot = experiment_results_compute(analysis.experiment)
    except (stats.StatsError, ValueError, LookupError) as exc:  # the numerical core's and our own "cannot compute this"
        logger.warning("analysis %s of %s failed: %s", analysis_id, analysis.experiment.key, exc)
        Analysis.objects.filter(pk=analysis_id).update(status=AnalysisStatus.FAILED, finished_at=timezone.now(), error=str(exc)[:2000])
    else:
        Analysis.objects.filter(pk=analysis_id).update(
            status=AnalysisStatus.DONE, finished_at=timezone.now(), error="", results=snapshot.as_dict(), units_total=snapshot.units_total,
            leading_variant=snapshot.leading_variant, recommendation=snapshot.recommendation.action, significant=snapshot.significant,
            srm_flagged=snapshot.srm.flagged,
        )
    return Analysis.objects.get(pk=analysis_id)


def analyses_schedule(*, now: datetime | None = None) -> int:
    """Beat, hourly: an analysis of every running experiment, and the rows a lost message or a dead worker left behind
    queued again. Returns how many analyses were queued."""
    now = now or timezone.now()
    queued = 0
    _give_up(Analysis.objects.all(), now)
    for experiment in Experiment.objects.filter(status=ExperimentStatus.RUNNING).only("pk", "key", "status"):
        waiting = Analysis.objects.filter(experiment=experiment, status=AnalysisStatus.PENDING).exists()
        if not waiting:
            with transaction.atomic():
                _enqueue(Analysis.objects.create(experiment=experiment).pk)
            queued += 1
    stuck = Analysis.objects.filter(
        Q(status=AnalysisStatus.PENDING, requested_at__lt=now - LOST_AFTER) | Q(status=AnalysisStatus.RUNNING, started_at__lt=now - STALE_RUN)
    ).values_list("pk", flat=True)[:200]
    for analysis_id in stuck:
        with transaction.atomic():
            _enqueue(analysis_id)
        queued += 1
    return queued

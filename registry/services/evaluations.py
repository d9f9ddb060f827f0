"""Evaluations: the evidence the gates read. Requested here, computed by a Celery worker.

Three computed kinds, each a row with a status (pending, running, done, failed) that a worker claims with a
conditional UPDATE (a second delivery does nothing; a run left `running` by a dead worker is
claimed again after STALE_RUN):

- model: a predictions file (CSV, JSON lines or Parquet; columns `label`, `prediction`, optional
  `score` and a sensitive-attribute column) -> accuracy, precision, recall, F1, ROC AUC, confusion
  matrix, per-group fairness (registry/evaluation.py);
- data: a data file against the model's dataset schema (registry/validation/) -> violations;
- prompt: the prompt version over its eval set through a provider (registry/providers/) with the
  version's criteria (registry/prompt_checks/) -> per-row results and the gate figures.

Bad input never becomes a fake pass: the run is `failed` with the reason. Every row records its producer (the
authenticated actor, `requested_by`) and its origin (EvidenceOrigin: an uploaded file, a provider run, a replay of the
eval set's recorded outputs or of responses typed in with the request, an experiment), which the gates read.

A fourth kind, experiment, is evidence computed elsewhere (an A/B test on live traffic): recorded done at
once by `evaluation_record_external`, so its figures reach the gate card and the gates like any other.
"""

from __future__ import annotations

import hashlib
import math
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from mlops_site.exceptions import NotFound, TooLarge, ValidationFailed
from mlops_site.queue import enqueue_on_commit
from mlops_site.roles import EDITOR, require_role
from mlops_site.runs import run_time_out, runs_give_up

from .. import evaluation as numbers
from .. import tables, validation
from ..models import (
    AuditAction,
    DatasetSchema,
    Evaluation,
    EvaluationKind,
    EvaluationRow,
    EvaluationStatus,
    EvidenceOrigin,
    ModelVersion,
    PromptVersion,
    WebhookEvent,
)
from ..providers import ProviderError
from .audit import audit_record
from .gates import check_problem, gate_status
from .prompt_runs import prompt_run_origin, run_prompt_evaluation
from .webhooks import webhook_event_fire

STALE_RUN = timedelta(minutes=30)
# The task's time limits: soft (the run ends failed, saying so), then hard (the worker process is replaced), both
# within STALE_RUN, so a run is never claimed again while its first worker still has it.
SOFT_TIME_LIMIT = STALE_RUN - timedelta(minutes=5)
TIME_LIMIT = STALE_RUN - timedelta(minutes=3)
MAX_UPLOAD_MB = 200
MODEL_OPTIONS = {"label_column", "prediction_column", "score_column", "group_column", "positive_label", "data_version"}
PROMPT_OPTIONS = {"provider", "responses", "timeout_s"}


def _clean_options(kind: str, options) -> dict:
    options = options or {}
    if not isinstance(options, dict):
        raise ValidationFailed("options: an object.", fields={"options": ["an object"]})
    allowed = {EvaluationKind.MODEL: MODEL_OPTIONS, EvaluationKind.DATA: {"data_version"}, EvaluationKind.PROMPT: PROMPT_OPTIONS}[kind]
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValidationFailed(f"Unknown option(s) for a {kind} evaluation: {', '.join(unknown)}.", fields={"options": unknown})
    for key in ("label_column", "prediction_column", "score_column", "group_column", "data_version"):
        if key in options and (not isinstance(options[key], str) or not options[key].strip()):
            raise ValidationFailed(f"{key}: a column name.", fields={key: ["a non-empty string"]})
    if "timeout_s" in options:
        timeout, ceiling = options["timeout_s"], settings.MLOPS_LLM_TIMEOUT_S
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= ceiling:
            raise ValidationFailed(f"timeout_s: a number of seconds above 0 and at most {ceiling} (the server's MLOPS_LLM_TIMEOUT_S).",
                                   fields={"timeout_s": [f"above 0, at most {ceiling}"]})
    if "provider" in options and options["provider"] not in ("replay", "openai"):
        raise ValidationFailed("provider: replay or openai.", fields={"provider": ["replay or openai"]})
    if options.get("provider") == "openai" and not settings.MLOPS_LLM_BASE_URL:
        raise ValidationFailed("The openai provider needs MLOPS_LLM_BASE_URL (and MLOPS_LLM_API_KEY) in the server's settings.")
    return options


def evaluation_request(
    *, kind: str, model_version: ModelVersion | None = None, prompt_version: PromptVersion | None = None, data: bytes = b"",
    filename: str = "", options: dict | None = None, actor,
) -> Evaluation:
    """Queue an evaluation of a version (editors). The file is kept with the row, so the result can be reproduced."""
    require_role(actor, EDITOR, "Running an evaluation")
    if kind not in EvaluationKind.values:
        raise ValidationFailed(f"kind: one of {', '.join(EvaluationKind.values)}.", fields={"kind": ["unknown kind"]})
    if kind in EXTERNAL_KINDS:
        raise ValidationFailed(f"A {kind} evaluation is not run here: its result is recorded by the A/B test's decision.",
                               fields={"kind": ["recorded, not run"]})
    if (kind == EvaluationKind.PROMPT) != (prompt_version is not None) or (model_version is None) == (prompt_version is None):
        raise ValidationFailed("A prompt evaluation runs on a prompt version; model and data evaluations on a model version.")
    options = _clean_options(kind, options)
    if len(data) > MAX_UPLOAD_MB * 1024 * 1024:
        raise TooLarge(f"The file is larger than {MAX_UPLOAD_MB} MB.")
    if kind != EvaluationKind.PROMPT and not data.strip():
        raise ValidationFailed("Send the file to evaluate (predictions and labels, or the data to validate); it is empty.",
                               fields={"file": ["empty"]})
    if kind == EvaluationKind.DATA and not DatasetSchema.objects.filter(model_id=model_version.model_id).exists():
        raise ValidationFailed(f"Model {model_version.model.name} has no dataset schema yet: set one (or infer it from a reference file) first.")
    if kind == EvaluationKind.PROMPT and prompt_version.eval_set_id is None:
        raise ValidationFailed(f"{prompt_version.prompt.name} v{prompt_version.version} has no eval set to run on.")
    if kind == EvaluationKind.PROMPT:
        source = f"eval set v{prompt_version.eval_set.version} ({prompt_version.eval_set.row_count} rows)"
    else:
        source = " · ".join(x for x in (filename, options.get("data_version", "")) if x)
    subject = f"model:{model_version.model.name}" if model_version else f"prompt:{prompt_version.prompt.name}"
    with transaction.atomic():
        evaluation = Evaluation.objects.create(
            kind=kind, model_version=model_version, prompt_version=prompt_version, requested_by=actor, source=source[:300],
            data=data, input_sha256=hashlib.sha256(data).hexdigest() if data else "", options=options,
            origin=prompt_run_origin(options) if kind == EvaluationKind.PROMPT else EvidenceOrigin.UPLOADED_FILE,
        )
        audit_record(actor=actor, action=AuditAction.EVALUATION_REQUESTED, subject=subject,
                     version=(model_version or prompt_version).version, reason=source[:300],
                     extra={"evaluation_id": evaluation.pk, "kind": kind, "origin": evaluation.origin})
        enqueue_on_commit("registry.tasks.evaluation_compute", evaluation.pk)
    return evaluation


# Kinds whose figures come from outside (no file, no worker): recorded done by evaluation_record_external.
EXTERNAL_KINDS = (EvaluationKind.EXPERIMENT,)


def evaluation_record_external(
    *, kind: str, model_version: ModelVersion | None = None, prompt_version: PromptVersion | None = None, metrics: dict,
    details: dict | None = None, source: str, actor,
) -> Evaluation:
    """Record evidence computed outside the registry (an A/B test's result) as a finished evaluation of a version
    (editors). `metrics` are the figures gates can check (names to finite numbers); `details` what the page shows
    beside them; `source` what it came from ("experiment:<key>"). Audited as evaluation_recorded."""
    require_role(actor, EDITOR, "Recording an evaluation")
    if kind not in EXTERNAL_KINDS:
        raise ValidationFailed(f"kind: one of {', '.join(EXTERNAL_KINDS)} (the others are run, not recorded).", fields={"kind": ["not recordable"]})
    if (model_version is None) == (prompt_version is None):
        raise ValidationFailed("Give a model version or a prompt version.")
    if not isinstance(metrics, dict) or not metrics:
        raise ValidationFailed("metrics: an object of figure names and numbers.", fields={"metrics": ["an object"]})
    for name, value in metrics.items():
        if not isinstance(name, str) or not name or len(name) > 100:
            raise ValidationFailed("metrics: figure names are strings of 1 to 100 characters.", fields={"metrics": [repr(name)]})
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValidationFailed(f"metrics.{name}: a finite number.", fields={f"metrics.{name}": ["a finite number"]})
    source = (source or "").strip()[:300]
    if not source:
        raise ValidationFailed("source: say where the figures come from.", fields={"source": ["required"]})
    now = timezone.now()
    version = model_version or prompt_version
    subject = f"model:{model_version.model.name}" if model_version else f"prompt:{prompt_version.prompt.name}"
    with transaction.atomic():
        evaluation = Evaluation.objects.create(
            kind=kind, model_version=model_version, prompt_version=prompt_version, status=EvaluationStatus.DONE, requested_by=actor,
            requested_at=now, started_at=now, finished_at=now, source=source, metrics={k: float(v) for k, v in metrics.items()},
            details=details or {}, origin=EvidenceOrigin.EXPERIMENT,
        )
        audit_record(actor=actor, action=AuditAction.EVALUATION_RECORDED, subject=subject, version=version.version, reason=source,
                     extra={"evaluation_id": evaluation.pk, "kind": kind})
        _gates_failed_fire(evaluation)
    return evaluation


def _give_up_stale(runs, now) -> int:
    return runs_give_up(runs, stale_after=STALE_RUN, time_limit_s=TIME_LIMIT.total_seconds(), now=now)


def _claim(evaluation_id: int) -> Evaluation | None:
    now = timezone.now()
    _give_up_stale(Evaluation.objects.filter(pk=evaluation_id), now)
    claimed = Evaluation.objects.filter(
        Q(status=EvaluationStatus.PENDING) | Q(status=EvaluationStatus.RUNNING, started_at__lt=now - STALE_RUN), pk=evaluation_id
    ).update(status=EvaluationStatus.RUNNING, started_at=now, attempts=F("attempts") + 1)
    return Evaluation.objects.select_related("model_version__model", "prompt_version__prompt", "prompt_version__eval_set").get(pk=evaluation_id) if claimed else None


def evaluation_run(*, evaluation_id: int) -> Evaluation | None:
    """Run one evaluation (the Celery task). None when another worker has it or it is finished."""
    evaluation = _claim(evaluation_id)
    if evaluation is None:
        return None
    try:
        if evaluation.kind == EvaluationKind.MODEL:
            (metrics, details), rows = _model_metrics(evaluation), []
        elif evaluation.kind == EvaluationKind.DATA:
            (metrics, details), rows = _data_validation(evaluation), []
        else:
            metrics, details, rows = _prompt_evaluation(evaluation)
    except (ValueError, LookupError, ProviderError) as exc:  # the core modules' own errors: bad input, a failing provider
        Evaluation.objects.filter(pk=evaluation.pk).update(status=EvaluationStatus.FAILED, finished_at=timezone.now(), error=str(exc)[:2000])
    else:
        with transaction.atomic():
            EvaluationRow.objects.filter(evaluation=evaluation).delete()  # a re-run after a dead worker starts clean
            EvaluationRow.objects.bulk_create(rows, batch_size=500)
            Evaluation.objects.filter(pk=evaluation.pk).update(
                status=EvaluationStatus.DONE, finished_at=timezone.now(), metrics=metrics, details=details, error=""
            )
            _gates_failed_fire(evaluation)
    return Evaluation.objects.defer("data").get(pk=evaluation.pk)  # not the uploaded file again


def _gates_failed_fire(evaluation: Evaluation) -> None:
    """The `gates_failed` webhook event when the evaluation that just finished made a check of its version's gate
    policy fail (its figure is the one the gate reads now and it misses the threshold)."""
    version = evaluation.model_version or evaluation.prompt_version
    failed = [c for c in gate_status(version=version).checks if c.status == "failed" and c.evaluation_id == evaluation.pk]
    if not failed:
        return
    subject = f"model:{version.model.name}" if evaluation.model_version_id else f"prompt:{version.prompt.name}"
    webhook_event_fire(
        WebhookEvent.GATES_FAILED, subject=subject, version=version.version, actor_name=_producer_name(evaluation), at=timezone.now(),
        reason="; ".join(check_problem(c) for c in failed),
        details={"evaluation_id": evaluation.pk, "failed": [{"check": c.check, "op": c.op, "threshold": c.threshold, "value": c.value}
                                                            for c in failed]},
    )


def _producer_name(evaluation: Evaluation) -> str:
    return evaluation.requested_by.username if evaluation.requested_by_id else "system"


def evaluation_time_out(*, evaluation_id: int) -> None:
    """A run interrupted at its soft time limit (the task catches it): failed for good, saying so."""
    run_time_out(Evaluation.objects.filter(pk=evaluation_id), soft_limit_s=SOFT_TIME_LIMIT.total_seconds())


def evaluations_sweep() -> int:
    """Beat: evaluations still pending after a broker outage (or left running by a dead worker) are queued again;
    those that lost their worker MAX_ATTEMPTS times (mlops_site.runs) are failed instead."""
    _give_up_stale(Evaluation.objects.all(), timezone.now())
    cutoff = timezone.now() - timedelta(minutes=10)
    ids = list(Evaluation.objects.filter(
        Q(status=EvaluationStatus.PENDING, requested_at__lt=cutoff) | Q(status=EvaluationStatus.RUNNING, started_at__lt=timezone.now() - STALE_RUN)
    ).values_list("pk", flat=True)[:200])
    for evaluation_id in ids:
        enqueue_on_commit("registry.tasks.evaluation_compute", evaluation_id)
    return len(ids)


# --- the three kinds -------------------------------------------------------------------------------


def _column(table: tables.Table, name: str, role: str) -> np.ndarray:
    if name not in table.columns:
        raise numbers.EvaluationError(f"No {role} column {name!r} in the file (columns: {', '.join(table.columns)}).")
    values = table.columns[name]
    if table.kinds[name] == "numeric":
        if np.isnan(values).any():
            raise numbers.EvaluationError(f"The {role} column {name!r} has {int(np.isnan(values).sum())} empty cell(s).")
        if np.all(values == np.round(values)):
            return values.astype(np.int64)
    elif (values == "").any():
        raise numbers.EvaluationError(f"The {role} column {name!r} has {int((values == '').sum())} empty cell(s).")
    return values


def _model_metrics(evaluation: Evaluation) -> tuple[dict, dict]:
    options = evaluation.options
    table = tables.read_table(bytes(evaluation.data), filename=evaluation.source)
    y_true = _column(table, options.get("label_column", "label"), "label")
    y_pred = _column(table, options.get("prediction_column", "prediction"), "prediction")
    score_name = options.get("score_column", "score")
    scores = table.columns.get(score_name) if score_name in table.columns else None
    if scores is not None and (table.kinds[score_name] != "numeric" or np.isnan(scores).any()):
        raise numbers.EvaluationError(f"The score column {score_name!r} must hold a number in every row.")
    positive = options.get("positive_label")
    result = numbers.classification_metrics(y_true, y_pred, scores, positive=positive)
    metrics = {key: result[key] for key in ("accuracy", "precision", "recall", "f1")}
    if result.roc_auc is not None:
        metrics["roc_auc"] = result.roc_auc
    details = {"rows": int(len(y_true)), "classification": result.as_dict()}
    group_name = options.get("group_column")
    if group_name:
        groups = table.columns.get(group_name)
        if groups is None:
            raise numbers.EvaluationError(f"No sensitive-attribute column {group_name!r} in the file.")
        fairness = numbers.fairness_metrics(y_true, y_pred, groups, positive=positive)
        metrics["demographic_parity_difference"] = fairness.demographic_parity_difference
        if fairness.equalized_odds_difference is not None:
            metrics["equalized_odds_difference"] = fairness.equalized_odds_difference
        details["fairness"] = {**fairness.as_dict(), "column": group_name}
    return metrics, details


def _data_validation(evaluation: Evaluation) -> tuple[dict, dict]:
    schema_row = DatasetSchema.objects.filter(model_id=evaluation.model_version.model_id).first()
    if schema_row is None:
        raise validation.SchemaError("The model has no dataset schema.")
    schema = validation.SchemaSpec.from_dict(schema_row.schema)
    table = tables.read_table(bytes(evaluation.data), filename=evaluation.source)
    report = validation.validate(table, schema)
    metrics = {"schema_violations": report.violations_total, "invalid_rows": report.invalid_rows, "valid_share": report.valid_share}
    return metrics, {"report": report.as_dict(), "schema_updated_at": schema_row.updated_at.isoformat()}


def _prompt_evaluation(evaluation: Evaluation) -> tuple[dict, dict, list[EvaluationRow]]:
    return run_prompt_evaluation(evaluation)


def evaluation_get(*, evaluation_id: int) -> Evaluation:
    try:
        return Evaluation.objects.select_related("model_version__model", "prompt_version__prompt", "requested_by").defer("data").get(pk=evaluation_id)
    except Evaluation.DoesNotExist:
        raise NotFound(f"No evaluation {evaluation_id}.") from None

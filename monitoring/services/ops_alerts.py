"""Operations alert rules: the default rules, evaluated every minute on the roll-ups (never raw events).

Each rule's value is computed over its own window (`window_minutes`, default 60)
ending now, over all versions of its model or prompt; performance drops come
from the latest labelled window (services/performance.py). States, history and
notifications are the same as for drift rules (alerts.rule_update).

Defaults: models: latency P95 over the SLA
(MLOPS_LATENCY_SLA_MS), throughput above 80 % of capacity (MLOPS_CAPACITY_RPS),
error rate > 1 %, accuracy / F1 / AUC more than 5 % below the baseline.
Prompts: response P95 > 10 s, time to first token P95 > 2 s, error rate > 1 %,
judge score average < 0.7, faithfulness < 0.8, guardrail trigger rate > 5 %,
tokens per request > 2x the expected (the parameter, else the 7 days before the
window), thumbs-up share < 80 %.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from registry.models import Prompt, RegisteredModel

from ..models import AlertEvent, AlertMetric, AlertRule, Comparison, Granularity, PerformanceWindow, Rollup
from ..selectors.rollups import OpsMetrics, rollup_totals
from .alerts import rule_update

M = AlertMetric
MODEL_DEFAULTS = [
    ("Latency P95 over SLA", M.LATENCY_P95, Comparison.GT, "sla"),
    ("Throughput near capacity", M.THROUGHPUT_SHARE, Comparison.GT, 0.8),
    ("Error rate", M.ERROR_RATE, Comparison.GT, 0.01),
    ("Accuracy drop", M.ACCURACY_DROP, Comparison.GT, 0.05),
    ("F1 drop", M.F1_DROP, Comparison.GT, 0.05),
    ("AUC drop", M.AUC_DROP, Comparison.GT, 0.05),
]
PROMPT_DEFAULTS = [
    ("Response P95 over 10 s", M.LATENCY_P95, Comparison.GT, 10_000.0),
    ("Time to first token P95 over 2 s", M.TTFT_P95, Comparison.GT, 2_000.0),
    ("Error rate", M.ERROR_RATE, Comparison.GT, 0.01),
    ("Judge score", M.JUDGE_SCORE, Comparison.LT, 0.7),
    ("Faithfulness", M.FAITHFULNESS, Comparison.LT, 0.8),
    ("Guardrail triggers", M.GUARDRAIL_RATE, Comparison.GT, 0.05),
    ("Tokens per request", M.TOKENS_RATIO, Comparison.GT, 2.0),
    ("Thumbs-up share", M.THUMBS_UP_SHARE, Comparison.LT, 0.8),
]
OPS_METRICS = sorted({metric for _, metric, _, _ in MODEL_DEFAULTS + PROMPT_DEFAULTS})
DROP_FIELD = {M.ACCURACY_DROP: "accuracy", M.F1_DROP: "f1", M.AUC_DROP: "roc_auc"}
EXPECTED_HISTORY = timedelta(days=7)


def ops_rules_ensure(*, model: RegisteredModel | None = None, prompt: Prompt | None = None) -> list[AlertRule]:
    """The default operations rules of a model or a prompt, created once (existing rules are left alone)."""
    defaults, subject = (MODEL_DEFAULTS, {"model": model}) if model is not None else (PROMPT_DEFAULTS, {"prompt": prompt})
    rules = []
    for name, metric, comparison, threshold in defaults:
        parameter = float(settings.MLOPS_CAPACITY_RPS) if metric == M.THROUGHPUT_SHARE else None
        rule, _ = AlertRule.objects.get_or_create(
            **subject, metric=metric, name=name,
            defaults={"comparison": comparison, "threshold": float(settings.MLOPS_LATENCY_SLA_MS) if threshold == "sla" else threshold,
                      "parameter": parameter, "webhook_url": settings.MLOPS_ALERT_WEBHOOK_URL,
                      "webhook_secret": settings.MLOPS_ALERT_WEBHOOK_SECRET, "emails": settings.MLOPS_ALERT_EMAILS},
        )
        rules.append(rule)
    return rules


def _tokens_per_request(totals: OpsMetrics) -> float | None:
    if totals.input_tokens_avg is None:
        return None
    return totals.input_tokens_avg + (totals.output_tokens_avg or 0.0)


def rule_value(rule: AlertRule, *, now: datetime, cache: dict) -> float | None:
    """The rule's metric over its window ending `now` (None: nothing to measure, the state is kept)."""
    if rule.metric in DROP_FIELD:
        latest = PerformanceWindow.objects.filter(model_version__model_id=rule.model_id).exclude(labelled=0).order_by("-window_end", "-id").first()
        return latest.drops.get(DROP_FIELD[rule.metric]) if latest else None
    kind, name = ("model", rule.model.name) if rule.model_id else ("prompt", rule.prompt.name)
    start = now - timedelta(minutes=rule.window_minutes)
    key = (kind, name, start)
    if key not in cache:
        cache[key] = rollup_totals(kind=kind, name=name, start=start, end=now)
    totals = cache[key]
    if totals.requests == 0:
        return None
    if rule.metric == M.TOKENS_RATIO:
        current = _tokens_per_request(totals)
        expected = rule.parameter
        if expected is None and current is not None:
            before = rollup_totals(kind=kind, name=name, start=start - EXPECTED_HISTORY, end=start, granularity=Granularity.HOUR)
            expected = _tokens_per_request(before)
        return current / expected if current is not None and expected else None
    if rule.metric == M.THROUGHPUT_SHARE:
        return totals.throughput / rule.parameter if rule.parameter else None
    field = {
        M.LATENCY_P95: "latency_p95", M.ERROR_RATE: "error_rate", M.JUDGE_SCORE: "judge_avg", M.FAITHFULNESS: "faithfulness_avg",
        M.GUARDRAIL_RATE: "guardrail_rate", M.THUMBS_UP_SHARE: "thumbs_up_share", M.TTFT_P95: "ttft_p95",
    }[rule.metric]
    return getattr(totals, field)


def _message(rule: AlertRule, state: str, value: float | None) -> str:
    subject = f"model {rule.model.name}" if rule.model_id else f"prompt {rule.prompt.name}"
    shown = "n/a" if value is None else f"{value:.4g}"
    window = "latest labelled window" if rule.metric in DROP_FIELD else f"last {rule.window_minutes} min"
    return (f"[{state.upper()}] {rule.name} on {subject}: {AlertMetric(rule.metric).label} = {shown} "
            f"({rule.comparison} {rule.threshold:g} alerts; {window}).")


def ops_alerts_evaluate(*, now: datetime | None = None) -> list[AlertEvent]:
    """Beat, every minute: make sure every model and prompt with recent traffic has the default rules,
    then evaluate every enabled operations rule; one AlertEvent per change of state."""
    now = now or timezone.now()
    recent = Rollup.objects.filter(granularity=Granularity.MINUTE, bucket__gte=now - timedelta(hours=1))
    for model in RegisteredModel.objects.filter(pk__in=recent.filter(model_version__isnull=False).values("model_version__model")):
        ops_rules_ensure(model=model)
    for prompt in Prompt.objects.filter(pk__in=recent.filter(prompt_version__isnull=False).values("prompt_version__prompt")):
        ops_rules_ensure(prompt=prompt)
    changes, cache = [], {}
    rule_ids = list(AlertRule.objects.filter(enabled=True, metric__in=OPS_METRICS).values_list("pk", flat=True))
    for rule_id in rule_ids:
        with transaction.atomic():
            # of=("self",): PostgreSQL cannot lock the nullable side of the outer joins to model and prompt.
            rule = AlertRule.objects.select_for_update(of=("self",)).select_related("model", "prompt").get(pk=rule_id)
            value = rule_value(rule, now=now, cache=cache)
            event = rule_update(rule, value, message=lambda state, rule=rule, value=value: _message(rule, state, value))
        if event is not None:
            changes.append(event)
    return changes

"""Template helpers of the monitoring pages, and the home page's "Unhealthy now" strip.

The strip is an inclusion tag so the registry's home page can show it without the registry
importing monitoring (imports point down only): the home template loads this library.
"""

from datetime import timedelta

from django import template
from django.urls import reverse
from django.utils import timezone

from monitoring import selectors
from monitoring.models import AlertMetric

register = template.Library()

M = AlertMetric
MILLISECONDS = {M.LATENCY_P95, M.TTFT_P95}
SHARES = {M.ERROR_RATE, M.GUARDRAIL_RATE, M.THUMBS_UP_SHARE, M.THROUGHPUT_SHARE, M.ACCURACY_DROP, M.F1_DROP, M.AUC_DROP}
QUALITY = {M.JUDGE_SCORE, M.FAITHFULNESS, M.GUARDRAIL_RATE, M.THUMBS_UP_SHARE}
OPERATIONS = {M.LATENCY_P95, M.TTFT_P95, M.ERROR_RATE, M.THROUGHPUT_SHARE, M.TOKENS_RATIO}
BUDGET_SHARE = 0.8  # the strip lists budgets that have spent this share of their period or more
INDEX_SINCE = timedelta(days=30)


@register.filter
def percent(value, digits: int = 1) -> str:
    """0.0123 -> "1.2 %"; None -> "—"."""
    return "—" if value is None else f"{value * 100:.{int(digits)}f} %"


@register.filter
def metric_value(value, metric: str) -> str:
    """A rule's value or threshold in its metric's unit: ms, a percentage, a ratio or a plain number."""
    if value is None:
        return "—"
    if metric in MILLISECONDS:
        return f"{value:,.0f} ms"
    if metric in SHARES:
        return f"{value * 100:.1f} %"
    if metric == M.TOKENS_RATIO:
        return f"{value:.2f}×"
    return f"{value:.3g}"


@register.filter
def duration(seconds) -> str:
    """Seconds as the unit that reads best: 42 s, 12 min, 5.3 h, 2.1 d; None -> "—"."""
    if seconds is None:
        return "—"
    for size, unit, digits in ((86400, "d", 1), (3600, "h", 1), (60, "min", 0)):
        if seconds >= size:
            return f"{seconds / size:.{digits}f} {unit}"
    return f"{seconds:.0f} s"


@register.filter
def rule_url(rule) -> str:
    """The page that shows a rule's metric: GenAI quality, operations, or (drift rules) the alerts page."""
    if rule.prompt_id and rule.metric in QUALITY:
        return reverse("monitoring:quality", args=[rule.prompt.name])
    if rule.metric in OPERATIONS:
        kind, name = ("model", rule.model.name) if rule.model_id else ("prompt", rule.prompt.name)
        return reverse("monitoring:operations", args=[kind, name])
    return reverse("monitoring:alerts")


@register.inclusion_tag("monitoring/_unhealthy.html")
def unhealthy_now() -> dict:
    """Alert rules in warning or alert and budgets at 80 % or more of their period: three queries at most, whatever their number."""
    return {"rules": selectors.firing_rules(), "budgets": selectors.budgets_over(share=BUDGET_SHARE, now=timezone.now())}


@register.inclusion_tag("monitoring/_operations_index.html")
def operations_index() -> dict:
    """Links to the operations (and, for prompts, quality) page of each model and prompt with traffic in the last 30 days. One query."""
    return {"subjects": selectors.subjects_with_traffic(since=timezone.now() - INDEX_SINCE)}

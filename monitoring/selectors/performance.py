"""Reads of a model version's performance page: its labelled windows over a time range and the alert rules
that read them. Two queries whatever the number of windows."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from registry.models import ModelVersion

from ..models import AlertRule, PerformanceWindow


def performance_window_list(*, model_version_id: int, start: datetime, end: datetime) -> list[PerformanceWindow]:
    """The version's stored windows that end in (start, end], oldest first. One query."""
    rows = PerformanceWindow.objects.filter(model_version_id=model_version_id, window_end__gt=start, window_end__lte=end)
    return list(rows.order_by("window_end", "pk"))


def performance_rule_list(*, version: ModelVersion, metrics: Iterable[str]) -> list[AlertRule]:
    """The alert rules of the version's model on `metrics` (those that read the performance windows), enabled or not. One query."""
    return list(
        AlertRule.objects.filter(model_id=version.model_id, metric__in=list(metrics))
        .select_related("model")
        .order_by("metric", "name", "pk")
    )

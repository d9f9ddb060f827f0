"""Every read of monitoring that a page, the API, a task or the home page's strip shares.

One module per concept: drift (monitored versions, reports, stored feature values and reference
profiles), rollups (series, totals and spend from the roll-ups), operations (what the operations,
cost and quality pages add), budgets, prices and alerts. A fixed number of queries each, whatever
the number of rows.
"""

from .alerts import alert_event_list, alert_rule_list
from .budgets import (
    BudgetStatus,
    budget_alert_list,
    budget_get,
    budget_list,
    budget_members_filter,
    budget_status,
    budget_statuses,
    period_bounds,
)
from .drift import (
    event_count,
    monitored_versions,
    reference_columns,
    reference_get,
    report_get,
    report_history,
    report_list,
    window_columns,
)
from .operations import (
    BudgetShare,
    PromptCost,
    budget_hourly_spend,
    budgets_over,
    cost_per_request_series,
    firing_rules,
    low_score_examples,
    prompt_costs,
    subject_rules,
    subject_versions,
    subjects_with_traffic,
)
from .performance import performance_rule_list, performance_window_list
from .prices import price_book, price_list
from .rollups import (
    DailySpend,
    OpsMetrics,
    OpsSeries,
    point_seconds,
    rollup_series,
    rollup_spend,
    rollup_totals,
    rollup_totals_empty,
    shadow_totals,
    window_granularity,
)

__all__ = [
    "BudgetShare", "BudgetStatus", "DailySpend", "OpsMetrics", "OpsSeries", "PromptCost", "alert_event_list", "alert_rule_list",
    "budget_alert_list", "budget_get", "budget_hourly_spend", "budget_list", "budget_members_filter", "budget_status", "budget_statuses", "budgets_over", "cost_per_request_series",
    "event_count", "firing_rules", "low_score_examples", "monitored_versions", "performance_rule_list", "performance_window_list", "period_bounds", "point_seconds", "price_book", "price_list",
    "prompt_costs", "reference_columns", "reference_get", "report_get", "report_history", "report_list", "rollup_series", "rollup_spend", "rollup_totals",
    "rollup_totals_empty", "shadow_totals", "subject_rules", "subject_versions", "subjects_with_traffic", "window_columns", "window_granularity",
]

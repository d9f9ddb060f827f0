"""Every write of monitoring: ingest events and labels, set references, run drift reports, keep the roll-ups,
evaluate alert rules and budgets, notify, set prices.

One module per concept; each service takes keyword arguments, checks the actor's role itself
where a person acts (the API, the pages, commands and tasks obey the same rules), and queues
Celery work only after its transaction commits (mlops_site.queue, by task name). Reads that a
page, the API and a task share are in monitoring/selectors/.
"""

from .alerts import alert_acknowledge, alert_action_set, alert_notify, alert_silence, alerts_evaluate, default_rules_ensure, rule_update
from .budgets import budget_alert_notify, budget_set, budgets_evaluate
from .drift_reports import drift_report_request, drift_report_run, drift_report_time_out, drift_reports_schedule
from .ingestion import events_ingest
from .labels import labels_attach
from .ops_alerts import ops_alerts_evaluate, ops_rules_ensure
from .performance import performance_compute, performance_windows_schedule
from .prices import bundled_prices, event_costs, price_set, prices_import, prices_import_defaults, prices_import_file
from .references import reference_set_from_columns, reference_set_from_file, reference_set_from_window
from .rollups import rollups_catch_up, rollups_lifetime_rebuild, rollups_update
from .sweeps import stuck_work_sweep

__all__ = [
    "alert_acknowledge",
    "alert_action_set",
    "alert_notify",
    "alert_silence",
    "alerts_evaluate",
    "budget_alert_notify",
    "budget_set",
    "budgets_evaluate",
    "bundled_prices",
    "default_rules_ensure",
    "drift_report_request",
    "drift_report_run",
    "drift_report_time_out",
    "drift_reports_schedule",
    "event_costs",
    "events_ingest",
    "labels_attach",
    "ops_alerts_evaluate",
    "ops_rules_ensure",
    "performance_compute",
    "performance_windows_schedule",
    "price_set",
    "prices_import",
    "prices_import_defaults",
    "prices_import_file",
    "reference_set_from_columns",
    "reference_set_from_file",
    "reference_set_from_window",
    "rollups_catch_up",
    "rollups_lifetime_rebuild",
    "rollups_update",
    "rule_update",
    "stuck_work_sweep",
]

"""Per-minute and per-hour roll-ups of the event stream, kept incrementally, and the reads over them.

`rollups_update` (update.py; Celery beat, every minute, through `rollups_catch_up`) folds the
events past a cursor into Rollup rows: counts and sums add up, latency and TTFT sketches merge
(monitoring/sketch.py), so late events simply land in their old buckets. Pages, alerts, /metrics
and the canary controller read the roll-ups through the selectors of reads.py, never raw events:

- `rollup_series`: one point per bucket of a model's or prompt's versions (merged) in a window;
- `rollup_totals`: the same metrics over the whole window, one merged point;
- `rollup_spend`: known cost per UTC day and model (or prompt) name, for the stacked spend chart.

Granularity rule of the reads: minute roll-ups for windows up to 6 hours (at most 360 points),
hour roll-ups beyond. A window [start, end) takes every bucket that starts in
[start floored to the bucket, end), so its edges are rounded out to whole buckets.
"""

from .reads import (
    DailySpend,
    OpsMetrics,
    OpsSeries,
    point_seconds,
    rollup_series,
    rollup_spend,
    rollup_totals,
    rollup_totals_empty,
    window_granularity,
)
from .update import EventColumns, Fold, fold_events, rollups_catch_up, rollups_update

__all__ = [
    "DailySpend", "EventColumns", "Fold", "OpsMetrics", "OpsSeries", "fold_events", "point_seconds", "rollup_series", "rollup_spend", "rollup_totals", "rollup_totals_empty",
    "rollups_catch_up", "rollups_update", "window_granularity",
]

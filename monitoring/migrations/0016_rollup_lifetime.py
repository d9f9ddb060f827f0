"""Lifetime roll-ups: one row per model or prompt version holding everything it ever served, kept by the fold beside
the minute and hour rows, so /metrics reads one row per version instead of every hour of its history.

The rows of versions that already have traffic are summed here from their hour rows (counters added, sketches
merged), which is what the fold would have written had it kept them from the start."""

from datetime import UTC, datetime

import numpy as np
from django.db import migrations, models

LIFETIME_BUCKET = datetime(1970, 1, 1, tzinfo=UTC)
COUNTERS = (
    "requests", "errors", "latency_sum", "ttft_count", "ttft_sum", "token_requests", "input_tokens", "output_tokens", "cached_tokens",
    "reasoning_tokens", "cost_usd", "cost_requests", "pricing_missing", "guardrail_known", "guardrail_triggered", "feedback_up",
    "feedback_down", "judge_count", "judge_sum", "faithfulness_count", "faithfulness_sum",
)


def lifetime_rows_from_hours(apps, schema_editor):
    """One lifetime row per version with hour rows: their counters summed, their sketches merged, a version at a time
    (so a long history is never held in memory all at once). A worker of the previous release that folds after this
    adds to the hours only: stop the workers and beat while migrating (docs/deploy.md, "Upgrading")."""
    from monitoring.sketch import merge_blobs_by_group

    Rollup = apps.get_model("monitoring", "Rollup")
    # Held until the migration commits: a fold that ends meanwhile waits, and adds to the hours after they were summed.
    list(apps.get_model("monitoring", "RollupCursor").objects.select_for_update().filter(name="events"))
    Rollup.objects.filter(granularity="lifetime").delete()
    hours = Rollup.objects.filter(granularity="hour")
    totals = hours.values("model_version_id", "prompt_version_id").annotate(**{f"sum_{name}": models.Sum(name) for name in COUNTERS}).order_by()
    rows = []
    for total in totals:
        mine = hours.filter(model_version_id=total["model_version_id"], prompt_version_id=total["prompt_version_id"])
        sketches = {}
        for field in ("latency_sketch", "ttft_sketch"):
            blobs = [bytes(blob) for blob in mine.exclude(**{field: b""}).values_list(field, flat=True).iterator(chunk_size=2000)]
            sketches[field] = merge_blobs_by_group(np.zeros(len(blobs), dtype=np.int64), blobs)[0].to_bytes() if blobs else b""
        rows.append(Rollup(model_version_id=total["model_version_id"], prompt_version_id=total["prompt_version_id"], granularity="lifetime",
                           bucket=LIFETIME_BUCKET, **{name: total[f"sum_{name}"] or 0 for name in COUNTERS}, **sketches))
    Rollup.objects.bulk_create(rows, batch_size=500)


def lifetime_rows_drop(apps, schema_editor):
    apps.get_model("monitoring", "Rollup").objects.filter(granularity="lifetime").delete()


class Migration(migrations.Migration):

    dependencies = [
        ("monitoring", "0015_event_labelled_index"),
    ]

    operations = [
        migrations.AlterField(
            model_name="rollup",
            name="granularity",
            field=models.CharField(choices=[("minute", "Minute"), ("hour", "Hour"), ("lifetime", "Lifetime")], max_length=8),
        ),
        migrations.RunPython(lifetime_rows_from_hours, lifetime_rows_drop),
    ]

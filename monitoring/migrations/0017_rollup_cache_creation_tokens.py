"""Roll-ups count the input tokens written to a prompt cache (an event's `cache_creation_tokens`), so /metrics can give
them as `mlops_tokens_total{kind="cache_creation"}`.

The events already folded are added to their minute, hour and lifetime rows here: only events that reported cache
writes are read (a small share of the stream), up to the roll-up cursor (events past it are folded by the task, which
now counts the column), shadow events left out as the fold leaves them out."""

from collections import Counter
from datetime import UTC, datetime

from django.db import migrations, models

LIFETIME_BUCKET = datetime(1970, 1, 1, tzinfo=UTC)


def cache_writes_from_events(apps, schema_editor):
    Event = apps.get_model("monitoring", "Event")
    Rollup = apps.get_model("monitoring", "Rollup")
    RollupCursor = apps.get_model("monitoring", "RollupCursor")
    cursor = RollupCursor.objects.filter(name="events").values_list("last_event_id", flat=True).first() or 0
    added = Counter()
    events = Event.objects.filter(id__lte=cursor, shadow=False, cache_creation_tokens__gt=0).values_list(
        "model_version_id", "prompt_version_id", "timestamp", "cache_creation_tokens"
    )
    for model_version_id, prompt_version_id, at, tokens in events.iterator(chunk_size=5000):
        at = at.astimezone(UTC)
        subject = (model_version_id, prompt_version_id)
        added[(subject, "minute", at.replace(second=0, microsecond=0))] += tokens
        added[(subject, "hour", at.replace(minute=0, second=0, microsecond=0))] += tokens
        added[(subject, "lifetime", LIFETIME_BUCKET)] += tokens
    for ((model_version_id, prompt_version_id), granularity, bucket), tokens in added.items():
        Rollup.objects.filter(model_version_id=model_version_id, prompt_version_id=prompt_version_id, granularity=granularity, bucket=bucket).update(
            cache_creation_tokens=models.F("cache_creation_tokens") + tokens
        )


class Migration(migrations.Migration):

    dependencies = [
        ("monitoring", "0016_rollup_lifetime"),
    ]

    operations = [
        migrations.AddField(
            model_name="rollup",
            name="cache_creation_tokens",
            field=models.PositiveBigIntegerField(default=0),
        ),
        migrations.RunPython(cache_writes_from_events, migrations.RunPython.noop),
    ]

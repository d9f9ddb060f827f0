"""The cache writes of the events already folded, added to their minute, hour and lifetime roll-ups.

Only events that reported cache writes are read, summed per version and bucket by the database (a row per bucket, not
per event), up to the roll-up cursor, shadow events left out as the fold leaves them out. The cursor row is held
meanwhile, so a fold cannot commit in between; the rows are then written back in batches (bulk_update), not one
statement per bucket."""

from datetime import UTC, datetime

from django.db import migrations
from django.db.models import Q, Sum
from django.db.models.functions import TruncHour, TruncMinute

LIFETIME_BUCKET = datetime(1970, 1, 1, tzinfo=UTC)


def cache_writes_from_events(apps, schema_editor):
    Event = apps.get_model("monitoring", "Event")
    Rollup = apps.get_model("monitoring", "Rollup")
    RollupCursor = apps.get_model("monitoring", "RollupCursor")
    cursor = RollupCursor.objects.select_for_update().filter(name="events").first()
    if cursor is None:
        return
    events = Event.objects.filter(id__lte=cursor.last_event_id, shadow=False, cache_creation_tokens__gt=0).order_by()
    for granularity, trunc in (("minute", TruncMinute), ("hour", TruncHour), ("lifetime", None)):
        grouped = events.annotate(bucket=trunc("timestamp", tzinfo=UTC)) if trunc else events
        keys = ("model_version_id", "prompt_version_id", "bucket") if trunc else ("model_version_id", "prompt_version_id")
        added = {}
        for row in grouped.values(*keys).annotate(tokens=Sum("cache_creation_tokens")).iterator(chunk_size=5000):
            added[(row["model_version_id"], row["prompt_version_id"], row.get("bucket", LIFETIME_BUCKET))] = row["tokens"]
        if not added:
            continue
        buckets = [bucket for _, _, bucket in added]
        # Only the rows of versions with cache writes, in the time those span (not every row of the granularity).
        subjects = Q(model_version_id__in={mv for mv, _, _ in added if mv}) | Q(prompt_version_id__in={pv for _, pv, _ in added if pv})
        rows = Rollup.objects.filter(subjects, granularity=granularity, bucket__gte=min(buckets), bucket__lte=max(buckets)).only(
            "id", "model_version_id", "prompt_version_id", "bucket", "cache_creation_tokens"
        )
        changed = []
        for rollup in rows.iterator(chunk_size=5000):
            tokens = added.get((rollup.model_version_id, rollup.prompt_version_id, rollup.bucket))
            if tokens:
                rollup.cache_creation_tokens += tokens
                changed.append(rollup)
        Rollup.objects.bulk_update(changed, ["cache_creation_tokens"], batch_size=1000)


class Migration(migrations.Migration):

    dependencies = [
        ("monitoring", "0017_rollup_cache_creation_tokens"),
    ]

    operations = [
        migrations.RunPython(cache_writes_from_events, migrations.RunPython.noop),
    ]

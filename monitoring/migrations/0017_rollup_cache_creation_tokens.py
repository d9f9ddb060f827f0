"""Roll-ups count the input tokens written to a prompt cache (an event's `cache_creation_tokens`), so /metrics can give
them as `mlops_tokens_total{kind="cache_creation"}`. The column only: its own migration, committed before the backfill
(0018) reads the events, and with a database default, so a worker of the previous release that folds meanwhile can
still insert its rows."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("monitoring", "0016_rollup_lifetime"),
    ]

    operations = [
        migrations.AddField(
            model_name="rollup",
            name="cache_creation_tokens",
            field=models.PositiveBigIntegerField(db_default=0, default=0),
        ),
    ]

"""Who produced each evaluation and how: `Evaluation.origin`, filled in for the rows already there from what they ran
(their producer is `requested_by`, recorded from the start), and the gate policy option that refuses the requester's own
evidence."""

from django.db import migrations, models


def origin_of(kind: str, options: dict) -> str:
    """As registry.services.evaluations sets it for new rows (frozen here: a migration must not import the app's code)."""
    if kind in ("model", "data"):
        return "uploaded_file"
    if kind == "experiment":
        return "experiment"
    if kind != "prompt" or not isinstance(options, dict):
        return "unknown"
    if options.get("provider", "replay") != "replay":
        return "provider_run"
    responses = options.get("responses")
    return "typed_replay" if isinstance(responses, str) or responses else "recorded_replay"


def fill_origins(apps, schema_editor):
    Evaluation = apps.get_model("registry", "Evaluation")
    Evaluation.objects.filter(kind__in=["model", "data"]).update(origin="uploaded_file")
    Evaluation.objects.filter(kind="experiment").update(origin="experiment")
    for row in Evaluation.objects.filter(kind="prompt").only("pk", "kind", "options").iterator(chunk_size=500):
        Evaluation.objects.filter(pk=row.pk).update(origin=origin_of(row.kind, row.options))


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0009_audit_guards"),
    ]

    operations = [
        migrations.AddField(
            model_name="evaluation",
            name="origin",
            field=models.CharField(
                choices=[("uploaded_file", "computed from an uploaded file"), ("provider_run", "prompt run against the LLM provider"),
                         ("recorded_replay", "replay of the outputs recorded in the eval set"),
                         ("typed_replay", "replay of responses typed in with the request"), ("experiment", "A/B test on live traffic"),
                         ("unknown", "unknown")],
                default="unknown", help_text="how the figures were produced; a typed-in replay never counts for a gate", max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="gatepolicy",
            name="evidence_from_other_identity",
            field=models.BooleanField(
                default=False, help_text="on: evidence produced by the promotion's requester does not count (e.g. only a CI token's runs)"
            ),
        ),
        migrations.RunPython(fill_origins, migrations.RunPython.noop),
    ]

"""The audit log's new actions, and delete guards: no audit row and no registered version is ever deleted.

PostgreSQL already refused DELETE on the audit table (0002); SQLite now does too. Model and prompt
versions refuse DELETE on both: the audit log, promotions and monitored events name them. A full
flush still empties the database: PostgreSQL's TRUNCATE fires no row trigger, and on SQLite the
flush command lifts the `*_no_delete` triggers for its one transaction (registry/management/commands/flush.py).
"""

from django.db import migrations, models

GUARDED = {  # table: why it keeps its rows
    "registry_auditevent": "is append-only",
    "registry_modelversion": "rows are never deleted: a registered version stays in the history",
    "registry_promptversion": "rows are never deleted: a registered version stays in the history",
}


def _sqlite_up(table: str, why: str) -> list[str]:
    return [f"""CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table}
       BEGIN SELECT RAISE(ABORT, '{table} {why}'); END;"""]


def _postgres_up(table: str, why: str) -> list[str]:
    if table == "registry_auditevent":  # 0002's registry_auditevent_append_only refuses UPDATE and DELETE
        return []
    return [
        f"""CREATE OR REPLACE FUNCTION {table}_no_delete() RETURNS trigger AS $$
           BEGIN RAISE EXCEPTION '{table} {why}'; END; $$ LANGUAGE plpgsql;""",
        f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} FOR EACH ROW EXECUTE FUNCTION {table}_no_delete();",
    ]


def up(apps, schema_editor):
    build = {"sqlite": _sqlite_up, "postgresql": _postgres_up}.get(schema_editor.connection.vendor)
    if build is None:
        return
    for table, why in GUARDED.items():
        for sql in build(table, why):
            schema_editor.execute(sql)


def down(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for table in GUARDED:
        if vendor == "sqlite":
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete;")
        elif vendor == "postgresql" and table != "registry_auditevent":
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete ON {table};")
            schema_editor.execute(f"DROP FUNCTION IF EXISTS {table}_no_delete();")


class Migration(migrations.Migration):

    dependencies = [
        ('registry', '0008_api_tokens'),
    ]

    operations = [
        migrations.AlterField(
            model_name='auditevent',
            name='action',
            field=models.CharField(choices=[('registered', 'Registered'), ('promotion_requested', 'Promotion Requested'), ('promotion_approved', 'Promotion Approved'), ('promotion_rejected', 'Promotion Rejected'), ('promotion_expired', 'Promotion Expired'), ('promotion_superseded', 'Promotion Superseded'), ('promotion_completed', 'Promotion Completed'), ('rolled_back', 'Rolled Back'), ('model_updated', 'Model Updated'), ('prompt_imported', 'Prompt Imported'), ('eval_set_imported', 'Eval Set Imported'), ('gate_policy_set', 'Gate Policy Set'), ('gate_overridden', 'Gate Overridden'), ('schema_set', 'Schema Set'), ('evaluation_requested', 'Evaluation Requested'), ('evaluation_recorded', 'Evaluation Recorded'), ('experiment_created', 'Experiment Created'), ('experiment_started', 'Experiment Started'), ('experiment_stopped', 'Experiment Stopped'), ('experiment_decided', 'Experiment Decided'), ('rollout_started', 'Rollout Started'), ('rollout_advanced', 'Rollout Advanced'), ('rollout_paused', 'Rollout Paused'), ('rollout_resumed', 'Rollout Resumed'), ('rollout_rolled_back', 'Rollout Rolled Back'), ('rollout_policy_set', 'Rollout Policy Set'), ('gate_policy_deleted', 'Gate Policy Deleted'), ('price_set', 'Price Set'), ('prices_imported', 'Prices Imported'), ('budget_set', 'Budget Set'), ('alert_acknowledged', 'Alert Acknowledged'), ('alert_silenced', 'Alert Silenced'), ('alert_action_set', 'Alert Action Set'), ('alert_rule_changed', 'Alert Rule Changed'), ('alert_rule_deleted', 'Alert Rule Deleted'), ('reference_set', 'Reference Set'), ('labels_overwritten', 'Labels Overwritten')], max_length=32),
        ),
        migrations.RunPython(up, down),
    ]

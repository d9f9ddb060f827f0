"""The four role groups, and a trigger that makes the audit log append-only in the database itself."""

from django.db import migrations

ROLES = ("viewer", "editor", "approver", "admin")

SQLITE_UP = """
CREATE TRIGGER registry_auditevent_no_update BEFORE UPDATE ON registry_auditevent
BEGIN SELECT RAISE(ABORT, 'registry_auditevent is append-only'); END;
"""
SQLITE_DOWN = "DROP TRIGGER IF EXISTS registry_auditevent_no_update;"

POSTGRES_UP = """
CREATE OR REPLACE FUNCTION registry_auditevent_append_only() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION 'registry_auditevent is append-only'; END; $$ LANGUAGE plpgsql;
CREATE TRIGGER registry_auditevent_no_update BEFORE UPDATE ON registry_auditevent
FOR EACH ROW EXECUTE FUNCTION registry_auditevent_append_only();
"""
POSTGRES_DOWN = """
DROP TRIGGER IF EXISTS registry_auditevent_no_update ON registry_auditevent;
DROP FUNCTION IF EXISTS registry_auditevent_append_only();
"""


def create_groups(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name in ROLES:
        Group.objects.get_or_create(name=name)


def add_trigger(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    sql = {"sqlite": SQLITE_UP, "postgresql": POSTGRES_UP}.get(vendor)
    if sql:
        schema_editor.execute(sql)


def drop_trigger(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    sql = {"sqlite": SQLITE_DOWN, "postgresql": POSTGRES_DOWN}.get(vendor)
    if sql:
        schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.RunPython(create_groups, migrations.RunPython.noop),
        migrations.RunPython(add_trigger, drop_trigger),
    ]

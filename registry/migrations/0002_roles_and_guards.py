"""The four role groups, and database triggers that keep history honest.

- The audit log is append-only: UPDATE is refused (and DELETE too on PostgreSQL;
  SQLite's test flush deletes rows, PostgreSQL's truncates, which no row trigger sees).
- A registered version is immutable: only its stage (and created_by, set to NULL
  when a user is deleted) may change.
"""

from django.db import migrations

ROLES = ("viewer", "editor", "approver", "admin")
IMMUTABLE = [
    "model_id", "version", "params", "metrics", "tags", "code_commit", "data_version", "image_tag",
    "description", "artifact", "artifact_uri", "artifact_size", "artifact_sha256", "created_at",
]

SQLITE_UP = [
    """CREATE TRIGGER registry_auditevent_no_update BEFORE UPDATE ON registry_auditevent
       BEGIN SELECT RAISE(ABORT, 'registry_auditevent is append-only'); END;""",
    f"""CREATE TRIGGER registry_modelversion_immutable BEFORE UPDATE ON registry_modelversion
       WHEN {" OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in IMMUTABLE)}
       BEGIN SELECT RAISE(ABORT, 'registry_modelversion is immutable except its stage'); END;""",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS registry_auditevent_no_update;",
    "DROP TRIGGER IF EXISTS registry_modelversion_immutable;",
]

POSTGRES_UP = [
    """CREATE OR REPLACE FUNCTION registry_append_only() RETURNS trigger AS $$
       BEGIN RAISE EXCEPTION USING MESSAGE = TG_TABLE_NAME || ' is append-only'; END; $$ LANGUAGE plpgsql;""",
    """CREATE TRIGGER registry_auditevent_append_only BEFORE UPDATE OR DELETE ON registry_auditevent
       FOR EACH ROW EXECUTE FUNCTION registry_append_only();""",
    f"""CREATE OR REPLACE FUNCTION registry_modelversion_immutable() RETURNS trigger AS $$
       BEGIN
         IF ({", ".join(f"NEW.{c}" for c in IMMUTABLE)}) IS DISTINCT FROM ({", ".join(f"OLD.{c}" for c in IMMUTABLE)}) THEN
           RAISE EXCEPTION 'registry_modelversion is immutable except its stage';
         END IF;
         RETURN NEW;
       END; $$ LANGUAGE plpgsql;""",
    """CREATE TRIGGER registry_modelversion_immutable BEFORE UPDATE ON registry_modelversion
       FOR EACH ROW EXECUTE FUNCTION registry_modelversion_immutable();""",
]
POSTGRES_DOWN = [
    "DROP TRIGGER IF EXISTS registry_auditevent_append_only ON registry_auditevent;",
    "DROP TRIGGER IF EXISTS registry_modelversion_immutable ON registry_modelversion;",
    "DROP FUNCTION IF EXISTS registry_append_only();",
    "DROP FUNCTION IF EXISTS registry_modelversion_immutable();",
]


def create_groups(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name in ROLES:
        Group.objects.get_or_create(name=name)


def _run(schema_editor, statements: dict) -> None:
    for sql in statements.get(schema_editor.connection.vendor, []):
        schema_editor.execute(sql)


def add_triggers(apps, schema_editor):
    _run(schema_editor, {"sqlite": SQLITE_UP, "postgresql": POSTGRES_UP})


def drop_triggers(apps, schema_editor):
    _run(schema_editor, {"sqlite": SQLITE_DOWN, "postgresql": POSTGRES_DOWN})


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.RunPython(create_groups, migrations.RunPython.noop),
        migrations.RunPython(add_triggers, drop_triggers),
    ]

"""Prompt versions and eval set versions are immutable in the database too (their content never changes)."""

from django.db import migrations

TABLES = {
    "registry_promptversion": [
        "prompt_id", "version", "file_name", "llm_model", "temperature", "max_tokens", "system", "template",
        "placeholders", "eval_criteria", "description", "tags", "metadata", "source", "sha256", "eval_set_id", "created_at",
    ],
    "registry_evalset": ["prompt_id", "version", "sha256", "row_count", "content", "created_at"],
}


def _sqlite_up(table, columns):
    return f"""CREATE TRIGGER {table}_immutable BEFORE UPDATE ON {table}
       WHEN {" OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in columns)}
       BEGIN SELECT RAISE(ABORT, '{table} is immutable'); END;"""


def _postgres_up(table, columns):
    return [
        f"""CREATE OR REPLACE FUNCTION {table}_immutable() RETURNS trigger AS $$
           BEGIN
             IF ({", ".join(f"NEW.{c}" for c in columns)}) IS DISTINCT FROM ({", ".join(f"OLD.{c}" for c in columns)}) THEN
               RAISE EXCEPTION USING MESSAGE = TG_TABLE_NAME || ' is immutable';
             END IF;
             RETURN NEW;
           END; $$ LANGUAGE plpgsql;""",
        f"CREATE TRIGGER {table}_immutable BEFORE UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION {table}_immutable();",
    ]


def up(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for table, columns in TABLES.items():
        if vendor == "sqlite":
            schema_editor.execute(_sqlite_up(table, columns))
        elif vendor == "postgresql":
            for sql in _postgres_up(table, columns):
                schema_editor.execute(sql)


def down(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for table in TABLES:
        if vendor == "sqlite":
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_immutable;")
        elif vendor == "postgresql":
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_immutable ON {table};")
            schema_editor.execute(f"DROP FUNCTION IF EXISTS {table}_immutable();")


class Migration(migrations.Migration):
    dependencies = [("registry", "0003_prompts")]

    operations = [migrations.RunPython(up, down)]

"""A registered version's lineage (the run and the logged model an MLflow client registered it from) is as immutable
as the rest of it: the trigger of migration 0002 now covers those two columns too."""

from django.db import migrations

BEFORE = [
    "model_id", "version", "params", "metrics", "tags", "code_commit", "data_version", "image_tag",
    "description", "artifact", "artifact_uri", "artifact_size", "artifact_sha256", "created_at",
]
AFTER = [*BEFORE, "run_id", "logged_model_id"]


def _sqlite(columns: list[str]) -> list[str]:
    return [
        "DROP TRIGGER IF EXISTS registry_modelversion_immutable;",
        f"""CREATE TRIGGER registry_modelversion_immutable BEFORE UPDATE ON registry_modelversion
           WHEN {" OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in columns)}
           BEGIN SELECT RAISE(ABORT, 'registry_modelversion is immutable except its stage'); END;""",
    ]


def _postgres(columns: list[str]) -> list[str]:
    return [
        f"""CREATE OR REPLACE FUNCTION registry_modelversion_immutable() RETURNS trigger AS $$
           BEGIN
             IF ({", ".join(f"NEW.{c}" for c in columns)}) IS DISTINCT FROM ({", ".join(f"OLD.{c}" for c in columns)}) THEN
               RAISE EXCEPTION 'registry_modelversion is immutable except its stage';
             END IF;
             RETURN NEW;
           END; $$ LANGUAGE plpgsql;""",
    ]


def _apply(columns: list[str]):
    def run(apps, schema_editor):
        vendor = schema_editor.connection.vendor
        for sql in {"sqlite": _sqlite(columns), "postgresql": _postgres(columns)}.get(vendor, []):
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("registry", "0015_webhook_format")]

    operations = [migrations.RunPython(_apply(AFTER), _apply(BEFORE))]

"""Data validation end to end: a schema inferred from a reference, a data evaluation that counts violations,
the gate that reads it, and the same schema guarding monitoring events (upstream drift in drift reports)."""

from datetime import UTC, datetime, timedelta

import pytest

from monitoring import services as monitoring_services
from registry.models import Evaluation
from tests.factories import register
from tests.registry.test_api import assert_error_shape

pytestmark = pytest.mark.django_db
REFERENCE = b"amount,country\n" + b"".join(f"{10 + i % 90},{'DE' if i % 2 else 'FR'}\n".encode() for i in range(200))


def test_infer_edit_and_validate_a_file(celery_eager, api_as, editor, viewer, django_capture_on_commit_callbacks):
    register("fraud", editor)
    inferred = api_as(editor).put("/api/v1/models/fraud/schema?filename=ref.csv", REFERENCE, content_type="text/csv")
    schema = inferred.json()["schema"]
    by = {c["name"]: c for c in schema["columns"]}
    assert inferred.status_code == 200 and (by["amount"]["min"], by["amount"]["max"]) == (10, 99)
    assert by["country"]["categories"] == ["DE", "FR"]

    bad = b"amount,country,extra\n5,DE,1\n50,XX,2\n,FR,3\n"
    with django_capture_on_commit_callbacks(execute=True):
        queued = api_as(editor).post("/api/v1/models/fraud/versions/1/evaluations?kind=data&filename=batch.csv", bad, content_type="text/csv")
    evaluation = Evaluation.objects.get(pk=queued.json()["id"])

    assert evaluation.status == "done", evaluation.error
    kinds = {(v["column"], v["kind"]): v for v in evaluation.details["report"]["violations"]}
    assert kinds[("amount", "below_min")]["count"] == 1 and kinds[("country", "unknown_category")]["examples"][0] == {"row": 2, "value": "XX"}
    assert ("extra", "unexpected_column") in kinds and ("amount", "null_share") in kinds
    assert evaluation.metrics["schema_violations"] == len(kinds) and evaluation.metrics["invalid_rows"] == 3

    schema["columns"][0]["max"] = -1  # min > max
    assert_error_shape(api_as(editor).put("/api/v1/models/fraud/schema", schema, format="json"), 400)
    assert api_as(viewer).put("/api/v1/models/fraud/schema", REFERENCE, content_type="text/csv").status_code == 403


def test_the_schema_guards_monitoring_events(celery_eager, client, api_as, editor, django_capture_on_commit_callbacks):
    version = register("fraud", editor)
    api_as(editor).put("/api/v1/models/fraud/schema", REFERENCE, content_type="text/csv")
    monitoring_services.reference_set_from_file(model_version=version, data=REFERENCE, actor=editor)
    t0 = datetime(2026, 11, 20, 10, tzinfo=UTC)
    events = [{"event_id": f"e-{i}", "model": "fraud", "version": 1, "timestamp": (t0 + timedelta(seconds=i)).isoformat(), "latency_ms": 3,
               "features": {"amount": 500.0 if i < 4 else 20.0, "country": "DE"}} for i in range(50)]
    api_as(editor).post("/api/v1/events", {"events": events}, format="json")

    with django_capture_on_commit_callbacks(execute=True):
        report = monitoring_services.drift_report_request(model_version=version, start=t0, end=t0 + timedelta(hours=1))
    report.refresh_from_db()

    violations = report.schema_check["violations"]
    assert [(v["column"], v["kind"], v["count"]) for v in violations] == [("amount", "above_max", 4)]
    from monitoring.models import AlertRule

    rule = AlertRule.objects.get(model__name="fraud", metric="schema_violations")
    assert rule.state == "alert" and rule.last_value == 1.0
    client.force_login(editor)
    page = client.get(f"/monitoring/reports/{report.pk}/").content.decode()
    assert 'id="schema-check"' in page and "1 violation" in page

"""The monitoring API over HTTP (DRF test client): references, drift reports, alerts."""

import io
from datetime import timedelta

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from monitoring.models import AlertRule, DriftReport
from tests.factories import register
from tests.monitoring.test_reports import T0, send
from tests.registry.test_api import assert_error_shape

pytestmark = pytest.mark.django_db

URL = "/api/v1/models/fraud/versions/1"


@pytest.fixture
def fraud(editor):
    return register("fraud", editor)


def _parquet(**columns) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.table(columns), out)
    return out.getvalue()


def test_reference_from_parquet_over_http_and_a_report_that_matches_scipy(celery_eager, api_as, editor, viewer, fraud, django_capture_on_commit_callbacks):
    rng = np.random.default_rng(3)
    reference = rng.normal(100, 10, 4000)
    body = _parquet(amount=reference, country=["DE" if i % 3 else None for i in range(4000)])

    response = api_as(editor).put(f"{URL}/reference?filename=train.parquet", body, content_type="application/vnd.apache.parquet")

    assert response.status_code == 200, response.content
    assert response.json()["rows"] == 4000
    assert response.json()["columns"]["country"]["kind"] == "categorical"
    assert response.json()["columns"]["country"]["missing"] == pytest.approx(1334 / 4000)
    assert api_as(viewer).get(f"{URL}/reference").json()["description"] == "train.parquet"

    current = rng.normal(104, 10, 1500)
    send(api_as, editor, current)
    with django_capture_on_commit_callbacks(execute=True):
        queued = api_as(editor).post(f"{URL}/drift-reports", {"start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat()}, format="json")
    assert queued.status_code == 202, queued.content

    report = api_as(viewer).get(f"/api/v1/drift-reports/{queued.json()['id']}").json()
    assert report["status"] == "done" and report["rows"] == 1500
    amount = next(r for r in report["results"] if r["column"] == "amount")
    assert amount["ks_statistic"] == stats.ks_2samp(reference, current).statistic
    listed = api_as(viewer).get(f"{URL}/drift-reports").json()
    assert listed["count"] == 1 and "results" not in listed["results"][0]


def test_reference_from_multipart_csv_and_from_a_traffic_window(api_as, editor, fraud):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("ref.csv", b"amount,country\n1,DE\n2,FR\n3,\n", content_type="text/csv")

    response = api_as(editor).put(f"{URL}/reference", {"file": upload}, format="multipart")

    assert response.status_code == 200, response.content
    assert response.json()["rows"] == 3 and response.json()["source"] == "upload"
    send(api_as, editor, [1.0, 2.0, 3.0, 4.0], at=T0)
    window = {"window": {"start": (T0 - timedelta(minutes=1)).isoformat(), "end": (T0 + timedelta(minutes=1)).isoformat()}}
    from_traffic = api_as(editor).put(f"{URL}/reference", window, format="json")
    assert from_traffic.status_code == 200, from_traffic.content
    assert from_traffic.json()["source"] == "window" and from_traffic.json()["rows"] == 4


@pytest.mark.parametrize(
    "body, content_type",
    [(b"a,b\n1\n", "text/csv"), (b"", "text/csv"), (b"PAR1 broken", "application/octet-stream"), (b'{"a": [1]}\n', "application/x-ndjson")],
)
def test_a_bad_reference_file_is_a_400_and_keeps_the_old_reference(api_as, editor, fraud, body, content_type):
    api_as(editor).put(f"{URL}/reference", b"amount\n1\n2\n", content_type="text/csv")

    response = api_as(editor).put(f"{URL}/reference", body, content_type=content_type)

    assert_error_shape(response, 400)
    assert api_as(editor).get(f"{URL}/reference").json()["rows"] == 2


def test_reference_and_reports_need_roles_and_known_versions(api_as, editor, viewer, fraud):
    assert api_as(viewer).put(f"{URL}/reference", b"amount\n1\n", content_type="text/csv").status_code == 403
    assert api_as(viewer).post(f"{URL}/drift-reports", {"hours": 1}, format="json").status_code == 403
    assert api_as(None).get(f"{URL}/drift-reports").status_code == 401
    missing = api_as(editor).get("/api/v1/models/fraud/versions/9/reference")
    assert_error_shape(missing, 404)
    assert api_as(editor).get(f"{URL}/reference").status_code == 404
    assert api_as(editor).post(f"{URL}/drift-reports", {"hours": 0}, format="json").status_code == 400
    assert api_as(editor).post(f"{URL}/drift-reports", {"start": "yesterday", "end": "now"}, format="json").status_code == 400
    assert api_as(viewer).get("/api/v1/drift-reports/999").status_code == 404
    assert DriftReport.objects.count() == 0


def test_alerts_list_acknowledge_and_silence(api_as, editor, viewer, fraud, django_assert_max_num_queries):
    api_as(editor).put(f"{URL}/reference", b"amount\n1\n2\n", content_type="text/csv")  # creates the default rules
    rule = AlertRule.objects.filter(model__name="fraud").first()

    client = api_as(viewer)
    with django_assert_max_num_queries(4):  # token, roles, count, page
        listed = client.get("/api/v1/alerts?model=fraud")
    assert listed.status_code == 200 and listed.json()["count"] == AlertRule.objects.count() >= 3
    assert api_as(viewer).post(f"/api/v1/alerts/{rule.pk}/acknowledge").status_code == 403
    assert_error_shape(api_as(editor).post(f"/api/v1/alerts/{rule.pk}/acknowledge"), 409)  # nothing to acknowledge while ok
    AlertRule.objects.filter(pk=rule.pk).update(state="alert")
    acknowledged = api_as(editor).post(f"/api/v1/alerts/{rule.pk}/acknowledge")
    assert acknowledged.status_code == 200 and acknowledged.json()["acknowledged_by"] == editor.username
    silenced = api_as(editor).post(f"/api/v1/alerts/{rule.pk}/silence", {"hours": 4}, format="json")
    assert silenced.status_code == 200 and silenced.json()["silenced_until"]
    assert api_as(editor).post(f"/api/v1/alerts/{rule.pk}/silence", {"hours": "4"}, format="json").status_code == 400
    assert api_as(editor).post("/api/v1/alerts/999/acknowledge").status_code == 404


def test_drift_report_list_takes_a_fixed_number_of_queries(api_as, editor, viewer, fraud, django_assert_max_num_queries):
    for hour in range(12):
        DriftReport.objects.create(model_version=fraud, window_start=T0 + timedelta(hours=hour), window_end=T0 + timedelta(hours=hour + 1))
    client = api_as(viewer)

    with django_assert_max_num_queries(5):  # token, roles, the version, count, page
        listed = client.get(f"{URL}/drift-reports?page_size=100").json()

    assert listed["count"] == 12
    assert [r["window_end"] for r in listed["results"][:2]] == ["2026-11-20T22:00:00Z", "2026-11-20T21:00:00Z"]
    assert {(r["model"], r["version"]) for r in listed["results"]} == {("fraud", 1)}

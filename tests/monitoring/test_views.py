import json
import re
from datetime import timedelta

import numpy as np
import pytest
from django.core.files.uploadedfile import InMemoryUploadedFile
from django.test import Client

from monitoring import services
from monitoring.models import Reference
from tests.factories import register
from tests.monitoring.test_reports import T0, send

pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def drifted_report(api_as, editor, django_capture_on_commit_callbacks):
    version = register("fraud", editor)
    rng = np.random.default_rng(0)
    csv = "amount,country\n" + "".join(f"{v},{'DE' if i % 2 else 'FR'}\n" for i, v in enumerate(rng.normal(100, 10, 2000)))
    services.reference_set_from_file(model_version=version, data=csv.encode(), actor=editor)
    send(api_as, editor, rng.normal(130, 10, 500), shift=0.0)
    with django_capture_on_commit_callbacks(execute=True):
        report = services.drift_report_request(model_version=version, start=T0, end=T0 + timedelta(hours=1))
    report.refresh_from_db()
    return report


def test_monitoring_pages_work_empty(viewer):
    assert "No model version is monitored yet" in logged_in(viewer).get("/monitoring/").content.decode()


def test_report_page_shows_the_drifted_feature_first_with_charts(celery_eager, viewer, drifted_report):
    html = logged_in(viewer).get(f"/monitoring/reports/{drifted_report.pk}/").content.decode()

    first_row = re.search(r'<tbody>\s*<tr class="sev-(\w+)[^"]*">\s*<td><a href="\?column=(\w+)', html)
    assert first_row.groups() == ("significant", "amount")
    histogram = json.loads(re.search(r'<script id="histogram-figure" type="application/json">(.*?)</script>', html, re.S).group(1))
    assert [t["name"] for t in histogram["data"]] == ["reference", "current"]
    assert sum(histogram["data"][1]["y"]) == pytest.approx(1.0)
    assert 'id="heatmap-figure"' in html


def test_overview_turns_red_for_drift(celery_eager, viewer, drifted_report, django_assert_max_num_queries):
    client = logged_in(viewer)

    with django_assert_max_num_queries(6):
        html = client.get("/monitoring/").content.decode()

    assert "status-rejected\">drift" in html


def test_report_button_and_reference_upload(editor):
    register("fraud", editor)
    client = logged_in(editor)
    upload = client.post("/monitoring/models/fraud/versions/1/reference/", {"reference": _file("amount\n1\n2\n3\n")}, follow=True)

    assert "Reference set: 3 rows, 1 columns." in upload.content.decode()
    queued = client.post("/monitoring/models/fraud/versions/1/reports/", {"hours": "24"}, follow=True)
    assert queued.status_code == 200 and "Drift report #" in queued.content.decode()


def test_a_viewers_reference_upload_is_refused_before_the_file_is_read(viewer, editor, monkeypatch):
    register("fraud", editor)
    reads = []
    monkeypatch.setattr(InMemoryUploadedFile, "read", property(lambda self: lambda *args: reads.append(self.name) or self.file.read(*args)))

    response = logged_in(viewer).post("/monitoring/models/fraud/versions/1/reference/", {"reference": _file("amount\n1\n2\n3\n")}, follow=True)

    assert "Setting a reference needs the editor role." in response.content.decode()
    assert reads == []
    assert not Reference.objects.exists()


def _file(text: str):
    import io

    buffer = io.BytesIO(text.encode())
    buffer.name = "reference.csv"
    return buffer


@pytest.mark.parametrize(
    "path",
    [
        "/monitoring/models/nope/versions/1/reference/",
        "/monitoring/models/nope/versions/1/reference/window/",
        "/monitoring/models/nope/versions/1/reports/",
        "/monitoring/models/fraud/versions/9/reference/",
        "/monitoring/models/fraud/versions/9/reference/window/",
        "/monitoring/models/fraud/versions/9/reports/",
        "/monitoring/alerts/999/acknowledge/",
        "/monitoring/alerts/999/silence/",
    ],
)
def test_every_monitoring_form_answers_an_unknown_version_or_rule_with_404(editor, path):
    register("fraud", editor)

    response = logged_in(editor).post(path, {"hours": "24"})

    assert response.status_code == 404

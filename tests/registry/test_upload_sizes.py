"""Uploads over their limit are refused by their size (413 in the error shape) and never read into memory."""

import io

import pytest
from django.core.files.uploadedfile import InMemoryUploadedFile

from monitoring.models import Reference
from registry import tables
from registry.models import Evaluation, Prompt
from registry.services import evaluations
from tests.factories import register
from tests.registry.test_api import assert_error_shape
from tests.registry.test_views_gates import logged_in

pytestmark = pytest.mark.django_db
URL = "/api/v1/models/fraud/versions/1"


def _named(size: int, name: str) -> io.BytesIO:
    buffer = io.BytesIO(b"a" * size)
    buffer.name = name
    return buffer


@pytest.fixture
def reads(monkeypatch):
    """The names of uploads the server read (the test client reads its own BytesIO, not an uploaded file)."""
    names: list[str] = []
    monkeypatch.setattr(InMemoryUploadedFile, "read", property(lambda self: lambda *args: names.append(self.name) or self.file.read(*args)))
    return names


def test_evaluation_api_upload_over_the_limit_is_a_413_without_reading_it(api_as, editor, monkeypatch, reads):
    register("fraud", editor)
    monkeypatch.setattr(evaluations, "MAX_UPLOAD_MB", 1)

    response = api_as(editor).post(f"{URL}/evaluations", {"file": _named(1024 * 1024 + 1, "preds.csv")}, format="multipart")

    assert "the limit is 1048576 bytes" in assert_error_shape(response, 413, "too_large")["message"]
    assert reads == []
    assert not Evaluation.objects.exists()


def test_reference_api_upload_over_the_limit_is_a_413_without_reading_it(api_as, editor, monkeypatch, reads):
    register("fraud", editor)
    monkeypatch.setattr(tables, "MAX_TABLE_BYTES", 1000)

    response = api_as(editor).put(f"{URL}/reference", {"file": _named(1001, "reference.csv")}, format="multipart")

    assert "the limit is 1000 bytes" in assert_error_shape(response, 413, "too_large")["message"]
    assert reads == []
    assert not Reference.objects.exists()


def test_reference_page_upload_over_the_limit_is_refused_without_reading_it(editor, monkeypatch, reads):
    register("fraud", editor)
    monkeypatch.setattr(tables, "MAX_TABLE_BYTES", 1000)

    response = logged_in(editor).post("/monitoring/models/fraud/versions/1/reference/", {"reference": _named(1001, "reference.csv")}, follow=True)

    assert "the limit is 1000 bytes" in response.content.decode()
    assert reads == []
    assert not Reference.objects.exists()


def test_prompt_import_page_archive_over_the_limit_is_refused_without_reading_it(editor, settings, reads):
    settings.MLOPS_PROMPT_ARCHIVE_MAX_BYTES = 1000

    response = logged_in(editor).post("/prompts/import/", {"archive": _named(1001, "prompts.zip")}, follow=True)

    assert "the limit is 1000 bytes" in response.content.decode()
    assert reads == []
    assert not Prompt.objects.exists()


def test_schema_inference_upload_over_the_limit_is_refused_without_reading_it(editor, monkeypatch, reads):
    register("fraud", editor)
    monkeypatch.setattr(evaluations, "MAX_UPLOAD_MB", 1)

    response = logged_in(editor).post("/models/fraud/schema/", {"action": "infer", "file": _named(1024 * 1024 + 1, "reference.csv")})

    assert response.status_code == 413 and "the limit is 1048576 bytes" in response.content.decode()
    assert reads == []


def test_prompt_import_api_archive_over_the_limit_is_a_413_without_reading_it(api_as, editor, settings, reads):
    settings.MLOPS_PROMPT_ARCHIVE_MAX_BYTES = 1000

    response = api_as(editor).post("/api/v1/prompts/import", {"archive": _named(1001, "prompts.zip")}, format="multipart")

    assert "The archive is 1001 bytes; the limit is 1000 bytes" in assert_error_shape(response, 413, "too_large")["message"]
    assert reads == []
    assert not Prompt.objects.exists()

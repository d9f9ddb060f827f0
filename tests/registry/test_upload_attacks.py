"""Hostile uploads on every path that takes a table file or a raw body: corrupt or oversized files are a 400 (API:
the error shape; pages: the message) or, for an evaluation, a failed run that says why, never a 500; raw bodies are
refused by their size before they are read, and bounded when they declare none."""

import gzip
import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.http import HttpRequest
from django.test import RequestFactory

from mlops_site.exceptions import TooLarge
from mlops_site.uploads import read_body
from monitoring.models import Reference
from registry import tables
from registry.models import DatasetSchema, Evaluation, Prompt
from registry.services import evaluations
from tests.factories import register
from tests.registry.test_api import assert_error_shape
from tests.registry.test_views_gates import logged_in

pytestmark = pytest.mark.django_db
URL = "/api/v1/models/fraud/versions/1"


def _parquet(rows: int) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.table({"amount": np.arange(rows, dtype=float)}), buffer)
    return buffer.getvalue()


BAD_FILES = {
    "garbage with Parquet magic": (b"PAR1" + np.random.default_rng(0).bytes(3000) + b"PAR1", "Not a readable PARQUET file"),
    "truncated gzip": (gzip.compress(b"amount\n" + b"1.5\n" * 500)[:30], "not UTF-8"),
    "invalid UTF-8 CSV": (b"amount,country\n1,\xff\xfe\n", "not UTF-8"),
    "Parquet over the row limit": (_parquet(3), "The file has 3 rows; the limit is 2 rows."),
}


def _named(data: bytes, name: str = "reference.parquet") -> io.BytesIO:
    buffer = io.BytesIO(data)
    buffer.name = name
    return buffer


@pytest.fixture
def fraud(editor, monkeypatch):
    monkeypatch.setattr(tables, "MAX_TABLE_ROWS", 2)
    return register("fraud", editor)


@pytest.fixture
def body_reads(monkeypatch):
    """How many bytes each read of a request's body asked for (None: all of it)."""
    sizes = []
    read = HttpRequest.read
    monkeypatch.setattr(HttpRequest, "read", lambda self, *args: sizes.append(args[0] if args else None) or read(self, *args))
    return sizes


@pytest.mark.parametrize("bad", BAD_FILES)
@pytest.mark.parametrize("how", ["reference multipart", "reference raw", "schema multipart", "schema raw"])
def test_api_bad_table_file_is_a_400_naming_the_problem(api_as, editor, fraud, bad, how):
    data, words = BAD_FILES[bad]
    client = api_as(editor)
    path = f"{URL}/reference" if how.startswith("reference") else "/api/v1/models/fraud/schema"

    if how.endswith("multipart"):
        response = client.put(path, {"file": _named(data)}, format="multipart")
    else:
        response = client.put(f"{path}?filename=upload.bin", data, content_type="application/octet-stream")

    assert words in assert_error_shape(response, 400, "invalid")["message"]
    assert not Reference.objects.exists() and not DatasetSchema.objects.exists()


@pytest.mark.parametrize("bad", BAD_FILES)
def test_pages_bad_table_file_says_the_problem(editor, fraud, bad):
    data, words = BAD_FILES[bad]
    client = logged_in(editor)

    reference = client.post("/monitoring/models/fraud/versions/1/reference/", {"reference": _named(data)}, follow=True)
    schema = client.post("/models/fraud/schema/", {"action": "infer", "file": _named(data)})

    assert reference.status_code == 200 and words in reference.content.decode()
    assert schema.status_code == 400 and words in schema.content.decode()
    assert not Reference.objects.exists() and not DatasetSchema.objects.exists()


@pytest.mark.parametrize("bad", BAD_FILES)
def test_evaluation_of_a_bad_table_file_fails_saying_the_problem(api_as, editor, fraud, bad):
    data, words = BAD_FILES[bad]
    queued = api_as(editor).post(f"{URL}/evaluations?kind=model&filename=preds.bin", data, content_type="application/octet-stream")
    assert queued.status_code == 202, queued.content

    evaluations.evaluation_run(evaluation_id=queued.json()["id"])

    evaluation = Evaluation.objects.get()
    assert evaluation.status == "failed" and words in evaluation.error


@pytest.mark.parametrize("path", ["/api/v1/prompts/import", "/prompts/import/"])
def test_prompt_import_of_a_truncated_gzip_archive_is_refused(api_as, editor, path):
    archive = _named(gzip.compress(b"x" * 5000)[:40], "prompts.tar.gz")

    if path.startswith("/api/"):
        response = api_as(editor).post(path, {"archive": archive}, format="multipart")
        message = assert_error_shape(response, 400)["message"]
    else:
        response = logged_in(editor).post(path, {"archive": archive}, follow=True)
        assert response.status_code == 200
        message = response.content.decode()

    assert "archive" in message.lower()
    assert not Prompt.objects.exists()


# --- raw bodies -------------------------------------------------------------------------------------------------------


def test_raw_reference_body_over_the_limit_is_a_413_before_it_is_read(api_as, editor, fraud, monkeypatch, body_reads):
    monkeypatch.setattr(tables, "MAX_TABLE_BYTES", 1000)

    response = api_as(editor).put(f"{URL}/reference", b"amount\n" + b"1\n" * 497, content_type="text/csv")

    assert "is 1001 bytes; the limit is 1000 bytes" in assert_error_shape(response, 413, "too_large")["message"]
    assert body_reads == [] and not Reference.objects.exists()


def test_raw_evaluation_body_over_the_limit_is_a_413_before_it_is_read(api_as, editor, fraud, monkeypatch, body_reads):
    monkeypatch.setattr(evaluations, "MAX_UPLOAD_MB", 1)

    response = api_as(editor).post(f"{URL}/evaluations?kind=model", b"a" * (1024 * 1024 + 1), content_type="application/octet-stream")

    assert "is 1048577 bytes; the limit is 1048576 bytes" in assert_error_shape(response, 413, "too_large")["message"]
    assert body_reads == [] and not Evaluation.objects.exists()


def test_raw_reference_body_is_bounded_by_the_file_limit_not_the_json_one(api_as, editor, fraud, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10

    response = api_as(editor).put(f"{URL}/reference", b"amount\n1\n2\n", content_type="text/csv")

    assert response.status_code == 200, response.content
    assert Reference.objects.get().rows == 2


def test_read_body_without_a_declared_length_reads_one_byte_past_the_limit_and_refuses():
    request = RequestFactory().generic("PUT", "/", data=b"a" * 5000, content_type="text/csv")
    del request.META["CONTENT_LENGTH"]  # as a chunked body arrives: no length, the stream says when it ends
    asked = []
    read = request.read
    request.read = lambda *args: asked.append(args) or read(*args)

    with pytest.raises(TooLarge, match="over the limit of 1000 bytes"):
        read_body(request, limit=1000, what="The file")

    assert asked == [(1001,)]


@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded"])
def test_api_json_or_form_body_over_the_memory_limit_is_a_413_before_it_is_read(api_as, editor, fraud, settings, body_reads, content_type):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000  # DRF reads JSON and form bodies through request.body, which checks it
    body = b'{"hours": 24, "pad": "' + b"x" * 1000 + b'"}' if content_type == "application/json" else b"hours=24&pad=" + b"x" * 1000

    response = api_as(editor).post(f"{URL}/drift-reports", body, content_type=content_type)

    assert_error_shape(response, 413, "too_large")
    assert body_reads == []

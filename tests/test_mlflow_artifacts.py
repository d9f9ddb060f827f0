"""The MLflow artifact proxy (/api/2.0/mlflow-artifacts/artifacts) attacked: paths that try to leave a run's folder
(`..` plain, percent-encoded and behind encoded slashes, absolute, backslashes, NUL, another run's folder under the
wrong group), a logged model's files after it is final, a run that does not exist, a declared length over the limit
(refused before one byte is read); and what it is for: a binary file back byte for byte, a listing with sizes.
Storage is the test's own MEDIA_ROOT (tests/conftest.py)."""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import pytest

from mlops_site.exceptions import TooLarge
from registry.models import LoggedModel
from registry.services import run_artifacts
from tests.test_mlflow_api import assert_mlflow_error, bearer, new_run, post

pytestmark = pytest.mark.django_db

ART = "/api/2.0/mlflow-artifacts/artifacts"


def stored_files(settings) -> set[str]:
    """Every file under MEDIA_ROOT, relative to it."""
    root = Path(settings.MEDIA_ROOT)
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def put(client, path: str, body: bytes, **extra):
    return client.put(f"{ART}/{path}", body, content_type="application/octet-stream", **extra)


@pytest.fixture
def writer(editor):
    return bearer(editor)


@pytest.fixture
def run_id(writer):
    return new_run(writer)


def test_artifact_binary_file_comes_back_byte_for_byte(writer, run_id, settings):
    body = bytes(range(256)) * 64 + random.Random(3).randbytes(100_000) + b"\x00\r\n\x1a"

    stored = put(writer, f"0/{run_id}/artifacts/model/weights.bin", body)
    fetched = writer.get(f"{ART}/0/{run_id}/artifacts/model/weights.bin")

    assert stored.status_code == 200, stored.content
    assert fetched.status_code == 200
    assert b"".join(fetched.streaming_content) == body
    assert fetched["X-Content-Type-Options"] == "nosniff"
    assert stored_files(settings) == {f"mlflow-artifacts/0/{run_id}/artifacts/model/weights.bin"}


def test_artifact_put_again_overwrites_as_mlflow_does(writer, run_id, settings):
    put(writer, f"0/{run_id}/artifacts/a.txt", b"first")

    put(writer, f"0/{run_id}/artifacts/a.txt", b"second!")

    assert b"".join(writer.get(f"{ART}/0/{run_id}/artifacts/a.txt").streaming_content) == b"second!"
    assert stored_files(settings) == {f"mlflow-artifacts/0/{run_id}/artifacts/a.txt"}


def test_artifact_listing_shows_files_with_sizes_and_folders(writer, run_id):
    put(writer, f"0/{run_id}/artifacts/model/MLmodel", b"flavors: {}\n")
    put(writer, f"0/{run_id}/artifacts/model/data/weights.bin", b"\x00" * 1234)
    put(writer, f"0/{run_id}/artifacts/notes.txt", b"hello")

    top = writer.get(ART, {"path": f"0/{run_id}/artifacts"})
    model = writer.get(ART, {"path": f"0/{run_id}/artifacts/model"})
    missing = writer.get(ART, {"path": f"0/{run_id}/artifacts/nothing-here"})

    assert top.json() == {"files": [{"path": "model", "is_dir": True}, {"path": "notes.txt", "is_dir": False, "file_size": 5}]}
    assert model.json() == {"files": [{"path": "data", "is_dir": True}, {"path": "MLmodel", "is_dir": False, "file_size": 12}]}
    assert missing.json() == {"files": []}


@pytest.mark.parametrize(
    "rest",
    [
        "../escaped.txt",
        "../../../escaped.txt",
        "model/../../escaped.txt",
        "%2e%2e/escaped.txt",
        "%2E%2E/%2e%2e/escaped.txt",
        "..%2fescaped.txt",
        "..%2Fescaped.txt",
        "model/..%5c..%5cescaped.txt",
        "model\\..\\escaped.txt",
        "./escaped.txt",
        "model//escaped.txt",
        "escaped%00.txt",
    ],
)
def test_artifact_put_and_get_of_a_path_leaving_the_run_folder_is_invalid_path(writer, run_id, settings, rest):
    path = f"0/{run_id}/artifacts/{rest}"

    written = put(writer, path, b"owned")
    read = writer.get(f"{ART}/{path}")

    assert_mlflow_error(written, 400, "INVALID_PARAMETER_VALUE")
    assert_mlflow_error(read, 400, "INVALID_PARAMETER_VALUE")
    assert stored_files(settings) == set()


@pytest.mark.parametrize("path", ["/etc/passwd", "//tmp/escaped.txt", "%2Ftmp%2Fescaped.txt", "..", "0/..", "0"])
def test_artifact_absolute_or_folderless_path_is_invalid_path(writer, run_id, settings, path):
    written = put(writer, path, b"owned")

    assert_mlflow_error(written, 400, "INVALID_PARAMETER_VALUE")
    assert stored_files(settings) == set()
    assert not os.path.exists("/tmp/escaped.txt")


def test_artifact_of_a_run_under_another_group_id_is_not_found(writer, run_id, settings):
    group = post(writer, "experiments/create", {"name": "elsewhere"}).json()["experiment_id"]
    other = new_run(writer, experiment_id=group)

    wrong_group = put(writer, f"0/{other}/artifacts/a.txt", b"x")
    swapped = put(writer, f"{group}/{run_id}/artifacts/a.txt", b"x")
    read = writer.get(f"{ART}/0/{other}/artifacts/a.txt")
    listed = writer.get(ART, {"path": f"0/{other}/artifacts"})

    for response in (wrong_group, swapped, read, listed):
        assert_mlflow_error(response, 404, "RESOURCE_DOES_NOT_EXIST")
    assert stored_files(settings) == set()


def test_artifact_for_a_run_that_does_not_exist_is_not_found(writer, settings):
    response = put(writer, "0/0123456789abcdef0123456789abcdef/artifacts/a.txt", b"x")

    assert_mlflow_error(response, 404, "RESOURCE_DOES_NOT_EXIST")
    assert stored_files(settings) == set()


@pytest.mark.parametrize("path", ["../", "..", "0/../", "/", "0/{run_id}/artifacts/..", "0/{run_id}/artifacts/../../0"])
def test_artifact_listing_outside_a_run_folder_is_invalid_path(writer, run_id, path):
    response = writer.get(ART, {"path": path.format(run_id=run_id)})

    assert_mlflow_error(response, 400, "INVALID_PARAMETER_VALUE")


def test_artifact_of_a_logged_model_is_final_once_it_is_ready(writer, run_id, settings):
    model_id = post(writer, "logged-models", {"experiment_id": "0", "source_run_id": run_id}).json()["model"]["info"]["model_id"]
    folder = f"0/models/{model_id}/artifacts"
    assert put(writer, f"{folder}/MLmodel", b"v1").status_code == 200
    ready = writer.patch(f"/api/2.0/mlflow/logged-models/{model_id}", {"status": "LOGGED_MODEL_READY"}, format="json")
    assert ready.status_code == 200, ready.content

    overwrite = put(writer, f"{folder}/MLmodel", b"v2")
    added = put(writer, f"{folder}/extra.pkl", b"smuggled")

    assert_mlflow_error(overwrite, 409, "INVALID_STATE")
    assert_mlflow_error(added, 409, "INVALID_STATE")
    assert b"".join(writer.get(f"{ART}/{folder}/MLmodel").streaming_content) == b"v1"
    assert stored_files(settings) == {f"mlflow-artifacts/{folder}/MLmodel"}
    assert LoggedModel.objects.get(model_id=model_id).status == "LOGGED_MODEL_READY"


class Unreadable:
    """A request body that fails the test if the server reads it."""

    def read(self, *args):
        raise AssertionError("the body was read")

    readline = read


def test_artifact_declared_length_over_the_limit_is_413_before_reading(writer, run_id, settings):
    settings.MLOPS_MAX_ARTIFACT_BYTES = 1024

    response = writer.put(f"{ART}/0/{run_id}/artifacts/big.bin", b"x", content_type="application/octet-stream",
                          CONTENT_LENGTH=str(10 * 1024**3), **{"wsgi.input": Unreadable()})

    assert_mlflow_error(response, 413, "INVALID_PARAMETER_VALUE")
    assert stored_files(settings) == set()


def test_artifact_at_the_limit_is_stored_and_one_byte_over_is_413(writer, run_id, settings):
    settings.MLOPS_MAX_ARTIFACT_BYTES = 1024

    at_limit = put(writer, f"0/{run_id}/artifacts/fits.bin", b"a" * 1024)
    over = put(writer, f"0/{run_id}/artifacts/over.bin", b"a" * 1025)

    assert at_limit.status_code == 200, at_limit.content
    assert_mlflow_error(over, 413, "INVALID_PARAMETER_VALUE")
    assert stored_files(settings) == {f"mlflow-artifacts/0/{run_id}/artifacts/fits.bin"}


def test_artifact_body_without_a_declared_length_stops_one_byte_past_the_limit(editor, writer, run_id, settings):
    # Over HTTP the body is cut at its declared length; a body without one (a chunked upload behind a proxy) is
    # counted as it is read.
    settings.MLOPS_MAX_ARTIFACT_BYTES = 1024
    body = io.BytesIO(b"a" * 5000)

    with pytest.raises(TooLarge):
        run_artifacts.artifact_put(path=f"0/{run_id}/artifacts/big.bin", body=body, actor=editor, length=None)

    assert body.tell() == 1025
    assert stored_files(settings) == set()


@pytest.mark.parametrize(("first", "second"), [("a.txt", "a.txt/b.txt"), ("a.txt", "a.txt/deeper/b.txt"), ("model/MLmodel", "model")])
def test_artifact_file_and_folder_of_one_name_is_a_conflict_not_a_crash(writer, run_id, settings, first, second):
    assert put(writer, f"0/{run_id}/artifacts/{first}", b"first").status_code == 200

    response = put(writer, f"0/{run_id}/artifacts/{second}", b"second")

    assert_mlflow_error(response, 409, "INVALID_STATE")
    assert stored_files(settings) == {f"mlflow-artifacts/0/{run_id}/artifacts/{first}"}
    assert b"".join(writer.get(f"{ART}/0/{run_id}/artifacts/{first}").streaming_content) == b"first"


def test_artifact_get_of_a_folder_is_not_found_and_listing_a_file_is_empty(writer, run_id):
    put(writer, f"0/{run_id}/artifacts/model/MLmodel", b"x")

    folder = writer.get(f"{ART}/0/{run_id}/artifacts/model")
    listed = writer.get(ART, {"path": f"0/{run_id}/artifacts/model/MLmodel"})

    assert_mlflow_error(folder, 404, "RESOURCE_DOES_NOT_EXIST")
    assert listed.status_code == 200 and listed.json() == {"files": []}

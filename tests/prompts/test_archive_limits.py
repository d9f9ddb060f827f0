"""Archive uploads of a prompts folder: every member counts against the member cap, directories too."""

import io
import tarfile
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from registry.models import Prompt
from registry.services import prompts as prompt_services
from tests.prompts.conftest import brief_folder
from tests.registry.test_api import assert_error_shape

pytestmark = pytest.mark.django_db
CAP = 40


def _tar(files: dict[str, str], directories: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for i in range(directories):
            info = tarfile.TarInfo(f"empty{i}")
            info.type = tarfile.DIRTYPE
            archive.addfile(info)
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _zip(files: dict[str, str], directories: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(directories):
            archive.writestr(f"empty{i}/", "")
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


@pytest.mark.parametrize(("build", "filename"), [(_tar, "prompts.tar.gz"), (_zip, "prompts.zip")])
def test_archive_with_empty_directories_over_the_member_cap_is_refused(api_as, editor, monkeypatch, build, filename):
    monkeypatch.setattr(prompt_services, "MAX_ARCHIVE_MEMBERS", CAP)
    files = brief_folder()
    client = api_as(editor)

    over = client.post("/api/v1/prompts/import", {"archive": SimpleUploadedFile(filename, build(files, CAP - len(files) + 1))}, format="multipart")
    nothing_written = not Prompt.objects.exists()
    at_cap = client.post("/api/v1/prompts/import", {"archive": SimpleUploadedFile(filename, build(files, CAP - len(files)))}, format="multipart")

    assert f"{CAP} files" in assert_error_shape(over, 413, "too_large")["message"]
    assert nothing_written
    assert at_cap.status_code == 200, at_cap.content

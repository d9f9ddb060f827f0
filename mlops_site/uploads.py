"""Uploaded files are refused by their size before they are read: Django knows an upload's size
from the request (a large one is already spooled to a temporary file), so a too large upload is
never read into the web process's memory."""

from __future__ import annotations

from django.core.files.uploadedfile import UploadedFile

from .exceptions import TooLarge


def read_upload(upload: UploadedFile, *, limit: int, what: str = "The file") -> bytes:
    """The upload's bytes, or TooLarge (413) when its size is over `limit` bytes, checked before reading."""
    if upload.size is None or upload.size > limit:
        raise TooLarge(f"{what} is {upload.size} bytes; the limit is {limit} bytes.")
    return upload.read()

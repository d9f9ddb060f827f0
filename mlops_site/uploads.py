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


def read_body(request, *, limit: int, what: str = "The request body") -> bytes:
    """The raw body of a request that sends a file as its body (Django's or DRF's request), refused with TooLarge
    (413) by its Content-Length before a byte is read, and read at most `limit` + 1 bytes, so a body that declares
    no length (chunked) is bounded too. Unlike `request.body`, the limit is the file's, not DATA_UPLOAD_MAX_MEMORY_SIZE
    (which DRF applies to JSON and form bodies)."""
    declared = request.META.get("CONTENT_LENGTH") or ""
    if declared.strip().isdigit() and int(declared) > limit:
        raise TooLarge(f"{what} is {int(declared)} bytes; the limit is {limit} bytes.")
    data = request.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"{what} is over the limit of {limit} bytes.")
    return data

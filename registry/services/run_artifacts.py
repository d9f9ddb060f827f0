"""The files of runs and logged models, kept through Django's storage (the local media folder, or S3).

MLflow clients address them as `mlflow-artifacts:/<group>/<run_id>/artifacts/<path>` (a run's files) and
`mlflow-artifacts:/<group>/models/<model_id>/artifacts/<path>` (a logged model's). A path is accepted only when it
names a folder of an existing run or logged model of that group and stays inside it: `..`, `.`, empty segments,
backslashes, NUL and absolute paths are refused before the storage sees them. A logged model that is READY (all its
files uploaded, maybe already registered) is read-only.
"""

from __future__ import annotations

import errno
import hashlib
import posixpath
import tempfile
from dataclasses import dataclass

from django.conf import settings
from django.core.files.base import File
from django.core.files.storage import default_storage

from mlops_site.exceptions import Conflict, NotFound, TooLarge, ValidationFailed
from mlops_site.roles import EDITOR, require_role

from ..models import LoggedModel, LoggedModelStatus, Run

PREFIX = "mlflow-artifacts"
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Location:
    """A checked path: the storage name it maps to, and the run or logged model whose folder holds it."""

    path: str  # as the client gave it, normalised: "<group>/<run_id>/artifacts/<rest>"
    name: str  # the storage name: "mlflow-artifacts/<path>"
    run: Run | None
    logged_model: LoggedModel | None
    rest: str  # the part inside the owner's folder ("" for the folder itself)


def _invalid_path(path) -> ValidationFailed:
    return ValidationFailed(f"Invalid path: {str(path)[:200]!r}", code="invalid_parameter_value")


def artifact_location(path) -> Location:
    """Check `path` (relative, inside a run's or a logged model's artifacts folder) and find its owner."""
    if not isinstance(path, str) or not path or "\x00" in path or "\\" in path or path.startswith("/") or len(path) > 1000:
        raise _invalid_path(path)
    path = path.rstrip("/")
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts) or posixpath.normpath(path) != path:
        raise _invalid_path(path)
    if len(parts) >= 4 and parts[1] == "models" and parts[3] == "artifacts":
        group, model_id, rest = parts[0], parts[2], "/".join(parts[4:])
        model = LoggedModel.objects.filter(model_id=model_id, group_id=_group(group, path)).first()
        if model is None:
            raise NotFound(f"No logged model {model_id} in experiment {group}.", code="resource_does_not_exist")
        return Location(path=path, name=f"{PREFIX}/{path}", run=None, logged_model=model, rest=rest)
    if len(parts) >= 3 and parts[2] == "artifacts":
        group, run_id, rest = parts[0], parts[1], "/".join(parts[3:])
        run = Run.objects.filter(run_id=run_id, group_id=_group(group, path)).first()
        if run is None:
            raise NotFound(f"No run {run_id} in experiment {group}.", code="resource_does_not_exist")
        return Location(path=path, name=f"{PREFIX}/{path}", run=run, logged_model=None, rest=rest)
    raise _invalid_path(path)


def _group(text: str, path: str) -> int:
    if not text.isdigit() or len(text) > 18:
        raise _invalid_path(path)
    return int(text)


def artifact_put(*, path, body, actor, length: int | None = None) -> Location:
    """Store one file. `body` is a file-like object read in chunks (the request itself), at most
    MLOPS_MAX_ARTIFACT_BYTES: a declared length over it is refused before reading, and reading stops one byte past."""
    require_role(actor, EDITOR, "Uploading an artifact")
    where = artifact_location(path)
    if not where.rest:
        raise _invalid_path(path)
    model = where.logged_model
    if model is not None and model.status != LoggedModelStatus.PENDING:
        raise Conflict(f"Logged model {model.model_id} is {model.status}: its files are final.", code="invalid_state")
    limit = settings.MLOPS_MAX_ARTIFACT_BYTES
    if length is not None and length > limit:
        raise TooLarge(f"The artifact is {length} bytes; the limit is {limit} bytes.")
    with tempfile.SpooledTemporaryFile(max_size=CHUNK * 8) as spool:
        size = 0
        while chunk := body.read(min(CHUNK, limit + 1 - size)):
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"The artifact is over the limit of {limit} bytes.")
            spool.write(chunk)
        spool.seek(0)
        try:
            if default_storage.exists(where.name):
                default_storage.delete(where.name)  # MLflow overwrites; the storage would pick another name instead
            stored = default_storage.save(where.name, File(spool))
        except OSError as exc:
            # A file where the path needs a folder (a.txt, then a.txt/b) or a folder with files where it needs a
            # file: the request conflicts with what is stored, not a server fault.
            if not isinstance(exc, (FileExistsError, NotADirectoryError, IsADirectoryError)) and exc.errno != errno.ENOTEMPTY:
                raise
            raise Conflict(f"{where.path} crosses a stored file or folder of the same name.", code="invalid_state") from None
    if stored != where.name:  # a concurrent upload of the same path won the name: keep one copy
        default_storage.delete(stored)
    return where


def artifact_open(path) -> tuple[File, Location]:
    where = artifact_location(path)
    if not where.rest or not default_storage.exists(where.name):
        raise NotFound(f"No artifact at {where.path}.", code="resource_does_not_exist")
    try:
        return default_storage.open(where.name, "rb"), where
    except (IsADirectoryError, FileNotFoundError):
        raise NotFound(f"No artifact at {where.path}.", code="resource_does_not_exist") from None


def artifact_list(path) -> list[dict]:
    """The files and folders directly inside `path`, as MLflow lists them: path relative to `path`'s root folder,
    is_dir, file_size for files. A folder that does not exist lists empty (so does MLflow's)."""
    where = artifact_location(path)
    try:
        dirs, files = default_storage.listdir(where.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    entries = [{"path": d, "is_dir": True} for d in sorted(dirs)]
    for name in sorted(files):
        entries.append({"path": name, "is_dir": False, "file_size": default_storage.size(f"{where.name}/{name}")})
    return entries


def folder_files(folder: str) -> list[tuple[str, int]]:
    """Every file under a folder of the namespace (recursively), as (path inside it, size): the run pages list them."""
    found: list[tuple[str, int]] = []
    pending = [""]
    while pending:
        sub = pending.pop()
        name = f"{PREFIX}/{folder}/{sub}".rstrip("/")
        try:
            dirs, files = default_storage.listdir(name)
        except (FileNotFoundError, NotADirectoryError):
            continue
        pending.extend(f"{sub}/{d}".lstrip("/") for d in dirs)
        found.extend((f"{sub}/{f}".lstrip("/"), default_storage.size(f"{name}/{f}")) for f in files)
    return sorted(found)


def folder_digest(folder: str) -> tuple[str, int]:
    """(SHA-256 of the folder's manifest, total bytes): the manifest is one line `<path>\t<size>\t<sha256 of the
    file>` per file, in path order, so the digest pins every file's name and content. Files are read in chunks."""
    manifest, total = hashlib.sha256(), 0
    for path, size in folder_files(folder):
        digest = hashlib.sha256()
        with default_storage.open(f"{PREFIX}/{folder}/{path}", "rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
        manifest.update(f"{path}\t{size}\t{digest.hexdigest()}\n".encode())
        total += size
    return manifest.hexdigest(), total

"""The HTTP side: one `requests` session, the server's error shape, exit codes, streamed uploads."""

from __future__ import annotations

import email.utils
import io
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from . import __version__

EXIT_EMPTY = 1  # `stage`: the model exists but nothing is in that stage
EXIT_USAGE = 2  # bad flags, unreadable or invalid local input, missing MLOPS_URL / MLOPS_TOKEN
EXIT_CONNECTION = 3  # no connection, or no answer within --timeout
EXIT_CLIENT_ERROR = 4  # the server answered 4xx
EXIT_SERVER_ERROR = 5  # the server answered 5xx, or something that is not the API
EXIT_GATE_FAILED = 6  # `gate`: a check of the policy failed or never ran
EXIT_EVALUATION_FAILED = 7  # `evaluate --wait`, `evaluate-prompt --wait`: the server could not compute it (the reason is printed)
EXIT_STILL_RUNNING = 8  # an evaluation waited for is still pending or running after --max-wait

PAGE_SIZE_MAX = 500  # the server's max_page_size


class CliError(Exception):
    """A failure of the client: `line` is what the CLI prints after `error: `, `exit_code` its distinct exit code."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        self.message = self.line = message
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(CliError):
    exit_code = EXIT_USAGE


class ConnectionFailed(CliError):
    exit_code = EXIT_CONNECTION


class ApiError(CliError):
    """A non-2xx answer, read from the one error shape `{"message", "code", "extra"}`.

    `status` is the HTTP status, `message`, `code` and `extra` the server's, `retry_after` the seconds of a
    `Retry-After` header (429, 503) or None; `str(error)` is the one line the CLI prints.
    """

    def __init__(self, status: int, code: str, message: str, extra: dict | None = None, retry_after: float | None = None):
        super().__init__(
            f"{status} {_phrase(status)} ({code}): {message}",
            EXIT_SERVER_ERROR if status >= 500 else EXIT_CLIENT_ERROR,
        )
        self.status, self.code, self.message, self.extra, self.retry_after = status, code, message, extra or {}, retry_after


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower()
    except ValueError:
        return "http error"


def _seconds(retry_after: str | None) -> float | None:
    """A `Retry-After` header in seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not retry_after:
        return None
    try:
        return max(0.0, float(retry_after))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(retry_after)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _os_reason(exc: BaseException) -> str:
    """The innermost OS-level reason ("Connection refused") from requests' nested wrappers."""
    todo, seen = [exc], set()
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        linked = (getattr(current, "reason", None), current.__cause__, current.__context__, *current.args)
        todo.extend(x for x in linked if isinstance(x, BaseException))
    return str(exc)


def segment(value: str | int) -> str:
    """One URL path segment; a name with `/` or spaces cannot escape into another path."""
    return quote(str(value), safe="")


UNFINISHED = ("pending", "running")  # an evaluation's statuses before it is done or failed


def version_number(api: ApiClient, collection: str, name: str, version: int | str, *, label: str = "") -> int:
    """`version` as a number: an int as it is, `"latest"` the newest version of `collection`/`name` (models or
    prompts); a UsageError "<label or name> has no versions yet." when there is none."""
    if version != "latest":
        return int(version)
    latest = api.get(f"{collection}/{segment(name)}").get("latest_version")
    if not latest:
        raise UsageError(f"{label or name} has no versions yet.")
    return latest


class MultipartFile:
    """A multipart/form-data body streamed from disk.

    requests builds multipart bodies in memory, which doubles a large
    artifact's footprint; this object has a length (so a Content-Length is
    sent, not chunked encoding) and is read block by block while sending.
    """

    def __init__(self, *, fields: dict[str, str], file_field: str, path: Path):
        boundary = uuid.uuid4().hex
        self.content_type = f"multipart/form-data; boundary={boundary}"
        head = b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value.encode() + b"\r\n"
            for name, value in fields.items()
        )
        head += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{_header_quote(path.name)}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        self._file = path.open("rb")
        self._length = len(head) + path.stat().st_size + len(tail)
        self._parts: list[Any] = [io.BytesIO(head), self._file, io.BytesIO(tail)]

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        out = bytearray()
        while self._parts and (size < 0 or len(out) < size):
            chunk = self._parts[0].read(-1 if size < 0 else size - len(out))
            if chunk:
                out += chunk
            else:
                self._parts.pop(0)
        return bytes(out)

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(1024 * 1024):
            yield chunk

    def close(self) -> None:
        self._file.close()


def _header_quote(name: str) -> str:
    # The HTML5 rule browsers and urllib3 follow for file names in form-data headers.
    return name.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


class ApiClient:
    """Calls `/api/v1/` with `Authorization: Token <key>`; answers parsed JSON or raises a CliError."""

    def __init__(self, *, url: str, token: str, timeout: float):
        base = url.strip().rstrip("/")
        if not base.lower().startswith(("http://", "https://")):
            raise UsageError(f"MLOPS_URL {url!r} must start with http:// or https://.")
        # Accept MLOPS_URL with or without the API prefix.
        if base.endswith("/api/v1"):
            base = base[: -len("/api/v1")]
        self.base = base
        self.token = token
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers.update(
            {"Authorization": f"Token {token}", "Accept": "application/json", "User-Agent": f"mlops-client/{__version__}"}
        )

    def get(self, path: str, params: dict | None = None) -> Any:
        return self._send("GET", path, params=params)

    def post(self, path: str, body: dict) -> Any:
        return self._send("POST", path, json=body)

    def put(self, path: str, body: dict) -> Any:
        return self._send("PUT", path, json=body)

    def post_file(self, path: str, *, fields: dict[str, str], file_field: str, file_path: Path, method: str = "POST") -> Any:
        """A multipart upload streamed from disk (`method` PUT for the endpoints that replace something)."""
        body = MultipartFile(fields=fields, file_field=file_field, path=file_path)
        try:
            return self._send(method, path, data=body, headers={"Content-Type": body.content_type})
        finally:
            body.close()

    def post_bytes(self, path: str, *, file_field: str, filename: str, data: bytes, content_type: str) -> Any:
        """A multipart upload of bytes already in memory (requests builds the body; no copy from disk)."""
        return self._send("POST", path, files={file_field: (filename, data, content_type)})

    def route(self, *, unit_id: str, model: str | None = None, prompt: str | None = None) -> dict:
        """Which version serves `unit_id` of a model's production (or a prompt's prod) now: `GET /api/v1/route`.

        Answers `{"version", "stage", "rollout", "shadow", "bucket"}`: serve the request with `version`; during a
        canary's shadow stage also mirror it to `shadow["version"]` (never answer with it) and log that event with
        `"shadow": true`. Raises ApiError (404) for an unknown subject or nothing to serve.
        """
        if (model is None) == (prompt is None):
            raise UsageError("route: give either model or prompt.")
        subject = {"model": model} if model is not None else {"prompt": prompt}
        return self.get("route", {**subject, "unit_id": unit_id})

    def get_list(self, path: str, params: dict, *, limit: int) -> tuple[int, list]:
        """(total count, up to `limit` results; 0 means all), following `?page=` of a paginated list."""
        size = PAGE_SIZE_MAX if limit <= 0 else min(limit, PAGE_SIZE_MAX)
        results: list = []
        page = 1
        while True:
            body = self.get(path, {**params, "page": page, "page_size": size})
            results.extend(body.get("results", []))
            if not body.get("next") or (limit > 0 and len(results) >= limit):
                return body.get("count", len(results)), results[:limit] if limit > 0 else results
            page += 1

    def _send(self, method: str, path: str, **kwargs) -> Any:
        url = f"{self.base}/api/v1/{path}"
        unsure = " (the server may still have carried it out; check before retrying)" if method != "GET" else ""
        try:
            # No redirects: requests would turn a redirected POST into a GET and report success.
            response = self.session.request(method, url, timeout=self.timeout, allow_redirects=False, **kwargs)
        except requests.exceptions.InvalidURL as exc:
            raise UsageError(f"MLOPS_URL {self.base!r} is not a usable URL: {exc}.")
        except requests.Timeout:
            raise ConnectionFailed(f"no answer from {self.base} within {self.timeout:g} s (--timeout){unsure}.")
        except requests.ConnectionError as exc:
            raise ConnectionFailed(f"cannot connect to {self.base}: {_os_reason(exc)}.")
        except requests.RequestException as exc:
            raise ConnectionFailed(f"connection to {self.base} failed: {_os_reason(exc)}{unsure}.")
        return self._answer(response, url)

    @staticmethod
    def _answer(response: requests.Response, url: str) -> Any:
        status = response.status_code
        if 300 <= status < 400:
            location = response.headers.get("Location", "?")
            raise UsageError(f"{url} answered {status} redirecting to {location}; set MLOPS_URL to the server's final address.")
        try:
            body = response.json()
        except ValueError:
            body = None
        if status >= 400:
            retry_after = _seconds(response.headers.get("Retry-After"))
            if isinstance(body, dict) and isinstance(body.get("message"), str):
                raise ApiError(status, str(body.get("code") or "error"), body["message"], body.get("extra"), retry_after)
            # A proxy's HTML error page: keep its words, not its tags.
            text = " ".join(re.sub(r"<[^>]*>", " ", response.text).split())[:200]
            raise ApiError(status, "error", text or f"{_phrase(status)} from {url}", None, retry_after)
        if body is None:
            raise CliError(f"{status} answer from {url} is not JSON; is MLOPS_URL the control plane's address?", EXIT_SERVER_ERROR)
        return body

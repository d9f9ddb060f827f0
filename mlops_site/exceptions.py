"""Domain errors and the one API error shape: `{"message": str, "code": str, "extra": {...}}`.

Services raise subclasses of DomainError; the API handler maps them (and DRF's
and Django's own errors) to 400 / 401 / 403 / 404 / 409 / 413 with that shape.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.shortcuts import render
from django.views.defaults import server_error
from rest_framework import exceptions as drf
from rest_framework.response import Response


class DomainError(Exception):
    """Base of every error a service raises on purpose."""

    status = 400
    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, extra: dict | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.extra = extra or {}


class ValidationFailed(DomainError):
    status, code = 400, "invalid"

    def __init__(self, message: str, *, fields: dict | None = None, code: str | None = None):
        super().__init__(message, code=code, extra={"fields": fields} if fields else {})


class NotFound(DomainError):
    status, code = 404, "not_found"


class Forbidden(DomainError):
    status, code = 403, "forbidden"


class Conflict(DomainError):
    status, code = 409, "conflict"


class TooLarge(DomainError):
    status, code = 413, "too_large"


def error_body(message: str, code: str, extra: dict | None = None) -> dict:
    return {"message": message, "code": code, "extra": extra or {}}


def _flatten(detail) -> str:
    """A readable one-line message from DRF's nested error details."""
    if isinstance(detail, dict):
        parts = []
        for key, value in detail.items():
            text = _flatten(value)
            parts.append(text if key == "non_field_errors" else f"{key}: {text}")
        return "; ".join(parts)
    if isinstance(detail, list):
        return " ".join(_flatten(item) for item in detail)
    return str(detail)


def _plain(detail):
    if isinstance(detail, dict):
        return {k: _plain(v) for k, v in detail.items()}
    if isinstance(detail, list):
        return [_plain(v) for v in detail]
    return str(detail)


def api_exception_handler(exc, context):
    """DRF's EXCEPTION_HANDLER: every non-2xx API answer in the one shape."""
    if isinstance(exc, DomainError):
        return Response(error_body(exc.message, exc.code, exc.extra), status=exc.status)
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body(str(exc) or "Request body too large.", "too_large"), status=413)
    if isinstance(exc, SuspiciousOperation):
        # Too many form fields or files (DATA_UPLOAD_MAX_NUMBER_FIELDS/FILES), met while DRF parses the body: left to
        # Django, they became its HTML 400 page instead of the one shape.
        return Response(error_body(str(exc) or "Bad request.", "bad_request"), status=400)
    if isinstance(exc, DjangoValidationError):
        fields = exc.message_dict if hasattr(exc, "error_dict") else None
        return Response(error_body(" ".join(exc.messages), "invalid", {"fields": fields} if fields else {}), status=400)
    if isinstance(exc, Http404):
        exc = drf.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()

    # Imported here, not at the top: DRF's views module reads DEFAULT_PERMISSION_CLASSES (mlops_site.roles)
    # when it is first imported, and mlops_site.roles imports this module's errors.
    from rest_framework.views import exception_handler as drf_exception_handler

    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a real bug: let Django log it and answer 500
    if isinstance(exc, drf.ValidationError):
        detail = exc.detail
        fields = _plain(detail) if isinstance(detail, dict) else {"non_field_errors": _plain(detail)}
        response.data = error_body("Invalid input: " + _flatten(detail), "invalid", {"fields": fields})
    else:
        detail = getattr(exc, "detail", str(exc))
        code = detail.code if hasattr(detail, "code") else getattr(exc, "default_code", "error")
        response.data = error_body(_flatten(detail), str(code))
    return response


def json_404(request, exception=None):
    """handler404: JSON in the one shape under /api/, the HTML page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("No such endpoint or object.", "not_found"), status=404)
    # Our own Http404s carry a readable message; the URL resolver's do not.
    message = exception.args[0] if exception is not None and exception.args and isinstance(exception.args[0], str) else ""
    return render(request, "404.html", {"message": message}, status=404)


def json_500(request):
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("Internal server error.", "server_error"), status=500)
    return server_error(request)

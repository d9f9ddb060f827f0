"""What every MLflow endpoint shares: who may call (the MLflow client's token or user name and password), MLflow's
error shape, and reading a request's arguments (query string for GET, JSON body otherwise)."""

from __future__ import annotations

import base64
import json

from axes.exceptions import AxesBackendPermissionDenied
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions as drf
from rest_framework.authentication import BasicAuthentication
from rest_framework.permissions import SAFE_METHODS
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from mlops_site.exceptions import DomainError
from mlops_site.parsers import StrictJSONParser
from mlops_site.roles import EDITOR, IsViewer, has_role

from ..api.authentication import ApiTokenAuthentication

# Our error codes (and the HTTP status) as MLflow's error_code. MLflow answers 400 for a name already taken.
ERROR_CODES = {
    "resource_already_exists": ("RESOURCE_ALREADY_EXISTS", 400),
    "resource_does_not_exist": ("RESOURCE_DOES_NOT_EXIST", 404),
    "not_found": ("RESOURCE_DOES_NOT_EXIST", 404),
    "endpoint_not_found": ("ENDPOINT_NOT_FOUND", 404),
}
BY_STATUS = {400: "INVALID_PARAMETER_VALUE", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "RESOURCE_DOES_NOT_EXIST",
             405: "BAD_REQUEST", 409: "INVALID_STATE", 413: "INVALID_PARAMETER_VALUE", 415: "BAD_REQUEST", 429: "REQUEST_LIMIT_EXCEEDED"}


def mlflow_error(message: str, status: int, *, code: str, error_code: str | None = None, extra: dict | None = None) -> Response:
    """MLflow's error body ({error_code, message}, which its client reads) with the site's own keys beside it (code,
    extra), so a tool written against either finds what it looks for."""
    body = {"error_code": error_code or BY_STATUS.get(status, "INTERNAL_ERROR"), "message": message, "code": code, "extra": extra or {}}
    return Response(body, status=status)


def mlflow_exception_handler(exc, context):
    if isinstance(exc, DomainError):
        error_code, status = ERROR_CODES.get(exc.code, (None, exc.status))
        return mlflow_error(exc.message, status, code=exc.code, error_code=error_code, extra=exc.extra)
    if isinstance(exc, AxesBackendPermissionDenied):
        return mlflow_error("Too many failed logins for this user name; try again later.", 429, code="locked_out")
    if isinstance(exc, Http404):
        return mlflow_error(str(exc) or "Not found.", 404, code="not_found")
    if isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()
    if not isinstance(exc, drf.APIException):
        return None  # a real bug: Django logs it and answers 500
    detail = exc.detail
    message = detail if isinstance(detail, str) else "; ".join(f"{k}: {v}" for k, v in detail.items()) if isinstance(detail, dict) else str(detail)
    response = mlflow_error(str(message), exc.status_code, code=str(getattr(detail, "code", exc.default_code)))
    if isinstance(exc, (drf.NotAuthenticated, drf.AuthenticationFailed)):
        response["WWW-Authenticate"] = 'Bearer realm="mlflow", Basic realm="mlflow"'
    if isinstance(exc, drf.Throttled) and exc.wait:
        response["Retry-After"] = str(int(exc.wait))
    return response


class MlflowBasicAuthentication(BasicAuthentication):
    """MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD: the site's users and passwords, with the login lockout
    (django-axes counts these attempts as it counts the login page's)."""

    www_authenticate_realm = "mlflow"

    def authenticate_credentials(self, userid, password, request=None):
        try:
            return super().authenticate_credentials(userid, password, request)
        except drf.AuthenticationFailed:
            # Django's authenticate() swallows axes' refusal of a locked-out pair (a PermissionDenied) and answers
            # "no user"; axes flags the DRF request it was given, which its middleware never sees.
            if getattr(request, "axes_locked_out", False):
                raise AxesBackendPermissionDenied("Locked out.") from None
            raise


class MlflowRole(IsViewer):
    """The viewer role for reads (GET, and the searches MLflow sends as POST: `read_only` views), the editor role for
    every other call, checked before the arguments are read, so a viewer's write is 403 whatever it sends. The services
    check again (and the approver role where it counts)."""

    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False
        if request.method in SAFE_METHODS or getattr(view, "read_only", False):
            return True
        if not has_role(request.user, EDITOR):
            self.message = "Writing needs the editor role or above."
            return False
        return True


class MlflowView(APIView):
    """An MLflow endpoint: reads need the viewer role, writes the editor role (MlflowRole); the services check the
    role again for each write, and the approver role where it counts."""

    authentication_classes = [ApiTokenAuthentication, MlflowBasicAuthentication]
    permission_classes = [MlflowRole]
    read_only = False  # a POST that only reads (a search)
    parser_classes = [StrictJSONParser]
    renderer_classes = [JSONRenderer]
    schema = None  # documented in docs/mlflow.md, not in the site's OpenAPI schema (its shapes are MLflow's)

    def get_exception_handler(self):
        return mlflow_exception_handler

    def arguments(self, request) -> dict:
        """The call's arguments: the query string of a GET (the client sends `?run_id=...`), else the JSON body."""
        if request.method in ("GET", "DELETE") and request.query_params:
            data = {k: (v if len(v) > 1 else v[0]) for k, v in request.query_params.lists()}
        else:
            data = request.data
        if not isinstance(data, dict):
            raise drf.ParseError("The request body must be a JSON object.")
        for name, value in data.items():
            # No MLflow name, key or value holds a NUL, and PostgreSQL refuses one in any text (a 500 otherwise).
            if has_nul(name) or has_nul(value):
                raise DomainError(f"Invalid value for parameter '{str(name)[:50]}': it contains a NUL character.",
                                  code="invalid_parameter_value")
        return data


def has_nul(value) -> bool:
    """Whether a JSON value holds a NUL character in any string, key or item."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False


class ReadView(MlflowView):
    """A read MLflow clients send as GET or as POST (the searches): both answer `read(arguments)`."""

    read_only = True

    def read(self, args: dict) -> Response:
        raise NotImplementedError

    def get(self, request):
        return self.read(self.arguments(request))

    def post(self, request):
        return self.read(self.arguments(request))


def required(args: dict, *names: str) -> str:
    """The first of `names` present (MLflow accepts run_uuid for run_id), else MLflow's missing-parameter error."""
    for name in names:
        value = args.get(name)
        if value not in (None, ""):
            if not isinstance(value, str):
                raise DomainError(f"Invalid value for parameter '{name}': a string.", code="invalid_parameter_value")
            return value
    raise DomainError(f"Missing value for required parameter '{names[0]}'. See the API docs for more information about request parameters.",
                      code="invalid_parameter_value")


def page_size(value, *, limit: int, default: int) -> int:
    """`max_results`: an integer from 1 to `limit`, `default` when not given."""
    if value in (None, ""):
        return default
    text = str(value)
    if not text.isdigit() or not 1 <= int(text) <= limit:
        raise DomainError(f"Invalid value {text[:30]!r} for parameter 'max_results': an integer from 1 to {limit}.",
                          code="invalid_parameter_value")
    return int(text)


def next_token(offset: int) -> str:
    """A page token: opaque to clients, the next page's offset inside."""
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def page_offset(token) -> int:
    """The offset inside a page token (0 without one); a token we did not write is INVALID_PARAMETER_VALUE."""
    if token in (None, ""):
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(str(token).encode()))["offset"]
    except (ValueError, TypeError, KeyError):
        raise DomainError("Invalid page token.", code="invalid_parameter_value") from None
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset < 10**9:
        raise DomainError("Invalid page token.", code="invalid_parameter_value")
    return offset

"""The API's one token authentication: `Authorization: Token <key>` or `Authorization: Bearer <key>` (what CI tools,
Prometheus and OpenTelemetry exporters send), checked against the stored digests (services.tokens)."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from ..services.tokens import TokenRefused, api_token_authenticate

KEYWORDS = {"token", "bearer"}  # the scheme is case-insensitive (RFC 9110 section 11.1)


class ApiTokenAuthentication(BaseAuthentication):
    """A request without an Authorization header of these schemes is left to the next class (the session)."""

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].decode("latin-1").lower() not in KEYWORDS:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(
                "Invalid Authorization header: give the scheme and the key, and nothing else.", code="invalid_token"
            )
        try:
            key = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.", code="invalid_token") from None
        try:
            token = api_token_authenticate(key)
        except TokenRefused as exc:
            raise exceptions.AuthenticationFailed(exc.message, code=exc.code) from None
        return token.user, token

    def authenticate_header(self, request):
        # Both challenges, so a 401 tells a client either scheme is accepted (and DRF answers 401, not 403).
        return 'Token realm="api", Bearer realm="api"'


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """The schema's names for it: the same key as `Token <key>` or as `Bearer <key>`."""

    target_class = ApiTokenAuthentication
    name = ["tokenAuth", "bearerAuth"]

    def get_security_requirement(self, auto_schema):
        return [{"tokenAuth": []}, {"bearerAuth": []}]  # either one (OR), not both

    def get_security_definition(self, auto_schema):
        return [
            {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": 'The API token with the prefix "Token ", e.g. "Token mlops_..."',
            },
            {"type": "http", "scheme": "bearer"},
        ]

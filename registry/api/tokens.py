"""`/api/v1/tokens`: the caller's own API tokens. Listing and revoking work with a token; creating one needs a signed-in
session (the tokens page, or this endpoint from it), so a leaked key cannot mint keys that outlive its revocation."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from mlops_site.exceptions import Forbidden
from mlops_site.serializers import StrictSerializer, validated

from .. import selectors
from ..services.tokens import api_token_create, api_token_revoke
from .authentication import ApiTokenAuthentication

TOKEN_STATES = [("active", "active"), ("revoked", "revoked"), ("expired", "expired")]


class TokenOut(serializers.Serializer):
    """A token as lists show it: never its key, never its digest."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField(help_text="The key's first characters, to tell tokens apart; not a secret.")
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True, help_text="To the minute.")
    state = serializers.ChoiceField(choices=TOKEN_STATES)  # ApiToken.state(), called by DRF


class TokenCreateIn(StrictSerializer):
    name = serializers.CharField(max_length=100, help_text="What the token is for (ci, grafana...).")
    expires_at = serializers.DateTimeField(
        required=False, allow_null=True, default=None, help_text="Omit for a token that does not expire."
    )


class TokenCreatedOut(TokenOut):
    key = serializers.CharField(help_text="The key: in this answer only, never again. Send it as `Authorization: Bearer <key>`.")



class TokenListApi(generics.ListAPIView):
    """The caller's tokens, newest first (revoked and expired ones too). POST (signed-in session only): a new token,
    `{"name", "expires_at"?}`; its key is in the 201 answer and nowhere else, ever."""

    serializer_class = TokenOut

    def get_queryset(self):
        return selectors.api_token_list(user=self.request.user)

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(TokenOut(page, many=True).data)

    @extend_schema(request=TokenCreateIn, responses={201: TokenCreatedOut})
    def post(self, request):
        if isinstance(request.successful_authenticator, ApiTokenAuthentication):
            raise Forbidden(
                "A token cannot create tokens: create one on the tokens page (/tokens/) while signed in.", code="session_required"
            )
        data = validated(TokenCreateIn, request.data)
        created = api_token_create(user=request.user, name=data["name"], expires_at=data["expires_at"])
        token = created.token
        token.key = created.key
        response = Response(TokenCreatedOut(token).data, status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"
        return response


class TokenRevokeApi(APIView):
    """Revoke one of the caller's tokens (an admin: anyone's). It stops working at once; revoking twice is a no-op."""

    @extend_schema(request=None, responses=TokenOut)
    def post(self, request, token_id):
        return Response(TokenOut(api_token_revoke(actor=request.user, token_id=int(token_id))).data)

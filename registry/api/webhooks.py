"""`/api/v1/.../webhooks`: a model's or a prompt's signed webhooks and their deliveries. Approvers only: a webhook's
URL may itself carry a credential (a chat service's incoming-hook URL), and its secret is never read back."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from mlops_site.roles import IsApprover
from mlops_site.serializers import StrictSerializer, validated

from .. import selectors
from ..models import SUBSCRIBABLE_EVENTS, DeliveryStatus, WebhookEvent, WebhookFormat
from ..services import webhooks


class SubjectOut(serializers.Serializer):
    kind = serializers.ChoiceField(choices=[("model", "model"), ("prompt", "prompt")])
    name = serializers.CharField()


class WebhookOut(serializers.Serializer):
    """A webhook as the API shows it: whether a secret is set, never the secret."""

    id = serializers.IntegerField()
    subject = serializers.SerializerMethodField()
    url = serializers.CharField()
    events = serializers.ListField(child=serializers.ChoiceField(choices=SUBSCRIBABLE_EVENTS))
    format = serializers.ChoiceField(choices=WebhookFormat.choices)
    active = serializers.BooleanField()
    secret_set = serializers.SerializerMethodField(help_text="Whether posts are signed (X-MLOps-Signature); the secret is never shown.")
    created_by = serializers.CharField(source="created_by.username", default="")
    created_at = serializers.DateTimeField()

    @extend_schema(responses=SubjectOut)
    def get_subject(self, webhook) -> dict:
        kind, name = webhook.subject.split(":", 1)
        return {"kind": kind, "name": name}

    def get_secret_set(self, webhook) -> bool:
        return bool(webhook.secret)


class WebhookIn(StrictSerializer):
    url = serializers.CharField(max_length=1000, help_text="http or https; a host inside the network only when MLOPS_WEBHOOK_ALLOWED_HOSTS allows it.")
    events = serializers.ListField(child=serializers.ChoiceField(choices=SUBSCRIBABLE_EVENTS), allow_empty=False)
    secret = serializers.CharField(max_length=200, required=False, allow_blank=True, default="", write_only=True,
                                   help_text="Signs each body (HMAC-SHA256, X-MLOps-Signature); for github_dispatch, the GitHub token. "
                                             "Written, never read back.")
    format = serializers.ChoiceField(choices=WebhookFormat.choices, required=False, default=WebhookFormat.GENERIC,
                                     help_text="generic: our signed JSON; github_dispatch: GitHub's repository_dispatch call.")
    active = serializers.BooleanField(required=False, default=True)


class WebhookPatchIn(StrictSerializer):
    url = serializers.CharField(max_length=1000, required=False)
    events = serializers.ListField(child=serializers.ChoiceField(choices=SUBSCRIBABLE_EVENTS), allow_empty=False, required=False)
    secret = serializers.CharField(max_length=200, required=False, allow_blank=True, write_only=True, help_text='"" removes it.')
    format = serializers.ChoiceField(choices=WebhookFormat.choices, required=False)
    active = serializers.BooleanField(required=False)


class WebhookAttemptOut(serializers.Serializer):
    attempt = serializers.IntegerField()
    at = serializers.DateTimeField()
    status_code = serializers.IntegerField(allow_null=True, help_text="The receiver's HTTP status; null when it did not answer.")
    error = serializers.CharField()
    duration_ms = serializers.IntegerField()


class WebhookDeliveryOut(serializers.Serializer):
    id = serializers.IntegerField(help_text="Sent as X-MLOps-Delivery and `delivery_id`: the same on every try of this delivery.")
    event = serializers.ChoiceField(choices=WebhookEvent.choices)
    status = serializers.ChoiceField(choices=DeliveryStatus.choices)
    attempts = serializers.IntegerField()
    next_try_at = serializers.DateTimeField(allow_null=True)
    last_error = serializers.CharField()
    created_at = serializers.DateTimeField()
    delivered_at = serializers.DateTimeField(allow_null=True)
    payload = serializers.DictField(help_text="The body sent, without `delivery_id`.")
    tries = WebhookAttemptOut(many=True)


class _WebhookListApi(generics.ListAPIView):
    """The subject's webhooks, oldest first. POST: a new one, `{"url", "events", "secret"?, "active"?}` (400 for a URL
    inside the network or an unknown event)."""

    permission_classes = [IsApprover]
    serializer_class = WebhookOut
    subject_field = ""

    def subject(self):
        raise NotImplementedError

    def get_queryset(self):
        return selectors.webhook_list(**{self.subject_field: self.subject()}, recent=0)

    @extend_schema(request=WebhookIn, responses={201: WebhookOut})
    def post(self, request, name):
        data = validated(WebhookIn, request.data)
        webhook = webhooks.webhook_create(**{f"{self.subject_field}_name": name}, actor=request.user, **data)
        return Response(WebhookOut(webhook).data, status=status.HTTP_201_CREATED)


class ModelWebhooksApi(_WebhookListApi):
    subject_field = "model"

    def subject(self):
        return selectors.model_get(name=self.kwargs["name"])


class PromptWebhooksApi(_WebhookListApi):
    subject_field = "prompt"

    def subject(self):
        return selectors.prompt_get(name=self.kwargs["name"])


class WebhookDetailApi(APIView):
    """PATCH: change what is given (`url`, `events`, `secret`, `active`). DELETE: remove it and its delivery history."""

    permission_classes = [IsApprover]

    @extend_schema(request=WebhookPatchIn, responses=WebhookOut)
    def patch(self, request, webhook_id):
        data = validated(WebhookPatchIn, request.data)
        return Response(WebhookOut(webhooks.webhook_update(webhook_id=int(webhook_id), actor=request.user, **data)).data)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, webhook_id):
        webhooks.webhook_delete(webhook_id=int(webhook_id), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookPingApi(APIView):
    """Queue a test delivery (event `ping`) to the webhook; 409 `webhook_inactive` for a paused one."""

    permission_classes = [IsApprover]

    @extend_schema(request=None, responses={202: WebhookDeliveryOut})
    def post(self, request, webhook_id):
        delivery = webhooks.webhook_ping(webhook_id=int(webhook_id), actor=request.user)
        return Response(WebhookDeliveryOut(delivery).data, status=status.HTTP_202_ACCEPTED)


class WebhookDeliveriesApi(generics.ListAPIView):
    """The webhook's deliveries, newest first, each with every try (time, HTTP status or error, duration)."""

    permission_classes = [IsApprover]
    serializer_class = WebhookDeliveryOut

    def get_queryset(self):
        return selectors.webhook_delivery_list(webhook=selectors.webhook_get(webhook_id=self.kwargs["webhook_id"]))

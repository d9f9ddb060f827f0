"""Registry webhooks: approvers point a model's or a prompt's events at a URL; each event is a signed POST with a
delivery history and retries. Every connection these tests make goes to a receiver on 127.0.0.1 (allowed by
MLOPS_WEBHOOK_ALLOWED_HOSTS); the unsafe addresses below are strings that are refused before any connection."""

import hashlib
import hmac
import json
import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from mlops_site.exceptions import Conflict, Forbidden, ValidationFailed
from mlops_site.webhooks import MAX_ATTEMPTS, RETRY_AFTER
from registry import services
from registry.models import AuditEvent, PromotionRequest, PromptVersion, RegisteredModel, RegistryWebhook, WebhookDelivery
from registry.services import webhooks
from registry.services.evaluations import evaluation_request, evaluation_run
from registry.services.gates import gate_policy_set
from tests.factories import register
from tests.prompts.conftest import brief_folder

pytestmark = pytest.mark.django_db

ALL_EVENTS = ["version_registered", "promotion_requested", "promotion_approved", "promotion_rejected", "promotion_completed",
              "rolled_back", "gates_failed", "environment_moved"]
UNSAFE_URLS = [
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
    "http://10.0.0.5/hook",
    "http://192.168.1.1/hook",
    "http://172.16.0.1/hook",
    "http://127.0.0.1:6379/hook",
    "http://[::1]/hook",
    "http://[fd00::1]/hook",
    "http://[fe80::1]/hook",
    "http://0.0.0.0/hook",
    "http://2130706433/hook",  # 127.0.0.1 as one decimal number
    "http://[::ffff:169.254.169.254]/hook",
    "gopher://127.0.0.1:6379/_FLUSHALL",
    "file:///etc/passwd",
]


class Receiver:
    """An HTTP receiver on 127.0.0.1: records each POST (body and headers) and answers the `statuses` in turn (the last repeats)."""

    def __init__(self, statuses=(204,)):
        from http.server import BaseHTTPRequestHandler, HTTPServer

        self.posts = []
        receiver, answers = self, list(statuses)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append({"path": self.path, "body": body, "json": json.loads(body), "headers": dict(self.headers)})
                self.send_response(answers.pop(0) if len(answers) > 1 else answers[0])
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver(settings):
    """`receiver(statuses=...)`: a receiver the site may post to (its host:port in MLOPS_WEBHOOK_ALLOWED_HOSTS)."""
    made = []

    def make(statuses=(204,)) -> Receiver:
        made.append(Receiver(statuses))
        settings.MLOPS_WEBHOOK_ALLOWED_HOSTS = [f"127.0.0.1:{one.port}" for one in made]
        return made[-1]

    yield make
    for one in made:
        one.server.shutdown()
        one.server.server_close()


def _hmac(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _events(**subject) -> list[tuple]:
    return list(WebhookDelivery.objects.filter(**{f"webhook__{k}__name": v for k, v in subject.items()}).order_by("id")
                .values_list("event", "payload__version", "payload__stage"))


def _tries(delivery) -> list[tuple]:
    return list(delivery.tries.order_by("attempt").values_list("attempt", "status_code", "error"))


# --- the approval fires a signed post ----------------------------------------------------------------------------


def test_approving_a_promotion_posts_a_signed_webhook_with_the_event_and_the_delivery_id(
    celery_eager, editor, approver, receiver, settings, django_capture_on_commit_callbacks
):
    hook = receiver()
    settings.MLOPS_SITE_URL = "https://mlops.example.com"
    version = register("fraud", editor)
    webhook = webhooks.webhook_create(model_name="fraud", url=hook.url, secret="s3cret", events=["promotion_approved"], actor=approver)
    promotion = services.promotion_request_create(version=version, to_stage="staging", reason="better", actor=editor)

    with django_capture_on_commit_callbacks(execute=True):
        services.promotion_approve(promotion_id=promotion.pk, actor=approver, comment="ship it")

    [post] = hook.posts
    delivery = WebhookDelivery.objects.get()
    assert post["headers"]["X-MLOps-Signature"] == _hmac("s3cret", post["body"])
    assert post["headers"]["X-MLOps-Event"] == "promotion_approved"
    assert post["headers"]["X-MLOps-Delivery"] == str(delivery.pk) == str(post["json"]["delivery_id"])
    assert {k: v for k, v in post["json"].items() if k != "at"} == {
        "event": "promotion_approved", "subject": {"kind": "model", "name": "fraud"}, "version": 1, "stage": "staging",
        "from_stage": "candidate", "promotion_id": promotion.pk, "actor": "bob", "reason": "ship it", "delivery_id": delivery.pk,
        "url": "https://mlops.example.com/models/fraud/versions/1/",
    }
    assert (delivery.webhook_id, delivery.status, delivery.attempts, _tries(delivery)) == (webhook.pk, "delivered", 1, [(1, 204, "")])


def test_a_webhook_without_a_secret_posts_unsigned(celery_eager, editor, approver, receiver, django_capture_on_commit_callbacks):
    hook = receiver()
    register("fraud", editor)
    webhooks.webhook_create(model_name="fraud", url=hook.url, events=["version_registered"], actor=approver)

    with django_capture_on_commit_callbacks(execute=True):
        register("fraud", editor)

    [post] = hook.posts
    assert "X-MLOps-Signature" not in post["headers"] and post["json"]["event"] == "version_registered" and post["json"]["version"] == 2


# --- which changes fire which events -----------------------------------------------------------------------------


def test_every_model_event_fires_for_the_webhooks_subscribed_to_it(editor, approver, settings):
    settings.MLOPS_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1:9"]  # nothing is sent here: the deliveries stay queued
    v1 = register("fraud", editor)
    webhooks.webhook_create(model_name="fraud", url="http://127.0.0.1:9/all", events=ALL_EVENTS, actor=approver)
    webhooks.webhook_create(model_name="fraud", url="http://127.0.0.1:9/approvals", events=["promotion_approved"], actor=approver)
    register("other", editor)
    webhooks.webhook_create(model_name="other", url="http://127.0.0.1:9/other", events=ALL_EVENTS, actor=approver)

    rejected = services.promotion_request_create(version=v1, to_stage="staging", reason="r", actor=editor)
    services.promotion_reject(promotion_id=rejected.pk, comment="no", actor=approver)
    approved = services.promotion_request_create(version=v1, to_stage="production", reason="r", actor=editor)
    services.promotion_approve(promotion_id=approved.pk, actor=approver)
    v2 = register("fraud", editor)
    canary = services.promotion_request_create(version=v2, to_stage="production", reason="r", strategy="canary", actor=editor)
    services.promotion_approve(promotion_id=canary.pk, actor=approver)
    services.promotion_rollout_complete(promotion_id=canary.pk)
    services.model_rollback(model_name="fraud", stage="production", reason="worse", actor=approver)
    gate_policy_set(model=RegisteredModel.objects.get(name="fraud"), checks=[{"check": "accuracy", "op": ">=", "threshold": 0.92}], actor=approver)
    evaluation = evaluation_request(kind="model", model_version=v2, data=b"label,prediction\n1,1\n0,1\n1,0\n0,0\n", filename="p.csv", actor=editor)
    evaluation_run(evaluation_id=evaluation.pk)

    deliveries = WebhookDelivery.objects.filter(webhook__url="http://127.0.0.1:9/all").order_by("id")
    assert [(d.event, d.payload["version"], d.payload["stage"]) for d in deliveries] == [
        ("promotion_requested", 1, "staging"), ("promotion_rejected", 1, "staging"),
        ("promotion_requested", 1, "production"), ("promotion_approved", 1, "production"),
        ("version_registered", 2, "candidate"),
        ("promotion_requested", 2, "production"), ("promotion_approved", 2, "production"), ("promotion_completed", 2, "production"),
        ("rolled_back", 1, "production"),
        ("gates_failed", 2, ""),
    ]
    assert [d.payload["promotion_id"] for d in deliveries[:4]] == [rejected.pk, rejected.pk, approved.pk, approved.pk]
    assert deliveries.last().payload["details"] == {"evaluation_id": evaluation.pk, "failed": [{"check": "accuracy", "op": ">=", "threshold": 0.92, "value": 0.5}]}
    assert deliveries.last().payload["reason"] == "accuracy 0.5 < 0.92"
    assert list(WebhookDelivery.objects.filter(webhook__url="http://127.0.0.1:9/approvals").order_by("id").values_list("event", "payload__version")) == [
        ("promotion_approved", 1), ("promotion_approved", 2)]
    assert not WebhookDelivery.objects.filter(webhook__url="http://127.0.0.1:9/other").exists()


def test_a_passing_evaluation_fires_no_gates_failed(editor, approver, settings):
    settings.MLOPS_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1:9"]
    version = register("fraud", editor)
    webhooks.webhook_create(model_name="fraud", url="http://127.0.0.1:9/all", events=["gates_failed"], actor=approver)
    gate_policy_set(model=version.model, checks=[{"check": "accuracy", "op": ">=", "threshold": 0.5}], actor=approver)

    evaluation = evaluation_request(kind="model", model_version=version, data=b"label,prediction\n1,1\n0,1\n1,0\n0,0\n", filename="p.csv", actor=editor)
    evaluation_run(evaluation_id=evaluation.pk)

    assert not WebhookDelivery.objects.exists()


def test_prompt_environment_moves_fire_with_the_environment(editor, approver, settings):
    settings.MLOPS_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1:9"]
    services.prompts_import(files={"summarize/v1.yaml": brief_folder()["summarize/v1.yaml"]}, actor=editor)
    webhooks.webhook_create(prompt_name="summarize", url="http://127.0.0.1:9/p", events=ALL_EVENTS, actor=approver)

    services.prompts_import(files={k: v for k, v in brief_folder().items() if k.startswith("summarize/v2")}, actor=editor)
    v1, v2 = PromptVersion.objects.order_by("version")
    services.promotion_request_create(version=v2, to_stage="dev", reason="try", actor=editor)  # dev needs no approval
    prod = services.promotion_request_create(version=v1, to_stage="prod", reason="r", actor=editor)
    services.promotion_approve(promotion_id=prod.pk, actor=approver)
    prod = services.promotion_request_create(version=v2, to_stage="prod", reason="r", actor=editor)
    services.promotion_approve(promotion_id=prod.pk, actor=approver)
    services.prompt_rollback(prompt_name="summarize", environment="prod", reason="worse", actor=approver)

    assert _events(prompt="summarize") == [
        ("version_registered", 2, ""),
        ("promotion_requested", 2, "dev"), ("promotion_approved", 2, "dev"), ("environment_moved", 2, "dev"),
        ("promotion_requested", 1, "prod"), ("promotion_approved", 1, "prod"), ("environment_moved", 1, "prod"),
        ("promotion_requested", 2, "prod"), ("promotion_approved", 2, "prod"), ("environment_moved", 2, "prod"),
        ("rolled_back", 1, "prod"), ("environment_moved", 1, "prod"),
    ]
    assert WebhookDelivery.objects.order_by("id").first().payload["url"] == "/prompts/summarize/versions/2/"


def test_a_paused_webhook_gets_no_deliveries(editor, approver, settings):
    settings.MLOPS_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1:9"]
    register("fraud", editor)
    webhook = webhooks.webhook_create(model_name="fraud", url="http://127.0.0.1:9/h", events=ALL_EVENTS, actor=approver)

    webhooks.webhook_update(webhook_id=webhook.pk, active=False, actor=approver)
    register("fraud", editor)

    assert not WebhookDelivery.objects.exists()


# --- atomic with the change --------------------------------------------------------------------------------------


def test_the_delivery_is_written_in_the_approvals_transaction_and_sent_after_its_commit(editor, approver, settings, django_capture_on_commit_callbacks):
    settings.MLOPS_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1:9"]
    version = register("fraud", editor)
    webhooks.webhook_create(model_name="fraud", url="http://127.0.0.1:9/h", events=["promotion_approved"], actor=approver)
    promotion = services.promotion_request_create(version=version, to_stage="staging", reason="r", actor=editor)

    with django_capture_on_commit_callbacks() as callbacks:
        services.promotion_approve(promotion_id=promotion.pk, actor=approver)
        written_before_commit = list(WebhookDelivery.objects.values_list("event", "status"))

    assert written_before_commit == [("promotion_approved", "pending")] and len(callbacks) == 1


def test_a_refused_approval_leaves_no_delivery(editor, approver, settings):
    settings.MLOPS_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1:9"]
    version = register("fraud", editor)
    webhooks.webhook_create(model_name="fraud", url="http://127.0.0.1:9/h", events=ALL_EVENTS, actor=approver)
    canary = services.promotion_request_create(version=version, to_stage="production", reason="r", strategy="canary", actor=editor)
    requested = WebhookDelivery.objects.count()
    settings.MLOPS_ROLLOUT_START_TASK = "registry.tasks.no_such_task"  # the approval fails after its webhook fired

    with pytest.raises(KeyError):
        services.promotion_approve(promotion_id=canary.pk, actor=approver)
    with pytest.raises(Forbidden):
        services.promotion_approve(promotion_id=canary.pk, actor=editor)

    assert WebhookDelivery.objects.count() == requested == 1
    assert PromotionRequest.objects.get(pk=canary.pk).status == "pending"


# --- retries, history --------------------------------------------------------------------------------------------


def _queued_delivery(editor, approver, url: str) -> WebhookDelivery:
    register("fraud", editor)
    webhooks.webhook_create(model_name="fraud", url=url, events=["version_registered"], actor=approver)
    register("fraud", editor)
    return WebhookDelivery.objects.get()


def test_a_5xx_is_tried_again_after_its_backoff_with_the_same_delivery_id_and_every_try_recorded(editor, approver, receiver):
    hook = receiver(statuses=(500, 503, 204))
    delivery = _queued_delivery(editor, approver, hook.url)

    first = webhooks.webhook_delivery_send(delivery_id=delivery.pk)
    too_soon = webhooks.webhook_delivery_send(delivery_id=delivery.pk, now=first.next_try_at - timedelta(seconds=1))
    second = webhooks.webhook_delivery_send(delivery_id=delivery.pk, now=first.next_try_at + timedelta(seconds=1))
    second_next = second.next_try_at
    third = webhooks.webhook_delivery_send(delivery_id=delivery.pk, now=second_next + timedelta(seconds=1))

    assert (first.status, first.attempts) == ("pending", 1) and first.last_error.startswith("webhook answered 500 (try 1 of 5; next at ")
    assert too_soon.tried_now is False and too_soon.attempts == 1
    assert second_next == first.next_try_at + timedelta(seconds=1) + RETRY_AFTER[1]
    assert (third.status, third.attempts, third.last_error) == ("delivered", 3, "") and third.delivered_at is not None
    assert _tries(third) == [(1, 500, "webhook answered 500"), (2, 503, "webhook answered 503"), (3, 204, "")]
    assert [p["headers"]["X-MLOps-Delivery"] for p in hook.posts] == [str(delivery.pk)] * 3
    assert len({p["body"] for p in hook.posts}) == 1


@pytest.mark.parametrize("status", [400, 404, 410])
def test_a_4xx_fails_at_once(editor, approver, receiver, status):
    hook = receiver(statuses=(status,))
    delivery = _queued_delivery(editor, approver, hook.url)

    sent = webhooks.webhook_delivery_send(delivery_id=delivery.pk)
    again = webhooks.webhook_delivery_send(delivery_id=delivery.pk, now=timezone.now() + timedelta(days=1))

    assert (sent.status, sent.attempts, sent.next_try_at, sent.last_error) == ("failed", 1, None, f"webhook answered {status}")
    assert webhooks.webhook_retry_in(sent) is None and again.tried_now is False and len(hook.posts) == 1


def test_delivery_gives_up_after_the_last_try(editor, approver, receiver):
    hook = receiver(statuses=(502,))
    delivery = _queued_delivery(editor, approver, hook.url)

    sent = webhooks.webhook_delivery_send(delivery_id=delivery.pk)
    for _ in range(MAX_ATTEMPTS - 1):
        sent = webhooks.webhook_delivery_send(delivery_id=delivery.pk, now=sent.next_try_at + timedelta(seconds=1))

    assert (sent.status, sent.attempts, sent.next_try_at) == ("failed", MAX_ATTEMPTS, None)
    assert sent.last_error == f"webhook answered 502 (gave up after {MAX_ATTEMPTS} tries)" and len(hook.posts) == MAX_ATTEMPTS


def test_a_delivery_pending_when_its_webhook_is_paused_is_not_sent(editor, approver, receiver):
    hook = receiver()
    delivery = _queued_delivery(editor, approver, hook.url)
    webhooks.webhook_update(webhook_id=delivery.webhook_id, active=False, actor=approver)

    sent = webhooks.webhook_delivery_send(delivery_id=delivery.pk)

    assert (sent.status, sent.last_error, hook.posts) == ("failed", "not sent: the webhook was paused", [])


def test_the_task_queues_the_next_try_with_its_backoff(editor, approver, receiver, monkeypatch):
    from registry import tasks

    hook = receiver(statuses=(503,))
    delivery = _queued_delivery(editor, approver, hook.url)
    queued = []
    monkeypatch.setattr(tasks.webhook_deliver, "apply_async", lambda args, countdown, **kwargs: queued.append((args, countdown)))

    tasks.webhook_deliver(delivery.pk)
    tasks.webhook_deliver(delivery.pk)  # a second delivery of the task before the backoff: tries nothing, queues nothing

    assert len(queued) == 1 and queued[0][0] == (delivery.pk,) and len(hook.posts) == 1
    assert RETRY_AFTER[0].total_seconds() - 5 < queued[0][1] <= RETRY_AFTER[0].total_seconds()


def test_the_sweep_queues_only_due_deliveries_past_their_first_minute(editor, approver, settings, monkeypatch):
    settings.MLOPS_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1:9"]
    delivery = _queued_delivery(editor, approver, "http://127.0.0.1:9/h")
    queued = []
    monkeypatch.setattr(webhooks, "enqueue_on_commit", lambda name, *args: queued.append((name, *args)))
    now = timezone.now()

    fresh = webhooks.webhook_deliveries_sweep(now=now)
    old = webhooks.webhook_deliveries_sweep(now=now + timedelta(minutes=2))
    WebhookDelivery.objects.update(next_try_at=now + timedelta(minutes=10))
    not_due = webhooks.webhook_deliveries_sweep(now=now + timedelta(minutes=5))
    WebhookDelivery.objects.update(status="delivered", next_try_at=None)
    delivered = webhooks.webhook_deliveries_sweep(now=now + timedelta(hours=1))

    assert (fresh, old, not_due, delivered) == (0, 1, 0, 0)
    assert queued == [("registry.tasks.webhook_deliver", delivery.pk)]


def test_a_url_that_now_resolves_inside_the_network_is_refused_at_send_without_connecting(editor, approver, receiver, settings, monkeypatch):
    import urllib3

    hook = receiver()
    delivery = _queued_delivery(editor, approver, hook.url)
    settings.MLOPS_WEBHOOK_ALLOWED_HOSTS = []  # the administrator took the receiver off the list
    connections = []
    monkeypatch.setattr(urllib3.HTTPConnectionPool, "urlopen", lambda *a, **k: connections.append(a))

    sent = webhooks.webhook_delivery_send(delivery_id=delivery.pk)

    assert connections == [] and hook.posts == []
    assert sent.status == "failed" and sent.last_error.startswith("webhook refused: 127.0.0.1 resolves to 127.0.0.1, a loopback address")
    assert _tries(sent) == [(1, None, sent.last_error)]


# --- who sets them, what is checked, what is shown --------------------------------------------------------------


@pytest.mark.parametrize("url", UNSAFE_URLS)
def test_an_unsafe_url_is_refused_with_a_400_naming_the_field(api_as, editor, approver, url):
    register("fraud", editor)

    answer = api_as(approver).post("/api/v1/models/fraud/webhooks", {"url": url, "events": ["promotion_approved"]}, format="json")

    assert answer.status_code == 400 and answer.json()["code"] == "invalid"
    assert list(answer.json()["extra"]["fields"]) == ["url"]
    assert not RegistryWebhook.objects.exists()


@pytest.mark.parametrize("role", ["viewer", "editor"])
def test_viewers_and_editors_can_neither_set_nor_list_webhooks(api_as, editor, approver, viewer, settings, role):
    settings.MLOPS_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1:9"]
    register("fraud", editor)
    webhook = webhooks.webhook_create(model_name="fraud", url="http://127.0.0.1:9/h", events=ALL_EVENTS, actor=approver)
    client = api_as({"viewer": viewer, "editor": editor}[role])

    answers = [
        client.post("/api/v1/models/fraud/webhooks", {"url": "http://127.0.0.1:9/x", "events": ["promotion_approved"]}, format="json"),
        client.get("/api/v1/models/fraud/webhooks"),
        client.patch(f"/api/v1/webhooks/{webhook.pk}", {"active": False}, format="json"),
        client.delete(f"/api/v1/webhooks/{webhook.pk}"),
        client.get(f"/api/v1/webhooks/{webhook.pk}/deliveries"),
    ]

    assert [a.status_code for a in answers] == [403] * 5 and answers[0].json()["code"] == "role_required"
    assert list(RegistryWebhook.objects.values_list("url", "active")) == [("http://127.0.0.1:9/h", True)]
    with pytest.raises(Forbidden):
        webhooks.webhook_create(model_name="fraud", url="http://127.0.0.1:9/x", events=ALL_EVENTS, actor=editor)


def test_the_secret_is_never_returned_and_audited_only_as_set_or_changed(api_as, editor, approver, settings):
    settings.MLOPS_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1:9"]
    register("fraud", editor)
    client = api_as(approver)

    created = client.post("/api/v1/models/fraud/webhooks", {"url": "http://127.0.0.1:9/h", "events": ["promotion_approved"], "secret": "first-secret"},
                          format="json")
    webhook_id = created.json()["id"]
    changed = client.patch(f"/api/v1/webhooks/{webhook_id}", {"secret": "second-secret", "events": ["rolled_back", "promotion_approved"]}, format="json")
    listed = client.get("/api/v1/models/fraud/webhooks")
    register("fraud", editor)
    deliveries = client.get(f"/api/v1/webhooks/{webhook_id}/deliveries")
    audit = client.get("/api/v1/audit")

    assert created.status_code == 201 and changed.status_code == 200
    assert created.json()["secret_set"] is True and "secret" not in created.json()
    assert changed.json()["events"] == ["promotion_approved", "rolled_back"]
    for answer in (created, changed, listed, deliveries, audit):
        assert b"first-secret" not in answer.content and b"second-secret" not in answer.content
    set_events = AuditEvent.objects.filter(action="webhook_set").order_by("id")
    assert [e.extra.get("secret") or e.extra["changed"]["secret"] for e in set_events] == ["set", "changed"]
    assert RegistryWebhook.objects.get().secret == "second-secret"


def test_bad_events_are_refused(api_as, editor, approver, settings):
    settings.MLOPS_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1:9"]
    register("fraud", editor)
    client = api_as(approver)

    unknown = client.post("/api/v1/models/fraud/webhooks", {"url": "http://127.0.0.1:9/h", "events": ["approved"]}, format="json")
    empty = client.post("/api/v1/models/fraud/webhooks", {"url": "http://127.0.0.1:9/h", "events": []}, format="json")
    ping = client.post("/api/v1/models/fraud/webhooks", {"url": "http://127.0.0.1:9/h", "events": ["ping"]}, format="json")
    missing = client.post("/api/v1/models/nope/webhooks", {"url": "http://127.0.0.1:9/h", "events": ["rolled_back"]}, format="json")

    refused = []
    for events in (["approved"], [], ["ping"], "rolled_back"):  # the pages' form reaches the service without the API's serializer
        with pytest.raises(ValidationFailed) as error:
            webhooks.webhook_create(model_name="fraud", url="http://127.0.0.1:9/h", events=events, actor=approver)
        refused.append(list(error.value.extra["fields"]))

    assert [a.status_code for a in (unknown, empty, ping, missing)] == [400, 400, 400, 404]
    assert all(list(a.json()["extra"]["fields"]) == ["events"] for a in (unknown, empty, ping))
    assert refused == [["events"]] * 4
    assert not RegistryWebhook.objects.exists()


def test_deleting_a_webhook_is_audited_and_removes_its_history(api_as, editor, approver, settings):
    settings.MLOPS_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1:9"]
    delivery = _queued_delivery(editor, approver, "http://127.0.0.1:9/h")

    answer = api_as(approver).delete(f"/api/v1/webhooks/{delivery.webhook_id}")
    again = api_as(approver).delete(f"/api/v1/webhooks/{delivery.webhook_id}")

    assert (answer.status_code, again.status_code) == (204, 404)
    assert not RegistryWebhook.objects.exists() and not WebhookDelivery.objects.exists()
    deleted = AuditEvent.objects.get(action="webhook_deleted")
    assert (deleted.subject, deleted.extra["url"], deleted.extra["secret"]) == ("model:fraud", "http://127.0.0.1:9/h", "none")


def test_the_deliveries_api_lists_each_try(api_as, editor, approver, receiver, django_assert_max_num_queries):
    hook = receiver(statuses=(500, 204))
    delivery = _queued_delivery(editor, approver, hook.url)
    first = webhooks.webhook_delivery_send(delivery_id=delivery.pk)
    webhooks.webhook_delivery_send(delivery_id=delivery.pk, now=first.next_try_at + timedelta(seconds=1))
    for _ in range(3):
        register("fraud", editor)
    client = api_as(approver)
    client.get(f"/api/v1/webhooks/{delivery.webhook_id}/deliveries")  # the session's first request reads the token's user

    with django_assert_max_num_queries(8):
        answer = client.get(f"/api/v1/webhooks/{delivery.webhook_id}/deliveries")

    rows = answer.json()["results"]
    assert answer.status_code == 200 and answer.json()["count"] == 4
    assert [(t["attempt"], t["status_code"], t["error"]) for t in rows[-1]["tries"]] == [(1, 500, "webhook answered 500"), (2, 204, "")]
    assert (rows[-1]["status"], rows[-1]["attempts"]) == ("delivered", 2) and rows[0]["tries"] == []


def test_the_webhook_list_api_reads_a_fixed_number_of_queries(api_as, editor, approver, settings, django_assert_max_num_queries):
    settings.MLOPS_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1:9"]
    register("fraud", editor)
    for n in range(4):
        webhooks.webhook_create(model_name="fraud", url=f"http://127.0.0.1:9/{n}", events=["version_registered"], actor=approver)
    register("fraud", editor)
    client = api_as(approver)
    client.get("/api/v1/models/fraud/webhooks")

    with django_assert_max_num_queries(5):
        answer = client.get("/api/v1/models/fraud/webhooks")

    assert [h["url"] for h in answer.json()["results"]] == [f"http://127.0.0.1:9/{n}" for n in range(4)]
    assert answer.json()["results"][0]["created_by"] == "bob" and answer.json()["results"][0]["subject"] == {"kind": "model", "name": "fraud"}


def test_a_test_ping_is_queued_for_an_active_webhook_only(api_as, editor, approver, settings, django_capture_on_commit_callbacks):
    settings.MLOPS_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1:9"]
    register("fraud", editor)
    webhook = webhooks.webhook_create(model_name="fraud", url="http://127.0.0.1:9/h", events=["rolled_back"], actor=approver)

    with django_capture_on_commit_callbacks() as callbacks:
        pinged = api_as(approver).post(f"/api/v1/webhooks/{webhook.pk}/test")
    webhooks.webhook_update(webhook_id=webhook.pk, active=False, actor=approver)
    with pytest.raises(Conflict):
        webhooks.webhook_ping(webhook_id=webhook.pk, actor=approver)

    assert pinged.status_code == 202 and pinged.json()["event"] == "ping" and len(callbacks) == 1
    assert WebhookDelivery.objects.get().payload["subject"] == {"kind": "model", "name": "fraud"}


# --- the page ------------------------------------------------------------------------------------------------------


def test_the_models_page_shows_webhooks_and_their_tries_to_approvers_only(client, editor, approver, viewer, receiver, django_assert_max_num_queries):
    hook = receiver(statuses=(503, 204))
    delivery = _queued_delivery(editor, approver, hook.url)
    first = webhooks.webhook_delivery_send(delivery_id=delivery.pk)
    webhooks.webhook_delivery_send(delivery_id=delivery.pk, now=first.next_try_at + timedelta(seconds=1))
    for _ in range(8):
        register("fraud", editor)
    webhooks.webhook_create(model_name="fraud", url=hook.url, events=ALL_EVENTS, secret="x", actor=approver)
    register("fraud", editor)
    client.force_login(approver)
    client.get("/models/fraud/")

    with django_assert_max_num_queries(12):
        html = client.get("/models/fraud/").content.decode()
    client.force_login(viewer)
    as_viewer = client.get("/models/fraud/").content.decode()

    assert html.count('class="webhook"') == 2 and html.count("<tr data-delivery=") == 5 + 1
    assert "try 1 · 503" not in html  # the oldest delivery (tried twice) is past the five shown
    assert 'id="webhooks"' not in as_viewer and hook.url not in as_viewer


def test_the_page_shows_each_try_of_a_recent_delivery(client, editor, approver, receiver):
    hook = receiver(statuses=(503, 204))
    delivery = _queued_delivery(editor, approver, hook.url)
    first = webhooks.webhook_delivery_send(delivery_id=delivery.pk)
    webhooks.webhook_delivery_send(delivery_id=delivery.pk, now=first.next_try_at + timedelta(seconds=1))
    client.force_login(approver)

    html = client.get("/models/fraud/").content.decode()

    assert 'data-delivery="delivered"' in html and "try 1 · 503" in html and "try 2 · 204" in html


def test_an_editor_adding_a_webhook_from_the_page_is_told_the_role_and_nothing_is_saved(client, editor, settings):
    settings.MLOPS_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1:9"]
    register("fraud", editor)
    client.force_login(editor)

    answer = client.post("/models/fraud/webhooks/", {"url": "http://127.0.0.1:9/h", "events": ["promotion_approved"]}, follow=True)

    assert "Setting a webhook needs the approver role." in answer.content.decode()
    assert not RegistryWebhook.objects.exists()


def test_an_approver_adds_a_prompt_webhook_from_the_page(client, editor, approver, settings):
    settings.MLOPS_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1:9"]
    services.prompts_import(files=brief_folder(), actor=editor)
    client.force_login(approver)

    answer = client.post("/prompts/summarize/webhooks/", {"url": "http://127.0.0.1:9/h", "events": ["environment_moved", "rolled_back"],
                                                           "secret": "s"})
    refused = client.post("/prompts/summarize/webhooks/", {"url": "http://169.254.169.254/", "events": ["rolled_back"]}, follow=True)

    assert answer.status_code == 302 and answer["Location"] == "/prompts/summarize/#webhooks"
    assert list(RegistryWebhook.objects.values_list("prompt__name", "events", "secret")) == [("summarize", ["rolled_back", "environment_moved"], "s")]
    assert "link-local" in refused.content.decode()

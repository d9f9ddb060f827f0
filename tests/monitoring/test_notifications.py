"""Webhook targets are requests this server makes for someone: refused when they point inside the network (when set
and when sent), posted to the address that was checked, never redirected, and never signed with the site's secret
for a URL a user set. Every connection these tests make goes to a receiver on 127.0.0.1."""

import hashlib
import hmac
import json
import socket
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import urllib3
from django.forms import modelform_factory

from mlops_site.exceptions import Forbidden, ValidationFailed
from mlops_site.webhooks import MAX_ATTEMPTS, RETRY_AFTER
from monitoring import services
from monitoring.admin import AlertRuleForm
from monitoring.models import AlertEvent, AlertRule, Budget, BudgetAlert, NotificationAttempt
from monitoring.services import alerts, notifications
from monitoring.services.notifications import notification_send
from tests.factories import register

pytestmark = pytest.mark.django_db

INTERNAL_URLS = [
    "http://127.0.0.1/hook",
    "http://127.0.0.1:8000/hook",
    "http://localhost/hook",
    "http://[::1]/hook",
    "http://10.0.0.5/hook",
    "http://192.168.1.1/hook",
    "http://172.16.0.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://0.0.0.0/hook",
    "http://2130706433/hook",  # 127.0.0.1 written as one decimal number
    "http://[::ffff:127.0.0.1]/hook",
    "http://[fd00::1]/hook",
    "http://[fe80::1]/hook",
    "http://224.0.0.1/hook",
    "http://240.0.0.1/hook",
    "http://internal.example.test/hook",  # resolves to loopback (the resolver below)
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_FLUSHALL",
    "ftp://203.0.113.1/",
    "127.0.0.1/hook",
]
REAL_GETADDRINFO = socket.getaddrinfo


@pytest.fixture(autouse=True)
def resolver(monkeypatch):
    """`*.example.test` names resolve as each test says (never through the network); anything else as usual.
    `resolver[name]` is the list of answers, one per lookup (the last one repeats); `resolver.calls` counts lookups."""

    class Resolver(dict):
        calls: list[str] = []

    answers = Resolver({"internal.example.test": ["127.0.0.1"]})

    def getaddrinfo(host, port, *args, **kwargs):
        if host.endswith(".example.test"):
            answers.calls.append(host)
            queue = answers[host]
            address = queue.pop(0) if len(queue) > 1 else queue[0]
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return REAL_GETADDRINFO(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


@pytest.fixture
def no_outside_connection(monkeypatch):
    """Record every post `deliver` tries instead of making it: (address, port, path, Host header), answered 204."""
    attempts = []

    def urlopen(pool, method, url, body=None, headers=None, **kwargs):
        attempts.append((pool.host, pool.port, url, headers["Host"]))
        return urllib3.HTTPResponse(body=b"", status=204)

    monkeypatch.setattr(urllib3.HTTPConnectionPool, "urlopen", urlopen)
    return attempts


class Receiver:
    """An HTTP receiver on 127.0.0.1: records each POST (path, body, signature, Host) and answers `status` (with `location`),
    or the `statuses` in turn (the last one repeats)."""

    def __init__(self, status: int = 204, location: str = "", statuses: tuple[int, ...] = ()):
        self.posts = []
        receiver = self
        answers = list(statuses or (status,))

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append({"path": self.path, "body": body, "signature": self.headers.get("X-MLOps-Signature"),
                                       "host": self.headers.get("Host")})
                self.send_response(answers.pop(0) if len(answers) > 1 else answers[0])
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(**kwargs) -> Receiver:
        made.append(Receiver(**kwargs))
        return made[-1]

    yield make
    for one in made:
        one.close()


def _notify_rule(editor, url: str, secret: str = "") -> AlertEvent:
    """A rule with this target written straight to the table (as an old row or a changed setting could hold it), notified once."""
    version = register("fraud", editor)
    rule = AlertRule.objects.create(model=version.model, name="r", metric="feature_psi", threshold=0.25, webhook_url=url, webhook_secret=secret)
    event = AlertEvent.objects.create(rule=rule, from_state="ok", to_state="alert", value=0.4, message="drift")
    return alerts.alert_notify(event_id=event.pk)


def _notify_budget(editor, approver, **targets) -> BudgetAlert:
    """A budget with these targets (set by an approver), over its share, notified once."""
    budget = services.budget_set(name="all", amount_usd=1, thresholds=[0.8], actor=approver, **targets)
    alert = BudgetAlert.objects.create(budget=budget, period_start="2026-11-25T00:00:00Z", threshold=0.8, spent_usd=0.9, message="spent",
                                       at="2026-11-25T12:00:00Z")
    return services.budget_alert_notify(alert_id=alert.pk)


def _hmac(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.mark.parametrize("url", INTERNAL_URLS)
def test_budget_set_refuses_a_webhook_inside_the_network_naming_the_field(approver, url):
    with pytest.raises(ValidationFailed) as refused:
        services.budget_set(name="b", amount_usd=5, webhook_url=url, actor=approver)

    assert list(refused.value.extra["fields"]) == ["webhook_url"] and refused.value.message.startswith("webhook_url: ")
    assert not Budget.objects.exists()


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://2130706433/hook", "gopher://127.0.0.1:6379/_"])
def test_budget_api_refuses_a_webhook_inside_the_network_with_a_400(api_as, approver, url):
    answer = api_as(approver).post("/api/v1/budgets", {"name": "b", "amount_usd": 5, "webhook_url": url}, format="json")

    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid" and list(answer.json()["extra"]["fields"]) == ["webhook_url"]


def test_the_reason_names_the_address_and_the_setting_that_allows_it(approver):
    with pytest.raises(ValidationFailed) as refused:
        services.budget_set(name="b", amount_usd=5, webhook_url="http://internal.example.test/hook", actor=approver)

    assert "resolves to 127.0.0.1, a loopback address" in refused.value.message
    assert "MLOPS_WEBHOOK_ALLOWED_HOSTS" in refused.value.message


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.5/hook", "file:///etc/passwd"])
def test_the_alert_rule_admin_form_refuses_a_webhook_inside_the_network(editor, url):
    version = register("fraud", editor)

    form = modelform_factory(AlertRule, form=AlertRuleForm, fields="__all__")(data={"model": version.model.pk, "name": "r", "metric": "feature_psi", "comparison": ">", "threshold": 0.25,
                               "window_minutes": 60, "webhook_url": url, "state": "ok", "enabled": True, "action": "none"})

    assert not form.is_valid() and "webhook_url" in form.errors


@pytest.mark.parametrize("url", INTERNAL_URLS)
def test_delivery_refuses_a_webhook_inside_the_network_without_connecting(editor, no_outside_connection, url):
    event = _notify_rule(editor, url)

    assert no_outside_connection == []
    assert (event.notification_status, event.notified_at) == ("failed", None) and event.notification_error.startswith("webhook refused: ")


def test_a_host_allowed_by_the_setting_is_reached(editor, settings, receiver):
    hook = receiver()
    settings.MLOPS_WEBHOOK_ALLOWED_HOSTS = [f"127.0.0.1:{hook.port}"]

    event = _notify_rule(editor, hook.url)

    assert event.notification_error == "" and [p["path"] for p in hook.posts] == ["/hook"]


def test_the_setting_allows_only_the_port_it_names(editor, settings, no_outside_connection):
    settings.MLOPS_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1:8080"]

    event = _notify_rule(editor, "http://127.0.0.1:6379/hook")

    assert no_outside_connection == [] and "loopback" in event.notification_error


def test_delivery_connects_to_the_address_it_checked_not_a_second_answer(editor, resolver, no_outside_connection):
    resolver["rebind.example.test"] = ["93.184.216.34", "127.0.0.1"]  # public when checked, loopback if asked again

    event = _notify_rule(editor, "http://rebind.example.test:8080/hook?x=1")

    assert no_outside_connection == [("93.184.216.34", 8080, "/hook?x=1", "rebind.example.test:8080")]
    assert resolver.calls == ["rebind.example.test"] and event.notification_error == ""


def test_delivery_checks_again_a_name_that_now_resolves_inside(editor, approver, resolver, no_outside_connection):
    resolver["hooks.example.test"] = ["93.184.216.34"]
    services.budget_set(name="all", amount_usd=1, thresholds=[0.8], webhook_url="http://hooks.example.test/hook", actor=approver)
    resolver["hooks.example.test"] = ["169.254.169.254"]

    alert = _notify_budget(editor, approver)

    assert no_outside_connection == [] and "169.254.169.254, a link-local address" in alert.notification_error


def test_a_redirect_is_not_followed(editor, settings, receiver):
    elsewhere = receiver()
    hook = receiver(status=302, location=elsewhere.url)
    settings.MLOPS_WEBHOOK_ALLOWED_HOSTS = [f"127.0.0.1:{hook.port}", f"127.0.0.1:{elsewhere.port}"]

    event = _notify_rule(editor, hook.url)

    assert len(hook.posts) == 1 and elsewhere.posts == []
    assert event.notification_error == f"webhook answered 302, a redirect (to {elsewhere.url}), not followed"


def test_the_site_secret_never_signs_a_budgets_own_url(editor, approver, settings, receiver):
    hook = receiver()
    settings.MLOPS_WEBHOOK_ALLOWED_HOSTS = [f"127.0.0.1:{hook.port}"]
    settings.MLOPS_ALERT_WEBHOOK_URL, settings.MLOPS_ALERT_WEBHOOK_SECRET = "http://127.0.0.1:9/site", "site-secret"

    alert = _notify_budget(editor, approver, webhook_url=hook.url)

    assert alert.notification_error == "" and len(hook.posts) == 1 and hook.posts[0]["signature"] is None


def test_a_budgets_own_url_is_signed_with_its_own_secret(editor, approver, settings, receiver):
    hook = receiver()
    settings.MLOPS_WEBHOOK_ALLOWED_HOSTS = [f"127.0.0.1:{hook.port}"]
    settings.MLOPS_ALERT_WEBHOOK_SECRET = "site-secret"

    _notify_budget(editor, approver, webhook_url=hook.url, webhook_secret="budget-secret")

    assert hook.posts[0]["signature"] == _hmac("budget-secret", hook.posts[0]["body"])


def test_the_site_url_is_signed_with_the_site_secret(editor, approver, settings, receiver):
    hook = receiver()
    settings.MLOPS_WEBHOOK_ALLOWED_HOSTS = [f"127.0.0.1:{hook.port}"]
    settings.MLOPS_ALERT_WEBHOOK_URL, settings.MLOPS_ALERT_WEBHOOK_SECRET = hook.url, "site-secret"

    _notify_budget(editor, approver)

    assert hook.posts[0]["signature"] == _hmac("site-secret", hook.posts[0]["body"])
    assert json.loads(hook.posts[0]["body"])["budget"] == "all"


def test_a_rule_holding_a_copy_of_the_site_secret_does_not_sign_another_url(editor, settings, receiver):
    hook = receiver()
    settings.MLOPS_WEBHOOK_ALLOWED_HOSTS = [f"127.0.0.1:{hook.port}"]
    settings.MLOPS_ALERT_WEBHOOK_URL, settings.MLOPS_ALERT_WEBHOOK_SECRET = "http://127.0.0.1:9/site", "site-secret"

    event = _notify_rule(editor, hook.url, secret="site-secret")  # a default rule whose URL was changed

    assert event.notification_error == "" and hook.posts[0]["signature"] is None


@pytest.mark.parametrize("targets", [{"webhook_url": "https://hooks.example.test/x"}, {"webhook_secret": "s"}, {"emails": "me@example.com"}])
def test_an_editor_cannot_set_where_a_budget_notifies(editor, resolver, targets):
    resolver["hooks.example.test"] = ["93.184.216.34"]

    with pytest.raises(Forbidden) as refused:
        services.budget_set(name="b", amount_usd=5, **targets, actor=editor)

    assert refused.value.code == "role_required" and "approver" in refused.value.message
    assert not Budget.objects.exists()


def test_an_editor_cannot_change_where_a_budget_notifies_over_http(api_as, editor, approver, resolver):
    resolver["hooks.example.test"] = ["93.184.216.34"]
    services.budget_set(name="b", amount_usd=5, webhook_url="https://hooks.example.test/x", actor=approver)

    answer = api_as(editor).post("/api/v1/budgets", {"name": "b", "amount_usd": 5, "webhook_url": ""}, format="json")

    assert answer.status_code == 403 and answer.json()["code"] == "role_required"
    assert answer.json()["message"] == "Setting where a budget notifies (webhook, secret, e-mails) needs the approver role."
    assert Budget.objects.get().webhook_url == "https://hooks.example.test/x"


def test_an_editor_changing_a_budgets_amount_keeps_its_targets(editor, approver, resolver):
    resolver["hooks.example.test"] = ["93.184.216.34"]
    services.budget_set(name="b", amount_usd=5, webhook_url="https://hooks.example.test/x", webhook_secret="s", emails="a@example.com", actor=approver)

    services.budget_set(name="b", amount_usd=9, actor=editor)
    services.budget_set(name="b", amount_usd=10, webhook_url="https://hooks.example.test/x", actor=editor)  # the same target: no change

    budget = Budget.objects.get()
    assert (budget.amount_usd, budget.webhook_url, budget.webhook_secret, budget.emails) == (10, "https://hooks.example.test/x", "s", "a@example.com")


@pytest.mark.parametrize("url", ["gopher://hooks.example.test:70/_", "ftp://hooks.example.test/", "file://hooks.example.test/etc/passwd"])
def test_only_http_and_https_are_sent_to_even_on_a_public_host(editor, approver, resolver, no_outside_connection, url):
    resolver["hooks.example.test"] = ["93.184.216.34"]

    with pytest.raises(ValidationFailed) as refused:
        services.budget_set(name="b", amount_usd=5, webhook_url=url, actor=approver)
    event = _notify_rule(editor, url)

    assert "only http and https" in refused.value.message and "only http and https" in event.notification_error
    assert no_outside_connection == []


def test_an_https_webhook_connects_to_the_checked_address_and_verifies_the_hosts_certificate(editor, resolver, monkeypatch):
    resolver["hooks.example.test"] = ["93.184.216.34"]
    pools = []

    def urlopen(pool, method, url, body=None, headers=None, **kwargs):
        pools.append((pool.host, pool.port, pool.conn_kw.get("server_hostname"), pool.assert_hostname, pool.cert_reqs, headers["Host"]))
        return urllib3.HTTPResponse(body=b"", status=204)

    monkeypatch.setattr(urllib3.HTTPConnectionPool, "urlopen", urlopen)

    event = _notify_rule(editor, "https://hooks.example.test/x")

    assert pools == [("93.184.216.34", 443, "hooks.example.test", "hooks.example.test", "CERT_REQUIRED", "hooks.example.test")]
    assert event.notification_error == ""


# --- retries: each channel until it goes through, with backoff, every try recorded ---------------------------------


def _attempts(record) -> list[tuple]:
    owner = {"alert_event": record} if isinstance(record, AlertEvent) else {"budget_alert": record}
    return list(NotificationAttempt.objects.filter(**owner).order_by("id").values_list("attempt", "channel", "ok", "error"))


def _later(record, *, by=timedelta(seconds=1)):
    """A moment just after the record's next try is due."""
    return record.next_notification_at + by


def _try_again(record, *, url="", emails="", now=None):
    """The next try of a rule's notification, at `now` (by default just after it is due)."""
    return notification_send(record, webhook_url=url, webhook_secret="", emails=emails, message="drift", payload={},
                             now=now or record.next_notification_at + timedelta(seconds=1))


def test_a_failed_webhook_is_tried_again_after_its_backoff_and_delivered_only_on_success(editor, settings, receiver):
    hook = receiver(statuses=(503, 500, 204))
    settings.MLOPS_WEBHOOK_ALLOWED_HOSTS = [f"127.0.0.1:{hook.port}"]

    event = _notify_rule(editor, hook.url)
    first = (event.notification_status, event.notified_at, event.notification_attempts, event.notification_error)
    too_soon = alerts.alert_notify(event_id=event.pk)  # a sweep or a duplicate task before the backoff is over
    second_at = event.next_notification_at + timedelta(seconds=1)
    second = _try_again(event, url=hook.url, now=second_at)
    second = (second.notification_status, second.next_notification_at)
    third = _try_again(event, url=hook.url)

    assert first[:3] == ("retrying", None, 1) and first[3].startswith("webhook answered 503 (try 1 of 5; next at ")
    assert (too_soon.notification_attempts, too_soon.tried_now) == (1, False)
    assert second == ("retrying", second_at + RETRY_AFTER[1])
    assert (third.notification_status, third.notification_error, third.notification_attempts) == ("delivered", "", 3)
    assert third.notified_at is not None and len(hook.posts) == 3
    assert _attempts(third) == [(1, "webhook", False, "webhook answered 503"), (2, "webhook", False, "webhook answered 500"), (3, "webhook", True, "")]


def test_a_channel_that_went_through_is_not_sent_again_when_the_other_is_retried(editor, settings, receiver, mailoutbox, monkeypatch):
    hook = receiver()
    settings.MLOPS_WEBHOOK_ALLOWED_HOSTS = [f"127.0.0.1:{hook.port}"]
    failures = iter([OSError("connection refused by the mail server")])

    def send_mail(*args, **kwargs):
        for failure in failures:
            raise failure
        return real_send_mail(*args, **kwargs)

    real_send_mail = notifications.send_mail
    monkeypatch.setattr(notifications, "send_mail", send_mail)
    version = register("fraud", editor)
    rule = AlertRule.objects.create(model=version.model, name="r", metric="feature_psi", threshold=0.25, webhook_url=hook.url, emails="oncall@example.com")
    event = alerts.alert_notify(event_id=AlertEvent.objects.create(rule=rule, from_state="ok", to_state="alert", value=0.4, message="drift").pk)
    first = (event.notification_status, event.notification_error)

    retried = _try_again(event, url=hook.url, emails="oncall@example.com")

    assert first[0] == "retrying" and "e-mail: connection refused" in first[1]
    assert retried.notification_status == "delivered" and len(hook.posts) == 1 and len(mailoutbox) == 1
    assert [(a, c, ok) for a, c, ok, _ in _attempts(retried)] == [(1, "webhook", True), (1, "email", False), (2, "email", True)]


def test_notifications_give_up_after_the_last_try(editor, settings, receiver):
    hook = receiver(status=502)
    settings.MLOPS_WEBHOOK_ALLOWED_HOSTS = [f"127.0.0.1:{hook.port}"]

    event = _notify_rule(editor, hook.url)
    for _ in range(MAX_ATTEMPTS - 1):
        event = _try_again(event, url=hook.url)
    after_the_end = _try_again(event, url=hook.url, now=event.at + timedelta(days=30))

    assert (event.notification_status, event.notification_attempts, event.next_notification_at) == ("failed", MAX_ATTEMPTS, None)
    assert event.notification_error == f"webhook answered 502 (gave up after {MAX_ATTEMPTS} tries)"
    assert after_the_end.tried_now is False and len(hook.posts) == MAX_ATTEMPTS


@pytest.mark.parametrize(("status", "retried"), [(404, False), (410, False), (408, True), (429, True), (500, True)])
def test_only_answers_that_may_change_are_tried_again(editor, settings, receiver, status, retried):
    hook = receiver(status=status)
    settings.MLOPS_WEBHOOK_ALLOWED_HOSTS = [f"127.0.0.1:{hook.port}"]

    event = _notify_rule(editor, hook.url)

    assert event.notification_status == ("retrying" if retried else "failed")


def test_the_sweeps_queue_a_retry_only_when_it_is_due(editor, settings, receiver):
    hook = receiver(status=500)
    settings.MLOPS_WEBHOOK_ALLOWED_HOSTS = [f"127.0.0.1:{hook.port}"]
    event = _notify_rule(editor, hook.url)
    AlertEvent.objects.filter(pk=event.pk).update(at=event.at - timedelta(hours=1))
    queued = []
    import monitoring.services.sweeps as sweeps

    sweeps_enqueue = sweeps.enqueue_on_commit
    sweeps.enqueue_on_commit = lambda name, *args: queued.append((name, *args))
    try:
        before_due = sweeps.stuck_work_sweep(now=event.next_notification_at - timedelta(seconds=1))
        when_due = sweeps.stuck_work_sweep(now=event.next_notification_at + timedelta(seconds=1))
    finally:
        sweeps.enqueue_on_commit = sweeps_enqueue

    assert (before_due, when_due) == (0, 1) and queued == [("monitoring.tasks.alert_notify", event.pk)]


def test_a_failed_try_queues_the_next_one_with_its_backoff(editor, settings, receiver, monkeypatch):
    from monitoring import tasks

    hook = receiver(status=503)
    settings.MLOPS_WEBHOOK_ALLOWED_HOSTS = [f"127.0.0.1:{hook.port}"]
    version = register("fraud", editor)
    rule = AlertRule.objects.create(model=version.model, name="r", metric="feature_psi", threshold=0.25, webhook_url=hook.url)
    event = AlertEvent.objects.create(rule=rule, from_state="ok", to_state="alert", value=0.4, message="drift")
    queued = []
    monkeypatch.setattr(tasks.alert_notify, "apply_async", lambda args, countdown, **kwargs: queued.append((args, countdown)))

    tasks.alert_notify(event.pk)
    tasks.alert_notify(event.pk)  # a duplicate delivery before the backoff: tries nothing, queues nothing

    assert len(queued) == 1 and queued[0][0] == (event.pk,)
    assert RETRY_AFTER[0].total_seconds() - 5 < queued[0][1] <= RETRY_AFTER[0].total_seconds()


def test_the_alerts_page_shows_each_notifications_delivery_and_every_try(editor, viewer, settings, receiver, client):
    hook = receiver(statuses=(503, 204))
    settings.MLOPS_WEBHOOK_ALLOWED_HOSTS = [f"127.0.0.1:{hook.port}"]
    event = _notify_rule(editor, hook.url)
    client.force_login(viewer)

    retrying = client.get("/monitoring/alerts/").content.decode()
    _try_again(event, url=hook.url)
    delivered = client.get("/monitoring/alerts/").content.decode()

    assert 'data-delivery="retrying"' in retrying and "next " in retrying
    assert "try 1 · webhook: webhook answered 503" in retrying
    assert 'data-delivery="delivered"' in delivered and "2 tries" in delivered
    assert "try 2 · webhook: sent" in delivered


def test_the_cost_page_lists_budget_alerts_with_their_delivery(editor, approver, viewer, client, mailoutbox):
    alert = _notify_budget(editor, approver, emails="finance@example.com")
    client.force_login(viewer)

    html = client.get("/monitoring/costs/").content.decode()

    assert alert.notification_status == "delivered" and len(mailoutbox) == 1
    row = html[html.index(f'data-budget-alert="{alert.pk}"'):]
    row = row[: row.index("</tr>")]
    assert 'data-delivery="delivered"' in row and "try 1 · e-mail: sent" in row and "80 %" in row

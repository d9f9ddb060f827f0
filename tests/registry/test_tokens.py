"""API tokens attacked as the review did: a database or admin that gives keys back, revoked and expired keys that still
open the API, a key shown twice, a token that mints tokens. And `Authorization: Bearer` on the whole API."""

import hashlib
import importlib
from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from registry.models import ApiToken
from registry.services.tokens import api_token_create, api_token_revoke
from tests.factories import register

pytestmark = pytest.mark.django_db


def api_with(header: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    return client


def assert_401(response, code: str) -> None:
    assert response.status_code == 401, response.content
    assert response.json()["code"] == code
    assert set(response.json()) == {"message", "code", "extra"}


def every_stored_value() -> str:
    """Every value of every row of every table, as text: where a leaked key would be found."""
    found = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            found += [repr(row) for row in cursor.fetchall()]
    return "\n".join(found)


def test_api_token_create_stores_a_digest_and_no_key_anywhere(editor):
    created = api_token_create(user=editor, name="ci")

    stored = ApiToken.objects.get(pk=created.token.pk)
    assert stored.key_sha256 == hashlib.sha256(created.key.encode()).hexdigest()
    assert stored.prefix == created.key[:12] and created.key.startswith("mlops_") and len(created.key) == 49
    assert created.key not in every_stored_value()
    assert created.key[12:] not in every_stored_value()


def test_api_token_opens_the_api_as_its_user_by_token_and_by_bearer(editor):
    key = api_token_create(user=editor, name="ci").key
    register("fraud", editor)

    for header in (f"Token {key}", f"Bearer {key}", f"bearer {key}"):
        client = api_with(header)
        assert client.get("/api/v1/me").json() == {"username": "alice", "role": "editor"}, header
        assert client.get("/api/v1/models").json()["results"][0]["name"] == "fraud", header
        assert client.get("/api/v1/promotions").status_code == 200, header
        assert client.get("/metrics").status_code == 200, header
    created = api_with(f"Bearer {key}").post("/api/v1/models/fraud/versions", {"metrics": {"auc": 0.9}}, format="json")
    assert created.status_code == 201 and created.json()["created_by"] == "alice"


def test_api_token_revoked_is_refused_with_401_everywhere(editor):
    created = api_token_create(user=editor, name="ci")
    api_token_revoke(actor=editor, token_id=created.token.pk)

    for path in ("/api/v1/me", "/api/v1/models", "/metrics"):
        assert_401(api_with(f"Bearer {created.key}").get(path), "token_revoked")
    assert_401(api_with(f"Token {created.key}").get("/api/v1/me"), "token_revoked")


def test_api_token_expired_is_refused_with_401(editor):
    earlier = timezone.now() - timedelta(hours=2)
    created = api_token_create(user=editor, name="ci", expires_at=earlier + timedelta(hours=1), now=earlier)
    unexpired = api_token_create(user=editor, name="ci", expires_at=timezone.now() + timedelta(hours=1))

    assert_401(api_with(f"Bearer {created.key}").get("/api/v1/me"), "token_expired")
    assert api_with(f"Bearer {unexpired.key}").get("/api/v1/me").status_code == 200


def test_api_token_unknown_or_malformed_header_is_refused_with_401(editor):
    key = api_token_create(user=editor, name="ci").key

    assert_401(api_with(f"Bearer {key[:-1]}").get("/api/v1/me"), "invalid_token")
    assert_401(api_with("Bearer").get("/api/v1/me"), "invalid_token")
    assert_401(api_with(f"Bearer {key} extra").get("/api/v1/me"), "invalid_token")
    assert api_with("Bearer").get("/api/v1/me")["WWW-Authenticate"] == 'Token realm="api", Bearer realm="api"'


def test_api_token_last_use_is_written_at_most_once_a_minute(editor, monkeypatch):
    key = api_token_create(user=editor, name="ci").key
    client = api_with(f"Bearer {key}")
    start = timezone.now()
    monkeypatch.setattr("django.utils.timezone.now", lambda: start)

    client.get("/api/v1/me")
    monkeypatch.setattr("django.utils.timezone.now", lambda: start + timedelta(seconds=59))
    with CaptureQueriesContext(connection) as within_a_minute:
        client.get("/api/v1/me")
    first = ApiToken.objects.get().last_used_at
    monkeypatch.setattr("django.utils.timezone.now", lambda: start + timedelta(seconds=61))
    client.get("/api/v1/me")

    assert first == start
    assert [q["sql"] for q in within_a_minute.captured_queries if q["sql"].startswith("UPDATE")] == []
    assert ApiToken.objects.get().last_used_at == start + timedelta(seconds=61)


def test_token_list_api_shows_the_key_once_at_creation(editor):
    client = APIClient()
    client.force_login(editor)

    created = client.post("/api/v1/tokens", {"name": "grafana"}, format="json")
    listed = client.get("/api/v1/tokens")

    assert created.status_code == 201, created.content
    key = created.json()["key"]
    assert created.json()["prefix"] == key[:12] and created["Cache-Control"] == "no-store"
    assert listed.json()["results"] == [{k: v for k, v in created.json().items() if k != "key"}]
    assert key not in listed.content.decode() and key[12:] not in listed.content.decode()
    assert api_with(f"Bearer {key}").get("/api/v1/me").json()["username"] == "alice"


def test_token_list_api_refuses_a_token_that_mints_tokens(editor, api_as):
    response = api_as(editor).post("/api/v1/tokens", {"name": "more"}, format="json")

    assert response.status_code == 403 and response.json()["code"] == "session_required"
    assert list(ApiToken.objects.values_list("name", flat=True)) == ["create_api_user"]


def test_token_list_api_lists_only_the_callers_tokens(editor, approver, api_as):
    api_token_create(user=approver, name="bobs")
    client = api_as(editor)

    names = [t["name"] for t in client.get("/api/v1/tokens").json()["results"]]

    assert names == ["create_api_user"]


def test_token_revoke_api_revokes_own_token_and_hides_others(editor, approver, admin_user, api_as):
    mine = api_token_create(user=editor, name="ci")
    bobs = api_token_create(user=approver, name="bobs")
    client = api_as(editor)

    revoked = client.post(f"/api/v1/tokens/{mine.token.pk}/revoke")
    others = client.post(f"/api/v1/tokens/{bobs.token.pk}/revoke")
    by_admin = api_as(admin_user).post(f"/api/v1/tokens/{bobs.token.pk}/revoke")

    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    assert_401(api_with(f"Bearer {mine.key}").get("/api/v1/me"), "token_revoked")
    assert others.status_code == 404 and others.json()["code"] == "not_found"
    assert by_admin.status_code == 200
    assert_401(api_with(f"Bearer {bobs.key}").get("/api/v1/me"), "token_revoked")


def test_token_page_shows_a_new_key_once_and_revokes(editor):
    client = Client()
    client.force_login(editor)

    created = client.post(reverse("registry:token-list"), {"name": "laptop", "expires_in_days": "30"})
    key = created.context["new_key"]
    again = client.get(reverse("registry:token-list"))
    token = ApiToken.objects.get(name="laptop")
    revoked = client.post(reverse("registry:token-revoke", args=[token.pk]), follow=True)

    assert created.status_code == 201 and key in created.content.decode()
    assert all(key not in repr(session.get_decoded()) for session in Session.objects.all())  # not kept in a session
    assert key not in str(client.cookies)  # nor flashed into the messages cookie
    assert token.expires_at - token.created_at == timedelta(days=30)
    assert again.status_code == 200 and token.prefix in again.content.decode() and key not in again.content.decode()
    assert "revoked" in revoked.content.decode()
    assert_401(api_with(f"Bearer {key}").get("/api/v1/me"), "token_revoked")


def test_token_page_revoke_of_someone_elses_token_is_404(editor, approver):
    bobs = api_token_create(user=approver, name="bobs")
    client = Client()
    client.force_login(editor)

    response = client.post(reverse("registry:token-revoke", args=[bobs.token.pk]))

    assert response.status_code == 404
    assert ApiToken.objects.get(pk=bobs.token.pk).revoked_at is None


def test_token_admin_shows_no_key_nor_digest_and_makes_no_token(admin_user, approver):
    created = api_token_create(user=approver, name="release")
    client = Client()
    client.force_login(admin_user)

    changelist = client.get(reverse("admin:registry_apitoken_changelist")).content.decode()
    change = client.get(reverse("admin:registry_apitoken_change", args=[created.token.pk])).content.decode()
    add = client.get(reverse("admin:registry_apitoken_add"))

    assert created.token.prefix in changelist and created.token.prefix in change
    for page in (changelist, change):
        assert created.key[12:] not in page
        assert created.token.key_sha256 not in page
    assert add.status_code == 403


def test_token_admin_revokes_a_leaked_token(admin_user, approver):
    created = api_token_create(user=approver, name="release")
    client = Client()
    client.force_login(admin_user)

    client.post(reverse("admin:registry_apitoken_changelist"), {"action": "revoke", "_selected_action": [created.token.pk]})

    assert_401(api_with(f"Bearer {created.key}").get("/api/v1/me"), "token_revoked")


@pytest.mark.django_db(transaction=True)  # SQLite's schema editor needs to be outside a transaction
def test_migration_hashes_plain_drf_tokens_and_drops_their_table(editor):
    migration = importlib.import_module("registry.migrations.0008_api_tokens")
    plain = "0123456789abcdef0123456789abcdef01234567"  # a DRF key: 40 hex characters
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, created timestamp with time zone NOT NULL, user_id integer NOT NULL)"
        )
        cursor.execute("INSERT INTO authtoken_token (key, created, user_id) VALUES (%s, %s, %s)", [plain, timezone.now(), editor.pk])

    from django.apps import apps

    with connection.schema_editor() as schema_editor:
        migration.hash_plain_tokens(apps, schema_editor)

    assert "authtoken_token" not in connection.introspection.table_names()
    assert plain not in every_stored_value()
    assert api_with(f"Token {plain}").get("/api/v1/me").json()["username"] == "alice"


def test_api_token_of_an_inactive_user_is_refused_with_401(editor):
    key = api_token_create(user=editor, name="ci").key
    editor.is_active = False
    editor.save(update_fields=["is_active"])

    assert_401(api_with(f"Bearer {key}").get("/api/v1/me"), "user_inactive")


def test_token_creation_and_revocation_are_audited_without_the_key(editor, admin_user, api_as):
    from registry.models import AuditEvent

    made = api_token_create(user=editor, name="ci", expires_at=timezone.now() + timedelta(days=30))
    api_as(admin_user).post(f"/api/v1/tokens/{made.token.pk}/revoke")  # an admin revoking a leaked key
    api_as(admin_user).post(f"/api/v1/tokens/{made.token.pk}/revoke")  # twice: nothing more to record

    events = list(AuditEvent.objects.filter(action__in=["token_created", "token_revoked"]).order_by("id"))
    assert [(e.action, e.actor_name, e.subject, e.reason) for e in events] == [
        ("token_created", editor.username, f"user:{editor.username}", "ci"),
        ("token_revoked", admin_user.username, f"user:{editor.username}", "ci"),
    ]
    assert events[0].extra["prefix"] == made.token.prefix and made.key not in repr([e.extra for e in events])
    assert not AuditEvent.objects.filter(action="token_created", reason="create_api_user").exists()  # a tool rotating its own: not audited

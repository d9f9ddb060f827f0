"""The traffic simulators' tokens: a fresh key per run (the site keeps none to reuse), and the keys of runs that ended
revoked when the next one starts, while a run still sending keeps its own."""

from datetime import timedelta

import pytest
from django.utils import timezone

from demo.traffic import TOKEN_NAME, TrafficCommand
from registry.models import ApiToken
from registry.services.tokens import api_token_authenticate, api_token_create
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


def test_token_for_gives_a_working_key_and_revokes_only_stale_demo_tokens():
    bot = make_user("traffic-bot", "editor")
    long_ago = timezone.now() - timedelta(hours=1)
    ended = api_token_create(user=bot, name=TOKEN_NAME, now=long_ago).token
    running = api_token_create(user=bot, name=TOKEN_NAME, now=long_ago)
    api_token_authenticate(running.key)  # a run that is still sending used it just now
    ci = api_token_create(user=bot, name="ci", now=long_ago).token

    key, user = TrafficCommand().token_for("traffic-bot")

    assert user == bot and api_token_authenticate(key).user == bot
    states = {t.pk: t.revoked_at is not None for t in ApiToken.objects.filter(pk__in=[ended.pk, running.token.pk, ci.pk])}
    assert states == {ended.pk: True, running.token.pk: False, ci.pk: False}


def test_token_for_creates_a_missing_user_as_editor():
    key, user = TrafficCommand().token_for("new-bot")

    assert user.username == "new-bot" and api_token_authenticate(key).user == user

"""Races that only a real database with several connections can show (most meaningful on PostgreSQL)."""

import threading

import pytest
from django.db import connections

from mlops_site.exceptions import Conflict, DomainError
from registry import services
from registry.models import AuditEvent, ModelVersion, PromotionRequest
from tests.conftest import make_user
from tests.factories import register


def run_at_once(functions):
    """Run each function in its own thread (own DB connection), released by one barrier."""
    barrier = threading.Barrier(len(functions))
    outcomes = [None] * len(functions)

    def worker(i, fn):
        try:
            barrier.wait()
            outcomes[i] = ("ok", fn())
        except DomainError as exc:
            outcomes[i] = ("error", exc)
        except Exception as exc:  # noqa: BLE001 - an unexpected error must fail the test, not hang it
            outcomes[i] = ("crash", exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i, fn)) for i, fn in enumerate(functions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return outcomes


@pytest.mark.django_db(transaction=True)
def test_two_approvers_approving_two_versions_for_production_at_once():
    editor, bob, carol = make_user("alice", "editor"), make_user("bob", "approver"), make_user("carol", "approver")
    v1, v2 = register("fraud", editor), register("fraud", editor)
    p1 = services.promotion_request_create(version=v1, to_stage="production", reason="a", actor=editor)
    p2 = services.promotion_request_create(version=v2, to_stage="production", reason="b", actor=editor)

    outcomes = run_at_once([
        lambda: services.promotion_approve(promotion_id=p1.pk, actor=bob),
        lambda: services.promotion_approve(promotion_id=p2.pk, actor=carol),
    ])

    kinds = sorted(kind for kind, _ in outcomes)
    assert kinds == ["error", "ok"], outcomes
    loser = next(value for kind, value in outcomes if kind == "error")
    assert isinstance(loser, Conflict)
    winner = next(value for kind, value in outcomes if kind == "ok")
    assert list(ModelVersion.objects.filter(stage="production").values_list("pk", flat=True)) == [winner.version_id]
    assert AuditEvent.objects.filter(action="promotion_approved").count() == 1
    assert AuditEvent.objects.get(action="promotion_approved").version == winner.version.version
    assert sorted(PromotionRequest.objects.values_list("status", flat=True)) == ["approved", "superseded"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_registrations_get_distinct_consecutive_numbers():
    editor = make_user("alice", "editor")
    register("fraud", editor)

    outcomes = run_at_once([lambda: register("fraud", editor) for _ in range(4)])

    assert [kind for kind, _ in outcomes] == ["ok"] * 4, outcomes
    assert sorted(ModelVersion.objects.values_list("version", flat=True)) == [1, 2, 3, 4, 5]


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_registrations_of_a_new_model():
    editor = make_user("alice", "editor")

    outcomes = run_at_once([lambda: register("brand-new", editor) for _ in range(3)])

    assert [kind for kind, _ in outcomes] == ["ok"] * 3, outcomes
    assert sorted(ModelVersion.objects.values_list("version", flat=True)) == [1, 2, 3]


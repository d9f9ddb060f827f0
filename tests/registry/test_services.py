import hashlib
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from mlops_site.exceptions import Conflict, Forbidden, NotFound, TooLarge, ValidationFailed
from registry import services
from registry.models import AuditEvent, ModelVersion, PromotionRequest, PromptVersion, RegisteredModel, StageChange
from registry.services import promotions
from tests.conftest import make_user
from tests.factories import promote, register
from tests.prompts.conftest import brief_folder

pytestmark = pytest.mark.django_db


def test_register_numbers_versions_per_model_and_starts_as_candidate(editor):
    first = register("fraud", editor)
    second = register("fraud", editor)
    other = register("churn", editor)

    assert (first.version, second.version, other.version) == (1, 2, 1)
    assert second.stage == "candidate"
    assert RegisteredModel.objects.count() == 2
    events = list(AuditEvent.objects.filter(action="registered").order_by("id").values_list("subject", "version", "actor_name"))
    assert events == [("model:fraud", 1, "alice"), ("model:fraud", 2, "alice"), ("model:churn", 1, "alice")]


def test_register_keeps_everything_needed_to_reproduce(editor):
    version = register(
        "fraud", editor, params={"lr": 0.1, "layers": [64, 32]}, metrics={"accuracy": 0.94, "f1": 1},
        tags={"team": "risk"}, code_commit="abc123", data_version="dvc:42", image_tag="img:1.2", description="first",
        artifact_uri="s3://bucket/model.pkl",
    )

    stored = ModelVersion.objects.get(pk=version.pk)
    assert stored.params == {"lr": 0.1, "layers": [64, 32]}
    assert stored.metrics == {"accuracy": 0.94, "f1": 1}
    assert (stored.code_commit, stored.data_version, stored.image_tag, stored.artifact_uri) == ("abc123", "dvc:42", "img:1.2", "s3://bucket/model.pkl")
    assert stored.created_by == editor


def test_register_stores_artifact_with_size_and_sha256(editor):
    payload = b"pickled model bytes" * 1000

    version = register("fraud", editor, artifact=SimpleUploadedFile("model.pkl", payload))

    assert version.artifact_sha256 == hashlib.sha256(payload).hexdigest()
    assert version.artifact_size == len(payload)
    with version.artifact.open("rb") as fh:
        assert fh.read() == payload


@pytest.mark.parametrize(
    "metrics",
    [{"accuracy": float("nan")}, {"accuracy": float("inf")}, {"accuracy": "0.9"}, {"accuracy": True}, ["accuracy"]],
)
def test_register_refuses_bad_metrics_and_writes_nothing(editor, metrics):
    with pytest.raises(ValidationFailed) as caught:
        register("fraud", editor, metrics=metrics)

    assert "metrics" in caught.value.extra["fields"]
    assert RegisteredModel.objects.count() == 0
    assert AuditEvent.objects.count() == 0


def test_register_refuses_non_finite_nested_params(editor):
    with pytest.raises(ValidationFailed) as caught:
        register("fraud", editor, params={"grid": [1.0, float("-inf")]})

    assert "params.grid[1]" in caught.value.message


def test_register_refuses_oversized_artifact_and_leaves_no_file(editor, settings):
    settings.MLOPS_MAX_ARTIFACT_BYTES = 100

    with pytest.raises(TooLarge):
        register("fraud", editor, artifact=SimpleUploadedFile("model.pkl", b"x" * 101))

    assert not ModelVersion.objects.exists()
    assert not (settings.MEDIA_ROOT / "artifacts").exists()


def test_register_removes_stored_file_when_the_transaction_fails(editor, settings, monkeypatch):
    def fail(**kwargs):
        raise DatabaseError("disk full")

    monkeypatch.setattr("registry.services.versions.audit_record", fail)

    with pytest.raises(DatabaseError):
        register("fraud", editor, artifact=SimpleUploadedFile("model.pkl", b"abc"))

    assert not ModelVersion.objects.exists()
    assert not any((settings.MEDIA_ROOT / "artifacts").rglob("*.pkl"))


def test_register_needs_the_editor_role(viewer):
    with pytest.raises(Forbidden):
        register("fraud", viewer)


def test_register_refuses_bad_model_name(editor):
    with pytest.raises(ValidationFailed) as caught:
        register("../etc", editor)

    assert "model" in caught.value.extra["fields"]


def test_approve_moves_version_into_stage_and_archives_previous(editor, approver):
    v1, v2 = register("fraud", editor), register("fraud", editor)
    promote(v1, "production", editor, approver)

    promotion = services.promotion_request_create(version=v2, to_stage="production", reason="better f1", actor=editor)
    services.promotion_approve(promotion_id=promotion.pk, actor=approver, comment="ship it")

    v1.refresh_from_db()
    v2.refresh_from_db()
    assert (v1.stage, v2.stage) == ("archived", "production")
    promotion.refresh_from_db()
    assert (promotion.status, promotion.decided_by, promotion.from_version) == ("approved", approver, v1)
    event = AuditEvent.objects.filter(action="promotion_approved").first()
    assert (event.actor_name, event.version, event.from_stage, event.to_stage, event.reason) == ("bob", 2, "candidate", "production", "ship it")
    assert event.extra["archived_version"] == 1


def test_approver_can_never_approve_own_request(approver, approver2):
    version = register("fraud", approver)
    promotion = services.promotion_request_create(version=version, to_stage="staging", reason="r", actor=approver)

    with pytest.raises(Forbidden) as caught:
        services.promotion_approve(promotion_id=promotion.pk, actor=approver)

    assert caught.value.code == "four_eyes"
    version.refresh_from_db()
    assert version.stage == "candidate"
    services.promotion_approve(promotion_id=promotion.pk, actor=approver2)
    version.refresh_from_db()
    assert version.stage == "staging"


def test_requester_can_never_reject_own_request(approver, approver2):
    version = register("fraud", approver)
    promotion = services.promotion_request_create(version=version, to_stage="staging", reason="r", actor=approver)

    with pytest.raises(Forbidden) as caught:
        services.promotion_reject(promotion_id=promotion.pk, actor=approver, comment="changed my mind")

    assert caught.value.code == "four_eyes"
    promotion.refresh_from_db()
    assert (promotion.status, promotion.decided_by) == ("pending", None)
    assert not AuditEvent.objects.filter(action="promotion_rejected").exists()
    services.promotion_reject(promotion_id=promotion.pk, actor=approver2, comment="not yet")
    promotion.refresh_from_db()
    assert (promotion.status, promotion.decided_by) == ("rejected", approver2)


def test_a_request_whose_stage_changed_is_superseded_and_cannot_be_approved(editor, approver):
    # v1 holds staging; v2 asks to replace it; then v1 goes on to production and leaves
    # staging empty: v2's request was made against a staging (v1) that is gone.
    v1, v2 = register("fraud", editor), register("fraud", editor)
    promote(v1, "staging", editor, approver)
    stale = services.promotion_request_create(version=v2, to_stage="staging", reason="replaces v1", actor=editor)
    promote(v1, "production", editor, approver)

    with pytest.raises(Conflict) as caught:
        services.promotion_approve(promotion_id=stale.pk, actor=approver)

    assert caught.value.code == "not_pending" and "superseded" in caught.value.message
    assert dict(ModelVersion.objects.values_list("version", "stage")) == {1: "production", 2: "candidate"}
    assert not AuditEvent.objects.filter(action="promotion_approved", version=2).exists()
    assert not StageChange.objects.filter(version=v2).exists()
    stale.refresh_from_db()
    assert stale.status == "superseded" and "v1 left staging for production" in stale.comment
    superseded = AuditEvent.objects.get(action="promotion_superseded")
    assert (superseded.version, superseded.to_stage, superseded.extra["promotion_id"]) == (2, "staging", stale.pk)


def test_a_request_superseded_by_a_stage_change_can_be_made_again(editor, approver):
    v1, v2 = register("fraud", editor), register("fraud", editor)
    promote(v1, "staging", editor, approver)
    services.promotion_request_create(version=v2, to_stage="staging", reason="replaces v1", actor=editor)
    promote(v1, "production", editor, approver)

    again = services.promotion_request_create(version=v2, to_stage="staging", reason="staging is empty now", actor=editor)
    services.promotion_approve(promotion_id=again.pk, actor=approver)

    v2.refresh_from_db()
    assert (again.from_version, v2.stage) == (None, "staging")


def test_approving_is_refused_when_the_stage_holder_changed_behind_the_request(editor, approver):
    # The backstop under the superseding above: whatever moved the stage, a request is approved
    # only while the stage still holds the version it was made against.
    v1, v2, v3 = register("fraud", editor), register("fraud", editor), register("fraud", editor)
    promote(v1, "staging", editor, approver)
    stale = services.promotion_request_create(version=v2, to_stage="staging", reason="replaces v1", actor=editor)
    ModelVersion.objects.filter(pk=v1.pk).update(stage="archived")
    ModelVersion.objects.filter(pk=v3.pk).update(stage="staging")

    with pytest.raises(Conflict) as caught:
        services.promotion_approve(promotion_id=stale.pk, actor=approver)

    assert caught.value.code == "stage_changed"
    assert "was v1, now v3" in caught.value.message
    assert dict(ModelVersion.objects.values_list("version", "stage")) == {1: "archived", 2: "candidate", 3: "staging"}
    assert not AuditEvent.objects.filter(action="promotion_approved", version=2).exists()
    stale.refresh_from_db()
    assert (stale.status, stale.decided_by) == ("pending", None)


def test_editor_cannot_approve(editor):
    other = register("fraud", editor)
    promotion = services.promotion_request_create(version=other, to_stage="staging", reason="r", actor=editor)
    from tests.conftest import make_user

    second_editor = make_user("eve", "editor")

    with pytest.raises(Forbidden) as caught:
        services.promotion_approve(promotion_id=promotion.pk, actor=second_editor)

    assert caught.value.code == "role_required"


def test_request_refuses_duplicates_and_same_stage(editor, approver):
    version = register("fraud", editor)
    services.promotion_request_create(version=version, to_stage="staging", reason="r", actor=editor)

    with pytest.raises(Conflict):
        services.promotion_request_create(version=version, to_stage="staging", reason="again", actor=editor)
    with pytest.raises(ValidationFailed):
        services.promotion_request_create(version=version, to_stage="archived", reason="r", actor=editor)
    with pytest.raises(ValidationFailed):
        services.promotion_request_create(version=version, to_stage="production", reason="  ", actor=editor)


def test_approving_one_request_supersedes_others_for_that_stage(editor, approver):
    v1, v2 = register("fraud", editor), register("fraud", editor)
    first = services.promotion_request_create(version=v1, to_stage="production", reason="r", actor=editor)
    second = services.promotion_request_create(version=v2, to_stage="production", reason="r", actor=editor)

    services.promotion_approve(promotion_id=second.pk, actor=approver)

    first.refresh_from_db()
    assert first.status == "superseded"
    with pytest.raises(Conflict) as caught:
        services.promotion_approve(promotion_id=first.pk, actor=approver)
    assert caught.value.code == "not_pending"
    assert ModelVersion.objects.get(stage="production") == v2


def test_reject_needs_comment_and_records_it(editor, approver):
    version = register("fraud", editor)
    promotion = services.promotion_request_create(version=version, to_stage="production", reason="r", actor=editor)

    with pytest.raises(ValidationFailed):
        services.promotion_reject(promotion_id=promotion.pk, actor=approver, comment=" ")
    services.promotion_reject(promotion_id=promotion.pk, actor=approver, comment="AUC regressed")

    promotion.refresh_from_db()
    assert (promotion.status, promotion.comment) == ("rejected", "AUC regressed")
    assert AuditEvent.objects.filter(action="promotion_rejected", reason="AUC regressed").count() == 1
    with pytest.raises(Conflict):
        services.promotion_approve(promotion_id=promotion.pk, actor=approver)


def test_unknown_promotion_is_not_found(approver):
    with pytest.raises(NotFound):
        services.promotion_approve(promotion_id=999, actor=approver)


def test_rollback_walks_back_through_the_stage_history(editor, approver):
    v1, v2, v3 = (register("fraud", editor) for _ in range(3))
    for version in (v1, v2, v3):
        promote(version, "production", editor, approver)

    back = services.model_rollback(model_name="fraud", stage="production", reason="latency", actor=approver)
    assert back == v2
    assert dict(ModelVersion.objects.values_list("version", "stage")) == {1: "archived", 2: "production", 3: "archived"}

    again = services.model_rollback(model_name="fraud", stage="production", reason="still bad", actor=approver)
    assert again == v1

    with pytest.raises(Conflict) as caught:
        services.model_rollback(model_name="fraud", stage="production", reason="more", actor=approver)
    assert caught.value.code == "no_previous_version"
    event = AuditEvent.objects.filter(action="rolled_back").first()
    assert (event.version, event.to_stage, event.reason, event.extra) == (1, "production", "still bad", {"replaced_version": 2})
    assert StageChange.objects.filter(kind="rollback").count() == 2


def test_rollback_after_rollback_then_promotion_returns_to_the_right_version(editor, approver):
    v1, v2, v3, v4 = (register("fraud", editor) for _ in range(4))
    promote(v1, "production", editor, approver)
    promote(v2, "production", editor, approver)
    services.model_rollback(model_name="fraud", stage="production", reason="bad v2", actor=approver)
    promote(v4, "production", editor, approver)

    back = services.model_rollback(model_name="fraud", stage="production", reason="bad v4", actor=approver)

    assert back == v1


def test_rollback_of_empty_stage_or_unknown_model(editor, approver):
    register("fraud", editor)

    with pytest.raises(Conflict) as caught:
        services.model_rollback(model_name="fraud", stage="production", reason="r", actor=approver)
    assert (caught.value.code, caught.value.message) == ("stage_empty", "No version of fraud is in production.")
    with pytest.raises(NotFound):
        services.model_rollback(model_name="nope", stage="production", reason="r", actor=approver)
    with pytest.raises(Forbidden):
        services.model_rollback(model_name="fraud", stage="production", reason="r", actor=editor)


def test_rollback_supersedes_pending_requests_for_that_stage(editor, approver):
    v1, v2, v3 = (register("fraud", editor) for _ in range(3))
    promote(v1, "production", editor, approver)
    promote(v2, "production", editor, approver)
    pending = services.promotion_request_create(version=v3, to_stage="production", reason="r", actor=editor)

    services.model_rollback(model_name="fraud", stage="production", reason="r", actor=approver)

    pending.refresh_from_db()
    assert pending.status == "superseded"


def test_expire_stale_requests_once(editor):
    version = register("fraud", editor)
    old = services.promotion_request_create(version=version, to_stage="staging", reason="r", actor=editor)
    PromotionRequest.objects.filter(pk=old.pk).update(requested_at=timezone.now() - timedelta(days=30))
    fresh = services.promotion_request_create(version=version, to_stage="production", reason="r", actor=editor)

    assert services.promotions_expire_stale(max_age_days=14) == 1
    assert services.promotions_expire_stale(max_age_days=14) == 0

    old.refresh_from_db()
    fresh.refresh_from_db()
    assert (old.status, fresh.status) == ("expired", "pending")
    assert AuditEvent.objects.filter(action="promotion_expired", actor_name="system").count() == 1


def test_audit_log_refuses_updates_in_the_database(editor):
    register("fraud", editor)
    event = AuditEvent.objects.get()

    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(reason="rewritten history")

    event.refresh_from_db()
    assert event.reason == ""


def test_database_allows_one_production_version_per_model(editor):
    v1, v2 = register("fraud", editor), register("fraud", editor)
    ModelVersion.objects.filter(pk=v1.pk).update(stage="production")

    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.filter(pk=v2.pk).update(stage="production")

    ModelVersion.objects.filter(pk=v2.pk).update(stage="archived")
    ModelVersion.objects.filter(pk=v1.pk).update(stage="archived")
    assert ModelVersion.objects.filter(stage="archived").count() == 2


def test_rolling_back_staging_never_empties_production(editor, approver):
    v1, v2 = register("fraud", editor), register("fraud", editor)
    promote(v1, "staging", editor, approver)
    promote(v1, "production", editor, approver)
    promote(v2, "staging", editor, approver)

    with pytest.raises(Conflict) as caught:
        services.model_rollback(model_name="fraud", stage="staging", reason="r", actor=approver)

    assert caught.value.code == "no_previous_version"
    assert dict(ModelVersion.objects.values_list("version", "stage")) == {1: "production", 2: "staging"}


def test_a_request_cannot_demote_the_production_version(editor, approver):
    version = register("fraud", editor)
    to_staging = services.promotion_request_create(version=version, to_stage="staging", reason="r", actor=editor)
    to_production = services.promotion_request_create(version=version, to_stage="production", reason="r", actor=editor)
    services.promotion_approve(promotion_id=to_production.pk, actor=approver)

    with pytest.raises(Conflict) as at_approval:
        services.promotion_approve(promotion_id=to_staging.pk, actor=approver)
    with pytest.raises(Conflict) as at_request:
        services.promotion_request_create(version=version, to_stage="staging", reason="again", actor=editor)

    assert at_approval.value.code == at_request.value.code == "demotion"
    version.refresh_from_db()
    assert version.stage == "production"


def test_a_request_expired_meanwhile_cannot_be_approved(editor, approver):
    version = register("fraud", editor)
    promotion = services.promotion_request_create(version=version, to_stage="production", reason="r", actor=editor)
    # What the expiry task commits between an approver loading the page and pressing Approve.
    PromotionRequest.objects.filter(pk=promotion.pk).update(status="expired")

    with pytest.raises(Conflict) as caught:
        services.promotion_approve(promotion_id=promotion.pk, actor=approver)

    assert caught.value.code == "not_pending"
    version.refresh_from_db()
    assert version.stage == "candidate"
    assert not AuditEvent.objects.filter(action="promotion_approved").exists()


def test_superseded_requests_are_in_the_audit_log(editor, approver):
    v1, v2 = register("fraud", editor), register("fraud", editor)
    loser = services.promotion_request_create(version=v1, to_stage="production", reason="r", actor=editor)
    winner = services.promotion_request_create(version=v2, to_stage="production", reason="r", actor=editor)

    services.promotion_approve(promotion_id=winner.pk, actor=approver)

    event = AuditEvent.objects.get(action="promotion_superseded")
    assert (event.version, event.to_stage, event.extra["promotion_id"], event.actor_name) == (1, "production", loser.pk, "bob")


def test_approval_event_carries_the_approvers_words_not_the_requesters(editor, approver):
    version = register("fraud", editor)
    promotion = services.promotion_request_create(version=version, to_stage="staging", reason="requester's reason", actor=editor)

    services.promotion_approve(promotion_id=promotion.pk, actor=approver)

    event = AuditEvent.objects.get(action="promotion_approved")
    assert event.reason == ""
    assert event.extra["request_reason"] == "requester's reason"


@pytest.mark.parametrize("fields", [{"tags": {"k": "a\x00b"}}, {"metrics": {"a\x00": 1.0}}, {"description": "x\x00"}])
def test_register_refuses_nul_characters(editor, fields):
    with pytest.raises(ValidationFailed):
        register("fraud", editor, **fields)

    assert not ModelVersion.objects.exists()


def test_register_refuses_a_name_with_a_trailing_newline(editor):
    with pytest.raises(ValidationFailed):
        register("evil\n", editor)


def test_registered_versions_are_immutable_in_the_database(editor):
    version = register("fraud", editor, metrics={"auc": 0.9})

    with pytest.raises(DatabaseError), transaction.atomic():
        ModelVersion.objects.filter(pk=version.pk).update(metrics={"auc": 0.99})
    ModelVersion.objects.filter(pk=version.pk).update(stage="archived")

    version.refresh_from_db()
    assert (version.metrics, version.stage) == ({"auc": 0.9}, "archived")


def test_a_versions_lineage_is_immutable_in_the_database(editor):
    from registry.services import tracking

    run = tracking.run_create(group_id="0", actor=editor)
    version = register("fraud", editor)

    with pytest.raises(DatabaseError), transaction.atomic():
        ModelVersion.objects.filter(pk=version.pk).update(run=run)  # lineage is written with the version or never

    version.refresh_from_db()
    assert version.run is None


def test_deleting_a_user_keeps_their_name_in_the_audit_log(editor):
    register("fraud", editor)
    from django.contrib.auth import get_user_model

    ModelVersion.objects.update(created_by=None)
    get_user_model().objects.filter(pk=editor.pk).delete()

    assert AuditEvent.objects.get().actor_name == "alice"


def test_audit_rows_cannot_be_deleted_on_postgresql(editor):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the DELETE trigger exists on PostgreSQL only (SQLite's test flush deletes rows)")
    register("fraud", editor)

    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.all().delete()

    assert AuditEvent.objects.count() == 1


def test_model_describe_writes_an_audit_event(editor, viewer):
    register("fraud", editor)

    services.model_describe(model_name="fraud", description="Card fraud scores.", actor=editor)

    assert RegisteredModel.objects.get().description == "Card fraud scores."
    assert AuditEvent.objects.filter(action="model_updated", actor_name="alice").count() == 1
    with pytest.raises(Forbidden):
        services.model_describe(model_name="fraud", description="x", actor=viewer)


# --- what a user reads and what the audit log keeps (each kills mutants of registry/services/promotions.py) ----


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda actor, pk: services.promotion_approve(promotion_id=pk, actor=actor), "Approving a promotion needs the approver role."),
        (lambda actor, pk: services.promotion_reject(promotion_id=pk, actor=actor, comment="no"), "Rejecting a promotion needs the approver role."),
        (lambda actor, pk: services.model_rollback(model_name="fraud", stage="production", reason="r", actor=actor), "Rolling back needs the approver role."),
    ],
    ids=["approve", "reject", "rollback"],
)
def test_an_editor_deciding_is_told_which_role_it_needs(editor, call, message):
    promotion = services.promotion_request_create(version=register("fraud", editor), to_stage="staging", reason="r", actor=editor)

    with pytest.raises(Forbidden) as caught:
        call(make_user("eve", "editor"), promotion.pk)

    assert (caught.value.message, caught.value.code) == (message, "role_required")


@pytest.mark.parametrize(("decide", "verb"), [("promotion_approve", "approve"), ("promotion_reject", "reject")])
def test_the_four_eyes_refusal_says_what_someone_else_must_do(approver, decide, verb):
    promotion = services.promotion_request_create(version=register("fraud", approver), to_stage="staging", reason="r", actor=approver)

    with pytest.raises(Forbidden) as caught:
        getattr(services, decide)(promotion_id=promotion.pk, actor=approver, comment="mine")

    assert caught.value.message == f"You requested this promotion; someone else must {verb} it."


def test_an_unknown_promotion_is_named_in_the_404(approver):
    with pytest.raises(NotFound) as caught:
        services.promotion_approve(promotion_id=999, actor=approver)

    assert caught.value.message == "No promotion request 999."


def test_a_reject_without_a_comment_says_why_and_names_the_field(editor, approver):
    promotion = services.promotion_request_create(version=register("fraud", editor), to_stage="staging", reason="r", actor=editor)

    for comment in (None, "  "):
        with pytest.raises(ValidationFailed) as caught:
            services.promotion_reject(promotion_id=promotion.pk, actor=approver, comment=comment)

        assert caught.value.message == "Say why you reject it."
        assert caught.value.extra["fields"] == {"comment": ["This field may not be blank."]}
    assert PromotionRequest.objects.get(pk=promotion.pk).status == "pending"


def test_a_rejection_is_audited_with_the_approver_the_version_and_the_request(editor, approver):
    promotion = services.promotion_request_create(version=register("fraud", editor), to_stage="staging", reason="better recall", actor=editor)

    services.promotion_reject(promotion_id=promotion.pk, actor=approver, comment="AUC regressed")

    event = AuditEvent.objects.get(action="promotion_rejected")
    assert (event.actor_name, event.subject, event.version, event.from_stage, event.to_stage, event.reason) == (
        "bob", "model:fraud", 1, "candidate", "staging", "AUC regressed")
    assert event.extra == {"promotion_id": promotion.pk, "requested_by": "alice", "request_reason": "better recall"}


def test_a_request_made_while_the_stage_was_empty_is_stale_once_it_is_filled(editor, approver):
    v1, v2 = register("fraud", editor), register("fraud", editor)
    stale = services.promotion_request_create(version=v2, to_stage="staging", reason="first into staging", actor=editor)
    ModelVersion.objects.filter(pk=v1.pk).update(stage="staging")

    with pytest.raises(Conflict) as caught:
        services.promotion_approve(promotion_id=stale.pk, actor=approver)

    assert caught.value.message == "staging of fraud changed since this request was made (was empty, now v1); request again."


def test_a_unique_index_violation_at_approval_is_a_409_to_request_again(editor, approver, monkeypatch):
    # The row lock normally prevents it; if another writer got past it, the unique index refuses the move.
    promotion = services.promotion_request_create(version=register("fraud", editor), to_stage="staging", reason="r", actor=editor)

    def collide(*args, **kwargs):
        raise IntegrityError("UNIQUE constraint failed: one version per stage")

    monkeypatch.setattr(promotions, "_move", collide)

    with pytest.raises(Conflict) as caught:
        services.promotion_approve(promotion_id=promotion.pk, actor=approver)

    assert (caught.value.message, caught.value.code) == ("Another version entered that stage at the same moment; request again.", "stage_changed")
    assert PromotionRequest.objects.get(pk=promotion.pk).status == "pending"


@pytest.mark.parametrize(("rollback", "field"), [
    (lambda actor: services.model_rollback(model_name="fraud", stage="live", reason="r", actor=actor), "stage"),
    (lambda actor: services.prompt_rollback(prompt_name="summarize", environment="live", reason="r", actor=actor), "environment"),
])
def test_a_rollback_of_an_unknown_stage_names_the_field(approver, rollback, field):
    with pytest.raises(ValidationFailed) as caught:
        rollback(approver)

    assert caught.value.message.startswith(f"'{field}' must be one of ")
    assert caught.value.extra["fields"] == {field: ["Not one of them: 'live'."]}


def test_a_rollback_is_recorded_as_the_approvers_change_with_what_asked_for_it(editor, approver):
    v1, v2 = register("fraud", editor), register("fraud", editor)
    promote(v1, "production", editor, approver)
    promote(v2, "production", editor, approver)

    services.model_rollback(model_name="fraud", stage="production", reason="latency", actor=approver, extra={"alert_rule": 7})

    change = StageChange.objects.latest("id")
    assert (change.kind, change.version_id, change.actor_id) == ("rollback", v1.pk, approver.pk)
    rolled_back = AuditEvent.objects.get(action="rolled_back")
    assert (rolled_back.version, rolled_back.from_stage, rolled_back.to_stage) == (1, "archived", "production")
    assert rolled_back.extra == {"replaced_version": 2, "alert_rule": 7}


def test_a_prompt_rollback_keeps_what_asked_for_it_in_the_audit(editor, approver):
    services.prompts_import(files=brief_folder(), actor=editor)
    v2_prod = PromotionRequest.objects.get(prompt__name="summarize", to_stage="prod", status="pending")
    services.promotion_approve(promotion_id=v2_prod.pk, actor=approver)
    promote(PromptVersion.objects.get(prompt__name="summarize", version=3), "prod", editor, approver)

    services.prompt_rollback(prompt_name="summarize", environment="prod", reason="judge score fell", actor=approver, extra={"alert_rule": 3})

    assert AuditEvent.objects.get(action="rolled_back").extra == {"replaced_version": 3, "alert_rule": 3}


def test_rollback_returns_to_the_holder_before_the_current_one_after_a_rollback_skipped_a_busy_version(editor, approver):
    # staging held v1, v2, v3 in turn; v2 went on to production, so rolling staging back skipped it to v1.
    # v4 entered staging; later v2 left production (free again). Staging held v1 just before v4: back to v1.
    v1, v2, v3, v4, v5 = (register("fraud", editor) for _ in range(5))
    for version in (v1, v2, v3):
        promote(version, "staging", editor, approver)
    promote(v2, "production", editor, approver)
    assert services.model_rollback(model_name="fraud", stage="staging", reason="v3 bad", actor=approver) == v1
    promote(v4, "staging", editor, approver)
    promote(v5, "production", editor, approver)

    back = services.model_rollback(model_name="fraud", stage="staging", reason="v4 bad", actor=approver)

    assert back == v1
    assert dict(ModelVersion.objects.values_list("version", "stage")) == {1: "staging", 2: "archived", 3: "archived", 4: "archived", 5: "production"}


def test_expiry_uses_the_age_it_is_given_and_records_when_and_why(editor, settings):
    settings.MLOPS_PROMOTION_TTL_DAYS = 100
    version = register("fraud", editor)
    requests = [services.promotion_request_create(version=version, to_stage=stage, reason="r", actor=editor) for stage in ("staging", "production")]
    PromotionRequest.objects.update(requested_at=timezone.now() - timedelta(days=20))
    now = timezone.now()

    expired = services.promotions_expire_stale(max_age_days=14, now=now)

    assert expired == 2
    for request in requests:
        request.refresh_from_db()
        assert (request.status, request.decided_at, request.comment) == ("expired", now, "Expired after 14 days without a decision.")
    events = AuditEvent.objects.filter(action="promotion_expired")
    assert sorted((e.actor_name, e.subject, e.version, e.from_stage, e.to_stage, e.reason, e.extra["promotion_id"]) for e in events) == sorted(
        ("system", "model:fraud", 1, "candidate", request.to_stage, "No decision within 14 days.", request.pk) for request in requests
    )
    assert all(e.extra == {"promotion_id": e.extra["promotion_id"]} for e in events)


def test_expiry_defaults_to_the_setting_and_expires_prompt_requests(editor, settings):
    settings.MLOPS_PROMOTION_TTL_DAYS = 10
    services.prompts_import(files=brief_folder(), actor=editor)
    pending = list(PromotionRequest.objects.filter(status="pending").values_list("pk", flat=True))
    PromotionRequest.objects.update(requested_at=timezone.now() - timedelta(days=11))

    expired = services.promotions_expire_stale()

    assert pending and expired == len(pending)
    events = AuditEvent.objects.filter(action="promotion_expired")
    assert {(e.subject.split(":")[0], e.from_stage, e.reason) for e in events} == {("prompt", "", "No decision within 10 days.")}


def test_a_stage_change_keeps_its_reason_and_a_superseded_request_when_and_why(editor, approver):
    v1, v2 = register("fraud", editor), register("fraud", editor)
    loser = services.promotion_request_create(version=v1, to_stage="production", reason="r1", actor=editor)
    winner = services.promotion_request_create(version=v2, to_stage="production", reason="better recall", actor=editor)

    services.promotion_approve(promotion_id=winner.pk, actor=approver)

    assert StageChange.objects.get().reason == "better recall"
    loser.refresh_from_db()
    assert loser.decided_at is not None and loser.comment == "Superseded: v2 entered production (promotion)."
    superseded = AuditEvent.objects.get(action="promotion_superseded")
    assert (superseded.from_stage, superseded.to_stage, superseded.reason) == ("candidate", "production", "v2 entered production (promotion).")


def test_a_prompt_version_going_on_to_prod_still_runs_in_staging_so_requests_for_staging_stay(editor, approver):
    services.prompts_import(files=brief_folder(), actor=editor)
    for pending in PromotionRequest.objects.filter(status="pending"):
        services.promotion_approve(promotion_id=pending.pk, actor=approver)
    v1, v3 = (PromptVersion.objects.get(prompt__name="summarize", version=n) for n in (1, 3))
    promote(v3, "staging", editor, approver)
    for_staging = services.promotion_request_create(version=v1, to_stage="staging", reason="back to five bullets", actor=editor)

    promote(v3, "prod", editor, approver)

    assert PromotionRequest.objects.get(pk=for_staging.pk).status == "pending"


def test_an_approval_is_audited_with_the_request_and_what_it_archived(editor, approver):
    v1, v2 = register("fraud", editor), register("fraud", editor)
    promote(v1, "production", editor, approver)
    promotion = services.promotion_request_create(version=v2, to_stage="production", reason="better recall", actor=editor)

    services.promotion_approve(promotion_id=promotion.pk, actor=approver, comment="ship it")

    approved = AuditEvent.objects.get(action="promotion_approved", extra__promotion_id=promotion.pk)
    assert approved.extra == {"promotion_id": promotion.pk, "requested_by": "alice", "request_reason": "better recall", "archived_version": 1}
    assert StageChange.objects.latest("id").promotion_id == promotion.pk


def test_a_direct_prompt_move_is_decided_by_its_requester_and_audited_as_direct(editor):
    services.prompts_import(files=brief_folder(), actor=editor)
    v1 = PromptVersion.objects.get(prompt__name="summarize", version=1)

    request = services.promotion_request_create(version=v1, to_stage="dev", reason="compare in dev", actor=editor)

    request.refresh_from_db()
    assert (request.status, request.decided_by_id, request.comment) == ("approved", editor.pk, "Direct move: this environment needs no approval.")
    assert request.decided_at is not None
    approved = AuditEvent.objects.get(action="promotion_approved", extra__promotion_id=request.pk)
    assert approved.extra == {"promotion_id": request.pk, "requested_by": "alice", "request_reason": "compare in dev", "replaced_version": 3, "direct": True}
    assert StageChange.objects.latest("id").promotion_id == request.pk


def test_expiry_leaves_a_request_decided_while_it_runs_and_goes_on_with_the_rest(editor, monkeypatch):
    version = register("fraud", editor)
    stale = [services.promotion_request_create(version=version, to_stage=stage, reason="r", actor=editor) for stage in ("staging", "production")]
    stale.append(services.promotion_request_create(version=register("fraud", editor), to_stage="staging", reason="r", actor=editor))
    PromotionRequest.objects.update(requested_at=timezone.now() - timedelta(days=30))
    decided = []

    def audit_then_an_approver_decides_another(**fields):
        # what an approver's rejection, committed between the expiry's list and its next claim, looks like
        promotions_audit(**fields)
        if not decided:
            # the list has no order; on SQLite the newest request is not the last one expiry visits, so a
            # `break` at a decided request would leave one pending
            other = PromotionRequest.objects.filter(status="pending").order_by("-pk").first()
            PromotionRequest.objects.filter(pk=other.pk).update(status="rejected")
            decided.append(other.pk)

    promotions_audit = promotions.audit_record
    monkeypatch.setattr(promotions, "audit_record", audit_then_an_approver_decides_another)

    expired = services.promotions_expire_stale(max_age_days=14)

    assert expired == 2
    assert PromotionRequest.objects.get(pk=decided[0]).status == "rejected"
    assert sorted(PromotionRequest.objects.filter(status="expired").values_list("pk", flat=True)) == sorted(p.pk for p in stale if p.pk != decided[0])


def test_a_request_is_audited_with_what_it_would_replace(editor, approver):
    v1, v2 = register("fraud", editor), register("fraud", editor)
    promote(v1, "production", editor, approver)

    direct = services.promotion_request_create(version=v2, to_stage="production", reason="better recall", actor=editor)
    first_in_staging = services.promotion_request_create(version=v2, to_stage="staging", reason="try it", actor=editor)

    requested = {e.extra["promotion_id"]: e.extra for e in AuditEvent.objects.filter(action="promotion_requested")}
    event = AuditEvent.objects.get(action="promotion_requested", extra__promotion_id=direct.pk)
    assert (event.from_stage, event.to_stage, event.reason) == ("candidate", "production", "better recall")
    assert requested[direct.pk] == {"promotion_id": direct.pk, "replaces_version": 1}
    assert requested[first_in_staging.pk] == {"promotion_id": first_in_staging.pk, "replaces_version": None}


def test_a_request_says_which_role_it_needs_and_names_a_bad_stage_field(editor, viewer):
    version = register("fraud", editor)

    with pytest.raises(Forbidden) as by_a_viewer:
        services.promotion_request_create(version=version, to_stage="staging", reason="r", actor=viewer)
    with pytest.raises(ValidationFailed) as bad_stage:
        services.promotion_request_create(version=version, to_stage="live", reason="r", actor=editor)

    assert by_a_viewer.value.message == "Requesting a promotion needs the editor role."
    assert bad_stage.value.message == "'to' must be one of staging, production."
    assert bad_stage.value.extra["fields"] == {"to": ["Not one of them: 'live'."]}


def test_a_request_without_a_reason_says_one_is_required(editor):
    version = register("fraud", editor)

    for reason in (None, " "):
        with pytest.raises(ValidationFailed) as caught:
            services.promotion_request_create(version=version, to_stage="staging", reason=reason, actor=editor)

        assert caught.value.message == "A reason is required."
        assert caught.value.extra["fields"] == {"reason": ["This field may not be blank."]}
    assert not PromotionRequest.objects.exists()


def test_a_decision_records_when_and_a_second_one_says_the_requests_status(editor, approver, approver2):
    approved = services.promotion_request_create(version=register("fraud", editor), to_stage="staging", reason="r", actor=editor)
    rejected = services.promotion_request_create(version=register("churn", editor), to_stage="staging", reason="r", actor=editor)

    services.promotion_approve(promotion_id=approved.pk, actor=approver)
    services.promotion_reject(promotion_id=rejected.pk, actor=approver, comment="no")
    with pytest.raises(Conflict) as again:
        services.promotion_approve(promotion_id=rejected.pk, actor=approver2)

    assert PromotionRequest.objects.get(pk=approved.pk).decided_at is not None
    assert PromotionRequest.objects.get(pk=rejected.pk).decided_at is not None
    assert (again.value.message, again.value.code) == (f"Promotion #{rejected.pk} is rejected, not pending.", "not_pending")


@pytest.mark.parametrize(("decide", "verb"), [("promotion_approve", "approve"), ("promotion_reject", "reject")])
def test_the_author_of_a_version_can_never_decide_its_promotion(editor, approver, approver2, decide, verb):
    version = register("fraud", approver)
    promotion = services.promotion_request_create(version=version, to_stage="staging", reason="r", actor=editor)

    with pytest.raises(Forbidden) as caught:
        getattr(services, decide)(promotion_id=promotion.pk, actor=approver, comment="mine")

    assert (caught.value.message, caught.value.code) == (f"You created this version; someone else must {verb} its promotion.", "four_eyes")
    promotion.refresh_from_db()
    assert (promotion.status, promotion.decided_by) == ("pending", None)
    getattr(services, decide)(promotion_id=promotion.pk, actor=approver2, comment="reviewed")

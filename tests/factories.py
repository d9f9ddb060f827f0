"""Small factories that go through the services, so test data obeys the same rules as real data."""

from registry import services


def register(model_name: str, actor, **fields):
    fields.setdefault("metrics", {"accuracy": 0.9})
    return services.model_version_register(model_name=model_name, actor=actor, **fields)


def promote(version, to_stage: str, requester, approver, reason: str = "better metrics"):
    promotion = services.promotion_request_create(version=version, to_stage=to_stage, reason=reason, actor=requester)
    services.promotion_approve(promotion_id=promotion.pk, actor=approver)
    version.refresh_from_db()
    return promotion

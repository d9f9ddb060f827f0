"""Every write to the registry: register, request, approve, reject, roll back, expire.

Each service takes plain keyword arguments, runs in one transaction, checks the
actor's role itself (so the API, the pages, the admin, commands and tasks obey
the same rules) and writes one append-only audit event per change.

Stage changes of one model are serialised by locking that model's row
(`SELECT ... FOR UPDATE` on PostgreSQL; SQLite's IMMEDIATE transactions already
serialise writers). The partial unique index on (model, stage) is the backstop.
"""

from .audit import audit_record
from .promotions import (
    four_eyes_refusal,
    model_rollback,
    promotion_approve,
    promotion_reject,
    promotion_request_create,
    promotion_rollout_abort,
    promotion_rollout_complete,
    promotions_expire_stale,
    prompt_rollback,
)
from .prompts import archive_files, prompts_export, prompts_import
from .versions import model_describe, model_version_register

__all__ = [
    "audit_record",
    "four_eyes_refusal",
    "model_describe",
    "model_rollback",
    "model_version_register",
    "prompt_rollback",
    "promotion_approve",
    "promotion_reject",
    "promotion_request_create",
    "promotion_rollout_abort",
    "promotion_rollout_complete",
    "promotions_expire_stale",
    "archive_files",
    "prompts_export",
    "prompts_import",
]

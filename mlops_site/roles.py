"""Roles are Django groups, ordered: each role may do everything the ones before it may.

viewer reads; editor also registers versions and requests promotions; approver
also approves, rejects and rolls back; admin may do all. A superuser is an admin.

All role code lives here: who holds which role (`user_role`, `has_role`), the check every
service makes (`require_role`), the DRF permission classes checked before an API view runs,
the template context, and giving a user a role (`user_set_role`, for create_api_user and the demo).
Finer rules (an approver may not approve their own request) live in the services.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest
from rest_framework.permissions import BasePermission

from .exceptions import Forbidden, ValidationFailed

VIEWER, EDITOR, APPROVER, ADMIN = "viewer", "editor", "approver", "admin"
ROLES: tuple[str, ...] = (VIEWER, EDITOR, APPROVER, ADMIN)


def user_role(user) -> str | None:
    """The highest role the user holds, or None. Cached on the user object for one request."""
    if user is None or not user.is_authenticated:
        return None
    cached = getattr(user, "_mlops_role", False)
    if cached is not False:
        return cached
    if user.is_superuser:
        role = ADMIN
    else:
        names = set(user.groups.values_list("name", flat=True))
        held = [r for r in ROLES if r in names]
        role = held[-1] if held else None
    user._mlops_role = role
    return role


def has_role(user, role: str) -> bool:
    """True when the user's highest role is `role` or above it."""
    held = user_role(user)
    return held is not None and ROLES.index(held) >= ROLES.index(role)


def roles_context(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    return {
        "user_role": user_role(user),
        "can_edit": has_role(user, EDITOR),
        "can_approve": has_role(user, APPROVER),
    }


def require_role(actor, role: str, doing: str) -> None:
    """Raise Forbidden (403, code `role_required`) unless `actor` holds `role` or above; `doing` names the action."""
    if not has_role(actor, role):
        raise Forbidden(f"{doing} needs the {role} role.", code="role_required")


class RolePermission(BasePermission):
    """DRF permission: the request's user holds `role` or above. One subclass per role."""

    code = "role_required"  # the same code require_role gives
    role = VIEWER
    message = "This needs the viewer role."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and has_role(request.user, self.role))


class IsViewer(RolePermission):
    role = VIEWER
    message = "Reading needs the viewer role or above."


class IsEditor(RolePermission):
    role = EDITOR
    message = "This change needs the editor role or above."


class IsApprover(RolePermission):
    role = APPROVER
    message = "This needs the approver role."


@transaction.atomic
def user_set_role(*, username: str, role: str, password: str | None = None, email: str = ""):
    """Create or update `username` so its one role is `role`; admins are staff superusers (Django admin).

    A password must pass AUTH_PASSWORD_VALIDATORS (length, not common, not all digits, not like the user's name)."""
    if role not in ROLES:
        raise ValidationFailed(f"Unknown role {role!r}; use one of {', '.join(ROLES)}.")
    user, created = get_user_model().objects.get_or_create(username=username, defaults={"email": email})
    user.groups.set([Group.objects.get_or_create(name=role)[0]])
    user.is_staff = user.is_superuser = role == ADMIN
    if password is not None:
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise ValidationFailed("Password refused: " + " ".join(exc.messages), fields={"password": exc.messages}) from None
        user.set_password(password)
    elif created:
        user.set_unusable_password()
    user.save()
    return user


TOOL_TOKEN_NAME = "create_api_user"


def user_token_refresh(*, user, name: str = TOOL_TOKEN_NAME) -> str:
    """Replace the user's token called `name` with a fresh one and return its key (the only time it is seen).
    The user's other tokens (made on their tokens page or through the API) keep working."""
    # registry's services import this module (require_role), so the token service is imported when first used.
    from registry.services.tokens import api_token_replace

    return api_token_replace(user=user, name=name).key

"""Roles are Django groups, ordered: each role may do everything the ones before it may.

viewer reads; editor also registers versions and requests promotions; approver
also approves, rejects and rolls back; admin may do all. A superuser is an admin.
"""

from django.http import HttpRequest

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

"""DRF permission classes: one per role, checked before a view runs.

Finer rules (an approver may not approve their own request) live in the services.
"""

from rest_framework.permissions import BasePermission

from .roles import APPROVER, EDITOR, VIEWER, has_role


class _RolePermission(BasePermission):
    code = "role_required"  # the same code the services use
    role = VIEWER
    message = "This needs the viewer role."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and has_role(request.user, self.role))


class IsViewer(_RolePermission):
    role = VIEWER
    message = "Reading needs the viewer role or above."


class IsEditor(_RolePermission):
    role = EDITOR
    message = "This change needs the editor role or above."


class IsApprover(_RolePermission):
    role = APPROVER
    message = "This needs the approver role."

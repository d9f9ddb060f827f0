"""Give a user one role (a group); used by create_api_user and the demo data."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from rest_framework.authtoken.models import Token

from mlops_site.exceptions import ValidationFailed
from mlops_site.roles import ADMIN, ROLES


@transaction.atomic
def user_set_role(*, username: str, role: str, password: str | None = None, email: str = ""):
    """Create or update `username` so its one role is `role`; admins are staff superusers (Django admin)."""
    if role not in ROLES:
        raise ValidationFailed(f"Unknown role {role!r}; use one of {', '.join(ROLES)}.")
    user, created = get_user_model().objects.get_or_create(username=username, defaults={"email": email})
    user.groups.set([Group.objects.get_or_create(name=role)[0]])
    user.is_staff = user.is_superuser = role == ADMIN
    if password is not None:
        user.set_password(password)
    elif created:
        user.set_unusable_password()
    user.save()
    return user


@transaction.atomic
def user_token_refresh(*, user) -> str:
    """Replace the user's API token with a fresh one and return its key."""
    Token.objects.filter(user=user).delete()
    return Token.objects.create(user=user).key

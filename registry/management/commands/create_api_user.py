from django.core.management.base import BaseCommand, CommandError

from mlops_site.exceptions import DomainError
from mlops_site.roles import ROLES, user_set_role, user_token_refresh


class Command(BaseCommand):
    help = ("Create (or update) a user with one role and print a fresh API token as the last line: the only time it is "
            "shown (the site keeps a digest). It replaces the token this command made for the user before; tokens made on "
            "the user's tokens page keep working. A --password must pass the password validators (12+ characters, not common).")

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=ROLES)
        parser.add_argument("--password", help="also set a login password for the pages (12+ characters, not a common one)")
        parser.add_argument("--email", default="")

    def handle(self, *args, username, role, password, email, **options):
        try:
            user = user_set_role(username=username, role=role, password=password, email=email)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        key = user_token_refresh(user=user)
        self.stdout.write(f"User {user.username} has the {role} role. API token (shown once; only its digest is kept):")
        self.stdout.write(key)

import json
from datetime import date
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from mlops_site.exceptions import DomainError
from monitoring import pricing, services

DEFAULTS = Path(__file__).resolve().parents[2] / "data" / "prices.json"
# The shipped list prices (monitoring/data/prices.json) are in force from this day, so events of 2025 on find a price.
DEFAULTS_EFFECTIVE_FROM = date(2025, 1, 1)


class Command(BaseCommand):
    help = (
        "Import token prices from a LiteLLM model_prices_and_context_window.json file (or --defaults, the shipped list prices). "
        "Idempotent: an entry already there with the same prices is unchanged; one there with other prices is a conflict and left as it is."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", nargs="?", help="a JSON file in LiteLLM's format")
        parser.add_argument("--defaults", action="store_true", help="load monitoring/data/prices.json (list prices, to be checked)")
        parser.add_argument("--effective-from", help="YYYY-MM-DD the prices are in force from (default: today, UTC; 2025-01-01 for --defaults)")
        parser.add_argument("--user", help="who imports (needs the editor role); default: the operator running this command")

    def handle(self, *args, path, defaults: bool, effective_from, user, **options):
        if bool(path) == defaults:
            raise CommandError("Give a LiteLLM JSON file or --defaults (one of them).")
        source_path = DEFAULTS if defaults else Path(path)
        try:
            day = date.fromisoformat(effective_from) if effective_from else (DEFAULTS_EFFECTIVE_FROM if defaults else timezone.now().date())
        except ValueError:
            raise CommandError(f"--effective-from {effective_from!r}: a date as YYYY-MM-DD.")
        actor = None
        if user:
            actor = get_user_model().objects.filter(username=user).first()
            if actor is None:
                raise CommandError(f"No user named {user!r} (create one with create_api_user {user} --role editor).")
        try:
            entries = pricing.parse_litellm(json.loads(source_path.read_text()))
        except OSError as exc:
            raise CommandError(f"Cannot read {source_path}: {exc.strerror or exc}")
        except ValueError as exc:  # invalid JSON, or pricing.PricingError
            raise CommandError(f"{source_path}: {exc}")
        try:
            result = services.prices_import(entries=entries, effective_from=day, actor=actor, source="default" if defaults else f"import {source_path.name}")
        except DomainError as exc:
            raise CommandError(exc.message)
        if options["verbosity"] > 1:
            for pattern in result.created:
                self.stdout.write(f"created    {pattern}")
        for pattern in result.conflicts:
            self.stdout.write(f"conflict   {pattern}: a different price from {day} is already set; left as it is")
        self.stdout.write(
            f"Prices from {day}: {len(result.created)} created, {len(result.unchanged)} unchanged, {len(result.conflicts)} conflicts."
        )

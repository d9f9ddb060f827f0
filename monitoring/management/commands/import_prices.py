import json
from datetime import date
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from mlops_site.exceptions import DomainError
from monitoring import pricing, services


class Command(BaseCommand):
    help = (
        "Import token prices from a LiteLLM model_prices_and_context_window.json file, or --defaults: the shipped snapshot "
        "of LiteLLM's map (monitoring/data/litellm_prices_<date>.json, refreshed by scripts/refresh_prices.py). "
        "Only changed prices are added: a model whose price in force on that day is the same is left as it is."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", nargs="?", help="a JSON file in LiteLLM's format")
        parser.add_argument("--defaults", action="store_true", help="the shipped snapshot, in force from its date (list prices, to be checked)")
        parser.add_argument("--effective-from", help="YYYY-MM-DD the file's prices are in force from (default: today, UTC)")
        parser.add_argument("--user", help="who imports (needs the editor role); default: the operator running this command")

    def handle(self, *args, path, defaults: bool, effective_from, user, **options):
        if bool(path) == defaults:
            raise CommandError("Give a LiteLLM JSON file or --defaults (one of them).")
        if defaults and effective_from:
            raise CommandError("--defaults are in force from the snapshot's date; --effective-from is for a file.")
        try:
            day = date.fromisoformat(effective_from) if effective_from else timezone.now().date()
        except ValueError:
            raise CommandError(f"--effective-from {effective_from!r}: a date as YYYY-MM-DD.")
        actor = None
        if user:
            actor = get_user_model().objects.filter(username=user).first()
            if actor is None:
                raise CommandError(f"No user named {user!r} (create one with create_api_user {user} --role editor).")
        try:
            if defaults:
                day, _, result = services.prices_import_defaults(actor=actor)
            else:
                source_path = Path(path)
                try:
                    entries = pricing.parse_litellm(json.loads(source_path.read_text()))
                except OSError as exc:
                    raise CommandError(f"Cannot read {source_path}: {exc.strerror or exc}")
                except ValueError as exc:  # invalid JSON, or pricing.PricingError
                    raise CommandError(f"{source_path}: {exc}")
                result = services.prices_import(entries=entries, effective_from=day, actor=actor, source=f"import {source_path.name}")
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

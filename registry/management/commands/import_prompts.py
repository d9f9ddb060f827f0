import json as _json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from mlops_site.exceptions import DomainError
from registry import services
from registry.prompt_files import FolderInvalid, read_folder
from registry.services.prompts import import_error_summary


class Command(BaseCommand):
    help = "Sync a prompts folder (name/vN.yaml, name/eval_set.jsonl, config.yaml) into the registry, atomically."

    def add_arguments(self, parser):
        parser.add_argument("path", help="the prompts/ folder")
        parser.add_argument("--user", required=True, help="who imports (needs the editor role); written to the audit log")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args, path, user, **options):
        actor = get_user_model().objects.filter(username=user).first()
        if actor is None:
            raise CommandError(f"No user named {user!r} (create one with create_api_user {user} --role editor).")
        try:
            result = services.prompts_import(files=read_folder(path), actor=actor)
        except FolderInvalid as exc:
            raise CommandError(str(exc)) from None
        except DomainError as exc:
            raise CommandError(import_error_summary(exc)) from None
        if options["json"]:
            self.stdout.write(_json.dumps(result.__dict__, indent=2))
            return
        for name in result.created:
            self.stdout.write(f"created    {name}")
        for entry in result.requested:
            self.stdout.write(f"requested  {entry['prompt']} {entry['environment']} -> v{entry['version']} ({entry['status']})")
        for name in result.ignored:
            self.stdout.write(f"ignored    {name}")
        self.stdout.write(f"{len(result.created)} created, {len(result.unchanged)} unchanged, {len(result.requested)} environment change(s) requested.")


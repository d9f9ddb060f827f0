from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from registry import services


class Command(BaseCommand):
    help = "Write the registry's prompts back to the folder layout (files as imported, config.yaml from what runs now)."

    def add_arguments(self, parser):
        parser.add_argument("path", help="folder to write (created if missing)")
        parser.add_argument("--prompt", action="append", dest="names", help="only this prompt (repeatable)")

    def handle(self, *args, path, names=None, **options):
        root = Path(path)
        files = services.prompts_export(names=names)
        if not files:
            raise CommandError("No prompts to export.")
        for name, text in files.items():
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(text.encode("utf-8"))
        self.stdout.write(f"Wrote {len(files)} files to {root}.")

"""`manage.py seed_demo`: the demo users, registry history, A/B tests and canary rollouts (demo/seed.py), once.

Idempotent: does nothing when any model exists. --force adds the demo beside models of your own, and refuses
(naming them) when the demo's own models are already there: the demo is added once.
"""

from django.core.management.base import BaseCommand, CommandError

from demo.seed import MODELS, demo_seed
from experiments.models import Experiment, Rollout
from registry.models import ModelVersion, Prompt, RegisteredModel


class Command(BaseCommand):
    help = "Create demo users, demo registry data, demo A/B tests and canary rollouts (once)."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="add demo data even if models of your own exist")

    def handle(self, *args, force=False, **options):
        if RegisteredModel.objects.exists() and not force:
            self.stdout.write("Demo data: models already exist, nothing added.")
            return
        present = sorted(RegisteredModel.objects.filter(name__in=list(MODELS)).values_list("name", flat=True))
        if present:
            raise CommandError(f"The demo is already here ({', '.join(present)}): it is added once. Start from an empty database "
                               "(delete db.sqlite3, or a new DATABASE_URL) to seed it again.")
        demo_seed()
        self.stdout.write(f"Demo data: {RegisteredModel.objects.count()} models, {ModelVersion.objects.count()} versions, {Prompt.objects.count()} prompts, "
                          f"{Experiment.objects.count()} A/B tests, {Rollout.objects.count()} canary rollouts.")

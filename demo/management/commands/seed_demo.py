"""`manage.py seed_demo`: the demo users, registry history, A/B tests and canary rollouts (demo/seed.py), once.

Idempotent: does nothing when any model exists (use --force to add anyway).
"""

from django.core.management.base import BaseCommand

from demo.seed import demo_seed
from experiments.models import Experiment, Rollout
from registry.models import ModelVersion, Prompt, RegisteredModel


class Command(BaseCommand):
    help = "Create demo users, demo registry data, demo A/B tests and canary rollouts (once)."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="add demo data even if models exist")

    def handle(self, *args, force=False, **options):
        if RegisteredModel.objects.exists() and not force:
            self.stdout.write("Demo data: models already exist, nothing added.")
            return
        demo_seed()
        self.stdout.write(f"Demo data: {RegisteredModel.objects.count()} models, {ModelVersion.objects.count()} versions, {Prompt.objects.count()} prompts, "
                          f"{Experiment.objects.count()} A/B tests, {Rollout.objects.count()} canary rollouts.")

from django.core.management.base import BaseCommand

from experiments import services


class Command(BaseCommand):
    help = ("Run the canary controller once, in this process, exactly as the beat task experiments.tasks.rollouts_tick does: "
            "new events folded into the roll-ups first, then one step of every running or paused rollout.")

    def handle(self, *args, **options):
        self.stdout.write(services.rollouts_tick().text())

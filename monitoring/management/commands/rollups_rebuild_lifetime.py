from django.core.management.base import BaseCommand

from monitoring import services


class Command(BaseCommand):
    help = (
        "Sum every version's lifetime roll-up (what /metrics reads) again from its hour roll-ups: the repair if a worker "
        "of an older release folded events while the database was being migrated."
    )

    def handle(self, *args, **options):
        rebuilt = services.rollups_lifetime_rebuild()
        self.stdout.write(f"Rebuilt the lifetime roll-ups of {rebuilt} version(s) from their hour roll-ups.")

from datetime import timedelta

from django.core.management.base import BaseCommand
from django.utils import timezone

from monitoring import services


class Command(BaseCommand):
    help = "Queue drift reports for every monitored version over consecutive windows (e.g. each hour of the last day)."

    def add_arguments(self, parser):
        parser.add_argument("--hours", type=int, default=24, help="how far back (default 24)")
        parser.add_argument("--window", type=int, default=1, help="window length in hours (default 1)")

    def handle(self, *args, hours: int, window: int, **options):
        end = timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        queued = 0
        for k in range(max(1, hours // max(1, window)), 0, -1):
            queued += services.drift_reports_schedule(hours=window, now=end - timedelta(hours=(k - 1) * window))
        self.stdout.write(f"Queued {queued} drift report(s).")

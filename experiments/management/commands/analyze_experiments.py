from django.core.management.base import BaseCommand, CommandError

from experiments import selectors, services
from experiments.models import ExperimentStatus
from mlops_site.exceptions import DomainError


class Command(BaseCommand):
    help = ("Analyse experiments now, in this process, exactly as the Celery task does (analysis_request, then "
            "analysis_run): every running experiment, or the one named by --key (running or stopped).")

    def add_arguments(self, parser):
        parser.add_argument("--key", help="only this experiment")

    def handle(self, *args, key: str | None = None, **options):
        if key:
            try:
                experiments = [selectors.experiment_get(key=key)]
            except DomainError as exc:
                raise CommandError(exc.message) from None
        else:
            experiments = list(selectors.experiment_list(status=ExperimentStatus.RUNNING))
        if not experiments:
            self.stdout.write("No running experiment.")
        failed = 0
        for experiment in experiments:
            try:
                requested = services.analysis_request(experiment=experiment, enqueue=False)
            except DomainError as exc:
                raise CommandError(exc.message) from None
            analysis = services.analysis_run(analysis_id=requested.pk)
            if analysis is None:
                self.stdout.write(f"{experiment.key}: analysis {requested.pk} is being computed by a worker.")
                continue
            if analysis.status != "done":
                failed += 1
                self.stderr.write(f"{experiment.key}: analysis {analysis.pk} {analysis.status}: {analysis.error}")
                continue
            verdict = analysis.results["recommendation"]
            self.stdout.write(f"{experiment.key}: analysis {analysis.pk} done, {analysis.units_total:,} units; {verdict['text']}")
        if failed:
            raise CommandError(f"{failed} analysis(es) failed.")

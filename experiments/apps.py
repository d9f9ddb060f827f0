from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "experiments"

    def ready(self):
        # /metrics lives in monitoring, which never imports experiments: the rollout and A/B series are handed to it here.
        from monitoring.api.metrics import collector_register

        from .exposition import ExperimentsCollector

        collector_register(ExperimentsCollector)

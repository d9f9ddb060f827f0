"""HTML pages of experiments, under /experiments/, and of canary rollouts, under /rollouts/."""

from django.urls import path

from .views import design, experiments, rollouts

app_name = "experiments"

urlpatterns = [
    path("experiments/", experiments.experiment_list, name="experiment-list"),
    path("experiments/new/", design.experiment_new, name="experiment-new"),
    path("experiments/<str:key>/", experiments.experiment_detail, name="experiment-detail"),
    path("experiments/<str:key>/start/", experiments.experiment_start, name="experiment-start"),
    path("experiments/<str:key>/stop/", experiments.experiment_stop, name="experiment-stop"),
    path("experiments/<str:key>/refresh/", experiments.experiment_refresh, name="experiment-refresh"),
    path("experiments/<str:key>/decision/", experiments.experiment_decide, name="experiment-decide"),
    path("rollouts/", rollouts.rollout_list, name="rollout-list"),
    path("rollouts/<int:rollout_id>/", rollouts.rollout_detail, name="rollout-detail"),
    path("rollouts/<int:rollout_id>/advance/", rollouts.rollout_advance, name="rollout-advance"),
    path("rollouts/<int:rollout_id>/pause/", rollouts.rollout_pause, name="rollout-pause"),
    path("rollouts/<int:rollout_id>/resume/", rollouts.rollout_resume, name="rollout-resume"),
    path("rollouts/<int:rollout_id>/rollback/", rollouts.rollout_rollback, name="rollout-rollback"),
]

"""HTML pages of experiments, under /experiments/."""

from django.urls import path

from .views import design, experiments

app_name = "experiments"

urlpatterns = [
    path("experiments/", experiments.experiment_list, name="experiment-list"),
    path("experiments/new/", design.experiment_new, name="experiment-new"),
    path("experiments/<str:key>/", experiments.experiment_detail, name="experiment-detail"),
    path("experiments/<str:key>/start/", experiments.experiment_start, name="experiment-start"),
    path("experiments/<str:key>/stop/", experiments.experiment_stop, name="experiment-stop"),
    path("experiments/<str:key>/refresh/", experiments.experiment_refresh, name="experiment-refresh"),
    path("experiments/<str:key>/decision/", experiments.experiment_decide, name="experiment-decide"),
]

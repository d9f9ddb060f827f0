"""`/api/v1/` routes of experiments. A trailing slash is optional on every path."""

from django.urls import re_path

from . import experiments as api
from . import rollouts

app_name = "experiments-api"

# Any key reaches the view, so an unknown one is a 404 in the error shape. "sample-size" is routed first (and
# refused as a key).
KEY = r"(?P<key>[^/]+)"
ROLLOUT = r"(?P<rollout_id>[0-9]+)"

urlpatterns = [
    re_path(r"^experiments/?$", api.ExperimentListApi.as_view(), name="experiment-list"),
    re_path(r"^experiments/sample-size/?$", api.SampleSizeApi.as_view(), name="sample-size"),
    re_path(rf"^experiments/{KEY}/?$", api.ExperimentDetailApi.as_view(), name="experiment-detail"),
    re_path(rf"^experiments/{KEY}/start/?$", api.ExperimentStartApi.as_view(), name="experiment-start"),
    re_path(rf"^experiments/{KEY}/stop/?$", api.ExperimentStopApi.as_view(), name="experiment-stop"),
    re_path(rf"^experiments/{KEY}/decision/?$", api.ExperimentDecisionApi.as_view(), name="experiment-decision"),
    re_path(rf"^experiments/{KEY}/assign/?$", api.ExperimentAssignApi.as_view(), name="experiment-assign"),
    re_path(rf"^experiments/{KEY}/results/?$", api.ExperimentResultsApi.as_view(), name="experiment-results"),
    re_path(rf"^experiments/{KEY}/analyses/?$", api.ExperimentAnalysesApi.as_view(), name="experiment-analyses"),
    re_path(r"^outcomes/?$", api.OutcomesApi.as_view(), name="outcomes"),
    re_path(r"^route/?$", rollouts.RouteApi.as_view(), name="route"),
    re_path(r"^rollouts/?$", rollouts.RolloutListApi.as_view(), name="rollout-list"),
    re_path(rf"^rollouts/{ROLLOUT}/?$", rollouts.RolloutDetailApi.as_view(), name="rollout-detail"),
    re_path(rf"^rollouts/{ROLLOUT}/advance/?$", rollouts.RolloutAdvanceApi.as_view(), name="rollout-advance"),
    re_path(rf"^rollouts/{ROLLOUT}/pause/?$", rollouts.RolloutPauseApi.as_view(), name="rollout-pause"),
    re_path(rf"^rollouts/{ROLLOUT}/resume/?$", rollouts.RolloutResumeApi.as_view(), name="rollout-resume"),
    re_path(rf"^rollouts/{ROLLOUT}/rollback/?$", rollouts.RolloutRollbackApi.as_view(), name="rollout-rollback"),
    re_path(r"^rollout-policies/?$", rollouts.RolloutPolicyListApi.as_view(), name="rollout-policy-list"),
    re_path(r"^rollout-policies/(?P<name>[^/]+)/?$", rollouts.RolloutPolicyDetailApi.as_view(), name="rollout-policy-detail"),
]

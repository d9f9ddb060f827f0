"""`/api/v1/` routes of experiments. A trailing slash is optional on every path."""

from django.urls import re_path

from . import experiments as api

app_name = "experiments-api"

# Any key reaches the view, so an unknown one is a 404 in the error shape. "sample-size" is routed first (and
# refused as a key).
KEY = r"(?P<key>[^/]+)"

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
]

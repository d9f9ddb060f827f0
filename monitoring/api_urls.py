from django.urls import re_path

from . import api

app_name = "monitoring-api"

urlpatterns = [
    re_path(r"^events/?$", api.EventIngestApi.as_view(), name="event-ingest"),
]

"""Training runs: what produced a model version, as MLflow clients log it.

An MLflow "experiment" is a *run group* here, so that the word never collides with the A/B experiments of
`experiments/`. Runs hold params (set once), tags (set and overwritten), metrics (a history of values by step and
time) and artifacts (files in Django's storage under the run's folder). A *logged model* is MLflow 3's model
artifact folder, created inside a run before any version exists; registering it makes an ordinary ModelVersion
that points back to its run.

Times are kept as MLflow sends them, milliseconds since the epoch (a client's clock, not the server's): a metric's
timestamp is data, and the history must return it exactly.
"""

from __future__ import annotations

import re
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import RowNumber
from django.utils import timezone

# What a run or logged model id can be (ours are 32 hex digits, "m-" and 32 for a logged model): anything else is
# simply not found, without asking the database (PostgreSQL refuses a NUL in a string parameter outright).
ENTITY_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")


def new_run_id() -> str:
    return uuid.uuid4().hex


def new_logged_model_id() -> str:
    return f"m-{uuid.uuid4().hex}"


class RunStatus(models.TextChoices):
    RUNNING = "RUNNING"
    SCHEDULED = "SCHEDULED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"


class Lifecycle(models.TextChoices):
    ACTIVE = "active"
    DELETED = "deleted"


class RunGroup(models.Model):
    """A named set of runs (an MLflow experiment). The group with id 0 is "Default", where runs go when a client names
    no group; it is created the first time it is needed."""

    name = models.CharField(max_length=500, unique=True)
    lifecycle_stage = models.CharField(max_length=16, choices=Lifecycle.choices, default=Lifecycle.ACTIVE)
    tags = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-updated_at", "-id"]

    def __str__(self) -> str:
        return self.name

    @property
    def artifact_location(self) -> str:
        return f"mlflow-artifacts:/{self.pk}"


class Run(models.Model):
    run_id = models.CharField(max_length=32, unique=True, default=new_run_id)
    group = models.ForeignKey(RunGroup, on_delete=models.PROTECT, related_name="runs")
    name = models.CharField(max_length=250, blank=True)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.RUNNING)
    lifecycle_stage = models.CharField(max_length=16, choices=Lifecycle.choices, default=Lifecycle.ACTIVE)
    start_time = models.BigIntegerField(null=True, blank=True)  # ms since the epoch
    end_time = models.BigIntegerField(null=True, blank=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    user_name = models.CharField(max_length=250, blank=True)  # the client's mlflow.user / user_id, as sent
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-start_time", "-id"]
        indexes = [models.Index(fields=["group", "-start_time"], name="registry_run_group_idx")]
        constraints = [models.CheckConstraint(condition=Q(status__in=RunStatus.values), name="registry_run_status_valid")]

    def __str__(self) -> str:
        return self.name or self.run_id

    @property
    def artifact_uri(self) -> str:
        return f"mlflow-artifacts:/{self.group_id}/{self.run_id}/artifacts"

    @property
    def artifact_folder(self) -> str:
        """The run's folder inside the artifact proxy's namespace."""
        return f"{self.group_id}/{self.run_id}/artifacts"


class RunParam(models.Model):
    """Set once: logging the same key with another value is refused, as MLflow refuses it."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="params")
    key = models.CharField(max_length=250)
    value = models.TextField()

    class Meta:
        ordering = ["key"]
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="registry_runparam_unique")]

    def __str__(self) -> str:
        return f"{self.key}={self.value[:50]}"


class RunTag(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="tags")
    key = models.CharField(max_length=250)
    value = models.TextField()

    class Meta:
        ordering = ["key"]
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="registry_runtag_unique")]

    def __str__(self) -> str:
        return f"{self.key}={self.value[:50]}"


class RunMetricQuerySet(models.QuerySet):
    def latest(self) -> RunMetricQuerySet:
        """Each run's latest value per key, as MLflow defines it: the largest step, then the latest timestamp, then
        the largest value. Ranked in the database: one row per run and key comes back, not the whole history."""
        order = [models.F("step").desc(), models.F("timestamp").desc(), models.F("value").desc()]
        ranked = self.annotate(rank=models.Window(RowNumber(), partition_by=[models.F("run_id"), models.F("key")], order_by=order))
        return ranked.filter(rank=1).order_by("run_id", "key")


class RunMetric(models.Model):
    """One logged value. NaN is kept as `is_nan` (SQLite cannot store it in a float column); +/-Infinity is stored as
    the largest float of its sign, as MLflow's SQL store does."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="metrics")
    key = models.CharField(max_length=250)
    value = models.FloatField()
    is_nan = models.BooleanField(default=False)
    timestamp = models.BigIntegerField()  # ms since the epoch, the client's
    step = models.BigIntegerField(default=0)

    objects = RunMetricQuerySet.as_manager()

    class Meta:
        ordering = ["run_id", "key", "step", "timestamp", "id"]
        # MLflow's key for a metric value: logging the very same value again (MLflow 3's log_model logs the run's
        # metrics a second time, linked to the model) keeps one row. It is also the index the history is read by.
        constraints = [
            models.UniqueConstraint(fields=["run", "key", "step", "timestamp", "value", "is_nan"], name="registry_runmetric_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.key}[{self.step}]={'NaN' if self.is_nan else self.value}"


class LoggedModelStatus(models.TextChoices):
    PENDING = "LOGGED_MODEL_PENDING"
    READY = "LOGGED_MODEL_READY"
    FAILED = "LOGGED_MODEL_UPLOAD_FAILED"


class LoggedModel(models.Model):
    """MLflow 3's model folder (`mlflow.<flavor>.log_model`): created PENDING, its files uploaded through the artifact
    proxy, then marked READY; registering it creates a ModelVersion whose source is `models:/<model_id>`."""

    model_id = models.CharField(max_length=40, unique=True, default=new_logged_model_id)
    group = models.ForeignKey(RunGroup, on_delete=models.PROTECT, related_name="logged_models")
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.PROTECT, related_name="logged_models")
    name = models.CharField(max_length=250)
    model_type = models.CharField(max_length=250, blank=True)
    status = models.CharField(max_length=32, choices=LoggedModelStatus.choices, default=LoggedModelStatus.PENDING)
    params = models.JSONField(default=dict, blank=True)
    tags = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.BigIntegerField()  # ms since the epoch
    updated_at = models.BigIntegerField()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.model_id

    @property
    def artifact_folder(self) -> str:
        return f"{self.group_id}/models/{self.model_id}/artifacts"

    @property
    def artifact_uri(self) -> str:
        return f"mlflow-artifacts:/{self.artifact_folder}"


class ModelAlias(models.Model):
    """A name for one version of a model (MLflow's aliases: `models:/fraud-detector@challenger`). Protected aliases
    are not stored here: they always name the version holding their stage."""

    model = models.ForeignKey("registry.RegisteredModel", on_delete=models.CASCADE, related_name="aliases")
    alias = models.CharField(max_length=255)
    version = models.ForeignKey("registry.ModelVersion", on_delete=models.CASCADE, related_name="aliases")
    set_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    set_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["model_id", "alias"]
        constraints = [models.UniqueConstraint(fields=["model", "alias"], name="registry_alias_unique")]

    def __str__(self) -> str:
        return f"{self.model_id}@{self.alias}"


class ProtectedAlias(models.Model):
    """An alias bound to a stage (e.g. `champion` -> production), marked by an admin: it always names the version that
    holds the stage, and moving it is a promotion request like a stage transition. `production` is always protected."""

    alias = models.CharField(max_length=255, unique=True)
    stage = models.CharField(max_length=16, choices=[("staging", "staging"), ("production", "production")], default="production")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["alias"]
        verbose_name_plural = "protected aliases"

    def __str__(self) -> str:
        return f"{self.alias} -> {self.stage}"

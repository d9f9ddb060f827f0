"""Demo users and registry history for `make run`, written through the real services.

Idempotent: does nothing when any model exists (use --force to add anyway).
The history is spread over the last 90 days by running the services on a
simulated clock, so the pages look like a registry that has been in use.
"""

import contextlib
import random
from datetime import timedelta
from unittest import mock

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from registry import services
from registry.models import AuditEvent, ModelVersion, PromotionRequest, RegisteredModel, StageChange
from registry.roles_admin import user_set_role

DEMO_USERS = [
    # username, role, password
    ("admin", "admin", "admin"),
    ("alice", "editor", "alice"),
    ("bob", "approver", "bob"),
    ("carol", "approver", "carol"),
    ("victor", "viewer", "victor"),
]

MODELS = {
    "fraud-detector": ("Gradient-boosted fraud scoring for card transactions.", 12, {"accuracy": 0.90, "f1": 0.84, "auc": 0.93, "precision": 0.86, "recall": 0.82}),
    "churn-predictor": ("Monthly churn propensity for subscription customers.", 8, {"accuracy": 0.81, "f1": 0.72, "auc": 0.86}),
    "credit-scoring": ("Probability of default for consumer loans (fairness-reviewed).", 10, {"accuracy": 0.88, "f1": 0.79, "auc": 0.91, "demographic_parity_diff": 0.08}),
    "product-recommender": ("Two-tower retrieval model for the home feed.", 6, {"recall_at_10": 0.31, "ndcg_at_10": 0.27, "coverage": 0.62}),
    "sentiment-classifier": ("Fine-tuned DistilBERT for support-ticket sentiment.", 5, {"accuracy": 0.91, "f1": 0.90}),
    "demand-forecast": ("Daily SKU demand forecast (LightGBM).", 4, {"mape": 0.142, "rmse": 18.4}),
}


class Clock:
    """A clock the demo moves forward by hand."""

    def __init__(self, start):
        self.now_value = start

    def now(self):
        return self.now_value

    def advance(self, **delta):
        self.now_value += timedelta(**delta)


@contextlib.contextmanager
def simulated_time(clock: Clock):
    """Make `default=timezone.now` fields and the services read `clock` instead of the real time."""
    fields = [
        RegisteredModel._meta.get_field("created_at"),
        ModelVersion._meta.get_field("created_at"),
        PromotionRequest._meta.get_field("requested_at"),
        StageChange._meta.get_field("at"),
        AuditEvent._meta.get_field("at"),
    ]
    saved = [(f, f.default) for f in fields]
    try:
        for field in fields:
            field.default = clock.now
            field.__dict__.pop("_get_default", None)  # Django caches the default callable
        with mock.patch.object(timezone, "now", clock.now):
            yield
    finally:
        for field, default in saved:
            field.default = default
            field.__dict__.pop("_get_default", None)


class Command(BaseCommand):
    help = "Create demo users and demo registry data (once)."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="add demo data even if models exist")

    def handle(self, *args, force=False, **options):
        if RegisteredModel.objects.exists() and not force:
            self.stdout.write("Demo data: models already exist, nothing added.")
            return
        users = {name: user_set_role(username=name, role=role, password=password) for name, role, password in DEMO_USERS}
        rng = random.Random(7)
        real_now = timezone.now()  # inside simulated_time, timezone.now() is the demo clock
        clock = Clock(real_now)
        with transaction.atomic(), simulated_time(clock):
            for name, (description, count, base) in MODELS.items():
                # Each model's history spans about the last 90 days, ending before now.
                clock.now_value = real_now - timedelta(days=90, hours=rng.uniform(0, 48))
                self._seed_model(name, description, count, base, users, clock, rng, real_now)
        self.stdout.write(f"Demo data: {RegisteredModel.objects.count()} models, {ModelVersion.objects.count()} versions.")

    def _seed_model(self, name, description, count, base, users, clock, rng, real_now):
        alice, bob, carol = users["alice"], users["bob"], users["carol"]
        metrics = dict(base)
        for n in range(1, count + 1):
            clock.advance(days=rng.uniform(0.6, 1.0) * 80 / count)
            # A slow random walk upwards; scores that live in [0, 1] stay below 1.
            metrics = {k: round(min(v * (1 + rng.uniform(-0.012, 0.02)), 0.995 if base[k] < 1 else 1e9), 4) for k, v in metrics.items()}
            services.model_version_register(
                model_name=name,
                actor=alice,
                params={"learning_rate": rng.choice([0.01, 0.03, 0.05, 0.1]), "max_depth": rng.randint(3, 10), "n_estimators": rng.choice([100, 200, 400, 800]), "seed": n},
                metrics=metrics,
                tags={"team": "risk" if "fraud" in name or "credit" in name else "growth", "framework": rng.choice(["xgboost", "lightgbm", "sklearn"])},
                code_commit=f"{rng.getrandbits(160):040x}",
                data_version=f"s3://ml-data/{name}/snapshots/2026-{(n % 12) + 1:02d}-01",
                image_tag=f"registry.local/{name}:1.{n}.0",
                description=f"Retrained on the latest snapshot (run {n}).",
                artifact_uri=f"s3://ml-artifacts/{name}/v{n}/model.pkl",
            )
            version = ModelVersion.objects.get(model__name=name, version=n)
            if n % 3 == 0 and n < count:
                # Every third version goes through staging to production, with two people.
                self._promote(version, "staging", alice, bob if n % 2 else carol, clock, "Offline metrics beat the current version.")
                self._promote(version, "production", alice, carol if n % 2 else bob, clock, "Staging soak clean for 24 h.")
        services.model_describe(model_name=name, description=description, actor=alice)
        if name == "fraud-detector":
            clock.advance(hours=5)
            services.model_rollback(model_name=name, stage="production", reason="P95 latency doubled after release; back to the previous version.", actor=bob)
        last = ModelVersion.objects.get(model__name=name, version=count)
        # Pending requests are recent, so the hourly expiry task leaves them for the demo.
        clock.now_value = real_now - timedelta(hours=rng.uniform(1, 30))
        if count >= 5:
            services.promotion_request_create(version=last, to_stage="production" if count % 2 == 0 else "staging", reason="Candidate beats production on every offline metric.", actor=alice)

    def _promote(self, version, stage, requester, approver, clock, reason):
        clock.advance(hours=2)
        promotion = services.promotion_request_create(version=version, to_stage=stage, reason=reason, actor=requester)
        clock.advance(hours=3)
        services.promotion_approve(promotion_id=promotion.pk, actor=approver, comment="Looks good.")

"""Demo users and registry history for `make run`, written through the real services (`manage.py seed_demo`).

The history is spread over the last 90 days by running the services on a
simulated clock, so the pages look like a registry that has been in use; the
A/B tests of demo/seed_experiments.py and the canary rollouts of
demo/seed_rollouts.py run on the same clock, last.
"""

import contextlib
import random
from datetime import timedelta
from unittest import mock

import numpy as np
from django.db import transaction
from django.utils import timezone

from demo.seed_experiments import LocalSink, assignment_quiet, experiments_seed
from demo.seed_rollouts import rollouts_seed
from demo.traffic import DEFAULT_USER
from experiments.models import Analysis, Experiment, Outcome, Rollout, RolloutDecision, RolloutPolicy
from mlops_site.roles import user_set_role
from monitoring.models import Event, FeatureBatch
from registry import services
from registry.models import (
    AuditEvent,
    EvalSet,
    ModelVersion,
    PromotionRequest,
    Prompt,
    PromptDeployment,
    PromptVersion,
    RegisteredModel,
    Run,
    RunGroup,
    StageChange,
)
from registry.services import tracking
from registry.services.evaluations import evaluation_request, evaluation_run
from registry.services.gates import DEFAULT_MODEL_CHECKS, gate_policy_set
from registry.services.schemas import dataset_schema_infer

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


SUMMARIZE = """name: summarize
version: {n}
model: {model}
temperature: {temperature}
max_tokens: {max_tokens}
description: {description}
system: |
  You are a concise summarizer. Extract key points from the given text.
  Return exactly {bullets} bullet points, each under {words} words.
template: |
  Summarize the following text{audience}:

  {{text}}
eval_criteria:
- name: bullet_count
  type: format_check
  expected: {bullets}
- name: relevance
  type: llm_judge
  threshold: 0.8
"""

CLASSIFY = """name: classify-ticket
version: {n}
model: gpt-4o-mini
temperature: 0
max_tokens: 5
system: You label support tickets. Answer with one word{extra}.
template: "Ticket: {{ticket}}\nLabel (bug, question, praise{labels}):"
eval_criteria:
- name: label_in_set
  type: format_check
  expected: one_of
- name: matches_reference
  type: exact_match
  threshold: 0.9
"""


def demo_prompts_folder() -> dict[str, str]:
    """A prompts folder like the ones teams keep in git: versions, eval sets and config.yaml."""
    summarize = [
        dict(model="claude-sonnet-4-5", temperature=0.3, max_tokens=500, bullets=5, words=25, audience="", description="First cut."),
        dict(model="claude-sonnet-4-5", temperature=0.3, max_tokens=500, bullets=3, words=20, audience="", description="Three bullets read better."),
        dict(model="claude-sonnet-4-5", temperature=0.2, max_tokens=400, bullets=3, words=20, audience=" for an executive", description="Tighter, for executives."),
        dict(model="claude-haiku-4-5", temperature=0.2, max_tokens=400, bullets=3, words=15, audience=" for an executive", description="Cheaper model, shorter bullets."),
    ]
    files = {f"summarize/v{n}.yaml": SUMMARIZE.format(n=n, **kw) for n, kw in enumerate(summarize, start=1)}
    files["summarize/eval_set.jsonl"] = "".join(
        f'{{"input": {{"text": "Quarterly report {i}: revenue grew {i % 7}% while costs fell {i % 3}%."}}, "expected": "- revenue up {i % 7}%"}}\n'
        for i in range(1, 121)
    )
    files["classify-ticket/v1.yaml"] = CLASSIFY.format(n=1, extra="", labels="")
    files["classify-ticket/v2.yaml"] = CLASSIFY.format(n=2, extra=" in lower case", labels=", other")
    files["classify-ticket/eval_set.jsonl"] = "".join(
        f'{{"input": {{"ticket": "Ticket {i}: the export button {"crashes" if i % 2 else "is great"}."}}, "expected": "{"bug" if i % 2 else "praise"}"}}\n'
        for i in range(1, 41)
    )
    files["config.yaml"] = "classify-ticket:\n  dev: 2\n  prod: 1\nsummarize:\n  dev: 4\n  staging: 3\n  prod: 2\n"
    return files


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
        Prompt._meta.get_field("created_at"),
        PromptVersion._meta.get_field("created_at"),
        EvalSet._meta.get_field("created_at"),
        PromptDeployment._meta.get_field("updated_at"),
        Experiment._meta.get_field("created_at"),
        Analysis._meta.get_field("requested_at"),
        Outcome._meta.get_field("received_at"),
        Event._meta.get_field("received_at"),
        FeatureBatch._meta.get_field("received_at"),
        RolloutPolicy._meta.get_field("created_at"),
        Rollout._meta.get_field("started_at"),
        RolloutDecision._meta.get_field("at"),
        RunGroup._meta.get_field("created_at"),
        RunGroup._meta.get_field("updated_at"),
        Run._meta.get_field("created_at"),
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


def demo_user(username: str, role: str, password: str):
    """A demo user with the README's well-known password. Demo only: these passwords are shorter and commoner than the
    password validators allow (user_set_role would refuse them), so they are set past the validators here, and nowhere
    else. Never seed a site that real people use."""
    user = user_set_role(username=username, role=role)
    user.set_password(password)
    user.save(update_fields=["password"])
    return user


def demo_seed() -> None:
    """The demo users (roles and passwords as DEMO_USERS), then every model's, prompt's, gate's and A/B test's history in one transaction."""
    users = {name: demo_user(name, role, password) for name, role, password in DEMO_USERS}
    rng = random.Random(7)
    real_now = timezone.now()  # inside simulated_time, timezone.now() is the demo clock
    clock = Clock(real_now)
    with assignment_quiet(), transaction.atomic(), simulated_time(clock):
        for name, (description, count, base) in MODELS.items():
            # Each model's history spans about the last 90 days, ending before now.
            clock.now_value = real_now - timedelta(days=90, hours=rng.uniform(0, 48))
            _seed_model(name, description, count, base, users, clock, rng, real_now)
        clock.now_value = real_now - timedelta(days=20)
        _seed_prompts(users, clock, real_now)
        clock.now_value = real_now - timedelta(days=2)
        _seed_gates(users, clock, real_now)
        experiments_seed(users, clock, real_now)
        rollouts_seed(users, clock, LocalSink(user_set_role(username=DEFAULT_USER, role="editor"), until=real_now), real_now)


def _seed_prompts(users, clock, real_now):
    """Import the demo folder, approve what config.yaml asks, then move prod to v3 and roll it back."""
    alice, bob, carol = users["alice"], users["bob"], users["carol"]
    services.prompts_import(files=demo_prompts_folder(), actor=alice)
    for promotion in PromotionRequest.objects.filter(prompt__isnull=False, status="pending").order_by("id"):
        clock.advance(hours=3)
        services.promotion_approve(promotion_id=promotion.pk, actor=bob, comment="Eval set results look fine.")
    v3 = PromptVersion.objects.get(prompt__name="summarize", version=3)
    clock.advance(days=4)
    request = services.promotion_request_create(version=v3, to_stage="prod", reason="Executives prefer the tighter summary.", actor=alice)
    clock.advance(hours=2)
    services.promotion_approve(promotion_id=request.pk, actor=carol, comment="Diff reviewed.")
    clock.advance(days=2)
    services.prompt_rollback(prompt_name="summarize", environment="prod", reason="Judge score dropped after the move.", actor=bob)
    v4 = PromptVersion.objects.get(prompt__name="summarize", version=4)
    clock.now_value = real_now - timedelta(hours=3)
    services.promotion_request_create(version=v4, to_stage="staging", reason="Cheaper model, same eval score.", actor=alice)


def _seed_model(name, description, count, base, users, clock, rng, real_now):
    alice, bob, carol = users["alice"], users["bob"], users["carol"]
    metrics = dict(base)
    for n in range(1, count + 1):
        clock.advance(days=rng.uniform(0.6, 1.0) * 80 / count)
        # A slow random walk upwards; scores that live in [0, 1] stay below 1.
        metrics = {k: round(min(v * (1 + rng.uniform(-0.012, 0.02)), 0.995 if base[k] < 1 else 1e9), 4) for k, v in metrics.items()}
        params = {"learning_rate": rng.choice([0.01, 0.03, 0.05, 0.1]), "max_depth": rng.randint(3, 10), "n_estimators": rng.choice([100, 200, 400, 800]), "seed": n}
        commit = f"{rng.getrandbits(160):040x}"
        run = _training_run(name, n, params, metrics, commit, alice, clock, rng)
        services.model_version_register(
            model_name=name,
            actor=alice,
            params=params,
            metrics=metrics,
            tags={"team": "risk" if "fraud" in name or "credit" in name else "growth", "framework": rng.choice(["xgboost", "lightgbm", "sklearn"])},
            code_commit=commit,
            data_version=f"s3://ml-data/{name}/snapshots/2026-{(n % 12) + 1:02d}-01",
            image_tag=f"registry.local/{name}:1.{n}.0",
            description=f"Retrained on the latest snapshot (run {n}).",
            artifact_uri=f"s3://ml-artifacts/{name}/v{n}/model.pkl",
            run=run,  # the lineage, as an MLflow client's version has it
        )
        version = ModelVersion.objects.get(model__name=name, version=n)
        if n % 3 == 0 and n < count:
            # Every third version goes through staging to production, with two people.
            _promote(version, "staging", alice, bob if n % 2 else carol, clock, "Offline metrics beat the current version.")
            _promote(version, "production", alice, carol if n % 2 else bob, clock, "Staging soak clean for 24 h.")
    services.model_describe(model_name=name, description=description, actor=alice)
    if name == "fraud-detector":
        clock.advance(hours=5)
        services.model_rollback(model_name=name, stage="production", reason="P95 latency doubled after release; back to the previous version.", actor=bob)
    last = ModelVersion.objects.get(model__name=name, version=count)
    # Pending requests are recent, so the hourly expiry task leaves them for the demo.
    clock.now_value = real_now - timedelta(hours=rng.uniform(1, 30))
    if count >= 5:
        services.promotion_request_create(version=last, to_stage="production" if count % 2 == 0 else "staging", reason="Candidate beats production on every offline metric.", actor=alice)


def _training_run(name, n, params, metrics, commit, actor, clock, rng):
    """The training run behind version n, as an MLflow client logs one: params, a loss curve per epoch and the final
    metrics, in the model's run group; a discarded trial run beside every other one, for the compare page."""
    group = RunGroup.objects.filter(name=f"{name} training").first() or tracking.run_group_create(name=f"{name} training", actor=actor)
    epochs = 20
    for trial in ([f"trial-{n}b"] if n % 2 == 0 else []) + [f"train-v{n}"]:
        start = int(clock.now().timestamp() * 1000)
        tags = [{"key": "mlflow.source.git.commit", "value": commit}, {"key": "mlflow.source.name", "value": "train.py"}]
        run = tracking.run_create(group_id=group.pk, actor=actor, run_name=trial, start_time=start, tags=tags)
        scale = 1.0 if trial.startswith("train") else rng.uniform(1.05, 1.2)
        curve = [{"key": "loss", "value": round(scale * (0.25 + 0.6 * 0.82**step + rng.uniform(0, 0.01)), 4), "timestamp": start + step * 60_000,
                  "step": step} for step in range(epochs)]
        final = [{"key": k, "value": v if trial.startswith("train") else round(v / scale, 4), "timestamp": start + epochs * 60_000, "step": epochs}
                 for k, v in metrics.items()]
        tried = params if trial.startswith("train") else {**params, "learning_rate": rng.choice([0.2, 0.3]), "max_depth": rng.randint(11, 14)}
        tracking.run_log_batch(run_id=run.run_id, actor=actor, metrics=curve + final,
                               params=[{"key": k, "value": str(v)} for k, v in tried.items()])
        tracking.run_update(run_id=run.run_id, actor=actor, status="FINISHED", end_time=start + (epochs + 1) * 60_000)
        clock.advance(minutes=30)
    return run


def _seed_gates(users, clock, real_now):
    """loan-approval under the default gate policy: v1's bias check fails (its gate card is red and a request
    is refused); v2, retrained with a fairness constraint, passes every gate and waits for approval."""
    alice, bob = users["alice"], users["bob"]
    rng = np.random.default_rng(11)
    n = 20_000
    income = rng.lognormal(10.5, 0.4, n).round(0)
    region = rng.choice(["north", "south", "east", "west"], n)
    data = "income,debt_ratio,region\n" + "".join(
        f"{i:.0f},{d:.3f},{r}\n" for i, d, r in zip(income, rng.beta(2, 5, n), region, strict=True)
    )
    gender = rng.choice(["female", "male", "nonbinary"], n, p=[0.48, 0.48, 0.04])
    label = (rng.random(n) < 0.35).astype(int)

    def predictions(bias: float) -> bytes:
        score = np.clip(0.62 * label + rng.normal(0.19, 0.14, n) + np.where(gender == "male", bias, 0.0), 0, 1)
        pred = (score >= 0.5).astype(int)
        return ("label,prediction,score,gender\n" + "".join(f"{a},{b},{c:.4f},{g}\n" for a, b, c, g in zip(label, pred, score, gender, strict=True))).encode()

    for number, (bias, metrics) in enumerate([(0.22, {"accuracy": 0.93, "f1": 0.91}), (0.0, {"accuracy": 0.95, "f1": 0.93})], start=1):
        clock.advance(hours=6)
        version = services.model_version_register(model_name="loan-approval", actor=alice, metrics=metrics, data_version="s3://ml-data/loans/2026-11",
                                                  description=("First model." if number == 1 else "Retrained with a demographic-parity constraint."))
        if number == 1:
            services.model_describe(model_name="loan-approval", description="Approves consumer loans. Gated: accuracy, F1, bias, data.", actor=alice)
            gate_policy_set(model=version.model, checks=DEFAULT_MODEL_CHECKS, actor=bob)
            dataset_schema_infer(model=version.model, data=data.encode(), filename="loans-train-2026-11.csv", actor=alice)
        clock.advance(minutes=20)
        for kind, body, name, options in (("model", predictions(bias), f"holdout-v{number}.csv", {"group_column": "gender"}),
                                          ("data", data.encode(), "loans-2026-11.csv", {"data_version": "2026-11"})):
            evaluation_run(evaluation_id=evaluation_request(kind=kind, model_version=version, data=body, filename=name, options=options, actor=alice).pk)
    clock.now_value = real_now - timedelta(hours=2)
    services.promotion_request_create(version=version, to_stage="production", reason="Passes every gate, bias check included.", actor=alice)


def _promote(version, stage, requester, approver, clock, reason):
    clock.advance(hours=2)
    promotion = services.promotion_request_create(version=version, to_stage=stage, reason=reason, actor=requester)
    clock.advance(hours=3)
    services.promotion_approve(promotion_id=promotion.pk, actor=approver, comment="Looks good.")

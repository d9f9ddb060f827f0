"""The registry bench's data and its query counts: `seed` and `queries` of registry_bench.py.

`seed` fills the database named by SQLITE_PATH through the real services; `queries` counts the SQL
queries of the three reads in-process (django.test.Client).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from common import django_setup, normalise_sql, write_json

VIEWER = ("bench-viewer", "bench-" + "password-long")
# Passwords the site's validators accept (12+ characters, not like the user name, not common).
EDITOR = ("bench-editor", "quartz-" + "lantern-41")
APPROVERS = (("bench-approver-1", "copper-" + "meadow-73"), ("bench-approver-2", "copper-" + "meadow-73"))
# The model whose page is measured: it has stage history and a pending request at every scale.
DETAIL_MODEL = "bench-model-000"


def model_name(i: int) -> str:
    return f"bench-model-{i:03d}"


def cmd_seed(args) -> None:
    """`models` x `versions` through model_version_register; every 10th model is promoted, every 7th has a pending request."""
    django_setup()
    import random

    from django.db import transaction

    from mlops_site.roles import user_set_role, user_token_refresh
    from registry import services
    from registry.models import ModelVersion, PromotionRequest, RegisteredModel, StageChange

    started = time.perf_counter()
    viewer = user_set_role(username=VIEWER[0], role="viewer", password=VIEWER[1])
    editor = user_set_role(username=EDITOR[0], role="editor", password=EDITOR[1])
    approvers = [user_set_role(username=u, role="approver", password=p) for u, p in APPROVERS]
    rng = random.Random(42)
    for i in range(args.models):
        name = model_name(i)
        with transaction.atomic():
            base = {"accuracy": 0.80, "f1": 0.75, "auc": 0.85, "precision": 0.78, "recall": 0.72}
            for n in range(1, args.versions + 1):
                metrics = {k: round(v * (1 + rng.uniform(-0.01, 0.02) * n / args.versions), 4) for k, v in base.items()}
                services.model_version_register(
                    model_name=name,
                    actor=editor,
                    params={
                        "learning_rate": rng.choice([0.01, 0.03, 0.1]),
                        "max_depth": rng.randint(3, 10),
                        "n_estimators": rng.choice([100, 200, 400]),
                        "subsample": 0.8,
                        "seed": n,
                    },
                    metrics=metrics,
                    tags={"team": ("risk", "growth", "search")[i % 3], "framework": rng.choice(["xgboost", "lightgbm", "sklearn"]), "bench": "1"},
                    code_commit=f"{rng.getrandbits(160):040x}",
                    data_version=f"s3://bench-data/{name}/snapshot-{n:03d}",
                    image_tag=f"registry.local/{name}:1.{n}.0",
                    description=f"Bench version {n} of {name}.",
                    artifact_uri=f"s3://bench-artifacts/{name}/v{n}/model.pkl",
                )
            if i % 10 == 0 and args.versions >= 3:
                # v(N-2) goes staging -> production, v(N-1) into staging: real requests, approved by a second person.
                for number, stages in ((args.versions - 2, ("staging", "production")), (args.versions - 1, ("staging",))):
                    version = ModelVersion.objects.get(model__name=name, version=number)
                    for stage in stages:
                        request = services.promotion_request_create(version=version, to_stage=stage, reason="Bench: beats the current one.", actor=editor)
                        services.promotion_approve(promotion_id=request.pk, actor=approvers[number % 2], comment="Bench approval.")
            if i % 7 == 0:
                last = ModelVersion.objects.get(model__name=name, version=args.versions)
                services.promotion_request_create(version=last, to_stage="production", reason="Bench: pending request.", actor=editor)
    token = user_token_refresh(user=viewer)
    seconds = time.perf_counter() - started
    counts = {
        "models": RegisteredModel.objects.count(),
        "versions": ModelVersion.objects.count(),
        "in_production": ModelVersion.objects.filter(stage="production").count(),
        "in_staging": ModelVersion.objects.filter(stage="staging").count(),
        "pending_promotions": PromotionRequest.objects.filter(status="pending").count(),
        "stage_changes": StageChange.objects.count(),
    }
    write_json(args.out, {"seconds": round(seconds, 2), "counts": counts, "token": token, "viewer": VIEWER[0], "viewer_password": VIEWER[1]})
    print(f"  seeded {counts['models']} models, {counts['versions']} versions "
          f"({counts['in_production']} in production, {counts['in_staging']} in staging, "
          f"{counts['pending_promotions']} pending) in {seconds:.1f} s")


def api_targets(api_base: str = "/api/v1/models") -> dict[str, str]:
    return {"models_page": "/models/", "model_page": f"/models/{DETAIL_MODEL}/", "api_models": api_base}


def cmd_queries(args) -> None:
    """Run each read once warm, then count its queries with CaptureQueriesContext (in-process, same DB)."""
    django_setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    seed = json.loads(Path(args.seed).read_text())
    page_client = Client()
    # force_login: the login lockout (django-axes) needs a request, which the test client's login() does not pass.
    from django.contrib.auth import get_user_model

    page_client.force_login(get_user_model().objects.get(username=seed["viewer"]))
    api_client = Client(HTTP_AUTHORIZATION=f"Token {seed['token']}")
    out = {}
    for key, path in api_targets().items():
        client = api_client if key == "api_models" else page_client
        warm = client.get(path)
        if warm.status_code != 200:
            raise SystemExit(f"{path}: HTTP {warm.status_code}")
        with CaptureQueriesContext(connection) as captured:
            response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        sqls = [q["sql"] for q in captured.captured_queries]
        shapes: dict[str, int] = {}
        for sql in sqls:
            shapes[normalise_sql(sql)] = shapes.get(normalise_sql(sql), 0) + 1
        out[key] = {
            "path": path,
            "queries": len(sqls),
            "sql": sqls,
            # The same statement shape run more than once in one request is the mark of an N+1.
            "repeated_shapes": {s: n for s, n in shapes.items() if n > 1},
        }
    write_json(args.out, out)
    print("  queries: " + ", ".join(f"{k} {v['queries']}" for k, v in out.items()))

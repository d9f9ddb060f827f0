"""The permission matrix: every URL and method of the URL conf × anonymous, viewer, editor, approver, admin.

The expectation is the table in docs/permissions.md (method, path, minimum role), parsed here, so the page a
reader trusts is the one the test holds the site to. Every route the URL conf resolves, with every method its
view answers, must have a row (a new endpoint without a decision fails, naming it), and every row must be a
route (a removed endpoint's row fails too). Then each row is requested as each role, lowest first, with real
objects in the path, as a signed-in session (what a page sends; the API takes it like a token): a role below the minimum must be denied (401, 403, a redirect to a login page, or a page's
"needs the … role" message), a role at or above it must not be (a 404, 409 or 400 after the check is fine).
"""

import inspect
import json
import os
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.contrib.messages import get_messages
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from experiments import services as experiment_services
from mlops_site.roles import user_token_refresh
from monitoring.models import AlertRule
from monitoring.services.budgets import budget_set
from monitoring.services.drift_reports import drift_report_request
from registry import services as registry_services
from registry.models import PromptVersion, Run, RunGroup
from registry.services.evaluations import evaluation_request
from registry.services.tracking import logged_model_create
from tests.conftest import make_user
from tests.experiments.conftest import QUICK, canary_of
from tests.factories import promote, register
from tests.prompts.conftest import brief_folder

ROLES = ("anonymous", "viewer", "editor", "approver", "admin")
DOC = Path(__file__).resolve().parent.parent / "docs" / "permissions.md"
PASSWORD = "matrix-" + "passphrase-42"
ADMIN_SITE = "/admin/…"  # the Django admin's own pages: one row, staff only
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
ROLE_MESSAGE = re.compile(r"needs the (viewer|editor|approver|admin) role")
MLFLOW = ("/api/2.0/", "/api/3.0/")


# --- the URL conf ----------------------------------------------------------------------------------------------------


def readable(route: str) -> str:
    """`api/v1/^models/(?P<name>[^/]+)/?$` and `models/<str:name>/` as `/api/v1/models/{name}/`, `/models/{name}/`."""
    route = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", route)
    route = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
    route = route.replace("^", "").replace("$", "").replace("/?", "/")
    return "/" + route


def view_methods(callback) -> set[str]:
    """The methods a view answers: a class view's handlers; a function view's `require_http_methods` list, else GET,
    and POST too when its code (or a helper of its module it calls) reads a form (request.method, .POST or .FILES)."""
    view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if view_class is not None:
        return {m.upper() for m in view_class.http_method_names if hasattr(view_class, m) and m.upper() in METHODS}
    function = callback
    while function is not None:
        for cell in function.__closure__ or ():
            contents = cell.cell_contents
            if isinstance(contents, (list, tuple)) and contents and all(isinstance(m, str) and m.isupper() for m in contents):
                return set(contents) & set(METHODS)
        function = getattr(function, "__wrapped__", None)
    return {"GET", "POST"} if reads_form(inspect.unwrap(callback), set()) else {"GET"}


def reads_form(function, seen: set) -> bool:
    """Whether `function`, or a function of its own module it calls (a shared page helper), reads a form."""
    seen.add(function)
    source = inspect.getsource(function)
    if any(marker in source for marker in ("request.method", "request.POST", "request.FILES")):
        return True
    module = inspect.getmodule(function)
    for name in set(re.findall(r"\b(\w+)\(", source)):
        called = getattr(module, name, None)
        if inspect.isfunction(called) and called.__module__ == module.__name__ and called not in seen and reads_form(called, seen):
            return True
    return False


def url_conf_rows() -> set[tuple[str, str]]:
    """(method, path) of every route and method, the Django admin's pages as one row."""
    rows: set[tuple[str, str]] = set()

    def walk(patterns, prefix: str):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                if pattern.app_name == "admin":
                    rows.add(("ANY", ADMIN_SITE))
                else:
                    walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                for method in view_methods(pattern.callback):
                    rows.add((method, readable(prefix + str(pattern.pattern))))

    walk(get_resolver().url_patterns, "")
    return rows


# --- the table -------------------------------------------------------------------------------------------------------


def table() -> dict[tuple[str, str], str]:
    """{(method, path): minimum role} from docs/permissions.md's table rows (`| GET | /models/ | viewer | … |`)."""
    declared = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and (cells[0] in METHODS or cells[0] == "ANY"):
            key = (cells[0], cells[1])
            assert key not in declared, f"docs/permissions.md lists {key[0]} {key[1]} twice"
            assert cells[2] in ROLES, f"docs/permissions.md: {key[0]} {key[1]}: {cells[2]!r} is not one of {ROLES}"
            declared[key] = cells[2]
    return declared


DECLARED = table()


def test_permission_matrix_has_a_decision_for_every_route_and_method():
    routes = url_conf_rows()

    undecided = sorted(routes - set(DECLARED))
    stale = sorted(set(DECLARED) - routes)

    assert not undecided, "Routes without a decision: add a row (method, path, minimum role) to docs/permissions.md:\n" + "\n".join(
        f"| {m} | `{p}` | ? |" for m, p in undecided
    )
    assert not stale, "docs/permissions.md lists routes the URL conf no longer has:\n" + "\n".join(f"{m} {p}" for m, p in stale)


# --- the requests ----------------------------------------------------------------------------------------------------


@pytest.fixture
def world(db):
    """A user per role, and real objects behind every path parameter, made by two other users (`owner`, an editor,
    and `checker`, an approver), so no role under test is the requester or author of what it acts on."""
    users = {role: make_user(f"matrix-{role}", role, password=PASSWORD) for role in ROLES[1:]}
    owner = make_user("matrix-owner", "editor", password=PASSWORD)
    checker = make_user("matrix-checker", "approver", password=PASSWORD)
    v1, v2, v3 = (register("checkout", owner) for _ in range(3))
    promote(v1, "production", owner, checker)
    registry_services.prompts_import(files=brief_folder(), actor=owner)
    rollout = canary_of(v2, owner, checker)
    promotion = registry_services.promotion_request_create(version=v3, to_stage="staging", reason="matrix", actor=owner)
    experiment_services.experiment_create(
        key="checkout-test", actor=owner, model="checkout", hypothesis="v2 converts better",
        variants=[{"name": "A", "version": 1, "weight": 50}, {"name": "B", "version": 3, "weight": 50}],
        primary_metric={"name": "conversion", "kind": "proportion"}, alpha=0.05, power=0.8, mde=0.02, baseline_rate=0.1,
    )  # fmt: skip
    experiment_services.rollout_policy_create(name="quick", actor=checker, **QUICK)
    rule = AlertRule.objects.create(model=v1.model, name="matrix", metric="feature_psi", threshold=0.25)
    now = timezone.now()
    report = drift_report_request(model_version=v1, start=now - timedelta(days=1), end=now, actor=owner)
    prompt_version = PromptVersion.objects.get(prompt__name="summarize", version=1)
    evaluation = evaluation_request(kind="prompt", prompt_version=prompt_version, actor=owner)
    budget_set(name="llm", amount_usd=100.0, actor=owner)
    from registry.services.tokens import api_token_create

    token = api_token_create(user=owner, name="matrix")
    run = Run.objects.create(group=RunGroup.objects.create(name="matrix-runs"), name="matrix", user=owner)
    default_storage.save(f"mlflow-artifacts/{run.artifact_folder}/model.pkl", ContentFile(b"weights"))
    from registry.services.webhooks import webhook_create

    # A paused webhook on a public address written as a number (no lookup), so nothing is ever sent from here.
    webhook = webhook_create(model_name="checkout", url="http://93.184.216.34/hook", events=["promotion_approved"], active=False, actor=checker)
    logged = logged_model_create(group_id=run.group_id, actor=owner, source_run_id=run.run_id)
    # MLflow clients send their arguments (query string or JSON body) and a token or a password, never a session.
    mlflow_args = {"run_id": run.run_id, "experiment_id": str(run.group_id), "name": "checkout", "version": "3", "stage": "Staging",
                   "alias": "challenger", "key": "matrix_key", "value": "1", "metric_key": "loss", "status": "LOGGED_MODEL_READY",
                   "source": f"runs:/{run.run_id}/model"}  # fmt: skip
    tokens = {role: user_token_refresh(user=user) for role, user in users.items()}
    kwargs = {
        "name": "checkout", "version": "1", "stage": "production", "promotion_id": str(promotion.pk),
        "environment": "prod", "key": "checkout-test", "rollout_id": str(rollout.pk), "rule_id": str(rule.pk),
        "report_id": str(report.pk), "evaluation_id": str(evaluation.pk), "token_id": str(token.token.pk),
        "webhook_id": str(webhook.pk),
        "kind": "model", "group_id": str(run.group_id), "run_id": run.run_id, "path": "model.pkl",
        "model_id": logged.model_id, "rest": "runs/teleport",
    }  # fmt: skip
    by_prefix = {"/api/v1/prompts/": "summarize", "/prompts/": "summarize", "/api/v1/budgets/": "llm",
                 "/api/v1/rollout-policies/": "quick", "/monitoring/quality/": "summarize"}  # fmt: skip
    mlflow = {"tokens": tokens, "mlflow_args": mlflow_args, "mlflow_path": f"{run.artifact_folder}/model.pkl"}
    return {"users": users, "kwargs": kwargs, "names": by_prefix, **mlflow}


def fill(path: str, world) -> str:
    kwargs = dict(world["kwargs"])
    for prefix, name in world["names"].items():
        if path.startswith(prefix):
            kwargs["name"] = name
    if path.startswith("/api/2.0/mlflow-artifacts/"):
        kwargs["path"] = world["mlflow_path"]
    return re.sub(r"\{(\w+)\}", lambda m: kwargs[m.group(1)], path)


def client_for(role: str, world, path: str = "") -> Client:
    """A signed-in session (the API takes it as well as a token; the tokens API makes tokens only for a session); for
    the MLflow API, which takes no session, the role's token as an MLflow client sends it."""
    if path.startswith(MLFLOW):
        return Client(headers={"Authorization": f"Bearer {world['tokens'][role]}"} if role != "anonymous" else {})
    client = Client()
    if role != "anonymous":
        client.force_login(world["users"][role])
    return client


def denied(response) -> str:
    """Why `response` is a refusal by role ('' when it is not one)."""
    if response.status_code in (401, 403):
        return f"{response.status_code}"
    location = response.headers.get("Location", "")
    if response.status_code == 302 and "/login/" in location and "next=" in location:
        return "a redirect to the login page"
    for message in get_messages(response.wsgi_request):
        if ROLE_MESSAGE.search(str(message)):
            return f"the message {str(message)!r}"
    return ""


def ask(client, method: str, path: str, world=None):
    if method == "ANY":
        method = "GET"
    if world is not None and path.startswith(MLFLOW):
        args = world["mlflow_args"]
        if method in ("GET", "DELETE"):
            return getattr(client, method.lower())(f"{path}?{urlencode(args)}")
        return getattr(client, method.lower())(path, json.dumps(args), content_type="application/json")
    return getattr(client, method.lower())(path)


@pytest.mark.skipif(os.environ.get("MLOPS_TEST_SECOND_DB") == "1", reason="the same requests on every database: SQLite suite only")
@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path"), sorted(DECLARED), ids=[f"{m} {p}" for m, p in sorted(DECLARED)])
def test_permission_matrix_row_denies_below_and_allows_from_its_minimum_role(method, path, world):
    minimum = DECLARED[(method, path)]
    url = "/admin/" if path == ADMIN_SITE else fill(path, world)

    seen = {}
    for role in ROLES:
        response = ask(client_for(role, world, url), method, url, world)
        seen[role] = (response.status_code, denied(response))

    wrong = [
        f"{role}: {status} {'denied: ' + why if why else 'allowed'}, expected {'allowed' if ROLES.index(role) >= ROLES.index(minimum) else 'denied'}"
        for role, (status, why) in seen.items()
        if bool(why) != (ROLES.index(role) < ROLES.index(minimum))
    ]
    assert not wrong, f"{method} {url} (minimum role {minimum}):\n" + "\n".join(wrong)

"""`python -m mlops_client <command>`: argparse subcommands, local input checks, human output.

Exit codes: 0 done, 1 `stage` found nothing in that stage, 2 usage or bad local
input, 3 no connection or timeout, 4 the server answered 4xx, 5 it answered 5xx
(or something that is not the API), 6 `gate`: a check failed or never ran, 7 an
evaluation waited for failed, 8 it was still running after --max-wait.
Failures print one `error: ...` line on stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from . import __version__, gates, prompts
from .client import EXIT_EMPTY, ApiClient, ApiError, CliError, UsageError, segment
from .inputs import add_canary_arguments, canary_fields, existing_file, load_json_object, version_arg
from .output import print_json, table, version_label, when
from .sdk import Client

STAGES = ("staging", "production")
PROMOTION_STATUSES = ("pending", "approved", "rejected", "superseded", "expired", "rolling_out", "rolled_back")


# --- commands ------------------------------------------------------------------------------


def _resolve_version(api: ApiClient, model: str, version: str) -> int:
    return Client.over(api).version_number(model, version)


def cmd_register(api: ApiClient, args: argparse.Namespace) -> int:
    meta: dict[str, Any] = {}
    for field in ("params", "metrics", "tags"):
        if getattr(args, field) is not None:
            meta[field] = load_json_object(f"--{field}", getattr(args, field))
    artifact = existing_file("--artifact", args.artifact) if args.artifact else None
    body = Client.over(api).register(
        args.model, **meta, artifact=artifact, artifact_uri=args.artifact_uri, code_commit=args.code_commit,
        data_version=args.data_version, image_tag=args.image_tag, description=args.description,
    )
    if args.json:
        print_json(body)
    else:
        print(body["version"])
    return 0


def cmd_promote(api: ApiClient, args: argparse.Namespace) -> int:
    fields = canary_fields(args)
    sdk = Client.over(api)
    number = sdk.version_number(args.model, args.version)
    body = sdk.promote(args.model, number, to=args.to, reason=args.reason, canary=bool(fields), policy=fields.get("policy") or None)
    _print_promotion(body, args)
    return 0


def cmd_route(api: ApiClient, args: argparse.Namespace) -> int:
    body = Client.over(api).route(args.unit, model=args.model, prompt=args.prompt)
    if args.json:
        print_json(body)
    else:
        print(body["version"])
    return 0


def cmd_decide(api: ApiClient, args: argparse.Namespace) -> int:
    sdk = Client.over(api)
    if args.command == "approve":
        body = sdk.approve(args.promotion_id, comment=args.comment)
    else:
        body = sdk.reject(args.promotion_id, comment=args.comment)
    _print_promotion(body, args)
    return 0


def _print_promotion(body: dict, args: argparse.Namespace) -> None:
    if args.json:
        print_json(body)
    else:
        print(body["id"], body["status"])


def cmd_rollback(api: ApiClient, args: argparse.Namespace) -> int:
    body = Client.over(api).rollback(args.model, stage=args.stage, reason=args.reason)
    if args.json:
        print_json(body)
    else:
        print(body["version"])
    return 0


def cmd_models(api: ApiClient, args: argparse.Namespace) -> int:
    count, models = api.get_list("models", {"search": args.search} if args.search else {}, limit=args.limit)
    if args.json:
        print_json({"count": count, "results": models})
        return 0
    rows = [
        [
            m["name"],
            version_label(m.get("latest_version")),
            version_label(m.get("staging_version")),
            version_label(m.get("production_version")),
            m.get("pending_promotions", 0),
        ]
        for m in models
    ]
    table(["NAME", "LATEST", "STAGING", "PRODUCTION", "PENDING"], rows, "No models.")
    return 0


def cmd_show(api: ApiClient, args: argparse.Namespace) -> int:
    model = api.get(f"models/{segment(args.model)}")
    if args.json:
        print_json(model)
        return 0
    print(
        f"{model['name']}  latest {version_label(model.get('latest_version'))}"
        f"  staging {version_label(model.get('staging_version'))}"
        f"  production {version_label(model.get('production_version'))}"
        f"  pending requests {model.get('pending_promotions', 0)}"
    )
    rows = [
        [
            f"v{v['version']}",
            v["stage"],
            when(v.get("created_at")),
            v.get("created_by"),
            (v.get("code_commit") or "")[:12],
            " ".join(f"{k}={val}" for k, val in (v.get("metrics") or {}).items()),
        ]
        for v in model.get("versions", [])
    ]
    table(["VERSION", "STAGE", "CREATED", "BY", "COMMIT", "METRICS"], rows, "No versions.")
    return 0


def cmd_version(api: ApiClient, args: argparse.Namespace) -> int:
    number = _resolve_version(api, args.model, args.version)
    body = api.get(f"models/{segment(args.model)}/versions/{number}")
    if args.json:
        print_json(body)
        return 0
    width = max(len(k) for k in body)
    for key, value in body.items():
        shown = json.dumps(value) if isinstance(value, dict | list) else ("-" if value in (None, "") else value)
        print(f"{key.ljust(width)}  {shown}")
    return 0


def cmd_stage(api: ApiClient, args: argparse.Namespace) -> int:
    try:
        body = api.get(f"models/{segment(args.model)}/stages/{args.stage}")
    except ApiError as exc:
        if exc.status != 404:
            raise
        # The same 404 means "no such model" and "stage empty": ask for the model to tell them apart.
        api.get(f"models/{segment(args.model)}")
        print(f"error: no version of {args.model} is in {args.stage}.", file=sys.stderr)
        return EXIT_EMPTY
    if args.json:
        print_json(body)
    else:
        print(body["version"])
    return 0


def cmd_promotions(api: ApiClient, args: argparse.Namespace) -> int:
    params = {k: v for k, v in (("status", args.status), ("model", args.model)) if v}
    count, promotions = api.get_list("promotions", params, limit=args.limit)
    if args.json:
        print_json({"count": count, "results": promotions})
        return 0
    rows = [
        [
            p["id"],
            f"prompt:{p['prompt']}" if p.get("prompt") else f"model:{p.get('model')}",
            f"v{p['version']}",
            p["to"],
            p["status"],
            p.get("requested_by"),
            when(p.get("requested_at")),
            p.get("decided_by"),
            p.get("reason"),
        ]
        for p in promotions
    ]
    table(["ID", "SUBJECT", "VERSION", "TO", "STATUS", "REQUESTED BY", "REQUESTED", "DECIDED BY", "REASON"], rows, "No promotion requests.")
    return 0


def cmd_audit(api: ApiClient, args: argparse.Namespace) -> int:
    params = {k: v for k, v in (("subject", args.subject), ("action", args.action), ("actor", args.actor)) if v}
    count, events = api.get_list("audit", params, limit=args.limit)
    if args.json:
        print_json({"count": count, "results": events})
        return 0
    rows = [
        [
            when(e.get("at")),
            e.get("actor"),
            e.get("action"),
            e.get("subject"),
            version_label(e.get("version")),
            f"{e.get('from_stage') or '-'} -> {e.get('to_stage') or '-'}",
            e.get("reason"),
        ]
        for e in events
    ]
    table(["AT", "ACTOR", "ACTION", "SUBJECT", "VERSION", "STAGES", "REASON"], rows, "No audit events.")
    return 0


def cmd_whoami(api: ApiClient, args: argparse.Namespace) -> int:
    body = api.get("me")
    if args.json:
        print_json(body)
    else:
        print(f"{body['username']} ({body.get('role') or 'no role'})")
    return 0


# --- arguments -----------------------------------------------------------------------------


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not (math.isfinite(number) and number > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {value!r}")
    return number


def _add_common(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    # On subcommands the defaults are SUPPRESS, so `cmd --json` and `--json cmd` both work
    # and a subcommand never overwrites what was given before it.
    def default(value):
        return argparse.SUPPRESS if suppress else value

    parser.add_argument("--url", default=default(None), help="server address (default: $MLOPS_URL)")
    parser.add_argument("--token", default=default(None), help="API token (default: $MLOPS_TOKEN)")
    parser.add_argument("--timeout", type=_positive_float, default=default(30.0), help="seconds per request (default: 30)")
    parser.add_argument("--json", action="store_true", default=default(False), help="print the server's JSON answer")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlops" if Path(sys.argv[0]).name == "mlops" else "python -m mlops_client",
        description="Register, evaluate, gate, promote, approve and roll back model and prompt versions on the MLOps control plane.",
        epilog="Exit codes: 0 done, 1 stage empty, 2 usage or local input, 3 connection or timeout, 4 HTTP 4xx, 5 HTTP 5xx, "
        "6 gate failed, 7 evaluation failed, 8 evaluation still running after --max-wait.",
    )
    parser.add_argument("--version", action="version", version=f"mlops-client {__version__}")
    _add_common(parser, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    _add_common(common, suppress=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        return p

    p = command("register", cmd_register, "Register the next version of a model; prints its number.")
    p.add_argument("--model", required=True)
    p.add_argument("--params", metavar="JSON", help="file path, - for stdin, or inline JSON object")
    p.add_argument("--metrics", metavar="JSON", help="file path, - for stdin, or inline JSON object (finite numbers)")
    p.add_argument("--tags", metavar="JSON", help="file path, - for stdin, or inline JSON object (string values)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--artifact", metavar="FILE", help="upload this file (stored with its sha256)")
    where.add_argument("--artifact-uri", metavar="URI", help="record where the artifact lives instead of uploading it")
    p.add_argument("--code-commit", metavar="SHA", help="default: $GITHUB_SHA when set")
    p.add_argument("--data-version", metavar="V")
    p.add_argument("--image-tag", metavar="T")
    p.add_argument("--description", metavar="D")

    p = command("promote", cmd_promote, "Request a promotion; prints the request id and status.")
    p.add_argument("--model", required=True)
    p.add_argument("--version", required=True, type=version_arg, metavar="N|latest")
    p.add_argument("--to", required=True, choices=STAGES)
    p.add_argument("--reason", required=True)
    add_canary_arguments(p, "production")

    p = command("approve", cmd_decide, "Approve a pending promotion request of a model or prompt (not your own).")
    p.add_argument("promotion_id", type=int, metavar="PROMOTION_ID")
    p.add_argument("--comment")

    p = command("reject", cmd_decide, "Reject a pending promotion request, saying why.")
    p.add_argument("promotion_id", type=int, metavar="PROMOTION_ID")
    p.add_argument("--comment", required=True)

    p = command("rollback", cmd_rollback, "Put the previous version back into a stage; prints its number.")
    p.add_argument("--model", required=True)
    p.add_argument("--stage", required=True, choices=STAGES)
    p.add_argument("--reason", required=True)

    p = command("models", cmd_models, "List models with their latest, staging and production versions.")
    p.add_argument("--search")
    p.add_argument("--limit", type=int, default=100, help="at most this many (0 = all; default 100)")

    p = command("show", cmd_show, "One model and its versions, newest first.")
    p.add_argument("--model", required=True)

    p = command("version", cmd_version, "All fields of one version.")
    p.add_argument("--model", required=True)
    p.add_argument("--version", required=True, type=version_arg, metavar="N|latest")

    p = command("stage", cmd_stage, "Print the version number in a stage (exit 1 if none).")
    p.add_argument("--model", required=True)
    p.add_argument("--stage", required=True, choices=STAGES)

    p = command("promotions", cmd_promotions, "List promotion requests, newest first.")
    p.add_argument("--status", choices=PROMOTION_STATUSES)
    p.add_argument("--model")
    p.add_argument("--limit", type=int, default=100, help="at most this many (0 = all; default 100)")

    p = command("audit", cmd_audit, "List audit events, newest first.")
    p.add_argument("--subject", help="model:NAME or prompt:NAME")
    p.add_argument("--action")
    p.add_argument("--actor")
    p.add_argument("--limit", type=int, default=100, help="at most this many (0 = all; default 100)")

    p = command("route", cmd_route, "Print the version that serves a unit of a model (or prompt) now, canaries included.")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model")
    which.add_argument("--prompt")
    p.add_argument("--unit", required=True, metavar="UNIT_ID", help="the user, session... id that is routed")

    command("whoami", cmd_whoami, "Print the user and role the token belongs to.")
    gates.add_commands(sub, common)
    prompts.add_commands(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        url = args.url or os.environ.get("MLOPS_URL", "")
        token = args.token or os.environ.get("MLOPS_TOKEN", "")
        if not url.strip():
            raise UsageError("MLOPS_URL is not set (or pass --url), e.g. MLOPS_URL=https://mlops.example.com.")
        if not token.strip():
            raise UsageError("MLOPS_TOKEN is not set (or pass --token).")
        api = ApiClient(url=url, token=token.strip(), timeout=args.timeout)
        return args.handler(api, args)
    except CliError as exc:
        hint = " Check the token (MLOPS_TOKEN or --token)." if isinstance(exc, ApiError) and exc.status == 401 else ""
        print(f"error: {exc.line}{hint}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `... | head`: the reader has gone. Point stdout at /dev/null so the exit flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0

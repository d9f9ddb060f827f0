"""`python -m mlops_client prompts <command>`: import a prompts folder, promote, roll back, show and render versions."""

from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
import time
from typing import Any

from .client import ApiClient, ApiError, UsageError, segment, version_number
from .inputs import add_canary_arguments, canary_fields, load_json_object, read_folder, version_arg
from .output import print_json, table, version_label, when

ENVIRONMENTS = ("dev", "staging", "prod")
JSON_IMPORT_MAX_BYTES = 8 * 1024 * 1024  # larger folders (or any file that is not UTF-8) go as a .tar.gz


# --- import ----------------------------------------------------------------------------------


def folder_archive(files: dict[str, bytes]) -> bytes:
    """A .tar.gz of `files` built in memory: regular files only, paths as given."""
    buffer = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o644, now
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def json_body(files: dict[str, bytes]) -> dict | None:
    """`{"files": {path: text}}` if every file is UTF-8 text and the body stays under 8 MB, else None."""
    if sum(len(data) for data in files.values()) >= JSON_IMPORT_MAX_BYTES:
        return None
    try:
        body = {"files": {path: data.decode("utf-8") for path, data in files.items()}}
    except UnicodeDecodeError:
        return None  # the server decides: it ignores a binary file that is no prompt file, and names one that is
    return body if len(json.dumps(body)) < JSON_IMPORT_MAX_BYTES else None


def _explain_import_error(exc: ApiError) -> None:
    """Before the `error:` line: one `file:line: message` line per problem, or the changed files."""
    problems = exc.extra.get("problems") if exc.status == 400 else None
    if isinstance(problems, list) and problems:
        for p in problems:
            where = f"{p.get('file')}:{p['line']}" if p.get("line") else str(p.get("file"))
            print(f"{where}: {p.get('message')}", file=sys.stderr)
        exc.line = f"{exc.status} bad request ({exc.code}): {len(problems)} problem(s) in the prompts folder; nothing was imported."
    changed = exc.extra.get("files") if exc.status == 409 else None
    if isinstance(changed, list):
        for name in changed:
            print(f"{name}: changed under an existing version number", file=sys.stderr)


def cmd_import(api: ApiClient, args: argparse.Namespace) -> int:
    files = read_folder(args.path)
    if all(path.startswith("prompts/") for path in files):
        # PATH holds only a prompts/ folder: import that, whether sent as JSON or as an archive (where the server drops it).
        files = {path[len("prompts/") :]: data for path, data in files.items()}
    body = None if args.archive else json_body(files)
    try:
        if body is not None:
            answer = api.post("prompts/import", body)
        else:
            data = folder_archive(files)
            answer = api.post_bytes(
                "prompts/import", file_field="archive", filename="prompts.tar.gz", data=data, content_type="application/gzip"
            )
    except ApiError as exc:
        _explain_import_error(exc)
        raise
    if args.json:
        print_json(answer)
        return 0
    created, unchanged = answer.get("created", []), answer.get("unchanged", [])
    requested, ignored = answer.get("requested", []), answer.get("ignored", [])
    for label, names in (("created", created), ("unchanged", unchanged)):
        for name in names:
            print(f"{label:<10} {name}")
    for entry in requested:
        promotion = f" (promotion {entry['promotion_id']})" if entry.get("promotion_id") else ""
        print(f"requested  {entry.get('prompt')} {entry.get('environment')} -> v{entry.get('version')}: {entry.get('status')}{promotion}")
    for name in ignored:
        print(f"ignored    {name}")
    print(f"{len(created)} created, {len(unchanged)} unchanged, {len(requested)} environment change(s) requested, {len(ignored)} ignored.")
    if ignored and not (created or unchanged or requested):
        print(
            f"warning: no prompt files (NAME/vN.yaml, NAME/eval_set.jsonl, config.yaml) in {args.path}; is it the prompts folder?",
            file=sys.stderr,
        )
    return 0


# --- the other commands ------------------------------------------------------------------------


def _resolve_version(api: ApiClient, name: str, version: str) -> int:
    return version_number(api, "prompts", name, version, label=f"prompt {name}")


def cmd_promote(api: ApiClient, args: argparse.Namespace) -> int:
    fields = canary_fields(args)
    number = _resolve_version(api, args.name, args.version)
    body = api.post(f"prompts/{segment(args.name)}/versions/{number}/promotions", {"to": args.to, "reason": args.reason, **fields})
    if args.json:
        print_json(body)
    else:
        print(body["id"], body["status"])
    return 0


def cmd_rollback(api: ApiClient, args: argparse.Namespace) -> int:
    body = api.post(f"prompts/{segment(args.name)}/rollback", {"environment": args.environment, "reason": args.reason})
    if args.json:
        print_json(body)
    else:
        print(body["version"])
    return 0


def cmd_list(api: ApiClient, args: argparse.Namespace) -> int:
    count, prompts = api.get_list("prompts", {"search": args.search} if args.search else {}, limit=args.limit)
    if args.json:
        print_json({"count": count, "results": prompts})
        return 0
    rows = [
        [p["name"], version_label(p.get("latest_version"))]
        + [version_label((p.get("environments") or {}).get(env)) for env in ENVIRONMENTS]
        + [p.get("pending_promotions", 0)]
        for p in prompts
    ]
    table(["NAME", "LATEST", "DEV", "STAGING", "PROD", "PENDING"], rows, "No prompts.")
    return 0


def cmd_show(api: ApiClient, args: argparse.Namespace) -> int:
    prompt = api.get(f"prompts/{segment(args.name)}")
    if args.json:
        print_json(prompt)
        return 0
    environments = prompt.get("environments") or {}
    print(
        f"{prompt['name']}  latest {version_label(prompt.get('latest_version'))}  "
        + "  ".join(f"{env} {version_label(environments.get(env))}" for env in ENVIRONMENTS)
        + f"  pending requests {prompt.get('pending_promotions', 0)}"
    )
    rows = [
        [
            f"v{v['version']}",
            ",".join(env for env in ENVIRONMENTS if environments.get(env) == v["version"]),
            v.get("model"),
            v.get("temperature"),
            v.get("max_tokens"),
            version_label(v.get("eval_set_version")),
            when(v.get("created_at")),
            v.get("created_by"),
            v.get("file_name"),
        ]
        for v in prompt.get("versions", [])
    ]
    table(["VERSION", "RUNS IN", "MODEL", "TEMP", "MAX TOKENS", "EVAL SET", "CREATED", "BY", "FILE"], rows, "No versions.")
    return 0


def _variables(args: argparse.Namespace) -> dict[str, Any]:
    variables: dict[str, Any] = load_json_object("--vars", args.vars) if args.vars is not None else {}
    given: set[str] = set()
    for item in args.var:
        name, _, value = item.partition("=")
        if name in given:
            raise UsageError(f"--var {name} is given twice.")
        given.add(name)
        variables[name] = value
    return variables


def cmd_render(api: ApiClient, args: argparse.Namespace) -> int:
    variables = _variables(args)  # local input first: a bad --vars file costs no request
    if args.environment:
        number = api.get(f"prompts/{segment(args.name)}/environments/{args.environment}")["version"]
    else:
        number = _resolve_version(api, args.name, args.version)
    body = api.post(f"prompts/{segment(args.name)}/versions/{number}/render", {"variables": variables})
    if args.json:
        print_json(body)
        return 0
    print(
        f"{args.name} v{number}  model {body.get('model')}  temperature {body.get('temperature')}  max_tokens {body.get('max_tokens') or '-'}"
    )
    print("--- system")
    print(body.get("system") or "", end="" if (body.get("system") or "").endswith("\n") else "\n")
    print("--- prompt")
    print(body.get("prompt") or "", end="" if (body.get("prompt") or "").endswith("\n") else "\n")
    return 0


# --- arguments -----------------------------------------------------------------------------------


def _var_arg(value: str) -> str:
    name, sep, _ = value.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {value!r}")
    return value


def add_commands(sub, common: argparse.ArgumentParser) -> None:
    """The `prompts` command and its subcommands, under the main parser's subcommands `sub`."""
    help_text = "Prompts: import a folder, promote, roll back, show and render versions."
    parser = sub.add_parser("prompts", parents=[common], help=help_text, description=help_text)
    prompts = parser.add_subparsers(dest="prompts_command", required=True, metavar="PROMPTS_COMMAND")

    def command(name: str, handler, text: str) -> argparse.ArgumentParser:
        p = prompts.add_parser(name, parents=[common], help=text, description=text)
        p.set_defaults(handler=handler)
        return p

    p = command("import", cmd_import, "Sync a prompts folder (NAME/vN.yaml, NAME/eval_set.jsonl, config.yaml); all or nothing.")
    p.add_argument("path", metavar="PATH", help="the prompts folder; hidden files and folders are skipped, links refused")
    p.add_argument("--archive", action="store_true", help="send a .tar.gz even when the folder is small")

    p = command("promote", cmd_promote, "Request that an environment run a version; prints the request id and status.")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--version", required=True, type=version_arg, metavar="N|latest")
    p.add_argument("--to", required=True, choices=ENVIRONMENTS)
    p.add_argument("--reason", required=True)
    add_canary_arguments(p, "prod")

    p = command("rollback", cmd_rollback, "Put the version an environment ran before back; prints its number.")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--environment", required=True, choices=ENVIRONMENTS)
    p.add_argument("--reason", required=True)

    p = command("list", cmd_list, "List prompts with the version each environment runs.")
    p.add_argument("--search")
    p.add_argument("--limit", type=int, default=100, help="at most this many (0 = all; default 100)")

    p = command("show", cmd_show, "One prompt: its versions, newest first, and which version each environment runs.")
    p.add_argument("name", metavar="NAME")

    p = command("render", cmd_render, "Fill a version's template with variables; prints the system and prompt text.")
    p.add_argument("name", metavar="NAME")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--version", type=version_arg, metavar="N|latest")
    which.add_argument("--environment", choices=ENVIRONMENTS, help="the version this environment runs")
    p.add_argument("--var", type=_var_arg, action="append", default=[], metavar="NAME=VALUE", help="one variable (repeatable)")
    p.add_argument("--vars", metavar="JSON", help="variables as a JSON object: file path, - for stdin, or inline")

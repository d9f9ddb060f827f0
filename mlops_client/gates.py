"""Quality gates from a pipeline: `evaluate`, `evaluate-prompt`, `gate`, `schema`, `policy`.

`evaluate` uploads predictions and labels (or data to validate) and `evaluate-prompt` runs a prompt
version over its eval set; the server computes them in the background. `gate` is the step that
decides: it waits while an evaluation of the version is pending or running, prints each check of
the policy with its value and where it came from, and exits 6 when a check failed or never ran.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from typing import Any

from .client import (
    EXIT_EVALUATION_FAILED,
    EXIT_GATE_FAILED,
    EXIT_STILL_RUNNING,
    UNFINISHED,
    ApiClient,
    CliError,
    UsageError,
    segment,
    version_number,
)
from .inputs import existing_file, load_json_object, version_arg
from .output import print_json, table, when

RECENT = 100  # `gate` looks at the version's newest evaluations, this many, for unfinished and failed ones
MODEL_ONLY_OPTIONS = ("label_column", "prediction_column", "score_column", "group_column", "positive_label")


# --- shared -------------------------------------------------------------------------------------


FIGURE_ORDER = [
    "accuracy", "precision", "recall", "f1", "roc_auc", "demographic_parity_difference", "equalized_odds_difference",
    "schema_violations", "invalid_rows", "valid_share", "format_valid", "relevance", "safety",
]

def _subject(args: argparse.Namespace) -> tuple[str, str]:
    """("models", name) or ("prompts", name) from `--model` / `--prompt`."""
    return ("models", args.model) if getattr(args, "model", None) else ("prompts", args.prompt)


def figure(value: Any) -> str:
    """A metric for a table: integers as they are, other numbers with 6 significant digits."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or (value.is_integer() and abs(value) < 1e15):
        return str(int(value))
    return f"{value:.6g}"


def _describe(check: dict) -> str:
    if check.get("status") == "not_run":  # the server says why: never ran, or only evidence that does not count
        return check.get("problem") or f"{check['check']} never ran"
    return f"{check['check']} = {figure(check.get('value'))} (needs {check['op']} {figure(check['threshold'])})"


def _sleep_until(deadline: float, interval: float) -> None:
    time.sleep(max(0.0, min(interval, deadline - time.monotonic())))


# --- evaluate, evaluate-prompt --------------------------------------------------------------------


def _label_value(text: str) -> int | float | str:
    """`--positive-label`: numbers as numbers (the server reads numeric label columns as numbers), else text."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def _evaluation_options(args: argparse.Namespace) -> dict[str, Any]:
    given = {key: getattr(args, key) for key in (*MODEL_ONLY_OPTIONS, "data_version") if getattr(args, key) is not None}
    if args.kind == "data":
        misplaced = [f"--{key.replace('_', '-')}" for key in MODEL_ONLY_OPTIONS if key in given]
        if misplaced:
            raise UsageError(f"{', '.join(misplaced)}: only for --kind model (a data evaluation reads the model's dataset schema).")
    if "positive_label" in given:
        given["positive_label"] = _label_value(given["positive_label"])
    return given


def cmd_evaluate(api: ApiClient, args: argparse.Namespace) -> int:
    path = existing_file("--file", args.file)
    options = _evaluation_options(args)  # local input first: a bad flag costs no request
    number = version_number(api, "models", args.model, args.version)
    body = api.post_file(
        f"models/{segment(args.model)}/versions/{number}/evaluations",
        fields={"kind": args.kind, "options": json.dumps(options, allow_nan=False)}, file_field="file", file_path=path,
    )
    return _report(api, body, args)


def cmd_evaluate_prompt(api: ApiClient, args: argparse.Namespace) -> int:
    options: dict[str, Any] = {"provider": args.provider}
    if args.responses:
        if args.provider != "replay":
            raise UsageError("--responses goes with --provider replay.")
        path = existing_file("--responses", args.responses)
        try:
            options["responses"] = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"--responses {args.responses}: not UTF-8 text.") from None
    number = version_number(api, "prompts", args.prompt, args.version)
    body = api.post(f"prompts/{segment(args.prompt)}/versions/{number}/evaluations", options)
    return _report(api, body, args)


def _report(api: ApiClient, evaluation: dict, args: argparse.Namespace) -> int:
    """Without --wait: `<id> <status>`. With --wait: the finished evaluation, exit 7 if it failed, 8 if it is not done in time."""
    if args.wait:
        deadline = time.monotonic() + args.max_wait
        while evaluation.get("status") in UNFINISHED and time.monotonic() < deadline:
            _sleep_until(deadline, args.interval)
            evaluation = api.get(f"evaluations/{evaluation['id']}")
    if args.json:
        print_json(evaluation)
    elif args.wait and evaluation.get("status") == "done":
        print_evaluation(evaluation)
    else:
        print(evaluation["id"], evaluation["status"])
    number, status = evaluation["id"], evaluation.get("status")
    if args.wait and status in UNFINISHED:
        raise CliError(
            f"evaluation {number} is still {status} after {args.max_wait:g} s (--max-wait); it goes on on the server "
            f"(is a worker running?): `gate` waits for it, GET /api/v1/evaluations/{number} shows it.",
            EXIT_STILL_RUNNING,
        )
    if args.wait and status == "failed":
        raise CliError(f"evaluation {number} failed: {evaluation.get('error') or 'no reason given'}", EXIT_EVALUATION_FAILED)
    return 0


def print_evaluation(e: dict) -> None:
    """`<id> done`, a line saying what ran on what, the figures, then the kind's details (groups, violations)."""
    details = e.get("details") or {}
    subject = f"{e.get('model') or e.get('prompt')} v{e.get('version')}"
    rows = details.get("rows", (details.get("report") or {}).get("rows"))
    size = f", {rows:,} rows" if isinstance(rows, int) and e.get("kind") != "prompt" else ""  # a prompt's source names its rows
    print(e["id"], e["status"])
    print(f"{e.get('kind')} evaluation of {subject} on {e.get('source') or '-'}{size}, finished {when(e.get('finished_at'))}")
    if e.get("origin") == "typed_replay":
        print("note: a replay of responses typed in with the request: its figures never count for a gate")
    metrics = e.get("metrics") or {}
    # A fixed order: PostgreSQL's jsonb does not keep the keys' order.
    ordered = sorted(metrics, key=lambda name: (FIGURE_ORDER.index(name) if name in FIGURE_ORDER else len(FIGURE_ORDER), name))
    table(["FIGURE", "VALUE"], [[name, figure(metrics[name])] for name in ordered], "No figures.")
    fairness = details.get("fairness")
    if fairness and fairness.get("by_group"):
        print()
        table(
            [f"GROUP ({fairness.get('column') or '-'})", "ROWS", "SELECTION RATE", "TPR", "FPR", "ACCURACY"],
            [[g.get("group"), g.get("n"), figure(g.get("selection_rate")), figure(g.get("tpr")), figure(g.get("fpr")),
              figure(g.get("accuracy"))] for g in fairness["by_group"]],
            "",
        )
        if fairness.get("note"):
            print(f"note: {fairness['note']}")
    if details.get("not_run"):
        print(f"not run (no figure): {', '.join(map(str, details['not_run']))}")
    if details.get("rows_with_errors"):
        print(f"rows with errors: {details['rows_with_errors']} (GET /api/v1/evaluations/{e['id']} lists them)")
    violations = (details.get("report") or {}).get("violations")
    if violations:
        print()
        table(["COLUMN", "VIOLATION", "CELLS", "MESSAGE"], [[v.get("column"), v.get("kind"), v.get("count"), v.get("message")] for v in violations], "")


# --- gate ---------------------------------------------------------------------------------------


def _settled(api: ApiClient, base: str, label: str, args: argparse.Namespace) -> list[dict]:
    """The version's newest evaluations once none is pending or running (exit 8 after --max-wait)."""
    deadline = time.monotonic() + args.max_wait
    announced = False
    while True:
        recent = api.get(f"{base}/evaluations", {"page_size": RECENT}).get("results", [])
        waiting = [e for e in recent if e.get("status") in UNFINISHED]
        if not waiting:
            return recent
        names = ", ".join(f"{e['id']} ({e.get('kind')}, {e['status']})" for e in waiting)
        if time.monotonic() >= deadline:
            raise CliError(
                f"evaluation(s) {names} of {label} still not finished after {args.max_wait:g} s (--max-wait); is a worker running?",
                EXIT_STILL_RUNNING,
            )
        if not announced and not args.json:
            print(f"waiting for evaluation(s) {names} of {label}, up to {args.max_wait:g} s", flush=True)
            announced = True
        _sleep_until(deadline, args.interval)


def _failed_since_done(recent: list[dict]) -> list[dict]:
    """Failed evaluations newer than the newest finished one of their kind: the gate reads older figures than expected."""
    done: set[str] = set()
    out = []
    for e in recent:  # newest first
        if e.get("status") == "done":
            done.add(e.get("kind"))
        elif e.get("status") == "failed" and e.get("kind") not in done:
            out.append(e)
    return out


def cmd_gate(api: ApiClient, args: argparse.Namespace) -> int:
    collection, name = _subject(args)
    number = version_number(api, collection, name, args.version)
    base = f"{collection}/{segment(name)}/versions/{number}"
    label = f"{name} v{number}"
    state = api.get(f"{base}/gates")
    recent: list[dict] = []
    if state.get("policy"):  # without a policy nothing is checked: no reason to wait
        recent = _settled(api, base, label, args)
        state = api.get(f"{base}/gates")
    if args.json:
        print_json(state)
    else:
        _print_gates(state, label, recent, args)
    failed = [c for c in state.get("checks", []) if c.get("status") != "passed"] if state.get("policy") else []
    if failed:
        raise CliError(f"gates not passed for {label}: {'; '.join(_describe(c) for c in failed)}.", EXIT_GATE_FAILED)
    return 0


def _print_gates(state: dict, label: str, recent: list[dict], args: argparse.Namespace) -> None:
    if not state.get("policy"):
        flag = "--model" if getattr(args, "model", None) else "--prompt"
        print(f"{label}: no gate policy, nothing to check (an approver sets one: policy {flag} NAME --default).")
        return
    checks = state.get("checks", [])
    passed = sum(c.get("status") == "passed" for c in checks)
    enforced = "enforced: promotions wait for it" if state.get("enforced") else "not enforced: promotions do not wait for it"
    print(f"{label}: {passed} of {len(checks)} check(s) passed (policy {enforced})")
    rows = [
        [
            c["check"], figure(c.get("value")), f"{c['op']} {figure(c['threshold'])}", c.get("status"),
            f"#{c['evaluation_id']} {c.get('kind')}: {c.get('source') or '-'}, {when(c.get('ran_at'))}, by {c.get('produced_by') or 'unknown'}"
            if c.get("evaluation_id") else "-",
        ]
        for c in checks
    ]
    table(["CHECK", "VALUE", "NEEDS", "STATUS", "SOURCE"], rows, "The policy has no checks.")
    for c in checks:
        for o in c.get("passed_over") or []:
            print(f"note: {c['check']} of #{o['evaluation_id']} (by {o.get('produced_by') or 'unknown'}) does not count: {o.get('reason')}")
    for e in _failed_since_done(recent):
        print(f"note: the newest {e.get('kind')} evaluation, {e['id']} ({e.get('source') or '-'}), failed: {e.get('error') or '-'}")


# --- schema, policy ------------------------------------------------------------------------------


def cmd_schema(api: ApiClient, args: argparse.Namespace) -> int:
    path = f"models/{segment(args.model)}/schema"
    if args.infer:
        reference = existing_file("--infer", args.infer)
        body = api.post_file(path, fields={}, file_field="file", file_path=reference, method="PUT")
    elif args.file:
        body = api.put(path, load_json_object("--file", args.file))
    else:
        body = api.get(path)
    if args.json:
        print_json(body)
        return 0
    schema = body.get("schema") or {}
    columns = schema.get("columns", [])
    extra = "allowed" if schema.get("allow_extra_columns", True) else "refused"
    print(f"{args.model} dataset schema: {len(columns)} column(s), extra columns {extra}; {body.get('source') or '-'}, {when(body.get('updated_at'))}")
    rows = [
        [
            c.get("name"), c.get("type"), "yes" if c.get("required", True) else "no", figure(c.get("nullable_share")), figure(c.get("min")),
            figure(c.get("max")),
            "any" if c.get("categories") is None else ", ".join(map(str, c["categories"])) + (" (+new)" if c.get("allow_new_categories") else ""),
        ]
        for c in columns
    ]
    table(["COLUMN", "TYPE", "REQUIRED", "MISSING <=", "MIN", "MAX", "CATEGORIES"], rows, "No columns.")
    return 0


def cmd_policy(api: ApiClient, args: argparse.Namespace) -> int:
    collection, name = _subject(args)
    path = f"{collection}/{segment(name)}/gate-policy"
    if args.default or args.file:
        body = {"checks": "default"} if args.default else load_json_object("--file", args.file)
        if "checks" not in body:
            raise UsageError('--file: a JSON object with "checks": [{"check": "accuracy", "op": ">=", "threshold": 0.92}, ...].')
        if args.not_enforced:
            body["enforced"] = False
        answer = api.put(path, body)
    else:
        if args.not_enforced:
            raise UsageError("--not-enforced goes with --default or --file.")
        answer = api.get(path)
    if args.json:
        print_json(answer)
        return 0
    if not answer.get("exists"):
        print(f"{name} has no gate policy.")
        return 0
    enforced = "enforced" if answer.get("enforced") else "not enforced"
    print(f"{name} gate policy: {len(answer.get('checks', []))} check(s), {enforced}; set by {answer.get('updated_by') or '-'}, "
          f"{when(answer.get('updated_at'))}")
    table(["CHECK", "NEEDS"], [[c["check"], f"{c['op']} {figure(c['threshold'])}"] for c in answer.get("checks", [])], "No checks.")
    return 0


# --- arguments -----------------------------------------------------------------------------------


def _seconds(value: str, *, zero: bool) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not math.isfinite(number) or number < 0 or (number == 0 and not zero):
        raise argparse.ArgumentTypeError(f"expected a {'non-negative' if zero else 'positive'} number of seconds, got {value!r}")
    return number


def add_commands(sub, common: argparse.ArgumentParser) -> None:
    """The quality-gate commands, under the main parser's subcommands `sub`."""

    def command(name: str, handler, text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=text, description=text)
        p.set_defaults(handler=handler)
        return p

    def waiting(p: argparse.ArgumentParser, *, optional: bool) -> None:
        if optional:
            p.add_argument("--wait", action="store_true", help="wait for the result and print its figures")
        p.add_argument("--max-wait", type=lambda v: _seconds(v, zero=True), default=600.0, metavar="S",
                       help="give up waiting after this many seconds, exit 8 (default 600; --timeout is per request)")
        p.add_argument("--interval", type=lambda v: _seconds(v, zero=False), default=2.0, metavar="S",
                       help="seconds between two looks (default 2)")

    def model_or_prompt(p: argparse.ArgumentParser) -> None:
        which = p.add_mutually_exclusive_group(required=True)
        which.add_argument("--model", metavar="NAME")
        which.add_argument("--prompt", metavar="NAME")

    p = command("evaluate", cmd_evaluate, "Upload predictions and labels (or data to validate) of a model version; prints the evaluation id.")
    p.add_argument("--model", required=True, metavar="NAME")
    p.add_argument("--version", required=True, type=version_arg, metavar="N|latest")
    p.add_argument("--file", required=True, metavar="FILE", help="CSV, JSON lines or Parquet")
    p.add_argument("--kind", choices=("model", "data"), default="model",
                   help="model: metrics and fairness from predictions and labels; data: validation against the model's schema")
    p.add_argument("--label-column", metavar="COL", help="default: label")
    p.add_argument("--prediction-column", metavar="COL", help="default: prediction")
    p.add_argument("--score-column", metavar="COL", help="default: score, when present (for ROC AUC)")
    p.add_argument("--group-column", metavar="COL", help="sensitive attribute for fairness, e.g. gender")
    p.add_argument("--positive-label", metavar="VALUE", help="default: 1 / true when present, else the larger label")
    p.add_argument("--data-version", metavar="V", help="what data this is, shown with the figures")
    waiting(p, optional=True)

    p = command("evaluate-prompt", cmd_evaluate_prompt, "Run a prompt version over its eval set on the server; prints the evaluation id.")
    p.add_argument("--prompt", required=True, metavar="NAME")
    p.add_argument("--version", required=True, type=version_arg, metavar="N|latest")
    p.add_argument("--provider", choices=("replay", "openai"), default="replay",
                   help="replay: the outputs recorded in the eval set (offline; default); openai: the server's LLM endpoint")
    p.add_argument("--responses", metavar="FILE",
                   help="replay these outputs instead: JSON lines with `index` (0-based row) or `id`, and `output` "
                        "(shown, but never counted for a gate)")
    waiting(p, optional=True)

    p = command("gate", cmd_gate, "Wait for a version's evaluations, print its gate checks; exit 6 if one failed or never ran.")
    model_or_prompt(p)
    p.add_argument("--version", required=True, type=version_arg, metavar="N|latest")
    waiting(p, optional=False)

    p = command("schema", cmd_schema, "Show a model's dataset schema, or set it from a JSON file or a reference data file.")
    p.add_argument("--model", required=True, metavar="NAME")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--infer", metavar="FILE", help="infer the schema from this reference file (CSV, JSON lines, Parquet)")
    source.add_argument("--file", metavar="JSON", help='the schema as JSON {"columns": [...]}: file path, - for stdin, or inline')

    p = command("policy", cmd_policy, "Show the gate policy of a model or prompt, or set it (approvers).")
    model_or_prompt(p)
    checks = p.add_mutually_exclusive_group()
    checks.add_argument("--default", action="store_true", help="the default checks (see docs/gates.md)")
    checks.add_argument("--file", metavar="JSON", help='{"checks": [{"check", "op", "threshold"}, ...]}: file path, - for stdin, or inline')
    p.add_argument("--not-enforced", action="store_true", help="record the checks without holding promotions back")

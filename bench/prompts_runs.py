"""The three ways of importing the folder, timed and checked: `setup`, `command`, `inproc` and `http` of prompts_bench.py.

Each counts the rows before and after and fails if a first import did not create what the folder asks for,
or if a re-import created anything.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from common import REPO_DIR, django_setup, mib, normalise_sql, profile_summary, write_json

EDITOR = "bench-editor"


# --- counting and checking ---------------------------------------------------------------------


def counts() -> dict[str, int]:
    from registry.models import AuditEvent, EvalSet, PromotionRequest, Prompt, PromptDeployment, PromptVersion, StageChange

    return {
        "prompts": Prompt.objects.count(),
        "prompt_versions": PromptVersion.objects.count(),
        "eval_sets": EvalSet.objects.count(),
        "promotion_requests": PromotionRequest.objects.filter(prompt__isnull=False).count(),
        "promotion_requests_pending": PromotionRequest.objects.filter(prompt__isnull=False, status="pending").count(),
        "deployments": PromptDeployment.objects.count(),
        "stage_changes": StageChange.objects.filter(prompt__isnull=False).count(),
        "audit_events": AuditEvent.objects.count(),
    }


def check(kind: str, before: dict, after: dict, generated: dict) -> dict:
    """What the import created; a first import must create the whole folder, a re-import nothing at all."""
    created = {k: after[k] - before[k] for k in after}
    p, v = generated["prompts"], generated["versions_per_prompt"]
    if kind == "first":
        # config.yaml: dev moves at once (no approval needed), staging and prod become pending requests.
        expected = {"prompts": p, "prompt_versions": p * v, "eval_sets": p, "promotion_requests": 3 * p,
                    "promotion_requests_pending": 2 * p, "deployments": p}
        wrong = {k: (created[k], n) for k, n in expected.items() if created[k] != n}
        if wrong:
            raise SystemExit(f"first import: unexpected rows created (got, expected): {wrong}")
    else:
        wrong = {k: n for k, n in created.items() if n}
        if wrong:
            raise SystemExit(f"no-change re-import created rows: {wrong}")
    return created


def _close_db() -> None:
    from django.db import connections

    connections.close_all()


# --- setup -------------------------------------------------------------------------------------


def cmd_setup(args) -> None:
    django_setup()
    from mlops_site.roles import user_set_role, user_token_refresh

    editor = user_set_role(username=EDITOR, role="editor")
    write_json(args.out, {"user": EDITOR, "token": user_token_refresh(user=editor)})


# --- command -----------------------------------------------------------------------------------


def cmd_command(args) -> None:
    """`manage.py import_prompts` as a user runs it: a fresh process, Django start-up included."""
    django_setup()
    generated = json.loads(Path(args.generated).read_text())
    before = counts()
    _close_db()
    argv = [sys.executable, str(REPO_DIR / "manage.py"), "import_prompts", args.dir, "--user", EDITOR]
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO_DIR, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"import_prompts failed ({done.returncode}):\n{done.stderr[-3000:]}")
    after = counts()
    created = check(args.kind, before, after, generated)
    lines = done.stdout.strip().splitlines()
    out = {
        "way": "command", "kind": args.kind, "seconds": round(seconds, 2),
        "files_per_s": round(generated["files"] / seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        "summary": lines[-1] if lines else "", "created": created, "counts_after": after,
        "argv": " ".join(["python", "manage.py", *argv[2:]]),
    }
    write_json(args.out, out)
    print(f"  command {args.kind}: {seconds:.2f} s ({out['files_per_s']} files/s, peak RSS {out['peak_rss_mb']} MB): {out['summary']}")


# --- inproc ------------------------------------------------------------------------------------


def cmd_inproc(args) -> None:
    """read_folder + prompts_import in this process; the peak RSS is this process's (Django loaded, nothing else)."""
    django_setup()
    from django.contrib.auth import get_user_model
    from django.db import connection

    from registry.prompt_files import read_folder
    from registry.services import prompts_import

    generated = json.loads(Path(args.generated).read_text())
    actor = get_user_model().objects.get(username=EDITOR)
    before = counts()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    statements: list[str] = []

    def count_sql(execute, sql, params, many, context):  # one list append a statement: no measurable cost
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count_sql):
        started = time.perf_counter()
        files = read_folder(args.dir)
        read_s = time.perf_counter() - started
        result = prompts_import(files=files, actor=actor)
        seconds = time.perf_counter() - started
    if profiler is not None:
        profiler.disable()
    shapes = _tally(normalise_sql(sql) for sql in statements)
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    after = counts()
    created = check(args.kind, before, after, generated)
    out = {
        "way": "inproc", "kind": args.kind, "seconds": round(seconds, 2), "read_folder_s": round(read_s, 2),
        "import_s": round(seconds - read_s, 2), "files_per_s": round(generated["files"] / seconds, 1),
        "peak_rss_mb": round(rss_peak, 1), "rss_before_mb": round(rss_before, 1),
        "result": {"created": len(result.created), "unchanged": len(result.unchanged), "requested": len(result.requested),
                   "requested_status": _tally(e["status"] for e in result.requested)},
        "created": created, "counts_after": after, "profiled": bool(profiler),
        "sql_statements": len(statements),
        "sql_top_shapes": [{"count": n, "sql": shape[:300]} for shape, n in sorted(shapes.items(), key=lambda item: -item[1])[:12]],
    }
    if profiler is not None:
        out["profile"] = profile_summary(profiler, args.profile, seconds)
    write_json(args.out, out)
    print(f"  in-process {args.kind}{' (under cProfile)' if profiler else ''}: {seconds:.2f} s (read_folder {read_s:.2f} s, "
          f"prompts_import {seconds - read_s:.2f} s; {out['files_per_s']} files/s, {len(statements)} SQL statements); peak RSS {rss_peak:.0f} MB "
          f"({rss_before:.0f} MB before reading); result: {out['result']}")


def _tally(values) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        out[value] = out.get(value, 0) + 1
    return out


# --- http --------------------------------------------------------------------------------------


def cmd_http(args) -> None:
    """One POST of the whole folder; a 404 means the endpoint is not there yet: recorded as skipped, not a failure."""
    import requests

    django_setup()
    generated = json.loads(Path(args.generated).read_text())
    token = json.loads(Path(args.setup).read_text())["token"]
    url = args.base_url.rstrip("/") + "/api/v1/prompts/import"
    headers = {"Authorization": f"Token {token}", "Accept": "application/json"}
    if args.body == "json":
        from registry.prompt_files import read_folder

        files = {path: data.decode("utf-8") for path, data in read_folder(args.dir).items()}
        payload = {"data": json.dumps({"files": files}).encode(), "headers": {**headers, "Content-Type": "application/json"}}
    else:
        data = Path(args.archive).read_bytes()
        payload = {"files": {"archive": ("prompts.tar.gz", data, "application/gzip")}, "headers": headers}
    before = counts()
    _close_db()
    started = time.perf_counter()
    response = requests.post(url, timeout=600, **payload)
    seconds = time.perf_counter() - started
    base = {"way": f"http_{args.body}", "kind": args.kind, "url": url, "status": response.status_code}
    if response.status_code == 404:
        write_json(args.out, {**base, "skipped": "endpoint not available (POST /api/v1/prompts/import answered 404)"})
        print(f"  HTTP {args.body} {args.kind}: skipped: endpoint not available (404)")
        return
    if response.status_code not in (200, 201):
        raise SystemExit(f"POST {url} ({args.body}): HTTP {response.status_code} after {seconds:.1f} s: {response.text[:2000]}")
    after = counts()
    created = check(args.kind, before, after, generated)
    try:
        body = response.json()
    except ValueError:
        body = {}
    summary = {k: (len(v) if isinstance(v, list) else v) for k, v in body.items()} if isinstance(body, dict) else {}
    request_bytes = len(payload["data"]) if "data" in payload else len(payload["files"]["archive"][1])
    out = {**base, "seconds": round(seconds, 2), "files_per_s": round(generated["files"] / seconds, 1), "request_bytes": request_bytes,
           "response_bytes": len(response.content), "response_summary": summary, "created": created, "counts_after": after}
    write_json(args.out, out)
    print(f"  HTTP {args.body} {args.kind}: {seconds:.2f} s ({out['files_per_s']} files/s, {mib(request_bytes, 2)} MB sent): HTTP "
          f"{response.status_code} {summary}")

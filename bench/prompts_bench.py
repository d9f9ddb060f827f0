"""Benchmark of the prompt-folder import; driven by the prompts step of bench/run.sh (`make bench`).

The issue's figure: time to import a folder of 200 prompts x 10 versions with 1,000-row eval
sets, first import and a no-change re-import, three ways (manage.py import_prompts, the service
called in-process, POST /api/v1/prompts/import over HTTP).

Subcommands (each one step of run.sh, results as JSON files in a work folder):

  generate  write the folder (<name>/vN.yaml, <name>/eval_set.jsonl, config.yaml) and prompts.tar.gz
  setup     create the editor user and its API token in the database named by SQLITE_PATH
  command   time `manage.py import_prompts DIR --user bench-editor` as a subprocess, end to end
  inproc    time read_folder + services.prompts_import in this process (peak RSS; --profile for cProfile)
  http      time one POST of the folder (JSON body or .tar.gz upload) to a running gunicorn
  report    merge the JSON files, print the table, write bench/results/prompts.json

`command`, `inproc` and `http` count the rows before and after and fail if a first import
did not create what the folder asks for, or if a re-import created anything.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from registry_bench import BENCH_DIR, REPO_DIR, _loadavg, _normalise_sql, django_setup, write_json

EDITOR = "bench-editor"
TASKS = ("summarize", "classify", "extract", "translate", "answer", "rewrite", "triage", "moderate")
MODELS = ("claude-sonnet-4", "gpt-4o-mini", "claude-haiku-4", "gpt-4.1", "llama-3.1-70b")
WORDS = (
    "the customer reported that invoice payment failed twice after the update and support asked for logs "
    "shipping was delayed because the warehouse closed early on friday so the order arrived on monday "
    "quarterly revenue grew four percent while costs stayed flat and the board approved the new budget "
    "please reset my password the link in the email expired before i could open it on my phone "
    "the meeting moved to tuesday afternoon and the agenda now includes the hiring plan for next quarter"
).split()


def prompt_name(i: int) -> str:
    return f"{TASKS[i % len(TASKS)]}-{i:03d}"


def mib(n: int) -> float:
    return round(n / 1024 / 1024, 2)


# --- generate ----------------------------------------------------------------------------------

VERSION_YAML = """name: {name}
version: {n}
description: {task} prompt, revision {n} ({change}).
model: {model}
temperature: {temperature}
max_tokens: {max_tokens}
tags: [{task}, bench, team-{team}]
system: |
  You are a careful assistant for the {team} team. {task_line}
  Answer in {language}; keep it under {limit} words and never invent facts.
  If the input is empty or unreadable, say so in one sentence.
template: |
  {verb} the following text:

  {{text}}
eval_criteria:
- name: {criterion}
  type: format_check
  expected: {expected}
- name: relevance
  type: llm_judge
  threshold: {threshold}
"""
TASK_LINES = {
    "summarize": ("Summarize", "Extract the key points of the given text as bullet points.", "bullet_count"),
    "classify": ("Classify", "Label the text as bug, question, praise or other.", "label_in_set"),
    "extract": ("Extract the fields from", "Return the requested fields as a flat JSON object.", "json_keys"),
    "translate": ("Translate", "Translate faithfully; keep names, numbers and formatting.", "line_count"),
    "answer": ("Answer the question in", "Answer from the given text only, citing the sentence used.", "citation_present"),
    "rewrite": ("Rewrite", "Rewrite in plain language for a general audience.", "max_sentences"),
    "triage": ("Triage", "Give the urgency (low, medium, high) and the team that should handle it.", "urgency_label"),
    "moderate": ("Moderate", "Say whether the text breaks the community rules, and which rule.", "verdict_label"),
}


def version_yaml(i: int, n: int, rng: random.Random) -> str:
    name, task = prompt_name(i), TASKS[i % len(TASKS)]
    verb, line, criterion = TASK_LINES[task]
    return VERSION_YAML.format(
        name=name, n=n, task=task, verb=verb, task_line=line, criterion=criterion,
        change=rng.choice(["tighter wording", "new examples", "lower temperature", "shorter output", "model upgrade"]),
        model=rng.choice(MODELS), temperature=rng.choice([0, 0.1, 0.2, 0.3, 0.5, 0.7]), max_tokens=rng.choice([256, 500, 800, 1024]),
        team=("risk", "growth", "search", "support")[i % 4], language=rng.choice(["English", "the language of the input"]),
        limit=rng.choice([50, 80, 120, 200]), expected=rng.randint(1, 7), threshold=rng.choice([0.7, 0.75, 0.8, 0.85, 0.9]),
    )


def eval_row(name: str, k: int, rng: random.Random) -> str:
    text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 10))).capitalize() + "."
    expected = "- " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 4)))
    row = {"id": f"{name}-{k:04d}", "input": {"text": text}, "expected": expected, "tags": [rng.choice(["tickets", "email", "chat"])]}
    return json.dumps(row)


def cmd_generate(args) -> None:
    """The folder on disk, the same folder as prompts.tar.gz (top folder prompts/), and the sizes of both upload bodies."""
    started = time.perf_counter()
    rng = random.Random(42)
    root = Path(args.dir)
    root.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    config = []
    for i in range(args.prompts):
        name = prompt_name(i)
        for n in range(1, args.versions + 1):
            files[f"{name}/v{n}.yaml"] = version_yaml(i, n, rng)
        files[f"{name}/eval_set.jsonl"] = "".join(eval_row(name, k, rng) + "\n" for k in range(1, args.rows + 1))
        envs = {"dev": args.versions, "staging": max(args.versions - 1, 1), "prod": max(args.versions - 2, 1)}
        config.append(f"{name}:\n" + "".join(f"  {env}: {n}\n" for env, n in envs.items()))
    files["config.yaml"] = "".join(config)
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz", compresslevel=6) as tar:
        for path, text in sorted(files.items()):
            data = text.encode()
            info = tarfile.TarInfo(f"prompts/{path}")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    Path(args.archive).write_bytes(archive.getvalue())

    sizes = {p: len(t.encode()) for p, t in files.items()}
    eval_bytes = sum(s for p, s in sizes.items() if p.endswith(".jsonl"))
    yaml_bytes = sum(s for p, s in sizes.items() if p.endswith(".yaml") and p != "config.yaml")
    rows = args.prompts * args.rows
    out = {
        "prompts": args.prompts,
        "versions_per_prompt": args.versions,
        "eval_rows_per_prompt": args.rows,
        "files": len(files),
        "version_files": args.prompts * args.versions,
        "bytes": sum(sizes.values()),
        "mb": mib(sum(sizes.values())),
        "version_file_bytes_avg": round(yaml_bytes / (args.prompts * args.versions)),
        "eval_set_bytes_avg": round(eval_bytes / args.prompts),
        "eval_row_bytes_avg": round(eval_bytes / rows, 1) if rows else None,
        "config_bytes": sizes["config.yaml"],
        "json_body_bytes": len(json.dumps({"files": files}).encode()),
        "archive_bytes": len(archive.getvalue()),
        "seconds": round(time.perf_counter() - started, 2),
    }
    write_json(args.out, out)
    print(f"  {out['files']} files, {out['mb']} MB ({out['version_files']} version files of ~{out['version_file_bytes_avg']} B, "
          f"{args.prompts} eval sets of {args.rows} rows, ~{out['eval_row_bytes_avg']} B a row); "
          f"as one JSON body {mib(out['json_body_bytes'])} MB, as .tar.gz {mib(out['archive_bytes'])} MB; written in {out['seconds']} s")


def cmd_json_limit(args) -> None:
    """The MLOPS_MAX_JSON_MB the bench server needs for the JSON body (at least the default 32, plus headroom)."""
    body = json.loads(Path(args.generated).read_text())["json_body_bytes"]
    need = -(-body // (1024 * 1024))
    print(max(32, need + 16) if need > 32 else 32)


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
    from registry.roles_admin import user_set_role, user_token_refresh

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
    shapes = _tally(_normalise_sql(sql) for sql in statements)
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


def profile_summary(profiler, path: str, seconds: float, top: int = 25) -> dict:
    """Write the cProfile text report to `path`; return the top functions by own time and by cumulative time."""
    import pstats

    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text).strip_dirs()
    stats.sort_stats("tottime").print_stats(40)
    stats.sort_stats("cumulative").print_stats(60)
    Path(path).write_text(text.getvalue())
    raw = pstats.Stats(profiler).stats

    def where(func) -> str:
        file, line, name = func
        file = os.path.relpath(file, REPO_DIR) if file.startswith(str(REPO_DIR)) else file
        for marker in ("site-packages/", "lib/python3"):
            if marker in file:
                file = file.split(marker, 1)[1]
        return f"{file}:{line} {name}"

    def rows(key) -> list[dict]:
        ordered = sorted(raw.items(), key=lambda item: item[1][key], reverse=True)[:top]
        return [{"function": where(func), "calls": nc, "own_s": round(tt, 3), "cumulative_s": round(ct, 3)}
                for func, (_cc, nc, tt, ct, _callers) in ordered]

    # The project's own functions (not the venv's) by cumulative time: where in our code the time goes.
    mine = sorted(((f, s) for f, s in raw.items() if f[0].startswith(str(REPO_DIR)) and "/.venv/" not in f[0] and "/bench/" not in f[0]),
                  key=lambda item: item[1][3], reverse=True)[:top]
    ours = [{"function": where(f), "calls": s[1], "own_s": round(s[2], 3), "cumulative_s": round(s[3], 3)} for f, s in mine]
    return {"seconds_profiled": round(seconds, 2), "by_own_time": rows(2), "by_cumulative_time": rows(3), "ours_by_cumulative_time": ours,
            "text": str(path)}


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
    print(f"  HTTP {args.body} {args.kind}: {seconds:.2f} s ({out['files_per_s']} files/s, {mib(request_bytes)} MB sent): HTTP "
          f"{response.status_code} {summary}")


# --- report ------------------------------------------------------------------------------------


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def cmd_report(args) -> None:
    work = Path(args.work)
    generated = _load(work / "generate.json") or {}
    env = _load(work / "env.json") or {}
    runs = {f"{way}-{kind}": _load(work / f"{way}-{kind}.json")
            for way in ("command", "inproc", "http_json", "http_archive") for kind in ("first", "reimport")}
    profile = _load(work / "profile-first.json")
    timings = _load(work / "timings.json") or {}
    labels = {
        "command": "command: manage.py import_prompts DIR (own process)",
        "inproc": "in-process: read_folder + prompts_import",
        "http_json": "HTTP: POST /api/v1/prompts/import, JSON {files}",
        "http_archive": "HTTP: POST /api/v1/prompts/import, .tar.gz archive",
    }

    def cell(run: dict | None) -> tuple[str, str]:
        if run is None:
            return "not run", ""
        if run.get("skipped"):
            return "skipped", ""
        return f"{run['seconds']:.2f}", f"{run['files_per_s']:.0f}"

    print()
    print("=" * 100)
    print("Prompt import: " + ", ".join(f"{k} {env[k]}" for k in ("cpus", "cpu_model", "python", "django", "sqlite") if k in env))
    print(f"Folder: {generated.get('prompts')} prompts x {generated.get('versions_per_prompt')} versions, eval sets of "
          f"{generated.get('eval_rows_per_prompt')} rows (~{generated.get('eval_row_bytes_avg')} B a row), config.yaml with dev/staging/prod "
          f"for each: {generated.get('files')} files, {generated.get('mb')} MB on disk; as one JSON body {mib(generated.get('json_body_bytes', 0))} MB, "
          f"as .tar.gz {mib(generated.get('archive_bytes', 0))} MB.")
    if args.json_limit_mb and args.json_limit_mb > 32:
        print(f"The bench server runs with MLOPS_MAX_JSON_MB={args.json_limit_mb} (default 32) so the JSON body fits.")
    print()
    header = ["", "first import s", "files/s", "re-import s", "files/s"]
    table = [[labels[way], *cell(runs[f"{way}-first"]), *cell(runs[f"{way}-reimport"])] for way in labels]
    widths = [max(len(str(line[i])) for line in [header, *table]) for i in range(len(header))]
    print("  ".join(h.ljust(widths[0]) if i == 0 else h.rjust(widths[i]) for i, h in enumerate(header)))
    print("  ".join("-" * w for w in widths))
    for line in table:
        print("  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(line)))
    print()
    first = runs["inproc-first"] or runs["command-first"] or {}
    if first:
        c = first["created"]
        print(f"First import created: {c['prompts']} prompts, {c['prompt_versions']} prompt versions, {c['eval_sets']} eval sets, "
              f"{c['promotion_requests']} promotion requests ({c['promotion_requests_pending']} pending: staging + prod; the rest dev, moved at once), "
              f"{c['deployments']} deployments, {c['audit_events']} audit events. Every re-import created nothing (all counts unchanged).")
    for way in ("inproc", "command"):
        a, b = runs[f"{way}-first"], runs[f"{way}-reimport"]
        if a and b:
            extra = f" (read_folder {a['read_folder_s']} s + prompts_import {a['import_s']} s; re-import {b['read_folder_s']} + {b['import_s']} s)" if way == "inproc" else ""
            print(f"Peak RSS, {labels[way].split(':')[0]}: {a['peak_rss_mb']:.0f} MB first import, {b['peak_rss_mb']:.0f} MB re-import{extra}")
    for kind in ("first", "reimport"):
        run = runs[f"inproc-{kind}"]
        if run and run.get("sql_statements") is not None:
            print(f"SQL statements, in-process {kind}: {run['sql_statements']}; most repeated:")
            for shape in run["sql_top_shapes"][:4]:
                print(f"    {shape['count']:6d}x {shape['sql'][:110]}")
    skipped = [r["skipped"] for r in runs.values() if r and r.get("skipped")]
    if skipped:
        print(f"HTTP: skipped: {skipped[0]}")
    if profile:
        p = profile["profile"]
        print(f"Profile (cProfile, a separate first import into a fresh database: {p['seconds_profiled']} s under the profiler; "
              f"full text in the work folder, top rows in the JSON). Our functions by cumulative time:")
        for row in p["ours_by_cumulative_time"][:12]:
            print(f"    {row['cumulative_s']:8.2f} s cum {row['own_s']:7.2f} s own {row['calls']:8d} calls  {row['function']}")
        print("  By own time (anywhere):")
        for row in p["by_own_time"][:12]:
            print(f"    {row['own_s']:8.2f} s own {row['cumulative_s']:7.2f} s cum {row['calls']:8d} calls  {row['function']}")
    load = _loadavg()
    print(f"Load average at the end (shared machine): {load}")
    result = {"environment": env, "folder": generated, "runs": runs, "profile": profile, "json_limit_mb": args.json_limit_mb,
              "timings": timings, "loadavg_end": load}
    out = Path(args.results)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, result)
    print(f"Written: {out.relative_to(REPO_DIR) if out.is_relative_to(REPO_DIR) else out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("generate")
    p.add_argument("--dir", required=True)
    p.add_argument("--archive", required=True)
    p.add_argument("--prompts", type=int, default=200)
    p.add_argument("--versions", type=int, default=10)
    p.add_argument("--rows", type=int, default=1000)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_generate)
    p = sub.add_parser("json-limit")
    p.add_argument("--generated", required=True)
    p.set_defaults(fn=cmd_json_limit)
    p = sub.add_parser("setup")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_setup)
    for name, fn in (("command", cmd_command), ("inproc", cmd_inproc), ("http", cmd_http)):
        p = sub.add_parser(name)
        p.add_argument("--dir", required=True)
        p.add_argument("--generated", required=True)
        p.add_argument("--kind", choices=("first", "reimport"), required=True)
        p.add_argument("--out", required=True)
        p.set_defaults(fn=fn)
        if name == "inproc":
            p.add_argument("--profile", help="run under cProfile; the text report goes to this file")
        if name == "http":
            p.add_argument("--base-url", required=True)
            p.add_argument("--setup", required=True, help="the setup step's JSON (the token)")
            p.add_argument("--body", choices=("json", "archive"), default="json")
            p.add_argument("--archive")
    p = sub.add_parser("report")
    p.add_argument("--work", required=True)
    p.add_argument("--json-limit-mb", type=int)
    p.add_argument("--results", default=str(BENCH_DIR / "results" / "prompts.json"))
    p.set_defaults(fn=cmd_report)
    args = parser.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()

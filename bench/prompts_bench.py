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
did not create what the folder asks for, or if a re-import created anything. The steps live in
prompts_generate.py (generate, json-limit) and prompts_runs.py (setup, command, inproc, http).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import (
    BENCH_DIR,
    load_json,
    loadavg,
    mib,
    print_table,
    write_results,
)
from prompts_generate import cmd_generate, cmd_json_limit
from prompts_runs import cmd_command, cmd_http, cmd_inproc, cmd_setup


def cmd_report(args) -> None:
    work = Path(args.work)
    generated = load_json(work / "generate.json") or {}
    env = load_json(work / "env.json") or {}
    runs = {f"{way}-{kind}": load_json(work / f"{way}-{kind}.json")
            for way in ("command", "inproc", "http_json", "http_archive") for kind in ("first", "reimport")}
    profile = load_json(work / "profile-first.json")
    timings = load_json(work / "timings.json") or {}
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
          f"for each: {generated.get('files')} files, {generated.get('mb')} MB on disk; as one JSON body {mib(generated.get('json_body_bytes', 0), 2)} MB, "
          f"as .tar.gz {mib(generated.get('archive_bytes', 0), 2)} MB.")
    if args.json_limit_mb and args.json_limit_mb > 32:
        print(f"The bench server runs with MLOPS_MAX_JSON_MB={args.json_limit_mb} (default 32) so the JSON body fits.")
    print()
    header = ["", "first import s", "files/s", "re-import s", "files/s"]
    table = [[labels[way], *cell(runs[f"{way}-first"]), *cell(runs[f"{way}-reimport"])] for way in labels]
    print_table(header, table)
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
    load = loadavg()
    print(f"Load average at the end (shared machine): {load}")
    result = {"environment": env, "folder": generated, "runs": runs, "profile": profile, "json_limit_mb": args.json_limit_mb,
              "timings": timings, "loadavg_end": load}
    write_results(args.results, result)


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

"""The prompt folder the import bench reads: `generate` and `json-limit` of prompts_bench.py."""

from __future__ import annotations

import io
import json
import random
import tarfile
import time
from pathlib import Path

from common import mib, write_json

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
        "mb": mib(sum(sizes.values()), 2),
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
          f"as one JSON body {mib(out['json_body_bytes'], 2)} MB, as .tar.gz {mib(out['archive_bytes'], 2)} MB; written in {out['seconds']} s")


def cmd_json_limit(args) -> None:
    """The MLOPS_MAX_JSON_MB the bench server needs for the JSON body (at least the default 32, plus headroom)."""
    body = json.loads(Path(args.generated).read_text())["json_body_bytes"]
    need = -(-body // (1024 * 1024))
    print(max(32, need + 16) if need > 32 else 32)

"""`make mutants`: mutation testing of the core modules with mutmut, each against its own tests.

For every module in scripts/mutants.toml (or only MUTANTS_ONLY=name[,name]):
  1. copy the working tree (tracked and untracked files, not ignored ones; or, with
     MUTANTS_FROM=<commit>, that commit) to mutants/<module>/, so mutants and test runs never
     touch the real tree, and an edit made meanwhile does not land half-way through a run;
  2. run the module's tests once under coverage.py: the lines they execute;
  3. run mutmut there, one worker, on the module's files, against the module's tests only;
  4. sort every mutant: killed, timeout, survived, untested (tests pass and no test executes a
     line the mutant changes; mutmut's own "no tests" is counted here too), other (mutmut's
     suspicious, segfault, not checked).
Writes mutants/results-<module>.json, mutants/survivors-<module>.txt (one diff per mutant, with
the file's real line numbers, `patch -p1` applies it) and mutants/report.md (every module run so
far, one row per file). MUTANTS_VERIFY=n re-checks n survivors and n killed mutants of each
module without mutmut: the mutant written into the copy's file and plain pytest run on it.
MUTANTS_RECHECK=1 tests again only the mutants the last run of a module did not kill (after new
tests), keeping the other verdicts, as long as the mutated files have not changed since.

Runs at nice 10 with one mutmut worker; it is not part of `make test` or CI.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "scripts" / "mutants.toml"
OUT = ROOT / "mutants"
BIN = Path(sys.executable).parent
COLUMNS = ("killed", "survived", "untested", "timeout", "other")


def main() -> int:
    os.nice(10)
    config = tomllib.loads(CONFIG.read_text())
    modules = config["modules"]
    only = [name.strip() for name in os.environ.get("MUTANTS_ONLY", "").split(",") if name.strip()]
    unknown = sorted(set(only) - set(modules))
    if unknown:
        print(f"Unknown module(s) {', '.join(unknown)}; known: {', '.join(modules)}", file=sys.stderr)
        return 2
    verify = int(os.environ.get("MUTANTS_VERIFY", "0"))
    ensure_mutmut(config["mutmut"]["version"])
    OUT.mkdir(exist_ok=True)
    failed = []
    for name in only or list(modules):
        spec = modules[name]
        missing = [f for f in spec["files"] if not exists(f)]
        if missing:
            print(f"== {name}: skipped, {', '.join(missing)} does not exist yet")
            continue
        try:
            run_module(name, spec, config["mutmut"], verify=verify)
        except ModuleFailed as e:
            print(f"== {name}: FAILED: {e}")
            failed.append(name)
        write_report(modules)
    print()
    print(write_report(modules))
    print(f"\nReport: {OUT.relative_to(ROOT)}/report.md; survivors: {OUT.relative_to(ROOT)}/survivors-<module>.txt")
    return 1 if failed else 0


def exists(path: str) -> bool:
    """In the tree that will be copied: the working tree, or the MUTANTS_FROM commit."""
    commit = os.environ.get("MUTANTS_FROM", "")
    if not commit:
        return (ROOT / path).exists()
    listed = subprocess.run(["git", "ls-tree", "--name-only", commit, "--", path], cwd=ROOT, capture_output=True, text=True, check=True)
    return bool(listed.stdout.strip())


class ModuleFailed(Exception):
    pass


def ensure_mutmut(version: str) -> None:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        if installed("mutmut") == version:
            return
    except PackageNotFoundError:
        pass
    print(f"Installing mutmut=={version} into {BIN.parent}")
    subprocess.run([BIN / "pip", "install", "--disable-pip-version-check", "-q", f"mutmut=={version}"], check=True)


def run_module(name: str, spec: dict, settings: dict, *, verify: int) -> None:
    started = time.monotonic()
    work = OUT / name
    tests = [t for t in spec["tests"] if exists(t)]
    left_out = [t for t in spec["tests"] if t not in tests]
    print(
        f"== {name}: {', '.join(spec['files'])} against {len(tests)} test file(s)"
        + (f" ({', '.join(left_out)} not there yet)" if left_out else "")
    )
    if not tests:
        raise ModuleFailed("none of its test files exists")
    previous = previous_results(name, spec["files"]) if os.environ.get("MUTANTS_RECHECK") else None
    snapshot(work, os.environ.get("MUTANTS_FROM", ""))
    hashes = file_hashes(work, spec["files"])
    if previous is not None and previous["sha256"] != hashes:
        print("   recheck: the mutated files changed since the last run; testing every mutant")
        previous = None
    only = [m["name"] for m in previous["mutants"] if m["status"] not in ("killed", "timeout")] if previous else []
    if previous is not None and not only:
        print(f"   recheck: the run of {previous['finished']} killed every mutant; nothing to test again")
        return
    if previous is not None:
        print(f"   recheck: {len(only)} mutants the run of {previous['finished']} did not kill; the other verdicts are kept")
    write_mutmut_config(work, spec["files"], tests, settings)
    db_dir = Path(tempfile.mkdtemp(prefix=f"mutants-{name}-"))
    env = {**os.environ, "SQLITE_TEST_PATH": str(db_dir / "test.sqlite3"), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("MUTANT_UNDER_TEST", None)
    try:
        executed = covered_lines(work, spec["files"], tests, settings, env)
        print(f"   coverage: {', '.join(f'{f} {len(lines)} lines run' for f, lines in executed.items())}")
        run_mutmut(name, work, spec["files"], settings, env, only)
        mutants = collect(work, spec["files"], executed)
        if previous is not None:
            kept = {m["name"]: m for m in previous["mutants"] if m["name"] not in set(only)}
            mutants = [kept.get(m["name"], m) for m in mutants]
        if verify:
            verify_sample(work, mutants, tests, settings, env, verify)
    finally:
        shutil.rmtree(db_dir, ignore_errors=True)
    seconds = round(time.monotonic() - started)
    result = {
        "module": name,
        "files": spec["files"],
        "tests": tests,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": seconds,
        "mutmut": settings["version"],
        "sha256": hashes,
        "recheck_of": previous["finished"] if previous else None,
        "mutants": mutants,
    }
    (OUT / f"results-{name}.json").write_text(json.dumps(result, indent=1))
    (OUT / f"survivors-{name}.txt").write_text(survivors_text(result))
    counts = Counter(m["status"] for m in mutants)
    print(f"   done in {seconds // 60} min {seconds % 60} s: " + ", ".join(f"{counts[c]} {c}" for c in COLUMNS))


def file_hashes(work: Path, files: list[str]) -> dict[str, str]:
    return {f: hashlib.sha256((work / f).read_bytes()).hexdigest() for f in files}


def previous_results(name: str, files: list[str]) -> dict | None:
    """The last results of this module with the hashes of the files it mutated (read from its
    copy of the tree when the results predate the hashes), or None."""
    path = OUT / f"results-{name}.json"
    if not path.exists():
        return None
    result = json.loads(path.read_text())
    if "sha256" not in result:
        if not all((OUT / name / f).is_file() for f in files):
            return None
        result["sha256"] = file_hashes(OUT / name, files)
    return result


def snapshot(work: Path, commit: str) -> None:
    """The working tree as it is now, less ignored files (the venv, databases, mutants/ itself),
    or the files of `commit`."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    if commit:
        archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=ROOT, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(work)], input=archive.stdout, check=True)
        return
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, check=True
    )
    for rel in sorted(set(listed.stdout.decode().split("\0")) - {""}):
        source = ROOT / rel
        if source.is_file():  # a tracked file deleted in the working tree is left out
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, work / rel)


def write_mutmut_config(work: Path, files: list[str], tests: list[str], settings: dict) -> None:
    """mutmut copies `source_paths` into mutants/ and puts that first on sys.path. Every package
    goes there (an original left importable would be imported instead of the mutated copy);
    templates, static files and the rest go along as `also_copy`."""
    source, other = [], []
    for entry in sorted(work.iterdir()):
        if entry.name in ("tests", "mutants"):
            continue
        is_code = entry.suffix == ".py" or (entry.is_dir() and any(entry.rglob("*.py")))
        (source if is_code else other).append(entry.name)
    section = {
        "source_paths": source,
        "also_copy": other,
        "only_mutate": files,
        "pytest_add_cli_args": settings["pytest_args"],
        "pytest_add_cli_args_test_selection": tests,
        "timeout_multiplier": settings["timeout_multiplier"],
        "use_git_change_detection": False,
    }
    pyproject = work / "pyproject.toml"
    text = pyproject.read_text()
    if "[tool.mutmut]" in text:
        raise ModuleFailed("pyproject.toml already has a [tool.mutmut] section; the settings live in scripts/mutants.toml")
    lines = ["", "[tool.mutmut]"] + [f"{key} = {json.dumps(value)}" for key, value in section.items()]
    pyproject.write_text(text + "\n".join(lines) + "\n")


def pytest_command(settings: dict, tests: list[str]) -> list[str]:
    return ["-m", "pytest", "-q", "-x", "-p", "no:randomly", *settings["pytest_args"], *tests]


def covered_lines(work: Path, files: list[str], tests: list[str], settings: dict, env: dict) -> dict[str, set[int]]:
    """Lines of each mutated file that the module's tests execute (on the unmutated copy). Also the
    check that those tests pass before any mutant is judged by them."""
    data = work / ".coverage-mutants"
    include = ",".join(str(work / f) for f in files)
    run = subprocess.run(
        [sys.executable, "-m", "coverage", "run", f"--data-file={data}", f"--include={include}", *pytest_command(settings, tests)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        raise ModuleFailed(f"its tests fail on the unmutated code:\n{run.stdout[-3000:]}{run.stderr[-2000:]}")
    report = work / "coverage-mutants.json"
    subprocess.run(
        [sys.executable, "-m", "coverage", "json", f"--data-file={data}", "-o", str(report), "-q"], cwd=work, env=env, check=True
    )
    measured = json.loads(report.read_text())["files"]
    by_name = {str((work / name).resolve()) if not Path(name).is_absolute() else name: info for name, info in measured.items()}
    return {f: set(by_name.get(str((work / f).resolve()), {}).get("executed_lines", [])) for f in files}


def run_mutmut(name: str, work: Path, files: list[str], settings: dict, env: dict, only: list[str]) -> None:
    log_path = work / "mutmut.log"
    print(f"   mutmut {settings['version']}, 1 worker; log {log_path.relative_to(ROOT)}")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [BIN / "mutmut", "run", "--max-children", "1", *only],
            cwd=work,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            shown = time.monotonic()
            while proc.poll() is None:
                time.sleep(5)
                if time.monotonic() - shown >= 60:
                    print(f"   {name}: {mutmut_progress(work, files)}", flush=True)
                    shown = time.monotonic()
        except KeyboardInterrupt:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
            raise
    if proc.returncode != 0:
        tail = log_path.read_text(errors="replace").replace("\r", "\n").splitlines()[-30:]
        raise ModuleFailed(f"mutmut exited {proc.returncode}:\n" + "\n".join(tail))


def mutmut_progress(work: Path, files: list[str]) -> str:
    done = total = 0
    for f in files:
        try:
            codes = json.loads((work / "mutants" / (f + ".meta")).read_text())["exit_code_by_key"]
        except (OSError, ValueError, KeyError):
            return "generating mutants, collecting stats"
        total += len(codes)
        done += sum(code is not None for code in codes.values())
    return f"{done}/{total} mutants checked"


def collect(work: Path, files: list[str], executed: dict[str, set[int]]) -> list[dict]:
    """Every mutant with its verdict, the lines it changes and its diff against the real file."""
    import libcst as cst
    from mutmut.stats import status_by_exit_code

    mutants = []
    cwd = os.getcwd()
    os.chdir(work)  # mutmut's readers take paths relative to the project
    try:
        for f in files:
            original = Path(f).read_text()
            module = cst.parse_module(original)
            statement_starts = statement_start_by_line(original)
            codes = json.loads((Path("mutants") / (f + ".meta")).read_text())["exit_code_by_key"]
            for key, code in codes.items():
                mutated = mutated_source(key, f, module)
                changed = changed_lines(original, mutated)
                covered = any(line in executed[f] or statement_starts.get(line) in executed[f] for line in changed)
                mutants.append(
                    {
                        "name": key,
                        "file": f,
                        "line": changed[0] if changed else None,
                        "mutmut": status_by_exit_code[code],
                        "status": verdict(status_by_exit_code[code], covered),
                        "diff": file_diff(f, original, mutated),
                    }
                )
    finally:
        os.chdir(cwd)
    return mutants


def verdict(mutmut_status: str, covered: bool) -> str:
    if mutmut_status in ("killed", "timeout"):
        return mutmut_status
    if mutmut_status == "no tests" or (mutmut_status == "survived" and not covered):
        return "untested"
    if mutmut_status == "survived":
        return "survived"
    return "other"


def mutated_source(key: str, path: str, module) -> str:
    """The whole file with this one mutant in place (mutmut's own `apply` finds a method by its
    name alone, which picks the wrong class when two classes share a method name)."""
    import libcst as cst
    from mutmut.mutation.diff_apply import read_functions_from_index, read_mutant_function, read_mutants_module
    from mutmut.utils.format_utils import parse_mutant_key

    mangled = key.rpartition(".")[2].rpartition("__mutmut_")[0]
    func_name, class_name = parse_mutant_key(mangled)
    body = module.body
    if class_name:
        body = next(n.body.body for n in module.body if isinstance(n, cst.ClassDef) and n.name.value == class_name)
    target = next(n for n in body if isinstance(n, cst.FunctionDef) and n.name.value == func_name)
    functions = read_functions_from_index(key, path)
    mutant = functions[1] if functions else read_mutant_function(read_mutants_module(path), key)
    return module.deep_replace(target, mutant.with_changes(name=cst.Name(func_name))).code


def changed_lines(original: str, mutated: str) -> list[int]:
    a, b = original.splitlines(), mutated.splitlines()
    lines = []
    for tag, i1, i2, _, _ in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag != "equal":
            lines.extend(range(i1 + 1, i2 + 1) if i2 > i1 else [i1])
    return lines


def statement_start_by_line(source: str) -> dict[int, int]:
    """line -> first line of the innermost statement holding it: coverage.py reports a statement
    that spans lines by its first line only."""
    starts: dict[int, int] = {}
    nodes = sorted((n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.stmt)), key=lambda n: n.end_lineno - n.lineno, reverse=True)
    for node in nodes:  # widest first, so inner statements overwrite
        for line in range(node.lineno, node.end_lineno + 1):
            starts[line] = node.lineno
    return starts


def file_diff(path: str, original: str, mutated: str) -> str:
    lines = difflib.unified_diff(original.splitlines(), mutated.splitlines(), f"a/{path}", f"b/{path}", n=2, lineterm="")
    return "\n".join(lines)


def verify_sample(work: Path, mutants: list[dict], tests: list[str], settings: dict, env: dict, n: int) -> None:
    """Apply a few mutants to the copy's own files and run plain pytest: no trampoline, no fork,
    no mutmut on sys.path. A verdict that differs means mutmut is not to be trusted here."""
    rng = random.Random(0)
    sample = []
    for status in ("survived", "killed"):
        group = [m for m in mutants if m["status"] == status]
        sample += rng.sample(group, min(n, len(group)))
    for m in sample:
        target = work / m["file"]
        original = target.read_bytes()
        patch = subprocess.run(
            ["patch", "-p1", "-s", "--no-backup-if-mismatch"], cwd=work, input=m["diff"] + "\n", text=True, capture_output=True
        )
        try:
            if patch.returncode != 0:
                m["verified"] = f"patch failed: {patch.stdout}{patch.stderr}"
                continue
            run = subprocess.run([sys.executable, *pytest_command(settings, tests)], cwd=work, env=env, capture_output=True, text=True)
            plain = "survived" if run.returncode == 0 else "killed"
            m["verified"] = plain
            agree = "agrees" if plain == m["status"] else "DISAGREES"
            print(f"   verify {m['name']}: mutmut {m['status']}, plain pytest {plain} ({agree})")
        finally:
            target.write_bytes(original)


def survivors_text(result: dict) -> str:
    out = [
        f"# Mutants of {result['module']} ({', '.join(result['files'])}) that no test kills, mutmut {result['mutmut']}, {result['finished']}.",
        "# survived: the tests run the changed line and still pass. untested: no test runs the changed line.",
        "# Each diff applies to the real file with `patch -p1` (and `patch -p1 -R` takes it back).",
        *([f"# A recheck: the mutants the run of {result['recheck_of']} did not kill, tested again."] if result.get("recheck_of") else []),
        "",
    ]
    for status in ("survived", "untested"):
        group = [m for m in result["mutants"] if m["status"] == status]
        out.append(f"## {status}: {len(group)}")
        out.append("")
        for m in sorted(group, key=lambda m: (m["file"], m["line"] or 0, m["name"])):
            out += [f"### {m['name']} ({m['file']} line {m['line']})", m["diff"], ""]
    return "\n".join(out)


def write_report(modules: dict) -> str:
    rows = []
    for name in modules:
        path = OUT / f"results-{name}.json"
        if not path.exists():
            continue
        result = json.loads(path.read_text())
        for f in result["files"]:
            counts = Counter(m["status"] for m in result["mutants"] if m["file"] == f)
            total = sum(counts.values())
            covered = total - counts["untested"]
            score = f"{100 * (counts['killed'] + counts['timeout']) / covered:.1f}" if covered else "-"
            run_on = result["finished"][:10] + (" (recheck)" if result.get("recheck_of") else "")
            rows.append([name, f, str(total), *(str(counts[c]) for c in COLUMNS), score, f"{result['seconds'] / 60:.1f}", run_on])
    header = ["module", "file", "mutants", *COLUMNS, "% killed of covered", "minutes", "run on"]
    table = [header, ["---"] * len(header), *rows]
    text = "\n".join("| " + " | ".join(row) + " |" for row in table)
    (OUT / "report.md").write_text(
        "# make mutants\n\n" + text + "\n\n% killed of covered = (killed + timeout) / (mutants - untested). "
        "minutes: the whole module (copy, coverage run, mutmut), at nice 10 with one worker.\n"
    )
    return text


if __name__ == "__main__":
    sys.exit(main())

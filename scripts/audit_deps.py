"""`make test`'s dependency audit: pip-audit over the runtime dependencies as installed.

What is audited: requirements.txt and everything it pulls in, at the versions of requirements.lock's runtime
section (the versions the tests ran against and `make serve` installs; without a lock, the versions installed in
this venv), pinned exactly and given to pip-audit with --no-deps, so nothing is resolved again from an index. Dev and test tools (pytest, ruff, schemathesis, pip-audit
itself) are left out: they never run in the site.

Exit 0 when no known vulnerability is found or when the vulnerability database cannot be reached (said on
one line: machines without internet still run `make test`); exit 1 on any known vulnerability.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
UNREACHABLE = "pip-audit: could not reach the vulnerability database, skipped"
LOCK = ROOT / "requirements.lock"
RUNTIME_SECTION = "# [runtime]"


def top_level(path: Path) -> list[Requirement]:
    requirements = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate():
                requirements.append(requirement)
    return requirements


def installed_closure(requirements: list[Requirement]) -> dict[str, str]:
    """{canonical name: installed version} of the requirements and their dependencies (extras followed)."""
    pinned: dict[str, str] = {}
    todo = [(r, frozenset(r.extras)) for r in requirements]
    seen: set[tuple[str, frozenset]] = set()
    while todo:
        requirement, extras = todo.pop()
        name = canonicalize_name(requirement.name)
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            dist = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError:
            continue  # an optional dependency not installed here
        pinned[name] = dist.version
        for dependency in map(Requirement, dist.requires or []):
            environments = [{"extra": e} for e in extras] or [{"extra": ""}]
            if dependency.marker is None or any(dependency.marker.evaluate(env) for env in environments):
                todo.append((dependency, frozenset(dependency.extras)))
    return pinned


def lock_runtime_pins(text: str) -> dict[str, str]:
    """{name: version} of the runtime section of a lock written by scripts/lock_deps.py."""
    pins: dict[str, str] = {}
    in_runtime = False
    for line in text.splitlines():
        if line.startswith("# ["):
            in_runtime = line.startswith(RUNTIME_SECTION)
            continue
        line = line.split("#", 1)[0].strip()
        if line and in_runtime:
            name, version = line.split("==", 1)
            pins[canonicalize_name(name)] = version.strip()
    return pins


def verdict(report: dict) -> tuple[int, list[str]]:
    """(exit code, lines to print) from pip-audit's JSON report."""
    dependencies = report.get("dependencies", [])
    vulnerable = [d for d in dependencies if d.get("vulns")]
    audited = [d for d in dependencies if "skip_reason" not in d]
    if vulnerable:
        lines = [f"pip-audit: {len(vulnerable)} runtime dependencies with known vulnerabilities:"]
        for dep in vulnerable:
            for vuln in dep["vulns"]:
                fixed = ", ".join(vuln.get("fix_versions") or []) or "no fixed version yet"
                lines.append(f"  {dep['name']} {dep['version']}: {vuln['id']} (fixed in {fixed})")
        return 1, lines
    if not audited:
        # Every package skipped ("not found on PyPI"): the index answered without vulnerability data
        # (a mirror), which is not the same as "no vulnerabilities".
        return 0, [UNREACHABLE + f" ({len(dependencies)} packages not looked up)"]
    lines = [f"pip-audit: no known vulnerabilities in {len(audited)} runtime dependencies"]
    skipped = [d["name"] for d in dependencies if "skip_reason" in d]
    if skipped:
        lines.append(f"pip-audit: not looked up: {', '.join(sorted(skipped))}")
    return 0, lines


def main() -> int:
    pinned = lock_runtime_pins(LOCK.read_text()) if LOCK.exists() else installed_closure(top_level(ROOT / "requirements.txt"))
    with tempfile.TemporaryDirectory() as tmp:
        requirements = Path(tmp) / "runtime.txt"
        requirements.write_text("".join(f"{name}=={version}\n" for name, version in sorted(pinned.items())))
        output = Path(tmp) / "report.json"
        pip_audit = Path(sys.executable).with_name("pip-audit")
        completed = subprocess.run(
            [str(pip_audit), "-r", str(requirements), "--no-deps", "--disable-pip", "--progress-spinner", "off",
             "--timeout", "10", "--format", "json", "--output", str(output)],
            capture_output=True, text=True,
        )
        if not output.exists() or not output.read_text().strip():
            # No report at all: a connection error before any package was looked up.
            last = (completed.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"{UNREACHABLE} ({last[:200]})")
            return 0
        code, lines = verdict(json.loads(output.read_text()))
    print("\n".join(lines))
    return code


if __name__ == "__main__":
    sys.exit(main())

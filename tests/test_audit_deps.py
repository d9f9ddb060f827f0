"""scripts/audit_deps.py: what `make test` says and does for each answer pip-audit can give."""

import importlib.util
from pathlib import Path

from packaging.requirements import Requirement

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "audit_deps.py"
spec = importlib.util.spec_from_file_location("audit_deps", SCRIPT)
audit_deps = importlib.util.module_from_spec(spec)
spec.loader.exec_module(audit_deps)


def test_verdict_fails_on_a_known_vulnerability():
    report = {"dependencies": [
        {"name": "django", "version": "5.2.0", "vulns": [{"id": "PYSEC-2025-1", "fix_versions": ["5.2.1"]}]},
        {"name": "numpy", "version": "2.4.6", "vulns": []},
    ]}

    code, lines = audit_deps.verdict(report)

    assert code == 1
    assert "django 5.2.0: PYSEC-2025-1 (fixed in 5.2.1)" in "\n".join(lines)


def test_verdict_passes_when_every_package_was_looked_up_clean():
    report = {"dependencies": [{"name": "django", "version": "5.2.19", "vulns": []}]}

    code, lines = audit_deps.verdict(report)

    assert code == 0
    assert lines == ["pip-audit: no known vulnerabilities in 1 runtime dependencies"]


def test_verdict_says_skipped_when_no_package_could_be_looked_up():
    # What a PyPI mirror without the JSON API's vulnerability data answers: every package skipped.
    report = {"dependencies": [
        {"name": "django", "skip_reason": "Dependency not found on PyPI and could not be audited: django (5.2.19)"},
    ]}

    code, lines = audit_deps.verdict(report)

    assert code == 0
    assert lines[0].startswith(audit_deps.UNREACHABLE)


def test_installed_closure_pins_the_installed_versions_of_requirements_and_their_dependencies():
    from importlib import metadata

    pinned = audit_deps.installed_closure([Requirement("djangorestframework")])

    assert pinned["djangorestframework"] == metadata.version("djangorestframework")
    assert pinned["django"] == metadata.version("django")  # a dependency of DRF
    assert "pytest" not in pinned

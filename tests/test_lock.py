"""requirements.lock holds every declared dependency at one exact version, the runtime ones in its runtime section
(what `make serve` installs and the audit reads), and the Makefile installs from it."""

import importlib.util
import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "audit_deps.py"
spec = importlib.util.spec_from_file_location("audit_deps", SCRIPT)
audit_deps = importlib.util.module_from_spec(spec)
spec.loader.exec_module(audit_deps)
PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[0-9][A-Za-z0-9.+!-]*$")


def declared(path: Path) -> set[str]:
    """Canonical names a requirements file declares itself (markers ignored: the lock must cover every machine here)."""
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.add(canonicalize_name(Requirement(line).name))
    return names


def lock_entries() -> list[str]:
    return [line for line in (ROOT / "requirements.lock").read_text().splitlines() if line.strip() and not line.startswith("#")]


def test_lock_pins_every_package_to_one_exact_version():
    entries = lock_entries()

    loose = [line for line in entries if not PIN.match(line)]
    names = [canonicalize_name(line.split("==")[0]) for line in entries]

    assert len(entries) > 50
    assert loose == []
    assert len(names) == len(set(names))


def test_lock_holds_every_declared_runtime_dependency_in_its_runtime_section():
    runtime = audit_deps.lock_runtime_pins((ROOT / "requirements.lock").read_text())

    missing = declared(ROOT / "requirements.txt") - set(runtime)

    assert missing == set()
    assert "pyyaml" in runtime


def test_lock_holds_every_declared_development_dependency_outside_the_runtime_section():
    runtime = audit_deps.lock_runtime_pins((ROOT / "requirements.lock").read_text())
    locked = {canonicalize_name(line.split("==")[0]) for line in lock_entries()}

    missing = declared(ROOT / "requirements-dev.txt") - locked
    dev_in_runtime = declared(ROOT / "requirements-dev.txt") & set(runtime)

    assert missing == set()
    assert dev_in_runtime == set()


def test_lock_runtime_pins_read_only_the_runtime_section():
    text = "# header\n# [runtime] what runs\nDjango==5.2.1\nPyYAML==6.0.2  # why\n\n# [development] tests\npytest==8.3.0\n"

    pins = audit_deps.lock_runtime_pins(text)

    assert pins == {"django": "5.2.1", "pyyaml": "6.0.2"}


def test_makefile_installs_every_venv_from_the_lock_and_serve_without_dev_tools():
    makefile = (ROOT / "Makefile").read_text()
    installs = [line for line in makefile.splitlines() if re.search(r"\b(PIP_INSTALL|pip install)\b.*-r requirements", line)]

    assert len(installs) == 3
    # The site's venvs from requirements.lock; the MLflow client's test venv from its own lock (its packages never mix).
    assert [line for line in installs if "$(PIP_INSTALL)" not in line] == [
        "\t$(MLFLOW_VENV)/bin/pip install --disable-pip-version-check -q -r requirements-mlflow.txt -c requirements-mlflow.lock"]
    assert re.search(r"^PIP_INSTALL = pip install .*-c requirements\.lock", makefile, re.MULTILINE)
    assert re.search(r"^\$\(SERVE_STAMP\):.*\n.*\n\t\$\(SERVE_BIN\)/\$\(PIP_INSTALL\) -r requirements\.txt$", makefile, re.MULTILINE)
    assert re.search(r"^serve: \$\(SERVE_STAMP\)", makefile, re.MULTILINE)


def unexplained(text: str) -> list[str]:
    """Requirement lines with neither a comment of their own nor a comment line right above them."""
    found, previous = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", "-")) and "#" not in stripped and not previous.startswith("#"):
            found.append(stripped)
        previous = stripped
    return found


def test_every_runtime_dependency_says_why_it_is_there():
    assert unexplained((ROOT / "requirements.txt").read_text()) == []


def test_unexplained_finds_a_bare_requirement_only():
    text = "# why a\na>=1\nb>=2  # why b\n# why c\n# more\nc>=3\n\nd>=4\n-r other.txt\n"

    assert unexplained(text) == ["d>=4"]

"""What `pip install .` and `pip install ./mlops_client` declare: the site's dependencies are requirements.txt's, the
client's are `requests` alone, and both install the `mlops` command. The wheels are built by pip from a copy of the
sources (setuptools from the package index, as `pip install .` does) and read back."""

import shutil
import subprocess
import sys
import tomllib
import zipfile

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.client.test_cli import ROOT


def requirement_lines(text: str) -> list[str]:
    """requirements.txt's requirements: comments (whole-line or trailing) and blank lines left out."""
    lines = (line.split(" #", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def normalized(requirement: str) -> tuple:
    parsed = Requirement(requirement)
    return canonicalize_name(parsed.name), tuple(sorted(parsed.extras)), str(parsed.specifier), str(parsed.marker or "")


def test_project_dependencies_are_requirements_txt_with_the_same_bounds():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    required = requirement_lines((ROOT / "requirements.txt").read_text())

    declared = sorted(normalized(r) for r in project["dependencies"])
    expected = sorted(normalized(r) for r in required)

    assert declared == expected
    assert len(required) == len(set(required))


def test_the_client_alone_needs_only_requests_with_the_sites_bound():
    client = tomllib.loads((ROOT / "mlops_client" / "pyproject.toml").read_text())["project"]
    site = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    site_requests = [normalized(r) for r in site["dependencies"] if canonicalize_name(Requirement(r).name) == "requests"]

    assert [normalized(r) for r in client["dependencies"]] == site_requests
    assert client["version"] == site["version"]


def test_both_distributions_install_the_mlops_command_and_carry_the_package_version():
    site = tomllib.loads((ROOT / "pyproject.toml").read_text())
    client = tomllib.loads((ROOT / "mlops_client" / "pyproject.toml").read_text())
    init = (ROOT / "mlops_client" / "__init__.py").read_text()

    assert site["project"]["scripts"] == client["project"]["scripts"] == {"mlops": "mlops_client.cli:main"}
    assert f'__version__ = "{site["project"]["version"]}"' in init
    assert "mlops_client*" in site["tool"]["setuptools"]["packages"]["find"]["include"]


def build_wheel(source, out) -> zipfile.ZipFile:
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(source)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    (wheel,) = out.glob("*.whl")
    return zipfile.ZipFile(wheel)


def metadata(wheel: zipfile.ZipFile, name: str) -> str:
    (path,) = [n for n in wheel.namelist() if n.endswith(f".dist-info/{name}")]
    return wheel.read(path).decode()


def test_the_client_wheel_holds_the_sdk_and_the_mlops_command_and_needs_only_requests(tmp_path):
    shutil.copytree(ROOT / "mlops_client", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))

    wheel = build_wheel(tmp_path / "src", tmp_path / "out")

    names = set(wheel.namelist())
    requires = [line for line in metadata(wheel, "METADATA").splitlines() if line.startswith("Requires-Dist:")]
    assert {"mlops_client/__init__.py", "mlops_client/sdk.py", "mlops_client/events.py", "mlops_client/cli.py"} <= names
    assert not any(n.startswith(("registry/", "mlops_site/", "templates/")) or n.endswith("pyproject.toml") for n in names)
    assert requires == ["Requires-Dist: requests>=2.31"]
    assert "mlops = mlops_client.cli:main" in metadata(wheel, "entry_points.txt")


def test_the_site_wheel_holds_the_apps_their_templates_static_files_and_data(tmp_path):
    src = tmp_path / "src"
    skip = shutil.ignore_patterns("__pycache__", "build", "*.egg-info")
    for folder in ("mlops_site", "registry", "monitoring", "experiments", "mlops_client", "demo", "templates", "static"):
        shutil.copytree(ROOT / folder, src / folder, ignore=skip)
    for file in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / file, src / file)

    wheel = build_wheel(src, tmp_path / "out")

    names = set(wheel.namelist())
    on_disk = {p.relative_to(ROOT).as_posix() for folder in ("templates", "static") for p in (ROOT / folder).rglob("*") if p.is_file()}
    assert on_disk and on_disk <= names
    assert {"mlops_site/settings.py", "registry/migrations/0001_initial.py", "experiments/stats.py", "demo/apps.py"} <= names
    assert {f"monitoring/data/{p.name}" for p in (ROOT / "monitoring" / "data").glob("*.json")} <= names
    assert not any(n.startswith(("tests/", "bench/", "mutants/")) or "__pycache__" in n for n in names)
    assert "License-Expression: Apache-2.0" in metadata(wheel, "METADATA")
    assert "mlops = mlops_client.cli:main" in metadata(wheel, "entry_points.txt")

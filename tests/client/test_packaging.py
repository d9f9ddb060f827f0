"""What `pip install .` and `pip install ./mlops_client` declare: the site's dependencies are requirements.txt's, the
client's are `requests` alone, and both install the `mlops` command (the installs themselves: docs/sdk.md)."""

import tomllib

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

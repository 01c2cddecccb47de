"""The set-up files agree with each other (environment.yml, pyproject.toml, constraints, .ci/run, README)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[; ]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_installs_this_package_with_its_extras():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    pip_sections = [d["pip"] for d in deps if isinstance(d, dict) and "pip" in d]
    assert pip_sections, "environment.yml needs a pip section that installs xdtutor"
    pip_lines = pip_sections[0]
    extras = _pyproject()["project"]["optional-dependencies"]
    editable = [l for l in pip_lines if l.startswith("-e .")]
    assert editable, "environment.yml must install the package itself (-e .[...])"
    named = set(re.findall(r"\[(.*)\]", editable[0])[0].split(","))
    assert named == set(extras), f"environment.yml extras {named} != pyproject extras {set(extras)}"


def test_environment_python_satisfies_requires_python():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    py = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    version = tuple(int(x) for x in py.split("=")[-1].split(".")[:2])
    minimum = re.search(r">=\s*(\d+)\.(\d+)", _pyproject()["project"]["requires-python"])
    assert version >= (int(minimum.group(1)), int(minimum.group(2)))


def test_pyproject_keeps_ranges_and_constraints_pin_every_dependency():
    project = _pyproject()["project"]
    reqs = list(project["dependencies"]) + [r for v in project["optional-dependencies"].values() for r in v]
    for req in reqs:
        assert "==" not in req, f"pyproject.toml pins {req!r}: keep ranges there, pins go in constraints/ci.txt"
    pinned = {}
    for line in (ROOT / "constraints" / "ci.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pinned[name.lower().replace("_", "-")] = version
    missing = sorted({_name(r) for r in reqs} - set(pinned))
    assert not missing, f"constraints/ci.txt does not pin {missing}"
    assert pinned["torch"].startswith("2.13.0"), "CI must use the torch wheel on local disk (2.13.0 CPU)"


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in ci and "make test" in readme
    assert "XDTUTOR_DATA_DIR" in ci and "HF_HUB_OFFLINE=1" in ci

"""Dependencies as a library's: ranges in pyproject.toml, exact pins only in constraints.txt.

* every declared requirement (runtime and extras) is a range, never ``==``;
* every runtime dependency is imported by ``cde_otel`` (nothing unused);
* constraints.txt pins every package installed in this venv, at the installed version
  (``scripts/_venv.sh`` installs from it; ``scripts/lock.sh`` regenerates it);
* the optional parts say what to install when their extra is missing: E903 for gRPC, a one-line
  message from the ``cde-otel`` script for the CLI.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from cde_otel.errors import CDESystemError
from cde_otel.settings import load_settings
from cde_otel.telemetry._pipeline import select_exporters

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$")
# Installed by venv/pip themselves, not by our requirements.
_TOOLING = {"pip", "setuptools", "wheel"}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _split(requirement: str) -> tuple[str, str]:
    match = _NAME.match(requirement.split(";", maxsplit=1)[0])
    assert match, requirement
    return _normalise(match.group(1)), match.group(3).strip()


def _requirements() -> dict[str, list[str]]:
    groups = {"runtime": PYPROJECT["project"]["dependencies"]}
    groups.update(PYPROJECT["project"]["optional-dependencies"])
    return groups


def test_every_declared_requirement_is_a_range() -> None:
    for group, requirements in _requirements().items():
        for requirement in requirements:
            name, spec = _split(requirement)
            if name == "cde-otel":  # the dev extra pulling in the others
                assert spec == "", requirement
                continue
            assert "==" not in spec and "~=" not in spec, f"{group}: {requirement} is a pin, not a range"
            if group == "runtime":
                assert ">=" in spec, f"{requirement}: a runtime dependency needs a tested lower bound"
    build = PYPROJECT["build-system"]["requires"]
    assert all("==" not in r for r in build), build


def _imported_top_levels() -> set[str]:
    modules: set[str] = set()
    for path in (ROOT / "cde_otel").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.add(node.module)
    return modules


def test_every_runtime_dependency_is_imported() -> None:
    imported = _imported_top_levels()
    for requirement in PYPROJECT["project"]["dependencies"]:
        name, _ = _split(requirement)
        files = metadata.distribution(name).files or []
        provided = {
            str(f.parent if f.name == "__init__.py" else f.with_suffix("")).replace("/", ".")
            for f in files
            if f.suffix == ".py" and ".dist-info" not in str(f) and "__pycache__" not in str(f)
        } | {f.name.split(".")[0] for f in files if f.suffix in (".so", ".pyd") and "/" not in str(f)}  # C modules
        used = {module for module in imported if any(module == p or module.startswith(p + ".") for p in provided)}
        assert used, f"{name} is declared but cde_otel never imports it"


def test_constraints_pin_every_installed_package() -> None:
    lines = [ln.strip() for ln in (ROOT / "constraints.txt").read_text().splitlines()]
    pins: dict[str, str] = {}
    for line in lines:
        if not line or line.startswith("#"):
            continue
        name, _, version = line.partition("==")
        assert version and re.fullmatch(r"[A-Za-z0-9._+!-]+", version), f"not an exact pin: {line!r}"
        pins[_normalise(name)] = version
    installed = {
        _normalise(dist.metadata["Name"]): dist.version
        for dist in metadata.distributions()
        if _normalise(dist.metadata["Name"]) not in _TOOLING | {"cde-otel"}
    }
    unpinned = sorted(set(installed) - set(pins))
    assert not unpinned, f"installed but not in constraints.txt (run bash scripts/lock.sh): {unpinned}"
    moved = {name: (pins[name], version) for name, version in installed.items() if pins[name] != version}
    assert not moved, f"installed versions differ from constraints.txt: {moved}"
    # Every requirement of every extra is pinned too, so CI and the README commands install one tested set.
    for requirements in _requirements().values():
        for requirement in requirements:
            assert _split(requirement)[0] in pins | {"cde-otel": ""}, requirement


def test_venv_script_installs_from_the_constraints() -> None:
    script = (ROOT / "scripts" / "_venv.sh").read_text()
    assert '-c "$ROOT/constraints.txt" -e "$ROOT[dev]"' in script
    assert '"$ROOT/constraints.txt"' in script.split("WANT=")[1].splitlines()[0], "reinstall when it changes"


def test_grpc_protocol_without_the_extra_is_a_coded_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> object:
        return None if name.startswith("opentelemetry.exporter.otlp.proto.grpc") else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    with pytest.raises(CDESystemError) as caught:
        select_exporters(load_settings({}), env)
    assert caught.value.code == "E903"
    assert "cde-otel[grpc]" in str(caught.value)


def test_console_script_names_the_cli_extra_when_typer_is_missing() -> None:
    code = "import sys; sys.modules['typer'] = None\nfrom cde_otel.__main__ import main\nmain()"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "cde-otel: the command line needs the 'cli' extra (typer is not installed): pip install 'cde-otel[cli]'"
    )


def test_console_script_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cde_otel", "errors", "explain", "E903"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "E903" in result.stdout

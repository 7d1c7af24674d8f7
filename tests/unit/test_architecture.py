"""The layering as it shows at run time: what each entry point loads, and the start-up hook.

The import contract itself (layer order, pure modules) is checked by ``lint-imports`` from
``[tool.importlinter]`` in pyproject.toml; these tests check its visible effects in fresh
interpreters.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import pytest

PIPELINE_MODULES = ("opentelemetry.sdk", "opentelemetry.exporter", "cde_otel.telemetry", "opentelemetry.processor")
_LOADED = "import json, sys; print(json.dumps(sorted(sys.modules)))"


def _run(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def loaded_after(clean_env: Callable[..., dict[str, str]]) -> Callable[[str], list[str]]:
    """``loaded_after(code)``: every module a fresh interpreter has loaded after running ``code``."""

    def run(code: str) -> list[str]:
        proc = _run(f"{code}\n{_LOADED}", clean_env())
        assert proc.returncode == 0, proc.stderr
        modules: list[str] = json.loads(proc.stdout.splitlines()[-1])
        return modules

    return run


def _pipeline(modules: list[str]) -> list[str]:
    return [m for m in modules if m.startswith(PIPELINE_MODULES)]


def test_importing_the_instrumentor_loads_no_sdk_and_no_pipeline(loaded_after: Callable[[str], list[str]]) -> None:
    modules = loaded_after("import cde_otel.instrumentation")

    assert _pipeline(modules) == []
    assert "cde_otel.core" not in modules  # observing the core does not import it


def test_the_mcp_instrumentation_loads_no_sdk_no_pipeline_and_no_mcp_framework(
    loaded_after: Callable[[str], list[str]],
) -> None:
    """Like FastMCP's own telemetry: no SDK, no cost. Instrumenting without providers uses the
    API's global ones, and the server frameworks are patched when (if) the app imports them."""
    imported = loaded_after("import cde_otel.instrumentation.mcp")
    instrumented = loaded_after(
        "from cde_otel.instrumentation.mcp import MCPInstrumentor\nMCPInstrumentor().instrument()"
    )

    for modules in (imported, instrumented):
        assert "cde_otel.instrumentation.mcp" in modules
        assert _pipeline(modules) == []
        assert [m for m in modules if m.split(".")[0] in ("mcp", "fastmcp")] == []
        assert "cde_otel.core" not in modules


def test_logging_without_otel_loads_no_sdk_and_no_pipeline(loaded_after: Callable[[str], list[str]]) -> None:
    modules = loaded_after("from cde_otel.logging import setup_logging\nsetup_logging(otel=False, console=False)")

    assert _pipeline(modules) == []
    assert "cde_otel.logging._bridge" not in modules


def test_the_core_and_the_settings_load_no_opentelemetry(loaded_after: Callable[[str], list[str]]) -> None:
    modules = loaded_after("import cde_otel.core, cde_otel.settings, cde_otel.errors")

    assert [m for m in modules if m.startswith(("opentelemetry", "structlog"))] == []


ENTRY_POINTS = [
    "cde_otel",
    "cde_otel.core",
    "cde_otel.settings",
    "cde_otel.errors",
    "cde_otel.resilience",
    "cde_otel.instrumentation",
    "cde_otel.instrumentation.mcp",
    "cde_otel.logging",
    "cde_otel.health",
    "cde_otel.telemetry",
    "cde_otel.cli",
    "cde_otel.testing",
    "cde_otel.demo_workload",
]


@pytest.mark.parametrize("first", ENTRY_POINTS)
def test_start_up_hook_configures_whatever_the_app_imports_first(
    first: str, clean_env: Callable[..., dict[str, str]]
) -> None:
    """With CDE_OTEL_ENABLED the .pth hook configures telemetry when the core is imported, even
    when that import happens inside one of our own modules being imported (it used to fail with
    a false "circular import" message). stderr then holds the one start-up line and nothing else."""
    code = f"import {first}\nimport cde_otel.core\nfrom cde_otel import telemetry\nprint(telemetry.is_configured())"
    env = clean_env(
        CDE_OTEL_ENABLED="true", OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none"
    )

    proc = _run(code, env)

    assert proc.returncode == 0, proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith("cde-otel: telemetry on for service cde-orchestrator: traces, metrics and logs -> off;")
    assert proc.stdout.strip() == "True"

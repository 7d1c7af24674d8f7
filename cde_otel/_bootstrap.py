"""Start-up hook: imported by ``cde_otel_bootstrap.pth`` only when ``CDE_OTEL_ENABLED`` is on.

It imports nothing heavy itself: it asks to be told when the CDE core (or the upstream
``cde_orchestrator`` package, or a module named in ``CDE_OTEL_TARGETS``) is imported, and
configures telemetry then. A process that never touches CDE code pays only for wrapt.
``OTEL_SDK_DISABLED=true`` wins over everything.
"""

from __future__ import annotations

import os
import sys

_running = False


def _configure_once(_module: object) -> None:
    global _running
    if _running:  # a watched module imported while this very hook sets telemetry up: that call configures
        return
    _running = True
    try:
        from cde_otel.telemetry import configure

        configure()
    except Exception as exc:  # start-up must never fail because of telemetry
        sys.stderr.write(f"cde-otel: telemetry was not enabled: {exc}\n")
    finally:
        _running = False


def _watched_modules() -> list[str]:
    modules = ["cde_otel.core", "cde_orchestrator"]
    for spec in os.environ.get("CDE_OTEL_TARGETS", "").split(","):
        module = spec.strip().partition(":")[0]
        if module:
            modules.append(module)
    return modules


def _start() -> None:
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return
    import wrapt

    for module in _watched_modules():
        wrapt.register_post_import_hook(_configure_once, module)


_start()

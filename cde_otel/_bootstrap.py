"""Start-up hook: imported by ``cde_otel_bootstrap.pth`` only when ``CDE_OTEL_ENABLED`` is on.

It imports nothing heavy itself: it asks to be told when the CDE core, the upstream
``cde_orchestrator`` package, an MCP server library (``mcp.server``: the official SDK and
everything built on it; ``fastmcp``) or a module named in ``CDE_OTEL_TARGETS`` is imported, and
configures telemetry then - so any MCP server gets tool-call traces with no code change. A process
that never touches those pays only for wrapt. Under ``opentelemetry-instrument`` (which builds the
providers itself) it also gives the launcher's resource cde-otel's default service name where the
user named none.
``OTEL_SDK_DISABLED=true`` wins over everything.
"""

from __future__ import annotations

import os
import sys
from typing import Any


class _ConfigureOnce:
    """The post-import hook: configures telemetry, unless it is running already (the hook is process-wide)."""

    running = False

    def __call__(self, _module: object) -> None:
        if self.running:  # a watched module imported while this very hook sets telemetry up: that call configures
            return
        self.running = True
        try:
            from cde_otel.telemetry import configure

            configure()
        except Exception as exc:  # start-up must never fail because of telemetry
            sys.stderr.write(f"cde-otel: telemetry was not enabled: {exc}\n")
        finally:
            self.running = False


_configure_once = _ConfigureOnce()


def _watched_modules() -> list[str]:
    modules = ["cde_otel.core", "cde_orchestrator", "mcp.server", "fastmcp"]
    for spec in os.environ.get("CDE_OTEL_TARGETS", "").split(","):
        module = spec.strip().partition(":")[0]
        if module:
            modules.append(module)
    return modules


def _default_service_name(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``opentelemetry-instrument`` builds its providers' resource here: where neither the user
    (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``) nor the configurator named the service,
    cde-otel's default name goes in instead of ``unknown_service:python``. Nothing else changes."""
    try:
        given = kwargs.get("resource_attributes")
        if not (isinstance(given, dict) and "service.name" in given):
            from cde_otel.telemetry._resource import DEFAULT_SERVICE_NAME, configured_service_name

            if configured_service_name(os.environ) == DEFAULT_SERVICE_NAME:
                kwargs = {**kwargs, "resource_attributes": {**(given or {}), "service.name": DEFAULT_SERVICE_NAME}}
    except Exception as exc:  # the launcher's set-up must never fail because of us
        sys.stderr.write(f"cde-otel: default service name not applied: {exc}\n")
    return wrapped(*args, **kwargs)


def _wrap_sdk_configuration(module: Any) -> None:
    import wrapt

    if callable(getattr(module, "_initialize_components", None)):
        wrapt.wrap_function_wrapper(module, "_initialize_components", _default_service_name)


def _start() -> None:
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return
    import wrapt

    for module in _watched_modules():
        wrapt.register_post_import_hook(_configure_once, module)
    # Imported by opentelemetry-instrument (its sitecustomize runs after this .pth): see above.
    wrapt.register_post_import_hook(_wrap_sdk_configuration, "opentelemetry.sdk._configuration")


_start()

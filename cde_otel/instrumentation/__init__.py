"""OpenTelemetry instrumentation of the CDE project, feature and state operations.

Usage
-----

The one-variable way (nothing else to change)::

    CDE_OTEL_ENABLED=true python app.py

With the standard OpenTelemetry launcher (the ``opentelemetry_instrumentor`` entry point
named ``cde`` is picked up automatically)::

    opentelemetry-instrument python app.py

Programmatically, with your own providers::

    from cde_otel.instrumentation import CDEInstrumentor

    CDEInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    ...
    CDEInstrumentor().uninstrument()

What is patched is declared once in :mod:`cde_otel.instrumentation._targets`: the methods of
``cde_otel.core`` (``Project.start_feature/activate/archive/transition_status``,
``Feature.advance_phase/complete/fail``, ``FileSystemProjectRepository.get_or_create/
get_by_path/save`` and the backup/restore operations) and the same operations of the upstream
``cde_orchestrator`` package when it is importable (patched on import, even after
``instrument()``). Add your own with ``CDE_OTEL_TARGETS=module:Class.method,...`` or
``instrument(targets=[...])``; sync and async methods both work.

Each call produces a span ``<Class>.<method>`` carrying ``cde.operation``, ``cde.project.id``,
``cde.feature.id``, ``cde.feature.phase`` and ``cde.correlation_id``; a record in the
``cde.operation.duration`` histogram (seconds); ``cde.errors`` on failure; and, when structlog
is configured, a start and an end log event. Prompt text is never recorded unless
``CDE_OTEL_CAPTURE_CONTENT=true``.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from collections.abc import Collection, Iterable
from typing import Any

import wrapt
from opentelemetry import metrics, trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import unwrap
from opentelemetry.metrics import CallbackOptions, Observation

from cde_otel._version import __version__
from cde_otel.instrumentation._feature_state import ActiveFeatures
from cde_otel.instrumentation._instruments import errors_counter
from cde_otel.instrumentation._targets import CORE_TARGETS, UPSTREAM_TARGETS, Role, Target, parse_target
from cde_otel.instrumentation._wrapper import OperationTelemetry, dont_throw
from cde_otel.semconv import (
    CLASSIC_BOUNDARIES_S,
    METRIC_FEATURES_ACTIVE,
    METRIC_OPERATION_DURATION,
    SCHEMA_URL,
    SCOPE_NAME,
)
from cde_otel.settings import Settings, load_settings

__all__ = ["CDEInstrumentor", "Role", "Target", "parse_target"]

_log = logging.getLogger("cde_otel.instrumentation")
_hooked_modules: set[str] = set()


class CDEInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Patches CDE operations with spans, metrics and log events (see the module docs)."""

    _telemetry: OperationTelemetry | None = None
    _features: ActiveFeatures | None = None
    _patched: list[Target]
    _pending: list[Target]

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        settings: Settings = kwargs.get("settings") or load_settings()
        tracer = trace.get_tracer(
            SCOPE_NAME, __version__, tracer_provider=kwargs.get("tracer_provider"), schema_url=SCHEMA_URL
        )
        meter = metrics.get_meter(
            SCOPE_NAME, __version__, meter_provider=kwargs.get("meter_provider"), schema_url=SCHEMA_URL
        )
        log_start, log_end = _operation_loggers(kwargs.get("log_operations"))
        telemetry = OperationTelemetry(
            tracer,
            meter.create_histogram(
                METRIC_OPERATION_DURATION,
                unit="s",
                description="Duration of CDE project, feature and state operations.",
                explicit_bucket_boundaries_advisory=CLASSIC_BOUNDARIES_S,
            ),
            errors_counter(kwargs.get("meter_provider")),
            log_start=log_start,
            log_end=log_end,
            capture_content=settings.capture_content,
            capture_max_length=settings.capture_max_length,
        )
        features = ActiveFeatures()
        meter.create_observable_gauge(
            METRIC_FEATURES_ACTIVE,
            callbacks=[_active_features_callback(features)],
            unit="{feature}",
            description="Features started and neither completed nor failed, in the project states this process "
            "last loaded or saved.",
        )
        self._features = features
        self._telemetry = telemetry
        self._patched = []
        self._pending = []
        targets = list(CORE_TARGETS)
        if settings.instrument_upstream:
            targets += UPSTREAM_TARGETS
        targets += [parse_target(spec) for spec in settings.targets]
        targets += [t if isinstance(t, Target) else parse_target(t) for t in kwargs.get("targets") or ()]
        for target in targets:
            self._patch_or_defer(target)

    def _uninstrument(self, **kwargs: Any) -> None:
        telemetry = self._telemetry
        if telemetry is not None:
            telemetry.active = False  # disarms wrappers installed later by post-import hooks, too
        if self._features is not None:
            self._features.active = False
        for target in self._patched:
            module = sys.modules.get(target.module)
            cls = getattr(module, target.cls, None)
            if cls is not None:
                unwrap(cls, target.method)
        self._patched = []
        self._pending = []
        self._telemetry = None
        self._features = None

    # -- patching -------------------------------------------------------------------
    def _patch_or_defer(self, target: Target) -> None:
        if target.module in sys.modules or (target.role is not Role.CUSTOM and target.module.startswith("cde_otel.")):
            self._patch(target)
            return
        self._pending.append(target)
        if target.module not in _hooked_modules:
            _hooked_modules.add(target.module)
            wrapt.register_post_import_hook(_on_import, target.module)
        if target.role is Role.CUSTOM and _module_importable(target.module):
            # User targets are imported eagerly so a typo shows at start-up, not never.
            importlib.import_module(target.module)

    @dont_throw
    def _patch(self, target: Target) -> None:
        telemetry = self._telemetry
        if telemetry is None or target in self._patched:
            return
        module = importlib.import_module(target.module)
        cls = getattr(module, target.cls, None)
        func = getattr(cls, target.method, None) if cls is not None else None
        if func is None:
            if target.role is Role.CUSTOM:
                _log.warning("cde-otel: instrumentation target %s does not exist; skipped", target.spec)
            return
        if isinstance(func, wrapt.ObjectProxy):  # already wrapped by an earlier instrumentor instance
            return
        wrapper = telemetry.wrapper_for(target, func)
        if target.role is Role.STORE and self._features is not None:
            wrapper = self._features.observing(target, func, wrapper)  # cde.features.active
        wrapt.wrap_function_wrapper(module, target.qualname, wrapper)
        self._patched.append(target)

    def _on_module_imported(self, name: str) -> None:
        if self._telemetry is None:  # not instrumented (the flag on the base class is set only after _instrument)
            return
        for target in [t for t in self._pending if t.module == name]:
            self._pending.remove(target)
            self._patch(target)

    @property
    def patched_targets(self) -> list[Target]:
        return list(getattr(self, "_patched", []))

    @property
    def is_active(self) -> bool:
        """Instrumented, or being instrumented right now (``instrument()`` is running)."""
        return self._telemetry is not None

    @property
    def operation_telemetry(self) -> OperationTelemetry | None:
        return self._telemetry


def _on_import(module: Any) -> None:
    _hooked_modules.discard(module.__name__)  # wrapt forgets a hook once it fired: so do we
    try:
        CDEInstrumentor()._on_module_imported(module.__name__)
    except Exception:
        _log.debug("cde-otel: post-import instrumentation of %s failed", module.__name__, exc_info=True)


def _module_importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _active_features_callback(features: ActiveFeatures) -> Any:
    def observe(options: CallbackOptions) -> Iterable[Observation]:
        if not features.active:
            return []
        return [Observation(features.total())]

    return observe


def _operation_loggers(log_operations: bool | None) -> tuple[Any, Any]:
    """Start/end event emitters, or (None, None) when ``log_operations=False``.

    The emitters write through stdlib logging, which stays silent until logging is set up
    (``configure()`` or ``cde_otel.logging.setup_logging``), so instrumenting alone never
    prints to an application's output and a later ``setup_logging`` starts the events.
    """
    if log_operations is False:
        return None, None
    from cde_otel.logging._operations import log_operation_end, log_operation_start

    return log_operation_start, log_operation_end

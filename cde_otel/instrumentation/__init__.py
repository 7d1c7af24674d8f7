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

Your own attributes, contrib style (see :class:`CDEInstrumentor`)::

    def request_hook(span, instance, args, kwargs):
        span.set_attribute("app.tenant", tenant_of(instance))

    CDEInstrumentor().instrument(request_hook=request_hook, response_hook=None)

What is patched is declared once in :mod:`cde_otel.instrumentation._targets`: the methods of
``cde_otel.core`` (``Project.start_feature/activate/archive/transition_status``,
``Feature.advance_phase/complete/fail``, ``FileSystemProjectRepository.get_or_create/
get_by_path/save`` and the backup/restore operations) and the same operations of the upstream
``cde_orchestrator`` package when it is importable. Both are patched when the host imports them,
even after ``instrument()``: a host that never uses one does not import it for us. Add your own
with ``CDE_OTEL_TARGETS=module:Class.method,...`` or ``instrument(targets=[...])``; sync and async
methods both work. An entry that is malformed, whose module fails to import, or that is not a
method of a class, is reported once (a warning on the ``cde_otel.instrumentation`` logger, or one
line on stderr) and skipped; the rest is instrumented.
A module that cannot be found yet is patched when it is imported, and reported at ``uninstrument()``
(the exit) if it never was.

Each call produces a span ``<Class>.<method>`` carrying ``cde.operation``, ``cde.project.id``,
``cde.feature.id``, ``cde.feature.phase`` and ``cde.correlation_id``; a record in the
``cde.operation.duration`` histogram (seconds) over exactly the span's interval; ``cde.errors``
on failure; and the operation events (:class:`~cde_otel.logging.OperationEvents`: a line where a
log file or console is configured, an OpenTelemetry log record for a failed or slow operation) —
``instrument(operation_events=...)`` passes yours, ``log_operations=False`` turns them off. Prompt
text is never recorded unless ``CDE_OTEL_CAPTURE_CONTENT=true``.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from collections.abc import Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation

from cde_otel._exceptions import CDESystemError
from cde_otel.instrumentation._base import HookedInstrumentor, UserHooks, Wrapper
from cde_otel.instrumentation._feature_state import ActiveFeatures
from cde_otel.instrumentation._instruments import duration_histogram, errors_counter, scope_instruments
from cde_otel.instrumentation._targets import CORE_TARGETS, UPSTREAM_TARGETS, Role, Target, parse_target
from cde_otel.instrumentation._wrapper import OperationTelemetry
from cde_otel.logging import OperationEvents, tell_host
from cde_otel.semconv import (
    METRIC_FEATURES_ACTIVE,
    METRIC_OPERATION_DURATION,
    SCOPE_NAME,
)
from cde_otel.settings import Settings, load_settings

__all__ = ["CDEInstrumentor", "Role", "Target", "parse_target"]

_log = logging.getLogger("cde_otel.instrumentation")
_reported_targets: set[str] = set()


class CDEInstrumentor(HookedInstrumentor):
    """Patches CDE operations with spans, metrics and log events (see the module docs).

    ``instrument()`` takes, besides the contrib ones (``tracer_provider``, ``meter_provider``):
    ``settings``, ``targets`` (more ``module:Class.method`` entries or :class:`Target` objects),
    ``operation_events``/``log_operations`` (the operation events), and two hooks, contrib style:

    * ``request_hook(span, instance, args, kwargs)``: called when an operation's span has started,
      with the object the method was called on and the call's arguments;
    * ``response_hook(span, instance, result)``: called with the return value of an operation
      that returned, before its span ends.

    A hook that raises is swallowed, logged at debug level and counted in
    ``cde.instrumentation.failures`` (sites ``hook.request``/``hook.response``); the operation is
    never affected.
    """

    _patch_site = "wrapper"
    _post_import_site = "post_import"
    _features: ActiveFeatures | None = None

    def _setup(self, kwargs: dict[str, Any]) -> OperationTelemetry:
        settings: Settings = kwargs.get("settings") or load_settings()
        self._settings = settings
        tracer, meter = scope_instruments(SCOPE_NAME, kwargs)
        telemetry = OperationTelemetry(
            tracer,
            duration_histogram(
                meter,
                METRIC_OPERATION_DURATION,
                "Duration of CDE project, feature and state operations.",
                meter_provider=kwargs.get("meter_provider"),
            ),
            errors_counter(kwargs.get("meter_provider")),
            events=_operation_events(settings, kwargs),
            capture_content=settings.capture_content,
            capture_max_length=settings.capture_max_length,
            hooks=UserHooks.from_kwargs(kwargs),
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
        return telemetry

    def _targets(self, kwargs: dict[str, Any]) -> list[Target]:
        settings = self._settings
        targets = list(CORE_TARGETS)
        if settings.instrument_upstream:
            targets += UPSTREAM_TARGETS
        return targets + user_targets([*settings.targets, *(kwargs.get("targets") or ())])

    def _teardown(self, state: OperationTelemetry) -> None:
        state.active = False  # disarms wrappers installed later by post-import hooks, too
        if self._features is not None:
            self._features.active = False
        self._features = None

    def _uninstrument(self, **kwargs: Any) -> None:
        for target in self._pending:
            if target.role is Role.CUSTOM:
                report_bad_target(target.spec, f"module {target.module!r} was never imported")
        super()._uninstrument(**kwargs)

    # -- patching -------------------------------------------------------------------
    def _patch_now(self, target: Target) -> bool:
        if target.module in sys.modules:
            return True
        if target.role is not Role.CUSTOM:
            return False  # patched if and when the host imports it (ours or cde_orchestrator)
        if not _module_importable(target.module):
            # Not importable yet (telemetry may start before the script's directory is on sys.path):
            # patched if it is imported later, reported at uninstrument() (exit) if it never was.
            return False
        # User targets are imported now, so that a typo shows at start-up rather than never.
        try:
            importlib.import_module(target.module)
        except Exception as exc:
            report_bad_target(target.spec, f"importing {target.module!r} failed: {type(exc).__name__}: {exc}")
        return True

    def _hook(self, target: Target, current: Any) -> Wrapper | None:
        telemetry: OperationTelemetry = self._state
        module = sys.modules.get(target.module)
        cls = getattr(module, target.cls, None)
        problem = _not_a_method(target, cls, current)
        if problem is not None:
            if target.role is Role.CUSTOM:
                report_bad_target(target.spec, problem)
            return None
        wrapper = telemetry.wrapper_for(target, current)
        if (target.role is Role.STORE or target.settles) and self._features is not None:
            wrapper = self._features.observing(target, current, wrapper)  # cde.features.active
        return wrapper

    def _patch_failed(self, target: Target, exc: Exception) -> None:
        if isinstance(exc, TypeError | AttributeError):  # e.g. a method of a built-in type
            report_bad_target(target.spec, f"it cannot be patched ({exc})")
        else:
            super()._patch_failed(target, exc)

    @property
    def patched_targets(self) -> list[Target]:
        return list(getattr(self, "_patched", []))

    @property
    def operation_telemetry(self) -> OperationTelemetry | None:
        telemetry: OperationTelemetry | None = self._state
        return telemetry


def user_targets(specs: Iterable[str | Target]) -> list[Target]:
    """The well-formed user targets among ``specs``; every malformed one is reported once and skipped."""
    targets: list[Target] = []
    for spec in specs:
        if isinstance(spec, Target):
            targets.append(spec)
            continue
        try:
            targets.append(parse_target(spec))
        except CDESystemError as exc:
            report_bad_target(spec, f"it must look like 'package.module:Class.method' ({exc.code})")
    return targets


def report_bad_target(spec: str, problem: str) -> None:
    """Tells the host, once per entry, that a ``CDE_OTEL_TARGETS`` entry was skipped and why."""
    if spec in _reported_targets:
        return
    _reported_targets.add(spec)
    tell_host(_log, f"instrumentation target {spec!r} skipped: {problem}")


def _not_a_method(target: Target, cls: Any, func: Any) -> str | None:
    """Why ``target`` cannot be instrumented, or None when ``func`` is a method of the class ``cls``."""
    if cls is None:
        return f"{target.module!r} has no {target.cls!r}"
    if not isinstance(cls, type):
        return f"{target.module}.{target.cls} is not a class"
    if func is None:
        return f"class {target.cls} has no method {target.method!r}"
    if isinstance(func, type) or not callable(func):
        return f"{target.cls}.{target.method} is not a method"
    return None


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


def _operation_events(settings: Settings, kwargs: dict[str, Any]) -> OperationEvents | None:
    """The events given (``configure()`` passes its own), none with ``log_operations=False``, else the
    standalone default: lines only where ``attach_logging()`` (or ``setup_logging``) writes, failed and slow
    operations to the global LoggerProvider."""
    if kwargs.get("log_operations") is False:
        return None
    events: OperationEvents | None = kwargs.get("operation_events")
    if events is not None:
        return events
    from opentelemetry._logs import get_logger_provider

    return OperationEvents.from_settings(settings, logger_provider=get_logger_provider(), follows_setup=True)

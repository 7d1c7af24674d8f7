"""What one ``configure()`` made, in one object, and the one place that remembers it.

:class:`Runtime` is the pipeline (providers, processors, exporters, health reader) plus what
``configure()`` hooked into the process: the instrumentors it instrumented itself, what it attached
to logging, the parent process's context it attached. ``configure()`` returns it and
``shutdown()`` tears exactly that down. :data:`STATE` holds the current runtime and the little
that must outlive it (the providers earlier runtimes built: the API never unsets a global
provider, and a later ``configure()`` must not take them for the application's).
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from cde_otel.telemetry._pipeline import Pipeline

if TYPE_CHECKING:
    from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

    from cde_otel.health.sources import TelemetrySource
    from cde_otel.logging import Attached


@dataclass
class Runtime(Pipeline):
    """A :class:`Pipeline` and the hooks ``configure()`` installed with it."""

    instrumented: list[BaseInstrumentor] = field(default_factory=list)  # undone by shutdown(), MCP first
    attached: Attached | None = None  # what was added to logging
    context_token: object | None = None  # the TRACEPARENT/BAGGAGE context attached at start-up
    health_source: TelemetrySource | None = None  # what health reads of it, withdrawn by shutdown()

    @classmethod
    def around(cls, pipeline: Pipeline) -> Runtime:
        return cls(**{item.name: getattr(pipeline, item.name) for item in fields(Pipeline)})


@dataclass
class _State:
    lock: threading.RLock = field(default_factory=threading.RLock)
    current: Runtime | None = None
    # Set while configure() runs on some thread: instrumenting imports the core, whose post-import
    # hook (the .pth bootstrap) calls configure() again on this thread; that call must do nothing.
    configuring: bool = False
    exit_hook_registered: bool = False
    context_attached: bool = False  # the parent process's TRACEPARENT/BAGGAGE, attached once
    built: weakref.WeakSet[Any] = field(default_factory=weakref.WeakSet)


STATE = _State()

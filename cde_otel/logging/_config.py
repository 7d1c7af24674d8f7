"""``setup_logging`` / ``reset_logging`` (deprecated) and ``get_logger``: structlog routed through stdlib ``logging``.

``setup_logging`` made cde-otel own the application's logging (root level and handlers, structlog's
configuration). It is kept, with a ``DeprecationWarning``, for the applications that call it: new
code uses ``attach_logging()`` (which adds to the application's logging and changes nothing of it),
or ``processors()``/``bridge()``/``handler()`` to wire it by hand (docs/logging.md).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO, cast

import structlog

from cde_otel._correlation import current_correlation_id
from cde_otel._exceptions import CDESystemError
from cde_otel.logging._handlers import file_handler
from cde_otel.logging._processors import (
    add_trace_context,
    correlation_id_adder,
    drop_record_stamps,
    foreign_stack_info,
    leading_keys_first,
    redactor,
    scrub_rendered_exception,
)
from cde_otel.logging._records import is_otel_logging_handler, records_bridged
from cde_otel.logging._sinks import HandlerSink, LineSink, StreamSink, follow_setup, stop_following
from cde_otel.settings import LogFormat, LogRotation, Settings, load_settings

if TYPE_CHECKING:
    from opentelemetry._logs import LoggerProvider


_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR,
           "critical": logging.CRITICAL}  # fmt: skip


@dataclass
class _Installed:
    """What the active ``setup_logging`` call changed, so that the next call or ``reset_logging`` undoes it."""

    handlers: list[logging.Handler] = field(default_factory=list)
    previous_root_level: int = logging.WARNING
    line_sinks: list[LineSink] = field(default_factory=list)  # what standalone operation lines follow


class _SetupState:
    """The active ``setup_logging`` call's changes: one object, as there is one root logger it changes."""

    installed: _Installed | None = None


_SETUP = _SetupState()


def is_configured() -> bool:
    return _SETUP.installed is not None


def parse_level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    try:
        return _LEVELS[level.strip().lower()]
    except KeyError:
        raise CDESystemError(
            f"unknown log level {level!r}",
            "E903",
            {"setting": "CDE_OTEL_LOG_LEVEL", "value": level, "expected": sorted(_LEVELS)},
        ) from None


def wants_console(fmt: LogFormat, stream: TextIO) -> bool:
    if fmt == "auto":
        isatty = getattr(stream, "isatty", None)
        return bool(isatty and isatty())
    return fmt == "console"


def formatter(console: bool, stream: TextIO | None, pre_chain: list[Any]) -> structlog.stdlib.ProcessorFormatter:
    """JSON lines (tracebacks rendered, then scrubbed), or structlog's console renderer."""
    renderer: Any
    if console:
        isatty = getattr(stream, "isatty", None)
        renderer = structlog.dev.ConsoleRenderer(colors=bool(isatty and isatty()))
        tail: list[Any] = [renderer]
    else:
        tail = [
            structlog.processors.format_exc_info,
            scrub_rendered_exception,
            leading_keys_first,
            structlog.processors.JSONRenderer(),
        ]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=pre_chain,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
    )


def record_pre_chain(settings: Settings) -> list[Any]:
    """What a stdlib record goes through before rendering: level, logger, extras, time, ids, redaction."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        foreign_stack_info,
        correlation_id_adder(current_correlation_id),
        add_trace_context,
        drop_record_stamps,
        redactor(settings.redact_keys, settings.capture_max_length if settings.capture_content else None),
    ]


def setup_logging(
    level: str | int | None = None,
    output_file: str | os.PathLike[str] | None = None,
    *,
    fmt: LogFormat | None = None,
    rotation: LogRotation | None = None,
    max_bytes: int | None = None,
    retention_days: int | None = None,
    logger_provider: LoggerProvider | None = None,
    otel: bool | None = None,
    stream: TextIO | None = None,
    console: bool = True,
    settings: Settings | None = None,
) -> None:
    """Deprecated (use :func:`~cde_otel.logging.attach_logging`). Configures structlog and the stdlib
    root logger; calling it again replaces the previous setup.

    Every argument left ``None`` comes from the settings table (``CDE_OTEL_LOG_*``). Output:
    ``stream`` (default ``sys.stderr``; JSON lines, or the console renderer on a terminal or with
    ``fmt="console"``; ``console=False`` for none) and, with ``output_file``, JSON lines in a rotated
    file. OpenTelemetry logs: bridged to ``logger_provider``, or to the global provider when one is
    configured; ``otel=False`` turns the bridge off.
    """
    warnings.warn(
        "cde_otel.logging.setup_logging is deprecated: use attach_logging() (it adds to your logging set-up "
        "instead of replacing it), or processors()/bridge()/handler() in a set-up of your own",
        DeprecationWarning,
        stacklevel=2,
    )
    cfg = settings if settings is not None else load_settings()
    root_level = parse_level(level if level is not None else cfg.log_level)
    fmt = fmt or cfg.log_format
    path = output_file if output_file is not None else (cfg.log_file or None)
    redact_keys = cfg.redact_keys
    content_max_length = cfg.capture_max_length if cfg.capture_content else None

    provider = _resolve_logger_provider(logger_provider, otel)
    redact = redactor(redact_keys, content_max_length)
    add_correlation_id = correlation_id_adder(current_correlation_id)
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)

    # structlog events: the bridge sees redacted values; trace ids are the LogRecord's own context there.
    chain: list[Any] = [
        structlog.stdlib.filter_by_level,
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.PositionalArgumentsFormatter(),
        timestamper,
        structlog.processors.StackInfoRenderer(),
        add_correlation_id,
        redact,
    ]
    bridge: logging.Handler | None = None
    if provider is not None:
        # Imported only when bridging: the contrib instrumentations are not free to import.
        from cde_otel.logging._bridge import ForeignRecordBridge, StructlogBridge

        chain.append(StructlogBridge(provider, redact_keys, content_max_length))
        # With telemetry configured, every stdlib record reaches OTel logs already (cde_otel.logging.attach).
        if not records_bridged():
            bridge = ForeignRecordBridge(provider, redact_keys, content_max_length)
    chain += [
        structlog.stdlib.add_logger_name,
        add_trace_context,
        structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
    ]
    # stdlib records from third-party code, rendered by the same formatters.
    pre_chain = record_pre_chain(cfg)

    handlers: list[logging.Handler] = []
    # Where a standalone instrumentor's operation lines go: the file, and the console when asked.
    line_sinks: list[LineSink] = []
    if console:
        out = stream if stream is not None else sys.stderr
        stream_handler = logging.StreamHandler(out)
        stream_handler.setFormatter(formatter(wants_console(fmt, out), out, pre_chain))
        handlers.append(stream_handler)
        if cfg.log_console:
            line_sinks.append(StreamSink(out))
    if path:
        rotated = file_handler(
            path,
            rotation or cfg.log_rotation,
            max_bytes if max_bytes is not None else cfg.log_max_bytes,
            retention_days if retention_days is not None else cfg.log_retention_days,
        )
        rotated.setFormatter(formatter(False, None, pre_chain))
        handlers.append(rotated)
        line_sinks.append(HandlerSink(rotated))
    if bridge is not None:
        handlers.append(bridge)

    root = logging.getLogger()
    previous_root_level = _SETUP.installed.previous_root_level if _SETUP.installed is not None else root.level
    _uninstall(root)
    if provider is not None:
        _remove_foreign_otel_handlers(root)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(root_level)

    structlog.configure(
        processors=chain,
        wrapper_class=structlog.stdlib.BoundLogger,
        logger_factory=structlog.stdlib.LoggerFactory(),
        context_class=dict,
        # Off: cached loggers would keep an old chain after a reconfiguration, and hide events
        # from structlog.testing.capture_logs.
        cache_logger_on_first_use=False,
    )
    _SETUP.installed = _Installed(handlers, previous_root_level, line_sinks)
    follow_setup(line_sinks, root_level)


def _resolve_logger_provider(logger_provider: LoggerProvider | None, otel: bool | None) -> LoggerProvider | None:
    """The provider to bridge to: the given one, else the global one when it is configured (or ``otel=True``)."""
    if otel is False:
        return None
    if logger_provider is not None:
        return logger_provider
    from opentelemetry._logs import NoOpLoggerProvider, get_logger_provider

    from cde_otel._otel_compat import is_proxy_logger_provider

    global_provider = get_logger_provider()
    configured = not isinstance(global_provider, NoOpLoggerProvider) and not is_proxy_logger_provider(global_provider)
    return global_provider if configured or otel else None


def _remove_foreign_otel_handlers(root: logging.Logger) -> None:
    """Drops another OTel logging handler on root (e.g. ``opentelemetry-instrument``'s): it would duplicate records."""
    for handler in list(root.handlers):
        if is_otel_logging_handler(handler):
            root.removeHandler(handler)
            logging.getLogger(__name__).debug("replaced %s on the root logger by the cde_otel bridge", handler)


def _uninstall(root: logging.Logger) -> None:
    if _SETUP.installed is None:
        return
    stop_following(_SETUP.installed.line_sinks)  # pending operation lines written first, then none to these
    for handler in _SETUP.installed.handlers:
        root.removeHandler(handler)
        handler.close()  # closes our files; never the caller's stream, never the LoggerProvider


def reset_logging() -> None:
    """Undoes ``setup_logging``: removes its handlers, restores the root level and structlog's defaults."""
    if _SETUP.installed is None:
        return
    root = logging.getLogger()
    _uninstall(root)
    root.setLevel(_SETUP.installed.previous_root_level)
    structlog.reset_defaults()
    _SETUP.installed = None


def get_logger(name: str | None = None, **initial_values: Any) -> structlog.stdlib.BoundLogger:
    """A structlog logger over the stdlib logger ``name`` (use ``__name__``); ``.bind(...)`` adds context.

    Before ``setup_logging`` its events go to stdlib ``logging`` as plain messages (silent unless the
    application configured logging), never straight to stdout.
    """
    stdlib_logger = logging.getLogger(name)
    return cast(
        structlog.stdlib.BoundLogger,
        structlog.wrap_logger(stdlib_logger, wrapper_class=structlog.stdlib.BoundLogger, **initial_values),
    )


def log_file_handlers() -> list[logging.FileHandler]:
    """The file handlers the active setup installed (for tests and ``cde-otel`` diagnostics)."""
    if _SETUP.installed is None:
        return []
    return [h for h in _SETUP.installed.handlers if isinstance(h, logging.FileHandler)]

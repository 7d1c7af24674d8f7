"""structlog processors: small pure functions (or factories of them) composed by ``setup_logging``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opentelemetry import trace
from structlog.typing import EventDict, Processor, WrappedLogger

from cde_otel.redaction import bounded_stack, bounded_text, redact_value
from cde_otel.semconv import ATTR_FEATURE_ID, ATTR_PROJECT_ID, LOG_FIELDS, RECORD_STAMPS

# Span attributes copied into log lines when the event does not name them itself.
_SPAN_IDS = tuple((attribute, LOG_FIELDS[attribute]) for attribute in (ATTR_PROJECT_ID, ATTR_FEATURE_ID))


def add_trace_context(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Adds ``trace_id``/``span_id`` (hex) of the active span, and the project/feature ids it carries."""
    span = trace.get_current_span()
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return event_dict
    event_dict["trace_id"] = format(ctx.trace_id, "032x")
    event_dict["span_id"] = format(ctx.span_id, "016x")
    # SDK spans expose their attributes; the API's non-recording spans do not.
    attributes = getattr(span, "attributes", None)
    if isinstance(attributes, Mapping):
        for attribute, key in _SPAN_IDS:
            value = attributes.get(attribute)
            if value is not None:
                event_dict.setdefault(key, value)
    return event_dict


def correlation_id_adder(current_correlation_id: Callable[[], str | None]) -> Processor:
    """A processor adding ``correlation_id`` from the OpenTelemetry baggage (see ``cde_otel.correlation``)."""

    def add_correlation_id(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        correlation_id = current_correlation_id()
        if correlation_id is not None:
            event_dict["correlation_id"] = correlation_id
        return event_dict

    return add_correlation_id


# Keys whose values the logging setup itself writes: nothing to redact there.
_OWN_KEYS = frozenset({"timestamp", "level", "logger", "trace_id", "span_id", "correlation_id"})


_STACK_KEYS = ("exception", "stack")


def redactor(extra: Iterable[str] = (), content_max_length: int | None = None) -> Processor:
    """A processor masking secrets and prompt text in every value, and inline secrets in the message."""
    fragments = tuple(extra)

    def redact(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        for key, value in event_dict.items():
            if key == "event":
                if isinstance(value, str):
                    event_dict[key] = bounded_text(value)
            elif key in _STACK_KEYS and isinstance(value, str):
                event_dict[key] = bounded_stack(value)  # a stack keeps its end
            elif key not in _OWN_KEYS and not key.startswith("_"):  # _record, _logger...: structlog's plumbing
                event_dict[key] = redact_value(key, value, fragments, content_max_length)
        return event_dict

    return redact


def scrub_rendered_exception(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Masks secrets in the traceback text ``format_exc_info`` rendered (it runs after ``redact``)."""
    for key in _STACK_KEYS:
        value = event_dict.get(key)
        if isinstance(value, str):
            event_dict[key] = bounded_stack(value)
    return event_dict


def drop_record_stamps(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """The ids stamped on stdlib records (``otelTraceID``...) repeat ``trace_id``/``span_id``: not on our lines."""
    for key in RECORD_STAMPS:
        event_dict.pop(key, None)
    return event_dict


def foreign_stack_info(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """A stdlib record's ``stack_info`` is already a string: keep it instead of capturing the formatter's stack."""
    stack = event_dict.get("stack_info")
    if isinstance(stack, str):
        event_dict["stack"] = event_dict.pop("stack_info")
    return event_dict


def otel_attribute_value(value: Any) -> Any:
    """A value OpenTelemetry accepts as a log attribute (primitives, sequences, mappings); others as text."""
    if value is None or isinstance(value, str | bool | int | float | bytes):
        return value
    if isinstance(value, Mapping):
        return {str(k): otel_attribute_value(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [otel_attribute_value(item) for item in value]
    return str(value)


_LEADING_KEYS = ("timestamp", "level", "logger", "event")


def leading_keys_first(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Puts timestamp, level, logger and event first, so JSON lines read well; the rest keeps its order."""
    ordered = {key: event_dict[key] for key in _LEADING_KEYS if key in event_dict}
    ordered.update(event_dict)
    return ordered

"""The coded exception classes and the registry of codes: defined here, once.

Import them from :mod:`cde_otel.errors` (their one public path, with the catalog and the
formatter) or from ``cde_otel``. They are defined in this leaf module, below every layer,
so that each layer -- the pure core, the settings table, instrumentation, logging -- can
raise them without importing the catalog, the formatter or the core.

Every code lives once in :data:`ERROR_CODES`; each exception class owns a range
(``ProjectError`` E001-E099, ``FeatureError`` E100-E199, ...), so a code tells
the reader which layer failed before they read the message.

Pure standard library (and :mod:`cde_otel.breadcrumbs`).
"""

from __future__ import annotations

import enum
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from cde_otel import breadcrumbs

#: How much of a caller's input an error quotes (an id, a path, a phase): enough to recognise it.
QUOTE_CHARS = 100
#: Backstops for what an error carries, whoever built it: its message, and each text in its context.
MAX_MESSAGE_CHARS = 1024
MAX_CONTEXT_TEXT_CHARS = 1024
MAX_CONTEXT_ITEMS = 20


def shortened(text: str, limit: int) -> str:
    """``text`` if it has at most ``limit`` characters, else its start and end around a count of what was cut."""
    if len(text) <= limit:
        return text
    marker = f"...({len(text) - limit} more chars)..."
    keep = max(0, limit - len(marker))
    head = keep - keep // 3
    return text[:head] + marker + text[len(text) - (keep - head) :]


def quote(value: object, limit: int = QUOTE_CHARS) -> str:
    """``repr(value)`` of a caller's input, shortened to about ``limit`` characters.

    A string is cut before ``repr`` runs, so quoting a 10 MB argument costs next to nothing.
    """
    if isinstance(value, str):
        if len(value) > limit:
            return repr(value[: limit - limit // 3]) + f"...({len(value)} chars)"
        return repr(value)
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return shortened(text, limit)


def _bounded(value: Any, depth: int = 0) -> Any:
    """A context value with every text shortened and every collection capped (an error stays small)."""
    if isinstance(value, str):
        return shortened(value, MAX_CONTEXT_TEXT_CHARS)
    if depth >= 4 or value is None or isinstance(value, int | float | bool | enum.Enum | datetime):
        return value
    if isinstance(value, Mapping):
        items = list(value.items())[:MAX_CONTEXT_ITEMS]
        return {shortened(str(k), QUOTE_CHARS): _bounded(v, depth + 1) for k, v in items}
    if isinstance(value, list | tuple | set | frozenset):
        return [_bounded(v, depth + 1) for v in list(value)[:MAX_CONTEXT_ITEMS]]
    return value


class Severity(enum.StrEnum):
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


class CDEError(Exception):
    """Base class of every error the package raises on purpose.

    ``context`` holds the values a user needs to act (paths, ids, statuses);
    ``snapshot`` the state of the aggregate when the error happened; the last
    operations that led to it are captured as breadcrumbs at construction.
    """

    code_range: ClassVar[tuple[int, int]] = (1, 999)

    def __init__(
        self,
        message: str,
        code: str,
        context: Mapping[str, Any] | None = None,
        recoverable: bool | None = None,
        *,
        severity: Severity | None = None,
        snapshot: Mapping[str, Any] | None = None,
    ) -> None:
        # Bounded whatever the caller put in: an error must never carry (or repeat) a huge input.
        message = shortened(str(message), MAX_MESSAGE_CHARS)
        super().__init__(message)
        spec = ERROR_CODES.get(code)
        if spec is None or not issubclass(type(self), spec.exception):
            raise TypeError(f"{type(self).__name__} cannot carry unregistered or foreign code {code!r}")
        self.message = message
        self.code = code
        self.context: dict[str, Any] = _bounded(dict(context or {}))
        self.recoverable = spec.recoverable if recoverable is None else recoverable
        self.severity = severity or spec.severity
        self.snapshot: dict[str, Any] = dict(snapshot or {})
        self.timestamp = datetime.now(UTC)
        self.breadcrumbs = breadcrumbs.recent()

    @property
    def name(self) -> str:
        return ERROR_CODES[self.code].name

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keeps errors picklable across process pools with their code and context.
        return (_rebuild, (type(self), self.message, self.code, self.context, self.recoverable))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable view: code, context, snapshot, breadcrumbs, stack and cause chain."""
        return {
            "code": self.code,
            "name": self.name,
            "type": type(self).__name__,
            "message": self.message,
            "severity": self.severity.value,
            "recoverable": self.recoverable,
            "timestamp": self.timestamp.isoformat(),
            "context": _json_safe(self.context),
            "snapshot": _json_safe(self.snapshot),
            "breadcrumbs": _json_safe(self.breadcrumbs),
            "stack": traceback.format_exception(self) if self.__traceback__ else traceback.format_stack()[:-1],
            "causes": _cause_chain(self),
        }


def _rebuild(cls: type[CDEError], message: str, code: str, context: dict[str, Any], rec: bool) -> CDEError:
    return cls(message, code, context, rec)


def _cause_chain(error: BaseException) -> list[dict[str, Any]]:
    chain: list[dict[str, Any]] = []
    seen: set[int] = {id(error)}
    current = error.__cause__ or error.__context__
    while current is not None and id(current) not in seen and len(chain) < 10:
        seen.add(id(current))
        item: dict[str, Any] = {"type": type(current).__name__, "message": shortened(str(current), MAX_MESSAGE_CHARS)}
        if isinstance(current, CDEError):
            item["code"] = current.code
        chain.append(item)
        current = current.__cause__ or current.__context__
    return chain


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_safe(v) for v in value]
    if isinstance(value, enum.Enum):
        return _json_safe(value.value)
    if isinstance(value, datetime):
        return value.isoformat()
    return repr(value)


class ProjectError(CDEError):
    """Project-level errors (E001-E099)."""

    code_range = (1, 99)


class FeatureError(CDEError):
    """Feature workflow errors (E100-E199)."""

    code_range = (100, 199)


class StateError(CDEError):
    """State persistence errors (E200-E299)."""

    code_range = (200, 299)


class ReadOnlyModeError(StateError):
    """A mutation was refused because persistence is failing and the project is read-only."""


class ValidationError(CDEError):
    """Invalid input (E300-E399)."""

    code_range = (300, 399)


class LocalTelemetryError(CDEError):
    """Reading, querying or shipping recorded telemetry: local files, Jaeger, Prometheus, a collector (E400-E499)."""

    code_range = (400, 499)


class CDESystemError(CDEError):
    """System-level errors (E900-E999)."""

    code_range = (900, 999)


class CircuitBreakerOpenError(CDESystemError):
    """An operation was short-circuited because it kept failing."""


@dataclass(frozen=True, slots=True)
class ErrorCode:
    code: str
    name: str
    exception: type[CDEError]
    severity: Severity
    recoverable: bool
    summary: str

    @property
    def number(self) -> int:
        return int(self.code[1:])


def _codes(*specs: ErrorCode) -> dict[str, ErrorCode]:
    table: dict[str, ErrorCode] = {}
    for spec in specs:
        if spec.code in table:
            raise RuntimeError(f"duplicate error code {spec.code}")
        table[spec.code] = spec
    return table


_E, _W, _C = Severity.ERROR, Severity.WARNING, Severity.CRITICAL

#: Every code the package can raise or record, exactly once.
ERROR_CODES: dict[str, ErrorCode] = _codes(
    ErrorCode("E001", "PROJECT_PATH_NOT_FOUND", ProjectError, _E, False,
              "The project path does not exist or is not a directory."),
    ErrorCode("E002", "PROJECT_PATH_NOT_ACCESSIBLE", ProjectError, _E, False,
              "The project path exists but cannot be read or written."),
    ErrorCode("E003", "PROJECT_INVALID_TRANSITION", ProjectError, _E, True,
              "The project cannot move from its current status to the requested one."),
    ErrorCode("E004", "PROJECT_PATH_OUTSIDE_ROOTS", ProjectError, _E, True,
              "The project path is outside the directories this server was allowed to use."),
    ErrorCode("E005", "INPUT_TOO_LONG", ProjectError, _E, True,
              "An id, path, phase or other argument is longer than its limit and was refused unread."),
    ErrorCode("E006", "INPUT_MALFORMED", ProjectError, _E, True,
              "An id or path contains characters it never has (a NUL byte, a line break, a control character)."),
    ErrorCode("E101", "FEATURE_PROJECT_NOT_ACTIVE", FeatureError, _E, True,
              "Features can only be started on an ACTIVE project."),
    ErrorCode("E102", "FEATURE_INVALID_PHASE_TRANSITION", FeatureError, _E, True,
              "Phases advance one at a time, in order; they never regress or skip."),
    ErrorCode("E103", "FEATURE_ALREADY_FINISHED", FeatureError, _E, True,
              "The feature is completed or failed and accepts no more changes."),
    ErrorCode("E104", "FEATURE_NOT_FOUND", FeatureError, _E, True,
              "No feature with that id exists in the project."),
    ErrorCode("E105", "FEATURE_NOT_IN_REVIEW", FeatureError, _E, True,
              "A feature can only be completed from the review phase."),
    ErrorCode("E106", "FEATURE_DETACHED", FeatureError, _E, True,
              "A failed save rolled the project back and dropped this feature; it accepts no more changes."),
    ErrorCode("E201", "STATE_WRITE_FAILED", StateError, _E, True,
              "Writing the project state failed."),
    ErrorCode("E202", "STATE_CONFLICT", StateError, _W, True,
              "The state on disk changed since this project was loaded."),
    ErrorCode("E203", "STATE_CORRUPT", StateError, _E, False,
              "The state file cannot be parsed or fails its checksum."),
    ErrorCode("E204", "STATE_INVALID", StateError, _E, False,
              "The state file parses but does not match the schema."),
    ErrorCode("E205", "STATE_UNSUPPORTED_SCHEMA", StateError, _E, False,
              "The state file was written by a newer, unsupported schema version."),
    ErrorCode("E206", "STATE_LOCK_TIMEOUT", StateError, _W, True,
              "Another process held the state lock for too long."),
    ErrorCode("E207", "READ_ONLY_MODE", ReadOnlyModeError, _C, True,
              "Persistence is failing, so the project is read-only: queries work, mutations are refused."),
    ErrorCode("E208", "STATE_RECOVERED_FROM_BACKUP", StateError, _W, True,
              "The state file was bad and was restored from the newest valid backup."),
    ErrorCode("E209", "BACKUP_NOT_FOUND", StateError, _E, True,
              "The requested backup does not exist or fails its checksum."),
    ErrorCode("E210", "STORAGE_UNAVAILABLE", StateError, _C, True,
              "The storage refused the write (disk full, read-only filesystem or permission denied)."),
    ErrorCode("E211", "BACKUP_OF_ANOTHER_PROJECT", StateError, _E, True,
              "The backup belongs to another project (a different project id) and was not restored."),
    ErrorCode("E212", "RECOVERY_REFUSED", StateError, _C, False,
              "The state is damaged and no valid backup of this project exists; the project is read-only."),
    ErrorCode("E213", "REVISION_LIMIT_REACHED", StateError, _E, False,
              "The state revision reached its highest possible number; nothing more can be saved."),
    ErrorCode("E214", "STATE_NOT_A_FILE", StateError, _E, False,
              "The state file is not a regular file (a FIFO, a device or a socket) and was not read."),
    ErrorCode("E301", "INVALID_PROMPT", ValidationError, _E, True,
              "The feature prompt is empty, not text, or too long."),
    ErrorCode("E302", "INVALID_NAME", ValidationError, _E, True,
              "The name is empty, not text, or too long."),
    ErrorCode("E303", "INVALID_PHASE", ValidationError, _E, True,
              "The phase name is not one of the workflow phases."),
    ErrorCode("E304", "INVALID_STATUS", ValidationError, _E, True,
              "The status is not one of the known statuses."),
    ErrorCode("E305", "INVALID_ARGUMENT", ValidationError, _E, True,
              "An argument has the wrong type or value."),
    ErrorCode("E401", "LOCAL_DIR_NOT_FOUND", LocalTelemetryError, _E, True,
              "The local telemetry directory does not exist (nothing was recorded there)."),
    ErrorCode("E402", "LOCAL_DIR_UNREADABLE", LocalTelemetryError, _E, True,
              "The local telemetry directory or one of its files cannot be read."),
    ErrorCode("E403", "NO_LOCAL_TELEMETRY", LocalTelemetryError, _E, True,
              "The local telemetry directory holds no file of the requested signal."),
    ErrorCode("E404", "INVALID_TRACE_ID", LocalTelemetryError, _E, True,
              "A trace id must be 32 hexadecimal digits (W3C trace context)."),
    ErrorCode("E405", "TRACE_NOT_FOUND", LocalTelemetryError, _E, True,
              "No span of that trace was found."),
    ErrorCode("E406", "BACKEND_UNREACHABLE", LocalTelemetryError, _E, True,
              "Jaeger, Prometheus or the collector did not answer."),
    ErrorCode("E407", "BACKEND_ERROR_RESPONSE", LocalTelemetryError, _E, True,
              "Jaeger, Prometheus or the collector answered with an error."),
    ErrorCode("E408", "EXPORT_ALREADY_RUNNING", LocalTelemetryError, _W, True,
              "Another export of the same local directory is running."),
    ErrorCode("E409", "EXPORT_STATE_INVALID", LocalTelemetryError, _E, True,
              "The export's progress file cannot be read or parsed."),
    ErrorCode("E901", "CIRCUIT_OPEN", CircuitBreakerOpenError, _C, True,
              "The operation kept failing and is paused until the circuit breaker's cooldown ends."),
    ErrorCode("E902", "INTERNAL_ERROR", CDESystemError, _C, False,
              "An unexpected internal error happened."),
    ErrorCode("E903", "CONFIGURATION_INVALID", CDESystemError, _E, False,
              "A CDE_OTEL_* setting has a value that cannot be used."),
)  # fmt: skip


def error_for(code: str, message: str | None = None, **context: Any) -> CDEError:
    """Builds the registered exception for ``code`` with its default message."""
    spec = ERROR_CODES[code]
    return spec.exception(message or spec.summary, code, context)

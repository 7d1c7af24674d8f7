"""Every ``CDE_OTEL_*`` setting, in one typed table: the fields of :class:`Settings`.

Each field names its default, its parser (which also gives the type shown in docs/configuration.md) and
what it means; the environment variable is ``CDE_OTEL_<FIELD>``::

    from cde_otel.settings import load_settings

    settings = load_settings()                  # from os.environ
    settings.histogram                          # "exponential" | "classic" (typed)
    load_settings({}, alert_p99_s=0.5)          # overrides go through the same parsers

:func:`load_settings` parses the environment against the table (E903 naming the variable
when a value does not parse), :data:`SETTINGS` lists the rows, and docs/configuration.md renders them
(``cde-otel settings --markdown``). Standard ``OTEL_*`` variables (service name, exporters,
endpoints, sampler...) are read by the OpenTelemetry SDK itself and are not repeated here.

Pure standard library: importing this module costs nothing at start-up.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, Literal, TypeVar, get_args

from cde_otel._exceptions import CDESystemError

T = TypeVar("T")
HistogramKind = Literal["exponential", "classic"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]
LogFormat = Literal["auto", "json", "console"]
LogRotation = Literal["daily", "size", "none"]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


@dataclass(frozen=True, slots=True)
class Parser(Generic[T]):
    """Turns an environment string (or an override's Python value) into a setting's value, or ``ValueError``."""

    type_name: str
    convert: Callable[[object], T]

    def __call__(self, raw: object) -> T:
        return self.convert(raw)


def parse_bool(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    value = str(raw).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"expected one of {sorted(_TRUE | _FALSE - {''})}")


def _to_list(raw: object) -> tuple[str, ...]:
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple) or not all(isinstance(item, str) for item in items):
        raise ValueError("expected comma-separated text")
    return tuple(item.strip() for item in items if item.strip())


def _to_text(raw: object) -> str:
    if not isinstance(raw, str):
        raise ValueError("expected text")
    return raw.strip()


def _positive(kind: type[int] | type[float]) -> Callable[[object], Any]:
    def convert(raw: object) -> int | float:
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            raise ValueError(f"expected {kind.__name__}")
        if kind is int and isinstance(raw, float):
            raise ValueError("expected a whole number")
        value = kind(raw.strip() if isinstance(raw, str) else raw)
        if value <= 0:
            raise ValueError("must be greater than zero")
        return value

    return convert


def _choice(choices: Any, *, shown_as: str | None = None) -> Parser[Any]:
    allowed: tuple[str, ...] = get_args(choices)

    def convert(raw: object) -> str:
        value = str(raw).strip().lower()
        if value not in allowed:
            raise ValueError(f"expected one of {list(allowed)}")
        return value

    return Parser(shown_as or "|".join(allowed), convert)


def _text(shown_as: str) -> Parser[str]:
    return Parser(shown_as, _to_text)


_bool = Parser("bool", parse_bool)
_list = Parser("list", _to_list)
_int: Parser[int] = Parser("int", _positive(int))
_float: Parser[float] = Parser("float", _positive(float))


def _setting(default: T, parse: Parser[Any], meaning: str) -> T:
    """One row of the table: a dataclass field carrying its parser and meaning."""
    return field(default=default, metadata={"parse": parse, "meaning": meaning})


@dataclass(frozen=True, slots=True)
class Settings:
    """Parsed settings: one typed field per ``CDE_OTEL_*`` variable, grouped by the layer that reads them."""

    # -- telemetry ------------------------------------------------------------------
    enabled: bool = _setting(
        False,
        _bool,
        "Instrument every Python process at start-up (via the installed .pth bootstrap). "
        "`OTEL_SDK_DISABLED=true` overrides it.",
    )
    targets: tuple[str, ...] = _setting(
        (), _list, "Extra methods to instrument, comma-separated `module:Class.method` (sync or async)."
    )
    instrument_upstream: bool = _setting(
        True, _bool, "Also instrument the upstream `cde_orchestrator` package when it is (or later gets) imported."
    )
    histogram: HistogramKind = _setting(
        "exponential",
        _choice(HistogramKind),
        "Aggregation of `cde.operation.duration`: base-2 exponential (Prometheus native histograms) "
        "or ~110 classic log-spaced buckets for servers without native histograms.",
    )
    histogram_max_size: int = _setting(
        750, _int, "Maximum buckets of the exponential histogram; 750 keeps scale 5 (<1.1 % error) from 10 µs to 60 s."
    )
    capture_content: bool = _setting(
        False, _bool, "Opt in to recording prompt text on spans and logs (truncated to `capture_max_length`)."
    )
    capture_max_length: int = _setting(256, _int, "Characters kept when content capture is on.")
    local_dir: str = _setting(
        "",
        _text("path"),
        "Where the embedded default writes OTLP-JSON files when no OTLP endpoint is configured (default: the "
        "user's state directory, `$XDG_STATE_HOME/cde-otel/<service.name>/`, i.e. "
        "`~/.local/state/cde-otel/<service.name>/`; never the working directory).",
    )
    local_max_mb: float = _setting(
        100.0,
        _float,
        "Most disk space the embedded default's files take, in MB, over all signals (a third each): each "
        "signal's file rolls over at a quarter of its share and the oldest rotated files are deleted first.",
    )
    slow_operation_ms: float = _setting(
        1000.0,
        _float,
        "Operations slower than this are reported as slow: a warning line and OTel log record with RSS, and the "
        "thread's CPU time for operations that were slow before.",
    )
    metric_export_interval_ms: int = _setting(
        5000, _int, "How often metrics are pushed over OTLP (`OTEL_METRIC_EXPORT_INTERVAL` wins when set)."
    )
    # -- logging --------------------------------------------------------------------
    log_level: LogLevel = _setting(
        "info",
        _choice(LogLevel, shown_as="level"),
        "Minimum level of cde-otel's own log output: operation lines (`info`: one per operation, `debug`: also "
        "its start, `warning`: failed and slow ones only) and the records the log file, console and OTel logs "
        "bridge take. Never changes a level of the host's loggers.",
    )
    log_format: LogFormat = _setting(
        "auto", _choice(LogFormat), "JSON lines, or a readable console renderer; `auto` picks console on a terminal."
    )
    log_file: str = _setting(
        "",
        _text("path"),
        "Write JSON lines to this file, rotated: one per operation, and the application's stdlib records "
        "(empty: no file).",
    )
    log_rotation: LogRotation = _setting(
        "daily", _choice(LogRotation), "Rotate the log file at midnight (UTC) or at `log_max_bytes`."
    )
    log_max_bytes: int = _setting(10 * 1024 * 1024, _int, "Size at which a size-rotated log file rolls over.")
    log_retention_days: int = _setting(7, _int, "Rotated log files kept (days, or files for size rotation).")
    redact_keys: tuple[str, ...] = _setting(
        (),
        _list,
        "Extra key fragments whose values are masked in logs and attributes "
        "(token, password, secret, api_key, authorization, cookie, prompt are always masked).",
    )
    # -- a good guest in the host process ---------------------------------------------
    log_console: bool = _setting(
        False,
        _bool,
        "Also print those JSON lines on stderr (the console renderer on a terminal, `CDE_OTEL_LOG_FORMAT`). Off: "
        "cde-otel prints nothing of its own but the start-up line (`CDE_OTEL_STARTUP_LINE`).",
    )
    logs_bridge: bool = _setting(
        True,
        _bool,
        "Send the application's stdlib records and structlog events to OpenTelemetry logs (its structlog chain "
        "gets the bridge inserted before its renderer; what it prints is unchanged).",
    )
    log_record_ids: bool = _setting(
        True,
        _bool,
        "Stamp every stdlib log record with `otelTraceID`, `otelSpanID`, `otelTraceSampled`, `otelServiceName` "
        "and `cde_correlation_id` for the application's own format strings.",
    )
    startup_line: bool = _setting(
        True,
        _bool,
        "Say once at start-up what telemetry is on and where it goes (exporters or local directory, "
        "instrumentations): at INFO on the `cde_otel` logger when the host's logging shows it, else one line "
        "on stderr (never stdout).",
    )
    shutdown_timeout_s: float = _setting(
        2.0,
        _float,
        "Seconds from `shutdown()` (or the exit hook) to the process being free to exit, whatever the collector "
        "does: telemetry is flushed until a quarter of it (at most 0.5 s) is left for the interpreter's teardown; "
        "what is not sent is counted and reported once as a warning.",
    )
    # -- errors -----------------------------------------------------------------------
    errors_docs_url: str = _setting(
        "",
        _text("url"),
        "URL of the published error catalog page; formatted errors link to its `#e101`-style anchors "
        "(empty: the relative `docs/errors/catalog.md`).",
    )
    # -- state and resilience ---------------------------------------------------------
    state_lock_timeout_s: float = _setting(10.0, _float, "Seconds to wait for another process's state lock.")
    backup_retention: int = _setting(10, _int, "Checksummed state backups kept per project.")
    retry_attempts: int = _setting(5, _int, "Attempts for a transiently failing state write (EAGAIN, EBUSY, lock).")
    retry_max_wait_s: float = _setting(2.0, _float, "Upper bound of the exponential backoff between attempts.")
    breaker_failures: int = _setting(5, _int, "Consecutive persistence failures that open the circuit breaker.")
    breaker_timeout_s: float = _setting(60.0, _float, "Seconds the breaker stays open before a trial call.")
    readonly_probe_s: float = _setting(
        5.0, _float, "Minimum seconds between probe writes that end read-only mode by themselves."
    )
    # -- health -----------------------------------------------------------------------
    health_host: str = _setting("127.0.0.1", _text("host"), "Address the health server binds.")
    health_port: int = _setting(8765, _int, "Port of `cde-otel health serve`.")
    alert_error_rate: float = _setting(0.05, _float, "Alert when the error rate exceeds this fraction.")
    alert_p99_s: float = _setting(1.0, _float, "Alert when an operation's P99 exceeds this many seconds.")
    alert_disk_free_mb: float = _setting(100.0, _float, "Alert when free disk at the project is below this.")
    alert_memory_percent: float = _setting(80.0, _float, "Alert when system memory use exceeds this percent.")

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied, parsed and checked like environment values."""
        return dataclasses.replace(self, **_parse_overrides(changes))

    def as_dict(self) -> dict[str, Any]:
        return {s.name: getattr(self, s.name) for s in SETTINGS}


@dataclass(frozen=True, slots=True)
class Setting:
    """A row of the table, as docs/configuration.md and ``cde-otel settings`` show it."""

    name: str
    env: str
    default: Any
    type_name: str
    meaning: str
    parse: Parser[Any]


def _row(item: dataclasses.Field[Any]) -> Setting:
    parse: Parser[Any] = item.metadata["parse"]
    return Setting(item.name, f"CDE_OTEL_{item.name.upper()}", item.default, parse.type_name,
                   item.metadata["meaning"], parse)  # fmt: skip


#: The one table of settings, in declaration order.
SETTINGS: tuple[Setting, ...] = tuple(_row(item) for item in dataclasses.fields(Settings))
SETTINGS_BY_NAME: Mapping[str, Setting] = MappingProxyType({s.name: s for s in SETTINGS})


def _parse(setting: Setting, raw: object, shown: str) -> Any:
    try:
        return setting.parse(raw)
    except (ValueError, TypeError) as exc:
        raise CDESystemError(
            f"{shown}={raw!r} is not a valid {setting.type_name}: {exc}",
            "E903",
            {"setting": setting.env, "value": raw, "expected": setting.type_name},
        ) from exc


def _parse_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(overrides) - set(SETTINGS_BY_NAME)
    if unknown:
        raise AttributeError(f"unknown settings: {sorted(unknown)}")
    return {name: _parse(SETTINGS_BY_NAME[name], raw, name) for name, raw in overrides.items()}


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Parses every row from ``environ`` (default ``os.environ``); keyword overrides win.

    A value that does not parse -- from the environment or an override -- raises
    ``CDESystemError`` E903 naming the variable. An unknown override is an ``AttributeError``.
    """
    env = os.environ if environ is None else environ
    values = {s.name: _parse(s, env[s.env], s.env) for s in SETTINGS if s.env in env}
    return Settings(**values, **_parse_overrides(overrides))


def sdk_disabled(environ: Mapping[str, str] | None = None) -> bool:
    """True when the standard ``OTEL_SDK_DISABLED=true`` is set: it wins over every CDE setting."""
    env = os.environ if environ is None else environ
    return env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def is_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """True when CDE_OTEL_ENABLED is on and OTEL_SDK_DISABLED is not (it wins)."""
    env = os.environ if environ is None else environ
    return not sdk_disabled(env) and env.get("CDE_OTEL_ENABLED", "").strip().lower() in _TRUE


def markdown_table() -> str:
    """The settings table as Markdown, for docs/configuration.md."""
    lines = ["| Environment variable | Default | Type | Meaning |", "| --- | --- | --- | --- |"]
    for s in SETTINGS:
        default = ",".join(s.default) if isinstance(s.default, tuple) else str(s.default)
        shown = f"`{default}`" if default else "*(empty)*"
        lines.append(f"| `{s.env}` | {shown} | {s.type_name} | {s.meaning} |")
    return "\n".join(lines)

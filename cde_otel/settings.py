"""Every ``CDE_OTEL_*`` setting, in one table.

Each row names the environment variable, its default, its type and what it
means; :func:`load_settings` parses the environment against the table and the
README renders it (``cde-otel settings --markdown``). Standard ``OTEL_*``
variables (service name, exporters, endpoints, sampler...) are read by the
OpenTelemetry SDK itself and are not repeated here.

Pure standard library: importing this module costs nothing at start-up.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from cde_otel.core.errors import CDESystemError

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"expected one of {sorted(_TRUE | _FALSE - {''})}")


def _parse_str(raw: str) -> str:
    return raw.strip()


def _parse_list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            raise ValueError(f"expected one of {list(allowed)}")
        return value

    parse.__name__ = "|".join(allowed)
    return parse


def _positive(kind: type[int] | type[float]) -> Callable[[str], float | int]:
    def parse(raw: str) -> float | int:
        value = kind(raw.strip())
        if value <= 0:
            raise ValueError("must be greater than zero")
        return value

    parse.__name__ = kind.__name__
    return parse


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    env: str
    default: Any
    type_name: str
    meaning: str
    parse: Callable[[str], Any]


def _s(name: str, default: Any, parse: Callable[[str], Any], type_name: str, meaning: str) -> Setting:
    return Setting(name, f"CDE_OTEL_{name.upper()}", default, type_name, meaning, parse)


_bool, _str, _list = parse_bool, _parse_str, _parse_list
_int, _float = _positive(int), _positive(float)

#: The one table of settings. Keep rows grouped by the layer that reads them.
SETTINGS: tuple[Setting, ...] = (
    # -- telemetry ------------------------------------------------------------------
    _s("enabled", False, _bool, "bool",
       "Instrument every Python process at start-up (via the installed .pth bootstrap). "
       "`OTEL_SDK_DISABLED=true` overrides it."),
    _s("targets", (), _list, "list",
       "Extra methods to instrument, comma-separated `module:Class.method` (sync or async)."),
    _s("instrument_upstream", True, _bool, "bool",
       "Also instrument the upstream `cde_orchestrator` package when it is (or later gets) imported."),
    _s("histogram", "exponential", _choice("exponential", "classic"), "exponential|classic",
       "Aggregation of `cde.operation.duration`: base-2 exponential (Prometheus native histograms) "
       "or ~110 classic log-spaced buckets for servers without native histograms."),
    _s("histogram_max_size", 750, _int, "int",
       "Maximum buckets of the exponential histogram; 750 keeps scale 5 (<1.1 % error) from 10 µs to 60 s."),
    _s("capture_content", False, _bool, "bool",
       "Opt in to recording prompt text on spans and logs (truncated to `capture_max_length`)."),
    _s("capture_max_length", 256, _int, "int", "Characters kept when content capture is on."),
    _s("local_dir", "", _str, "path",
       "Where the embedded default writes OTLP-JSON files when no OTLP endpoint is configured "
       "(default: `./.cde-otel-telemetry`)."),
    _s("slow_operation_ms", 1000.0, _float, "float",
       "Operations slower than this log a warning with resource usage (RSS, CPU time)."),
    _s("metric_export_interval_ms", 5000, _int, "int",
       "How often metrics are pushed over OTLP (`OTEL_METRIC_EXPORT_INTERVAL` wins when set)."),
    # -- logging --------------------------------------------------------------------
    _s("log_level", "INFO", _choice("debug", "info", "warning", "error", "critical"), "level",
       "Minimum level of structlog and stdlib log records."),
    _s("log_format", "auto", _choice("auto", "json", "console"), "auto|json|console",
       "JSON lines, or a readable console renderer; `auto` picks console on a terminal."),
    _s("log_file", "", _str, "path", "Also write JSON lines to this file, rotated (empty: no file)."),
    _s("log_rotation", "daily", _choice("daily", "size", "none"), "daily|size|none",
       "Rotate the log file at midnight (UTC) or at `log_max_bytes`."),
    _s("log_max_bytes", 10 * 1024 * 1024, _int, "int", "Size at which a size-rotated log file rolls over."),
    _s("log_retention_days", 7, _int, "int", "Rotated log files kept (days, or files for size rotation)."),
    _s("redact_keys", (), _list, "list",
       "Extra key fragments whose values are masked in logs and attributes "
       "(token, password, secret, api_key, authorization, cookie, prompt are always masked)."),
    # -- a good guest in the host process (issue 14) ----------------------------------------
    _s("shutdown_timeout_s", 2.0, _float, "float",
       "Seconds from `shutdown()` (or the exit hook) to the process being free to exit, whatever the collector "
       "does: telemetry is flushed until a quarter of it (at most 0.5 s) is left for the interpreter's teardown; "
       "what is not sent is counted and reported once as a warning."),
    # -- errors -----------------------------------------------------------------------
    _s("errors_docs_url", "", _str, "url",
       "URL of the published error catalog page; formatted errors link to its `#e101`-style anchors "
       "(empty: the relative `docs/errors/catalog.md`)."),
    # -- state and resilience ---------------------------------------------------------
    _s("state_lock_timeout_s", 10.0, _float, "float", "Seconds to wait for another process's state lock."),
    _s("backup_retention", 10, _int, "int", "Checksummed state backups kept per project."),
    _s("retry_attempts", 5, _int, "int", "Attempts for a transiently failing state write (EAGAIN, EBUSY, lock)."),
    _s("retry_max_wait_s", 2.0, _float, "float", "Upper bound of the exponential backoff between attempts."),
    _s("breaker_failures", 5, _int, "int", "Consecutive persistence failures that open the circuit breaker."),
    _s("breaker_timeout_s", 60.0, _float, "float", "Seconds the breaker stays open before a trial call."),
    _s("readonly_probe_s", 5.0, _float, "float",
       "Minimum seconds between probe writes that end read-only mode by themselves."),
    # -- health -----------------------------------------------------------------------
    _s("health_host", "127.0.0.1", _str, "host", "Address the health server binds."),
    _s("health_port", 8765, _int, "int", "Port of `cde-otel health serve`."),
    _s("alert_error_rate", 0.05, _float, "float", "Alert when the error rate exceeds this fraction."),
    _s("alert_p99_s", 1.0, _float, "float", "Alert when an operation's P99 exceeds this many seconds."),
    _s("alert_disk_free_mb", 100.0, _float, "float", "Alert when free disk at the project is below this."),
    _s("alert_memory_percent", 80.0, _float, "float", "Alert when system memory use exceeds this percent."),
)  # fmt: skip

SETTINGS_BY_NAME: Mapping[str, Setting] = MappingProxyType({s.name: s for s in SETTINGS})


class Settings:
    """Parsed settings: attribute access by row name (``settings.histogram``)."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Settings are immutable; use replace()")

    def replace(self, **changes: Any) -> Settings:
        unknown = set(changes) - set(SETTINGS_BY_NAME)
        if unknown:
            raise AttributeError(f"unknown settings: {sorted(unknown)}")
        return Settings({**self._values, **changes})

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Parses every row from ``environ`` (default ``os.environ``); keyword overrides win.

    A value that does not parse raises ``CDESystemError`` E903 naming the variable.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        raw = env.get(setting.env)
        if raw is None:
            values[setting.name] = setting.default
            continue
        try:
            values[setting.name] = setting.parse(raw)
        except ValueError as exc:
            raise CDESystemError(
                f"{setting.env}={raw!r} is not a valid {setting.type_name}: {exc}",
                "E903",
                {"setting": setting.env, "value": raw, "expected": setting.type_name},
            ) from exc
    return Settings(values).replace(**overrides)


def sdk_disabled(environ: Mapping[str, str] | None = None) -> bool:
    """True when the standard ``OTEL_SDK_DISABLED=true`` is set: it wins over every CDE setting."""
    env = os.environ if environ is None else environ
    return env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def is_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """True when CDE_OTEL_ENABLED is on and OTEL_SDK_DISABLED is not (it wins)."""
    env = os.environ if environ is None else environ
    return not sdk_disabled(env) and env.get("CDE_OTEL_ENABLED", "").strip().lower() in _TRUE


def markdown_table() -> str:
    """The settings table as Markdown, for the README."""
    lines = ["| Environment variable | Default | Type | Meaning |", "| --- | --- | --- | --- |"]
    for s in SETTINGS:
        default = ",".join(s.default) if isinstance(s.default, tuple) else str(s.default)
        shown = f"`{default}`" if default else "*(empty)*"
        lines.append(f"| `{s.env}` | {shown} | {s.type_name} | {s.meaning} |")
    return "\n".join(lines)

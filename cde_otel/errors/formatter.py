"""Errors as users should see them: title, explanation, fixes and a link - never a traceback.

    >>> from cde_otel.errors import ErrorFormatter
    >>> print(ErrorFormatter.format(error))            # doctest: +SKIP
    ❌ Feature Creation Failed [E101]
    <BLANKLINE>
    Cannot start a feature while project 3f2a... is onboarding. The project must be ACTIVE.
    <BLANKLINE>
    💡 Suggestions:
      • Activate the project: project.activate()
      ...
    <BLANKLINE>
    📖 More info: docs/errors/catalog.md#e101

Three renderings of the same content:

- :meth:`ErrorFormatter.format` - text with emoji, or plain ASCII (``SEVERITY: title [code]``,
  ``Suggestions:``, ``-`` bullets, ``More info:``) when ``ascii=True``. With ``ascii=None`` (the default)
  ASCII is chosen when ``NO_COLOR`` is set or the output stream's encoding cannot encode the emoji.
- :meth:`ErrorFormatter.to_json` / :meth:`ErrorFormatter.format_json` - a JSON-safe dict for tool clients
  (MCP): code, name, title, severity, message (the interpolated description), details (the error's own
  message), suggestions, docs, recoverable and context.
  It never contains the stack, the snapshot or the breadcrumbs: those go to logs and spans.

Any exception can be formatted: one that is not a ``CDEError`` is shown as E902 INTERNAL_ERROR naming
only its class (its message and traceback may expose internals; log them instead).

Missing context never breaks formatting: a placeholder whose key the error's context lacks renders as
``<unknown KEY>`` (e.g. ``<unknown path>``), so the sentence stays readable and the gap stays visible.
Lists in the context render comma-separated, and ``{path!q}`` shell-quotes a value for commands users
copy. Besides the context keys, templates may use ``{message}`` (the error's own message) and ``{code}``.

Doc links are relative (``docs/errors/catalog.md#e101``) unless ``docs_url`` - the URL of the published
catalog page - is given, per call or through the ``CDE_OTEL_ERRORS_DOCS_URL`` setting.
"""

from __future__ import annotations

import json
import os
import shlex
import string
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from cde_otel._exceptions import CDEError, CDESystemError
from cde_otel.errors.catalog import CATALOG, CatalogEntry, catalog_entry
from cde_otel.settings import load_settings

_TITLE_MARK, _SUGGESTIONS_MARK, _DOCS_MARK, _BULLET = "❌", "💡", "📖", "•"
_EMOJI = _TITLE_MARK + _SUGGESTIONS_MARK + _DOCS_MARK + _BULLET


class _Missing:
    """Stands in for an absent context key; renders as ``label`` whatever the format spec or conversion."""

    __slots__ = ("label",)

    def __init__(self, label: str) -> None:
        self.label = label

    def __format__(self, spec: str) -> str:
        return self.label

    def __str__(self) -> str:
        return self.label

    def __getattr__(self, name: str) -> _Missing:
        return self

    def __getitem__(self, item: object) -> _Missing:
        return self


class _LenientFormatter(string.Formatter):
    """``str.format`` that never fails on a missing key, joins lists, and adds ``!q`` (shell quoting)."""

    def __init__(self, missing: Callable[[str], str]) -> None:
        self.missing = missing

    def get_value(self, key: int | str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        if isinstance(key, str) and key in kwargs:
            return kwargs[key]
        return _Missing(self.missing(str(key)))

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if isinstance(value, _Missing):
            return value
        if conversion == "q":
            return shlex.quote(str(value))
        return super().convert_field(value, conversion)

    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, list | tuple | set | frozenset):
            value = ", ".join(str(v) for v in value) or "none"
        return str(super().format_field(value, format_spec))


_FORMATTER = _LenientFormatter(lambda key: f"<unknown {key}>")
_PLACEHOLDERS = _LenientFormatter(str.upper)
_INTERNAL = CATALOG["E902"]


def interpolate(template: str, values: Mapping[str, Any]) -> str:
    """``template`` with ``values`` filled in, ``<unknown key>`` for absent keys; never raises.

    A template that is itself broken (unbalanced braces) is returned as written.
    """
    try:
        return _FORMATTER.vformat(template, (), values)
    except Exception:
        return template


def placeholder_text(template: str) -> str:
    """``template`` for reference docs: each placeholder as its key in capitals (``{path}`` -> ``PATH``)."""
    try:
        return _PLACEHOLDERS.vformat(template, (), {})
    except Exception:
        return template


def can_encode_emoji(encoding: str | None) -> bool:
    """True when text in ``encoding`` can carry the formatter's emoji (unknown encodings: no)."""
    if not encoding:
        return False
    try:
        _EMOJI.encode(encoding)
    except (UnicodeError, LookupError):
        return False
    return True


def prefers_ascii(stream: IO[str] | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """ASCII when ``NO_COLOR`` is set (non-empty) or ``stream`` (default stdout) cannot encode the emoji."""
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR"):
        return True
    target = sys.stdout if stream is None else stream
    return not can_encode_emoji(getattr(target, "encoding", None))


def configured_docs_url() -> str | None:
    """``CDE_OTEL_ERRORS_DOCS_URL`` when set, else None (links stay relative)."""
    # Formatting must not fail because some unrelated setting is malformed (that error is E903 itself).
    try:
        url = load_settings().errors_docs_url
    except Exception:
        return None
    return url or None


def as_cde_error(error: BaseException) -> CDEError:
    """``error`` itself when it is a ``CDEError``; otherwise an E902 naming its class, chained to it."""
    if isinstance(error, CDEError):
        return error
    wrapped = CDESystemError(f"unexpected {type(error).__name__}", "E902", {"exception_type": type(error).__name__})
    wrapped.__cause__ = error
    return wrapped


def _json_context(error: CDEError) -> dict[str, Any]:
    try:
        context: dict[str, Any] = error.to_dict()["context"]
    except Exception:  # a context value whose repr itself fails must not hide the error
        return {str(key): "<unrepresentable>" for key in error.context}
    return context


class ErrorFormatter:
    """Formats errors for end users; all methods are class methods, no instance needed."""

    @classmethod
    def parts(cls, error: BaseException, *, docs_url: str | None = None) -> dict[str, Any]:
        """Everything the renderings show, interpolated: the common ground of text and JSON."""
        cde = as_cde_error(error)
        # CDEError refuses unregistered codes, so the entry exists; E902 is the defensive fallback.
        entry = catalog_entry(cde.code) or _INTERNAL
        values: dict[str, Any] = {**cde.context, "message": cde.message.rstrip("."), "code": cde.code}
        return {
            "code": cde.code,
            "name": entry.name,
            "title": entry.title,
            "severity": cde.severity.value,
            "recoverable": cde.recoverable,
            "message": interpolate(entry.description, values),
            "details": cde.message,
            "suggestions": [interpolate(s, values) for s in entry.suggestions],
            "docs": entry.docs_link(docs_url or configured_docs_url()),
            "context": _json_context(cde),
        }

    @classmethod
    def format(
        cls,
        error: BaseException,
        *,
        ascii: bool | None = None,
        docs_url: str | None = None,
        stream: IO[str] | None = None,
    ) -> str:
        """The multi-line message; ``ascii=None`` picks ASCII for ``NO_COLOR`` or emoji-less ``stream``."""
        use_ascii = prefers_ascii(stream) if ascii is None else ascii
        p = cls.parts(error, docs_url=docs_url)
        if use_ascii:
            head, tips, more, bullet = f"{p['severity']}: {p['title']} [{p['code']}]", "Suggestions:", "More info:", "-"
        else:
            head, tips = f"{_TITLE_MARK} {p['title']} [{p['code']}]", f"{_SUGGESTIONS_MARK} Suggestions:"
            more, bullet = f"{_DOCS_MARK} More info:", _BULLET
        lines = [head, "", p["message"]]
        if p["suggestions"]:
            lines += ["", tips, *(f"  {bullet} {tip}" for tip in p["suggestions"])]
        lines += ["", f"{more} {p['docs']}"]
        return "\n".join(lines)

    @classmethod
    def to_json(cls, error: BaseException, *, docs_url: str | None = None) -> dict[str, Any]:
        """A JSON-serialisable dict for tool clients; no traceback, snapshot or breadcrumbs."""
        return cls.parts(error, docs_url=docs_url)

    @classmethod
    def format_json(cls, error: BaseException, *, docs_url: str | None = None) -> str:
        """:meth:`to_json` as a JSON string."""
        return json.dumps(cls.to_json(error, docs_url=docs_url), ensure_ascii=False)

    @classmethod
    def explain(cls, code: str, *, docs_url: str | None = None) -> str | None:
        """The long explanation of ``code`` (as ``rustc --explain`` gives), or None for an unknown code."""
        entry = catalog_entry(code)
        return None if entry is None else _explanation(entry, docs_url or configured_docs_url())


def _explanation(entry: CatalogEntry, docs_url: str | None) -> str:
    spec = entry.spec
    recoverable = "recoverable" if entry.recoverable else "not recoverable"
    lines = [
        f"{entry.code}: {entry.title}",
        f"{entry.name} - severity {entry.severity.value}, {recoverable}, raised as {spec.exception.__name__}",
        "",
        spec.summary,
        "",
        "Message shown (placeholders such as PATH are filled in from the error's context):",
        f"  {placeholder_text(entry.description)}",
    ]
    if entry.causes:
        lines += ["", "Causes:", *(f"  - {cause}" for cause in entry.causes)]
    if entry.suggestions:
        lines += ["", "Suggestions:", *(f"  - {placeholder_text(tip)}" for tip in entry.suggestions)]
    lines += ["", f"More info: {entry.docs_link(docs_url)}"]
    return "\n".join(lines)

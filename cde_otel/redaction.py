"""Masking of secrets and prompt text, shared by logs, span attributes and log attributes.

Values are masked by *key*: a key is sensitive when, lower-cased with ``.``/``-``
turned into ``_``, it contains one of :data:`SENSITIVE_FRAGMENTS` (``token``,
``password``, ``api_key``, ``authorization``, ``cookie``, ``prompt``...) or an
extra fragment (``CDE_OTEL_REDACT_KEYS``) — unless it names a length, a count, a
size or an id (``prompt_length``, ``cde.prompt.length``, ``token_count``,
``api_key_id``): those carry no secret and are useful. Free text is scrubbed of
the obvious inline forms too (``Bearer <token>``, ``password=...``)::

    from cde_otel.redaction import redact_mapping

    redact_mapping({"user": "ann", "api_key": "k-123", "prompt_length": 42})
    # {'user': 'ann', 'api_key': '[REDACTED]', 'prompt_length': 42}

Prompt text may be kept deliberately (``CDE_OTEL_CAPTURE_CONTENT``): pass
``content_max_length`` and values under content keys are truncated instead of
masked. Secrets are always masked.

Pure standard library and cheap: key decisions are cached.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

MASK = "[REDACTED]"

#: Key fragments whose values are secrets (always masked).
SECRET_FRAGMENTS: tuple[str, ...] = (
    "token",
    "password",
    "passwd",
    "secret",
    "api_key",
    "apikey",
    "authorization",
    "auth_header",
    "cookie",
    "credential",
    "private_key",
)
#: Key fragments whose values are user content (masked, or truncated when capture is on).
CONTENT_FRAGMENTS: tuple[str, ...] = ("prompt",)
SENSITIVE_FRAGMENTS: tuple[str, ...] = SECRET_FRAGMENTS + CONTENT_FRAGMENTS

#: Key endings that describe a value rather than hold it: lengths, counts, sizes and ids are allowed.
ALLOWED_SUFFIXES: tuple[str, ...] = ("_length", "_len", "_count", "_size", "_chars", "_tokens", "_id", "_ids")

# Inline secrets in free text: "Bearer abc.def", "password=hunter2", "api_key: k-1", and token shapes
# that need no key name: "sk-..." API keys (OpenAI, Anthropic), Stripe "sk_live_..."/"rk_test_...",
# GitHub "ghp_...", Slack "xoxb-...", AWS key ids "AKIA...", JWTs "eyJ...", and the password in
# "scheme://user:password@host".
_INLINE_SECRET = re.compile(
    r"(?i)\b(bearer|basic)\s+[a-z0-9._~+/=-]{8,}"
    r"|\b(password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key)(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&]+)"
    r"|(?P<shape>\bsk-(?:[a-z]+-)?[a-z0-9_-]{16,}"
    r"|\b[sr]k_(?:live|test)_[a-z0-9]{10,}"
    r"|\bgh[pousr]_[a-z0-9]{30,}"
    r"|\bxox[abpr]-[a-z0-9-]{10,}"
    r"|\bAKIA[0-9A-Z]{16}\b"
    r"|\beyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]{4,})"
    r"|(?P<userinfo>://[^/\s:@]+:)[^/\s@]+@"
)
# Cheap pre-check (one C-level scan) so most strings skip the substitution entirely.
_INLINE_HINT = re.compile(
    r"(?i)bearer|basic|pass|pwd|secret|token|key|sk-|k_live|k_test|gh[pousr]_|xox|akia|eyj|://[^/\s]*@"
)
_SCALARS = (int, float, bool, type(None))


def _normalise(key: str) -> str:
    return key.lower().replace(".", "_").replace("-", "_")


@lru_cache(maxsize=4096)
def _classify(key: str, extra: tuple[str, ...]) -> tuple[bool, bool]:
    """(sensitive, content) for one key; cached because the same keys recur in every event."""
    name = _normalise(key)
    if name.endswith(ALLOWED_SUFFIXES):
        return False, False
    if any(fragment in name for fragment in CONTENT_FRAGMENTS):
        return True, True
    if any(fragment in name for fragment in SECRET_FRAGMENTS):
        return True, False
    return any(_normalise(fragment) in name for fragment in extra), False


def is_sensitive_key(key: str, extra: Iterable[str] = ()) -> bool:
    """True when values under ``key`` must not be recorded (secrets and prompt text)."""
    return _classify(key, tuple(extra))[0]


def is_content_key(key: str) -> bool:
    """True for keys holding user content (prompt text) rather than a secret."""
    return _classify(key, ())[1]


def scrub_text(text: str) -> str:
    """Masks inline secrets in free text (``Bearer ...``, ``password=...``); other text is returned as is."""
    if _INLINE_HINT.search(text) is None:
        return text
    return _INLINE_SECRET.sub(_mask_inline, text)


def _mask_inline(match: re.Match[str]) -> str:
    if match.group(1):
        return f"{match.group(1)} {MASK}"
    if match.group("shape"):
        return MASK
    if match.group("userinfo"):
        return f"{match.group('userinfo')}{MASK}@"
    return f"{match.group(2)}{match.group(3)}{MASK}"


def scrub_exception(error: BaseException, *, limit: int = 8192) -> tuple[str, str, str]:
    """(type name, scrubbed message, scrubbed stack trace cut to its last ``limit`` characters) of ``error``.

    What an ``exception`` span event or log record carries, with the same masking as
    :func:`scrub_text`: an exception's message often quotes the secret that made it fail.
    """
    import traceback

    # Scrubbed before it is cut: a cut through "password=..." would hide the key the mask looks for.
    stack = scrub_text("".join(traceback.format_exception(type(error), error, error.__traceback__)))
    if len(stack) > limit:
        stack = "..." + stack[-limit:]  # the end holds the exception and the frames nearest to it
    return type(error).__name__, scrub_text(str(error)), stack


def redact_value(key: str, value: Any, extra: tuple[str, ...] = (), content_max_length: int | None = None) -> Any:
    """The value to record under ``key``: masked, truncated, recursed into, or scrubbed."""
    sensitive, content = _classify(key, extra)
    if sensitive:
        if content and content_max_length is not None and isinstance(value, str):
            return value[:content_max_length]
        return MASK
    if isinstance(value, _SCALARS):
        return value
    return _redact_nested(value, extra, content_max_length)


def _redact_nested(value: Any, extra: tuple[str, ...], content_max_length: int | None) -> Any:
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, Mapping):
        return {k: redact_value(str(k), v, extra, content_max_length) for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [_redact_nested(item, extra, content_max_length) for item in value]
        return items if isinstance(value, list) else tuple(items)
    return value


def redact_mapping(
    mapping: Mapping[str, Any], extra: Iterable[str] = (), *, content_max_length: int | None = None
) -> dict[str, Any]:
    """A copy of ``mapping`` with sensitive values masked, recursively (dicts, lists, tuples).

    ``extra``: more key fragments to mask (e.g. ``settings.redact_keys``).
    ``content_max_length``: keep prompt text, truncated to this many characters (opt-in capture).
    """
    fragments = tuple(extra)
    return {key: redact_value(str(key), value, fragments, content_max_length) for key, value in mapping.items()}

"""Masking of secrets and prompt text, shared by logs, span attributes and log attributes.

Values are masked by *key*: a key is sensitive when, lower-cased with ``.``/``-``
turned into ``_``, it contains one of :data:`SENSITIVE_FRAGMENTS` (``token``,
``password``, ``api_key``, ``authorization``, ``cookie``, ``prompt``...) or an
extra fragment (``CDE_OTEL_REDACT_KEYS``) — unless it names a length, a count, a
size or an id (``prompt_length``, ``cde.prompt.length``, ``token_count``,
``api_key_id``): those carry no secret and are useful. Free text is scrubbed of
inline secrets (:func:`scrub_text`): ``DB_PASSWORD=...``, ``{"token": "..."}``,
``Authorization:``/``Cookie:`` headers, PEM private keys, ``https://user:pass@host``,
and token shapes that need no key (``sk-ant-...``, ``ghp_...``, ``AKIA...``, JWTs...)::

    from cde_otel.redaction import redact_mapping

    redact_mapping({"user": "ann", "api_key": "k-123", "prompt_length": 42})
    # {'user': 'ann', 'api_key': '[REDACTED]', 'prompt_length': 42}

Free text in telemetry is also bounded (:func:`bounded_text`, :data:`TEXT_LIMIT`). Prompt text
may be kept deliberately (``CDE_OTEL_CAPTURE_CONTENT``): pass ``content_max_length`` and
values under content keys are scrubbed, then truncated, instead of masked.

Cheap: key decisions are cached, and one Aho-Corasick pass (``pyahocorasick``) tells ordinary text,
which has none of the rules' anchor words, from text worth the rules.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

import ahocorasick

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

# Inline secrets in free text. Each rule is tried only where one of its anchors (lower-case literals)
# occurs, and matches from there: a text without any anchor costs a few substring scans and no
# regular expression at all. A match never starts before its anchor, so what precedes it is kept.
_FLAGS = re.IGNORECASE
_KEY_PREFIXES = ("api", "access", "private", "signing", "encryption", "master", "client", "account", "session")
_AFTER_KEY_PREFIX = "|".join(f"(?<={prefix}{sep})" for prefix in _KEY_PREFIXES for sep in ("", "_", "-", "."))
# A secret word in a key, also inside a compound one (DB_PASSWORD, client_secret, SECRET_KEY, x-api-key,
# aws_secret_access_key), then key=value, key: value, "key": "value", 'key': 'value' or key => value.
_KEY_VALUE = re.compile(
    r"(?P<key>(?:pass(?:word|wd|phrase)|(?<=[_.-])pass|pwd|secret|token|credentials?|authorization"
    r"|auth[_-]header|cookie|(?:" + _AFTER_KEY_PREFIX + r")key)(?:[_.-][a-z0-9]{1,32}){0,6})"
    r"(?P<sep>\\?[\"']?[ \t]*(?:=>|:=|[=:])[ \t]*)"
    r"(?:(?P<q>\\?[\"'])(?P<quoted>.*?)(?P=q)|(?P<bare>(?:(?:bearer|basic|token|digest)[ \t]+)?[^\s,;&}\])]+))",
    _FLAGS,
)
# HTTP headers carrying credentials, unquoted: the whole rest of the line is the secret.
_HEADER = re.compile(r"(?<![a-z0-9_])(?P<key>authorization|cookie)(?P<sep>[ \t]*:[ \t]*)(?![\"'\s])[^\r\n]+", _FLAGS)
_PEM = re.compile(
    r"-----BEGIN[A-Z0-9 ]* PRIVATE KEY[A-Z ]*-----[\s\S]*?(?:-----END[A-Z0-9 ]* PRIVATE KEY[A-Z ]*-----|\Z)", _FLAGS
)
_FLAG = re.compile(r"(?P<key>--(?:[a-z0-9]{1,32}-){0,4}(?:password|passwd|token|secret|api-key)[ \t]+)(?!-)\S+", _FLAGS)
# "Bearer <token>", "Basic <base64>" in free text ("basic authentication" is kept: base64 credentials
# have a digit or a +/= in them).
_SCHEME = re.compile(r"\b(?P<key>bearer[ \t]+|basic[ \t]+(?=[a-z0-9._~+/=-]*[0-9+/=]))[a-z0-9._~+/=-]{8,}", _FLAGS)
# scheme://user:password@host: the user is kept.
_USERINFO = re.compile(r"(?P<key>://[^/\s:@]*:)[^/\s@]+(?P<tail>@)", _FLAGS)
_TOKEN_SHAPE = re.compile(
    r"(?<![a-z0-9_-])(?:"
    r"sk-(?:ant-|proj-|live-|svcacct-)?(?=[a-z0-9_-]*\d)[a-z0-9_-]{16,}"  # OpenAI, Anthropic
    r"|[sr]k_(?:live|test)_[a-z0-9]{10,}|whsec_[a-z0-9]{16,}"  # Stripe
    r"|gh[pousr]_[a-z0-9]{30,}|github_pat_[a-z0-9_]{30,}"  # GitHub
    r"|glpat-[a-z0-9_-]{20,}|npm_[a-z0-9]{30,}|hf_[a-z0-9]{30,}|pypi-[a-z0-9_-]{40,}"  # GitLab, npm, HF, PyPI
    r"|xox[abposre]-[a-z0-9-]{10,}"  # Slack
    r"|(?-i:A(?:KIA|SIA)[0-9A-Z]{16})"  # AWS access key ids
    r"|AIza[0-9a-z_-]{35}"  # Google API keys
    r"|SG\.[a-z0-9_-]{16,}\.[a-z0-9_-]{16,}"  # SendGrid
    r"|eyJ[a-z0-9_-]{8,}\.[a-z0-9_-]{8,}\.[a-z0-9_-]{4,}"  # JWTs
    r")(?![a-z0-9_-])",
    _FLAGS,
)
_DASHES = re.compile("-*")


def _dash_run_end(text: str, at: int) -> int:
    run = _DASHES.match(text, at)  # "-*" always matches
    return run.end() if run is not None else at + 1


# (gate, anchor, rules): the anchor is looked for only when the text holds one of the gate's
# characters (a memchr-fast test), e.g. a key=value needs a "=" or a ":" somewhere.
_SEPARATORS = "=:"
_RULES: tuple[tuple[str, str, tuple[re.Pattern[str], ...]], ...] = (
    ("-", "--", (_PEM, _FLAG)),
    (_SEPARATORS, "auth", (_HEADER, _KEY_VALUE)),
    (_SEPARATORS, "cookie", (_HEADER, _KEY_VALUE)),
    *((_SEPARATORS, word, (_KEY_VALUE,)) for word in ("pass", "pwd", "secret", "token", "credential", "key")),
    ("", "bearer", (_SCHEME,)),
    ("", "basic", (_SCHEME,)),
    (":", "://", (_USERINFO,)),
    *(("-", shape, (_TOKEN_SHAPE,)) for shape in ("sk-", "glpat-", "pypi-", "xox")),
    *(("_", shape, (_TOKEN_SHAPE,)) for shape in ("sk_", "rk_", "whsec_", "gh", "github_pat_", "npm_", "hf_")),
    *(("A", shape, (_TOKEN_SHAPE,)) for shape in ("akia", "asia", "aiza")),  # upper-case in the text
    *((".", shape, (_TOKEN_SHAPE,)) for shape in ("sg.", "eyj")),
)


def _anchor_automaton() -> Any:
    automaton = ahocorasick.Automaton()
    for _, anchor, _ in _RULES:
        automaton.add_word(anchor, anchor)
    automaton.make_automaton()
    return automaton


# Every anchor in one C pass: ordinary text (the common case) costs one scan, not one per anchor.
_ANCHORS = _anchor_automaton()
#: Free text (exception messages, log bodies, status descriptions, captured content) is cut to this
#: many characters in telemetry; stack traces to :data:`STACK_LIMIT` (their end is kept).
TEXT_LIMIT = 4096
STACK_LIMIT = 8192
# How far past a cut the scrubber reads, so that a secret straddling the cut is still recognised.
_SCRUB_WINDOW = 512
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
    """``text`` with inline secrets masked (``password=...``, ``Bearer ...``, token shapes), else ``text`` itself."""
    lowered = text.lower()
    if len(lowered) != len(text):  # "İ" lower-cases to two characters: keep the offsets aligned
        lowered = text.replace("\u0130", "i").lower()
    if next(_ANCHORS.iter(lowered), None) is None:  # no anchor anywhere: nothing can match
        return text
    # The first occurrence of each anchor, then a sweep in text order: a match consumes its span
    # (anchors inside it are never tried), so the work stays linear whatever the text holds.
    heap: list[tuple[int, int]] = []
    present: dict[str, bool] = {}
    for index, (gate, anchor, _) in enumerate(_RULES):
        if gate:
            open_ = present.get(gate)
            if open_ is None:
                open_ = present[gate] = any(char in text for char in gate)
            if not open_:
                continue
        at = lowered.find(anchor)
        if at != -1:
            heap.append((at, index))
    if not heap:
        return text
    heapq.heapify(heap)
    parts: list[str] = []
    done = 0
    while heap:
        at, index = heap[0]
        _, anchor, rules = _RULES[index]
        if at >= done:
            for rule in rules:
                match = rule.match(text, at)
                if match is not None:
                    parts += (text[done:at], _masked(match))
                    done = match.end()
                    break
        resume = max(at + 1, done)
        if anchor == "--" and at >= done:  # a run of dashes: one attempt at its start is enough
            resume = max(resume, _dash_run_end(lowered, at))
        following = lowered.find(anchor, resume)
        if following == -1:
            heapq.heappop(heap)
        else:
            heapq.heapreplace(heap, (following, index))
    if not parts:
        return text
    parts.append(text[done:])
    return "".join(parts)


def bounded_text(text: str, limit: int = TEXT_LIMIT) -> str:
    """``text`` scrubbed, then cut to ``limit`` characters (with a marker saying how much was cut).

    Scrubbed *before* the cut: a cut through ``password=hunter2`` could leave half a secret that no
    longer looks like one. Only a window past the cut is read, so 10 MB cost what 4 KB do.
    """
    if len(text) <= limit:
        return scrub_text(text)
    return scrub_text(text[: limit + _SCRUB_WINDOW])[:limit] + f"...[{len(text) - limit} chars cut]"


def bounded_stack(text: str, limit: int = STACK_LIMIT) -> str:
    """A stack trace scrubbed and cut to its last ``limit`` characters (the end holds the exception)."""
    if len(text) <= limit:
        return scrub_text(text)
    return "..." + scrub_text(text[-(limit + _SCRUB_WINDOW) :])[-limit:]


def _masked(match: re.Match[str]) -> str:
    """The replacement of one match: the key (or scheme, or user) kept, the secret masked."""
    groups = match.groupdict()
    key = groups.get("key")
    if key is None:
        return MASK  # a token shape, a PEM block
    if match.re is _KEY_VALUE:
        if key.lower().endswith(ALLOWED_SUFFIXES):  # token_count=5, api_key_id=...: no secret there
            return match.group(0)
        quote = groups["q"]
        return f"{key}{groups['sep']}{quote}{MASK}{quote}" if quote is not None else f"{key}{groups['sep']}{MASK}"
    if match.re is _HEADER:
        return f"{key}{groups['sep']}{MASK}"
    return f"{key}{MASK}{groups.get('tail') or ''}"


def scrub_exception(error: BaseException, *, limit: int = STACK_LIMIT) -> tuple[str, str, str]:
    """(type name, scrubbed message, scrubbed stack trace cut to its last ``limit`` characters) of ``error``.

    What an ``exception`` span event or log record carries, with the same masking as
    :func:`scrub_text`: an exception's message often quotes the secret that made it fail. The
    message is cut to :data:`TEXT_LIMIT` characters: a 10 MB message stays a few KB in telemetry.
    """
    import traceback

    message = bounded_text(str(error))
    # A huge message (or a chained cause's) is bounded where it stands, so it is never scrubbed whole
    # and the frames before it survive the cut below.
    lines = [
        line if len(line) <= TEXT_LIMIT else bounded_text(line) + "\n"
        for line in traceback.format_exception(type(error), error, error.__traceback__)
    ]
    stack = scrub_text("".join(lines))
    if len(stack) > limit:
        stack = "..." + stack[-limit:]  # the end holds the exception and the frames nearest to it
    return type(error).__name__, message, stack


def scrubbed_prefix(text: str, length: int) -> str:
    """The first ``length`` characters of ``text``, scrubbed before the cut; only a window past the
    cut is read, so a 10 MB input costs what a short one does."""
    return scrub_text(text[: length + _SCRUB_WINDOW])[:length]


def capture_text(text: str, max_length: int) -> str:
    """Content kept deliberately (``CDE_OTEL_CAPTURE_CONTENT=true``): scrubbed, then cut to ``max_length``."""
    return scrubbed_prefix(text, max_length)


def redact_value(key: str, value: Any, extra: tuple[str, ...] = (), content_max_length: int | None = None) -> Any:
    """The value to record under ``key``: masked, truncated, recursed into, or scrubbed."""
    sensitive, content = _classify(key, extra)
    if sensitive:
        if content and content_max_length is not None and isinstance(value, str):
            return capture_text(value, content_max_length)  # kept on purpose, but never its secrets
        return MASK
    if isinstance(value, _SCALARS):
        return value
    return _redact_nested(value, extra, content_max_length)


def _redact_nested(value: Any, extra: tuple[str, ...], content_max_length: int | None) -> Any:
    if isinstance(value, str):
        return bounded_text(value)
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

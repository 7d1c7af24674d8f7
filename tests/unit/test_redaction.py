"""cde_otel.redaction: secrets and prompt text masked by key, lengths and ids kept, inline secrets scrubbed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cde_otel.redaction import MASK, is_content_key, is_sensitive_key, redact_mapping, scrub_exception, scrub_text
from cde_otel.semconv import ATTR_ERROR_CODE, ATTR_ERROR_TYPE, ATTR_PROJECT_ID, ATTR_PROMPT_LENGTH


@pytest.mark.parametrize(
    "key",
    [
        "token",
        "access_token",
        "refreshToken",
        "password",
        "DB_PASSWD",
        "client_secret",
        "api_key",
        "X-Api-Key",
        "apikey",
        "Authorization",
        "http.request.header.authorization",
        "auth_header",
        "cookie",
        "Set-Cookie",
        "credentials",
        "private_key",
        "prompt",
        "cde.feature.prompt",
        "user_prompt_text",
    ],
)
def test_sensitive_keys(key: str) -> None:
    assert is_sensitive_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "prompt_length",
        ATTR_PROMPT_LENGTH,
        "token_count",
        "prompt_tokens",
        "api_key_id",
        "session_ids",
        "feature_id",
        ATTR_PROJECT_ID,
        "operation",
        "duration_ms",
        "author",
        ATTR_ERROR_TYPE,
        ATTR_ERROR_CODE,
        "event",
    ],
)
def test_allowed_keys(key: str) -> None:
    assert not is_sensitive_key(key)


def test_extra_fragments() -> None:
    assert not is_sensitive_key("session")
    assert is_sensitive_key("session", extra=("session",))
    assert is_sensitive_key("X-Session-Key", extra=("session",))
    assert not is_sensitive_key("session_id", extra=("session",))


def test_prompt_is_content_and_token_is_a_secret() -> None:
    assert is_content_key("prompt")
    assert not is_content_key("token")


def test_redact_mapping_recurses_and_does_not_mutate() -> None:
    original: dict[str, Any] = {
        "user": "ann",
        "password": {"nested": "whole value masked"},
        "headers": {"Authorization": "Bearer abc", "Accept": "json"},
        "items": [{"api_key": "k"}, "plain", ("t", {"secret": "s"})],
        "prompt_length": 12,
        "count": 3,
    }
    snapshot = json.dumps(original, default=list)
    result = redact_mapping(original)

    assert result == {
        "user": "ann",
        "password": MASK,
        "headers": {"Authorization": MASK, "Accept": "json"},
        "items": [{"api_key": MASK}, "plain", ("t", {"secret": MASK})],
        "prompt_length": 12,
        "count": 3,
    }
    assert json.dumps(original, default=list) == snapshot


def test_content_max_length_keeps_truncated_prompt_but_never_secrets() -> None:
    result = redact_mapping({"prompt": "Add authentication", "token": "t-1"}, content_max_length=7)
    assert result == {"prompt": "Add aut", "token": MASK}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer eyJhbGciOi.JIUzI1", "Authorization: [REDACTED]"),
        ("connect password=hunter2 host=db", "connect password=[REDACTED] host=db"),
        ("api_key: 'k 1 2' then", "api_key: '[REDACTED]' then"),
        ("url?token=abc&x=1", "url?token=[REDACTED]&x=1"),
        ("nothing to hide here", "nothing to hide here"),
        ("the tokenizer keeps going", "the tokenizer keeps going"),
        # Token shapes that need no key name.
        ("use sk-live-abcdefghijklmnop1234 now", f"use {MASK} now"),
        ("key sk-proj-Ab3dEf6hIj9kLmN0pQ", f"key {MASK}"),
        ("stripe sk_live_abcdefghij12 and rk_test_abcdefghij12", f"stripe {MASK} and {MASK}"),
        ("gh ghp_" + "a1" * 18, f"gh {MASK}"),
        ("slack xoxb-1234567890-abcdef", f"slack {MASK}"),
        ("aws AKIAABCDEFGHIJKLMNOP end", f"aws {MASK} end"),
        ("jwt eyJhbGciOiJI.eyJzdWIiOiIx.SflKxwRJSMeK", f"jwt {MASK}"),
        ("dsn postgres://app:hunter2@db:5432/x", f"dsn postgres://app:{MASK}@db:5432/x"),
        # ... and look-alikes that are not secrets.
        (
            "task-list sk-1 ok, risk-assessment, pk_live_abcdefghij12",
            "task-list sk-1 ok, risk-assessment, pk_live_abcdefghij12",
        ),
        (
            "https://example.org/path?q=1 and mailto:ann@example.org",
            "https://example.org/path?q=1 and mailto:ann@example.org",
        ),
    ],
)
def test_scrub_text(text: str, expected: str) -> None:
    assert scrub_text(text) == expected


def test_scrub_exception_masks_message_and_stack_and_keeps_the_end() -> None:
    try:
        raise RuntimeError("db login failed: password=hunter2 api_key=sk-live-abcdefghijklmnop1234")
    except RuntimeError as error:
        name, message, stack = scrub_exception(error)
        _, _, short = scrub_exception(error, limit=40)
    assert name == "RuntimeError"
    assert message == f"db login failed: password={MASK} api_key={MASK}"
    assert "Traceback (most recent call last)" in stack and message in stack
    assert "hunter2" not in stack + short and "sk-live" not in stack + short
    assert short.startswith("...") and short.endswith(f"api_key={MASK}\n")


def test_free_text_values_are_scrubbed() -> None:
    assert redact_mapping({"message": "retry with password=hunter2"}) == {"message": "retry with password=[REDACTED]"}


_secret = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=12, max_size=24)
_sensitive = st.sampled_from(["token", "password", "api_key", "Authorization", "prompt", "x.secret.value"])
_plain = st.sampled_from(["name", "path", "status", "phase"])


@given(secret=_secret, key=_sensitive, wrapper_keys=st.lists(_plain, max_size=3), in_list=st.booleans())
def test_a_secret_under_a_sensitive_key_never_survives(
    secret: str, key: str, wrapper_keys: list[str], in_list: bool
) -> None:
    value: Any = {key: secret}
    for wrapper in wrapper_keys:
        value = {wrapper: [value] if in_list else value}
    assert secret not in json.dumps(redact_mapping({"root": value}))

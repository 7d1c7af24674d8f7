"""The scrubber against real-world shapes: each secret below is masked, each near miss survives whole.

Every row names the secret part, so a row passes only when that part is gone (and a mask is in its
place), not merely when the text changed. Token-looking values are built from pieces so that this
file itself holds nothing a secret scanner would flag.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cde_otel.redaction import MASK, bounded_text, capture_text, redact_mapping, scrub_text

_ALNUM36 = "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
_JWT = "eyJhbGciOiJIUzI1NiJ9" + ".eyJzdWIiOiIxMjM0NTY3ODkwIn0" + ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
_PEM = (
    "-----BEGIN {0}PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n"
    "-----END {0}PRIVATE KEY-----"
)

# (text, the secret in it)
SECRETS: list[tuple[str, str]] = [
    # key=value forms, compound keys
    ("connect DB_PASSWORD=hunter2 host=db", "hunter2"),
    ("client_secret=s3cr3tValue&grant_type=client_credentials", "s3cr3tValue"),
    ("SECRET_KEY=django-insecure-4x7q", "django-insecure-4x7q"),
    ("POSTGRES_PASSWORD=pg_pa55 docker run", "pg_pa55"),
    ("MYSQL_ROOT_PASSWORD: r00tpw", "r00tpw"),
    ("REDIS_PASS=redispw1 started", "redispw1"),
    ("passwd=letmein1", "letmein1"),
    ("pwd=Winter2024!", "Winter2024!"),
    ("passphrase: correct-horse-battery", "correct-horse-battery"),
    ("access_token=ya29.a0AfH6SMBx", "ya29.a0AfH6SMBx"),
    ("refresh_token: 1//0gLx-rt", "1//0gLx-rt"),
    ("auth_token=tok-998877", "tok-998877"),
    ("api_key=k-123-456", "k-123-456"),
    ("apikey=abcdef123456", "abcdef123456"),
    ("x-api-key: k-live-77", "k-live-77"),
    ("X-Auth-Token: 9f8e7d6c", "9f8e7d6c"),
    ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCY"),
    ("AccountKey=Eby8vdM02xNOcqF==;EndpointSuffix=core", "Eby8vdM02xNOcqF=="),
    ("Server=db;User Id=sa;Password=P@ssw0rd;", "P@ssw0rd"),
    ("private_key=MIIBOgIBAAJBAKj34", "MIIBOgIBAAJBAKj34"),
    ("credentials=user1:pw1", "user1:pw1"),
    ("session_key=0a9b8c7d", "0a9b8c7d"),
    # dict, JSON and YAML forms
    ("{'password': 'hunter2', 'user': 'ann'}", "hunter2"),
    ('{"token": "t0ken-value", "n": 1}', "t0ken-value"),
    ('{\\"api_key\\": \\"k-escaped-9\\"}', "k-escaped-9"),
    ("password: yamlpw1\nuser: ann", "yamlpw1"),
    ('{"client_secret": "a b c 123"}', "a b c 123"),
    ("config = {secret => 'rubyval9'}", "rubyval9"),
    # headers
    ("Authorization: Bearer abc.def-123", "abc.def-123"),
    ("authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
    ("Proxy-Authorization: Digest username=ann, response=6629fae4", "6629fae4"),
    ("Cookie: sessionid=38afes7a8; csrftoken=x1", "38afes7a8"),
    ("Set-Cookie: id=a3fWa; Expires=Thu, 21 Oct 2021; Secure", "a3fWa"),
    ("{'Authorization': 'Bearer 123abc456def'}", "123abc456def"),
    ("sent with bearer 9f8e7d6c5b4a3f2e1d", "9f8e7d6c5b4a3f2e1d"),
    ("?authorization=Bearer q1w2e3r4t5y6&x=1", "q1w2e3r4t5y6"),
    ("api_key: Token k9k9k9k9k9", "k9k9k9k9k9"),
    # URL credentials
    ("dsn postgres://app:hunter2@db:5432/app", "hunter2"),
    ("fetch https://ann:pa55word@example.org/repo.git", "pa55word"),
    ("redis://:redispw@cache:6379/0", "redispw"),
    ("https://example.org/cb?code=1&access_token=zz99yy&x=1", "zz99yy"),
    # command lines
    ("mysql --password hunter2 -u root", "hunter2"),
    ("cli login --api-key k-flag-12 --verbose", "k-flag-12"),
    # PEM blocks, multi-line (and one cut off before its end)
    ("key follows\n" + _PEM.format("RSA ") + "\nrest", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"),
    (_PEM.format(""), "BKcwggSjAgEAAoIBAQC7"),
    (_PEM.format("OPENSSH "), "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"),
    ("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVW\nMHcCAQEEIBkg", "MHcCAQEEIBkg"),
    # token shapes with no key name
    ("use " + "sk-" + "proj-" + _ALNUM36 + " now", _ALNUM36),
    ("anthropic " + "sk-" + "ant-api03-" + _ALNUM36 + "-xyz", _ALNUM36),
    ("openai " + "sk-" + _ALNUM36, _ALNUM36),
    ("stripe " + "sk_" + "live_" + _ALNUM36[:24], _ALNUM36[:24]),
    ("stripe restricted " + "rk_" + "test_" + _ALNUM36[:24], _ALNUM36[:24]),
    ("webhook " + "whsec_" + _ALNUM36[:32], _ALNUM36[:32]),
    ("github " + "ghp_" + _ALNUM36, _ALNUM36),
    ("oauth " + "gho_" + _ALNUM36, _ALNUM36),
    ("fine-grained " + "github_pat_" + "11ABCDEFG0_" + _ALNUM36, _ALNUM36),
    ("gitlab " + "glpat-" + _ALNUM36[:20], _ALNUM36[:20]),
    ("npm " + "npm_" + _ALNUM36, _ALNUM36),
    ("hf " + "hf_" + _ALNUM36, _ALNUM36),
    ("slack " + "xoxb-" + "123456789012-1234567890123-" + _ALNUM36[:24], _ALNUM36[:24]),
    ("slack user " + "xoxp-" + "1234-5678-abcdefghij", "5678-abcdefghij"),
    ("aws id " + "AKIA" + "IOSFODNN7EXAMPLE" + " region", "IOSFODNN7EXAMPLE"),
    ("sts " + "ASIA" + "Y34FZKBOKMUTVV7A", "Y34FZKBOKMUTVV7A"),
    ("google " + "AIza" + "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY", "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"),
    ("sendgrid " + "SG." + "ngeVfQFYQlKU0ufo8x5d1A.TwL2iGABf9DHoTf-09kqeF8tAmbihYzrnopKc-1s5cr", "TwL2iGABf9DHoTf"),
    ("jwt " + _JWT, "eyJzdWIiOiIxMjM0NTY3ODkwIn0"),
]

# Ordinary text that merely looks close: it must come back unchanged.
NEAR_MISSES: list[str] = [
    "the password policy requires 12 characters",
    "reset your password at the account page",
    "the token count was 1500 and tokens: 30",
    "prompt_tokens=120 completion_tokens=80 token_count=200",
    "the secretary: Jane Doe",
    "tokenizer=bpe vocabulary=32000",
    "api_key_id=key-17 rotated",
    "cookie policy updated",
    "basic authentication is disabled",
    "bearer of bad news",
    "read /etc/secrets/app.yaml and /home/ann/.ssh/known_hosts",
    "C:\\Users\\ann\\AppData\\token_cache\\index",
    "commit 3f2a9c1e8b7d4c2a9e1f0a1b2c3d4e5f60718293 Author: Ann <ann@example.org>",
    "merge 9fceb02d0ae598e95dc970b74767f19372d61af8 into main",
    "feature 3f2a9c1e-8b7d-4c2a-9e1f-0a1b2c3d4e5f advanced to decompose",
    "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "https://example.org:8443/path?q=1 and mailto:ann@example.org",
    "ssh://git@github.com/org/repo.git and git@github.com:org/repo.git",
    "task-list sk-1 ok, risk-assessment, disk-cleanup-worker-service",
    "pk_live_abcdefghij12 is a publishable key",
    "Tests pass: 42, bypass: no, compass: north",
    "the key insight is that monkeys like keyboards",
    "Asia and Europe, SK Telecom, sg.example.org",
    "an authorization header is required",
    "PRIVATE KEY files live in ~/.ssh, never in logs",
    "ghost_town and gh repo clone",
]


def test_the_table_is_as_large_as_promised() -> None:
    assert len(SECRETS) >= 40 and len(NEAR_MISSES) >= 20


@pytest.mark.parametrize(("text", "secret"), SECRETS, ids=[f"secret-{i}" for i in range(len(SECRETS))])
def test_secret_is_masked(text: str, secret: str) -> None:
    assert secret in text  # the row names a part of its own text
    scrubbed = scrub_text(text)
    assert secret not in scrubbed
    assert MASK in scrubbed


@pytest.mark.parametrize("text", NEAR_MISSES, ids=[f"near-miss-{i}" for i in range(len(NEAR_MISSES))])
def test_near_miss_survives(text: str) -> None:
    assert scrub_text(text) == text


def test_the_key_and_the_quotes_are_kept() -> None:
    assert scrub_text('{"password": "hunter2", "n": 1}') == f'{{"password": "{MASK}", "n": 1}}'
    assert scrub_text("DB_PASSWORD=hunter2 host=db") == f"DB_PASSWORD={MASK} host=db"
    assert scrub_text("https://ann:pw@host/x") == f"https://ann:{MASK}@host/x"


def test_secrets_inside_one_long_text_are_all_masked() -> None:
    text = " | ".join(text for text, _ in SECRETS)
    scrubbed = scrub_text(text)
    assert not [secret for _, secret in SECRETS if secret in scrubbed]


def test_captured_content_is_scrubbed_then_cut() -> None:
    prompt = "log in with password=hunter2 and " + "sk-" + "ant-api03-" + _ALNUM36 + " please"
    kept = capture_text(prompt, 40)
    assert kept.startswith("log in with password=") and len(kept) == 40
    assert "hunter2" not in kept
    # A secret straddling the cut is recognised before the cut, so no prefix of it survives.
    cut_inside = capture_text("x" * 30 + " password=hunter2", 42)
    assert "hunt" not in cut_inside
    captured = redact_mapping({"prompt": prompt}, content_max_length=200)["prompt"]
    assert "hunter2" not in captured and _ALNUM36 not in captured and captured.endswith("please")


def test_bounded_text_cuts_huge_text_and_says_how_much() -> None:
    text = "password=hunter2 " + "x" * 10_000_000
    bounded = bounded_text(text, 4096)
    assert len(bounded) < 4200 and "hunter2" not in bounded
    assert bounded.endswith(f"...[{len(text) - 4096} chars cut]")
    assert bounded_text("short password=pw1") == f"short password={MASK}"


def test_the_scrub_benchmark_reports_its_keys(run_bench: Callable[..., dict[str, Any]]) -> None:
    keys = ["scrub_1kb_us", "scrub_1kb_ratio_vs_re_sub", "scrub_1kb_hinted_us"]
    result = run_bench("scrub", keys)
    assert all(result[key] > 0 for key in keys)
    assert set(result["scrub"]["ratio_vs_re_sub"]) == {"ordinary", "hinted", "secrets"}


PATHOLOGICAL = """
from cde_otel.redaction import scrub_text
size = 500_000
texts = [
    "cookie: " * (size // 8), "auth: " * (size // 6), "token_" * (size // 6), "token_" + "tokentoken" * (size // 10),
    "-" * size, "--a-" * (size // 4), "sk-" * (size // 3), "bearer " * (size // 7), 'token="' * (size // 7),
    "key=" * (size // 4), "://a:" * (size // 5), "-----BEGIN RSA PRIVATE KEY-----\\n" * (size // 32),
]
for text in texts:
    scrub_text(text)
print("done")
"""


def test_hostile_text_is_scrubbed_in_linear_time(tmp_path: Path) -> None:
    """Texts made of anchors (a header per word, a dash run, compound keys without an end): a match
    consumes its span and an attempt reads a bounded distance, so 500 KB each take about a second
    in all; a quadratic scrubber would take hours (the deadline is generous, not a speed goal)."""
    result = subprocess.run(
        [sys.executable, "-c", PATHOLOGICAL], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0 and result.stdout.strip() == "done", result.stderr[-2000:]

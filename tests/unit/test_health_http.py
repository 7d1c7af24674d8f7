"""The HTTP the health server speaks (``cde_otel.health._http``): strict request heads, small responses.

Pure functions of bytes; the same rules over real sockets are in ``test_health_server_protocol.py``.
"""

from __future__ import annotations

from http import HTTPStatus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cde_otel.health._http import HTTPError, Request, head_length, parse_head, response, skip_empty_lines


def test_a_typical_request() -> None:
    head = b"GET /health/ready HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: probe/1\r\nAccept: */*\r\n\r\n"

    assert parse_head(head) == Request("GET", "/health/ready", keep_alive=True, body_length=0)


@pytest.mark.parametrize(
    ("head", "keep_alive"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", False),
        (b"GET / HTTP/1.1\r\nconnection: Upgrade, CLOSE\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nX-Connection: close\r\n\r\n", True),  # another field, whatever it ends in
    ],
)
def test_keep_alive_follows_the_version_and_the_connection_field(head: bytes, keep_alive: bool) -> None:
    assert parse_head(head).keep_alive is keep_alive


def test_bare_lf_line_ends_are_accepted() -> None:
    head = b"GET /health HTTP/1.1\nHost: x\nConnection: close\n\n"

    assert head_length(head + b"rest") == len(head)
    assert parse_head(head) == Request("GET", "/health", keep_alive=False, body_length=0)


def test_empty_lines_before_a_request_line_are_skipped() -> None:
    assert skip_empty_lines(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n") == b"GET / HTTP/1.1\r\n\r\n"


def test_an_incomplete_head_has_no_length_yet() -> None:
    assert head_length(b"GET / HTTP/1.1\r\nHost: x\r\n") == -1


@pytest.mark.parametrize(
    ("target", "path"),
    [
        ("/health/ready?verbose=1", "/health/ready"),
        ("/health/%72eady", "/health/ready"),
        ("http://127.0.0.1:8080/health", "/health"),
        ("*", "*"),
    ],
)
def test_the_path_is_decoded_without_its_query(target: str, path: str) -> None:
    assert parse_head(f"GET {target} HTTP/1.1\r\n\r\n".encode()).path == path


def test_a_body_length_is_read_from_content_length() -> None:
    head = b"POST /health HTTP/1.1\r\nContent-Length: 12\r\nContent-Length: 12\r\n\r\n"

    assert parse_head(head).body_length == 12  # repeated with the same value is one length


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET /\r\n\r\n", HTTPStatus.BAD_REQUEST),  # two parts
        (b"GET  / HTTP/1.1\r\n\r\n", HTTPStatus.BAD_REQUEST),  # two spaces
        (b"G(T / HTTP/1.1\r\n\r\n", HTTPStatus.BAD_REQUEST),  # not a token
        (b"GET / HTTP/2.0\r\n\r\n", HTTPStatus.HTTP_VERSION_NOT_SUPPORTED),
        (b"GET / HTTQ/1.1\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET relative HTTP/1.1\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", HTTPStatus.BAD_REQUEST),  # space before the colon
        (b"GET / HTTP/1.1\r\nno colon\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET / HTTP/1.1\r\nContent-Length: \xb2\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", HTTPStatus.NOT_IMPLEMENTED),
    ],
)
def test_malformed_or_ambiguous_heads_are_refused(head: bytes, status: HTTPStatus) -> None:
    with pytest.raises(HTTPError) as refused:
        parse_head(head)

    assert refused.value.status == status
    assert refused.value.message


@given(st.binary(max_size=300))
def test_any_bytes_are_a_request_or_a_refusal(data: bytes) -> None:
    head = data if data.endswith(b"\n\n") or data.endswith(b"\r\n\r\n") else data + b"\r\n\r\n"
    try:
        request = parse_head(head)
    except HTTPError as error:
        assert 400 <= error.status < 600
    else:
        assert request.method and request.path and request.body_length >= 0


@given(
    st.sampled_from(["GET", "HEAD", "POST", "OPTIONS"]),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="%?#"), max_size=30),
    st.lists(st.tuples(st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,15}", fullmatch=True), st.text(
        st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)), max_size=6),
)  # fmt: skip
def test_well_formed_requests_are_read_as_sent(method: str, path: str, fields: list[tuple[str, str]]) -> None:
    fields = [(name, value) for name, value in fields
              if name.lower() not in ("connection", "content-length", "transfer-encoding")]  # fmt: skip
    head = f"{method} /{path} HTTP/1.1\r\n" + "".join(f"{n}: {v}\r\n" for n, v in fields) + "\r\n"

    assert parse_head(head.encode()) == Request(method, f"/{path}", keep_alive=True, body_length=0)


def test_a_response_carries_length_type_cache_and_connection() -> None:
    payload = response(HTTPStatus.OK, b'{"status": "ready"}', keep_alive=False)
    head, _, body = payload.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")

    assert lines[0] == "HTTP/1.1 200 OK"
    assert body == b'{"status": "ready"}'
    fields = dict(line.split(": ", 1) for line in lines[1:])
    assert fields["Content-Length"] == str(len(body))
    assert fields["Content-Type"] == "application/json"
    assert fields["Cache-Control"] == "no-store"
    assert fields["Connection"] == "close"
    assert fields["Date"].endswith(" GMT")


def test_a_head_response_has_the_headers_and_no_body() -> None:
    get = response(HTTPStatus.SERVICE_UNAVAILABLE, b'{"status": "not_ready"}', keep_alive=True)
    head = response(HTTPStatus.SERVICE_UNAVAILABLE, b'{"status": "not_ready"}', keep_alive=True, send_body=False)

    assert get.startswith(head) and head.endswith(b"\r\n\r\n")
    assert b"Content-Length: 23\r\n" in head and b"Connection: keep-alive\r\n" in head


def test_extra_headers_are_included() -> None:
    payload = response(HTTPStatus.METHOD_NOT_ALLOWED, b"{}", keep_alive=True, headers=(("Allow", "GET, HEAD"),))

    assert b"\r\nAllow: GET, HEAD\r\n" in payload


def test_a_repeated_head_reads_the_same_and_a_refused_one_stays_refused() -> None:
    good = b"GET /health/ready HTTP/1.1\r\nHost: x\r\n\r\n"
    bad = b"GET / HTTP/2.0\r\n\r\n"

    assert parse_head(good) == parse_head(good) == Request("GET", "/health/ready", keep_alive=True, body_length=0)
    for _ in range(2):
        with pytest.raises(HTTPError):
            parse_head(bad)

"""The HTTP the health server speaks (``cde_otel.health._http``): requests read by llhttp, small responses.

No sockets: a :class:`RequestReader` is fed bytes as a connection would receive them. The same
rules over real sockets are in ``test_health_server_protocol.py``.
"""

from __future__ import annotations

import itertools
from http import HTTPStatus
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cde_otel.health._http import (
    MAX_BODY_BYTES,
    MAX_HEAD_BYTES,
    HTTPError,
    KnownReads,
    Request,
    RequestReader,
    ResponseHeads,
)


def response(status: HTTPStatus, body: bytes, **options: Any) -> bytes:
    """An answer built afresh: a new server's cache holds nothing yet."""
    return ResponseHeads().response(status, body, **options)


def read(*pieces: bytes, known: KnownReads | None = None) -> list[Request | HTTPError]:
    """What a reader queues when fed ``pieces``, one read each (``known``: the server's known reads)."""
    reader = RequestReader(known)
    for piece in pieces:
        reader.feed(piece)
    return list(reader.requests)


def as_value(item: Request | HTTPError) -> object:
    return item if isinstance(item, Request) else (item.status, item.message)


def refusal(*pieces: bytes) -> HTTPStatus:
    """The status of the refusal that ends what ``pieces`` read as (failing the test if there is none)."""
    *_, last = read(*pieces)
    assert isinstance(last, HTTPError), f"not refused: {last!r}"
    assert last.message
    return last.status


def test_a_typical_request() -> None:
    head = b"GET /health/ready HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: probe/1\r\nAccept: */*\r\n\r\n"

    assert read(head) == [Request("GET", "/health/ready", keep_alive=True)]


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
    [request] = read(head)

    assert isinstance(request, Request) and request.keep_alive is keep_alive


def test_pipelined_requests_are_queued_in_order_with_empty_lines_between_skipped() -> None:
    requests = read(b"\r\nGET /health HTTP/1.1\r\n\r\n\r\nHEAD /health/ready HTTP/1.1\r\n\r\nGET /x HTTP/1.0\r\n\r\n")

    assert requests == [
        Request("GET", "/health", keep_alive=True),
        Request("HEAD", "/health/ready", keep_alive=True),
        Request("GET", "/x", keep_alive=False),
    ]


def test_a_request_split_across_reads_is_queued_once_complete() -> None:
    reader = RequestReader()
    reader.feed(b"GET /health/re")
    reader.feed(b"ady HTTP/1.1\r\nHost: x\r\n")

    assert not reader.requests
    reader.feed(b"\r\n")
    assert list(reader.requests) == [Request("GET", "/health/ready", keep_alive=True)]


@pytest.mark.parametrize(
    ("target", "path"),
    [
        ("/health/ready?verbose=1", "/health/ready"),
        ("/health/%72eady", "/health/ready"),
        ("http://127.0.0.1:8080/health", "/health"),
        ("http://127.0.0.1:8080", "/"),
        ("*", "*"),
    ],
)
def test_the_path_is_decoded_without_its_query(target: str, path: str) -> None:
    [request] = read(f"OPTIONS {target} HTTP/1.1\r\n\r\n".encode())

    assert isinstance(request, Request) and request.path == path


def test_a_body_is_read_and_ignored_and_the_next_request_follows() -> None:
    requests = read(b"POST /health HTTP/1.1\r\nContent-Length: 5\r\n\r\nhel", b"loGET / HTTP/1.1\r\n\r\n")

    assert requests == [Request("POST", "/health", keep_alive=True), Request("GET", "/", keep_alive=True)]


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"NONSENSE\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET /\r\n\r\n", HTTPStatus.HTTP_VERSION_NOT_SUPPORTED),  # no version: HTTP/0.9
        (b"GET / HTTP/0.9\r\n\r\n", HTTPStatus.HTTP_VERSION_NOT_SUPPORTED),
        (b"GET / HTTP/2.0\r\n\r\n", HTTPStatus.HTTP_VERSION_NOT_SUPPORTED),
        (b"GET / HTTP/1.5\r\n\r\n", HTTPStatus.BAD_REQUEST),  # llhttp knows no such version
        (b"GET / HTTQ/1.1\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"G(T / HTTP/1.1\r\n\r\n", HTTPStatus.BAD_REQUEST),  # not a token
        (b"BREW / HTTP/1.1\r\n\r\n", HTTPStatus.BAD_REQUEST),  # a method llhttp does not know
        (b"GET relative HTTP/1.1\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET /h\xc3\xa9 HTTP/1.1\r\n\r\n", HTTPStatus.BAD_REQUEST),  # not ASCII
        (b"GET /health HTTP/1.1\nHost: x\n\n", HTTPStatus.BAD_REQUEST),  # bare LF line ends
        (b"GET / HTTP/1.1\r\nHost: x\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", HTTPStatus.BAD_REQUEST),  # space before the colon
        (b"GET / HTTP/1.1\r\nno colon\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab", HTTPStatus.BAD_REQUEST),
        (b"GET / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\na", HTTPStatus.BAD_REQUEST),
        (b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET / HTTP/1.1\r\nContent-Length: \xb2\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", HTTPStatus.NOT_IMPLEMENTED),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", HTTPStatus.NOT_IMPLEMENTED),
        (b"POST / HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n", HTTPStatus.NOT_IMPLEMENTED),
        (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", HTTPStatus.BAD_REQUEST),  # both
        (b"CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", HTTPStatus.BAD_REQUEST),  # the HTTP/2 preface
    ],
)
def test_malformed_ambiguous_or_unsupported_requests_are_refused(head: bytes, status: HTTPStatus) -> None:
    assert refusal(head) == status


def test_a_body_over_the_cap_is_refused_by_its_length_before_it_is_sent() -> None:
    assert refusal(f"POST / HTTP/1.1\r\nContent-Length: {MAX_BODY_BYTES + 1}\r\n\r\n".encode()) == 413
    [request] = read(f"POST / HTTP/1.1\r\nContent-Length: {MAX_BODY_BYTES}\r\n\r\n".encode(), b"x" * MAX_BODY_BYTES)
    assert request == Request("POST", "/", keep_alive=True)


def test_a_head_over_the_cap_is_refused_whole_or_in_pieces() -> None:
    field = b"X-Long: " + b"a" * MAX_HEAD_BYTES + b"\r\n"

    assert refusal(b"GET / HTTP/1.1\r\n" + field + b"\r\n") == 431  # complete in one read
    pieces = [b"GET / HTTP/1.1\r\nX-Long: "] + [b"a" * 16384] * 5  # never completed
    assert refusal(*pieces) == 431
    many = b"".join(b"X-%d: v\r\n" % index for index in range(MAX_HEAD_BYTES // 12))  # ~10 bytes a line: under
    assert read(b"GET / HTTP/1.1\r\n" + many + b"\r\n") == [Request("GET", "/", keep_alive=True)]


def test_after_a_refusal_nothing_more_is_read() -> None:
    reader = RequestReader()
    reader.feed(b"GET / HTTP/1.1\r\n\r\nBAD\r\n\r\nGET /health HTTP/1.1\r\n\r\n")
    reader.feed(b"GET /health HTTP/1.1\r\n\r\n")

    first, second = reader.requests
    assert first == Request("GET", "/", keep_alive=True)
    assert isinstance(second, HTTPError) and second.status == 400


def test_an_upgrade_is_answered_in_http_1_1_and_ends_the_connection() -> None:
    # What `curl --http2 http://...` sends: the server may ignore the upgrade (RFC 9110 §7.8).
    upgrade = (
        b"GET /health HTTP/1.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        b"HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n"
    )
    then_http2 = b"\x00\x00\x12\x04"

    assert read(upgrade + then_http2, b"GET / HTTP/1.1\r\n\r\n") == [Request("GET", "/health", keep_alive=False)]


def test_a_bug_in_a_callback_is_raised_as_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_self: RequestReader) -> None:
        raise ZeroDivisionError

    monkeypatch.setattr(RequestReader, "on_message_complete", broken)
    with pytest.raises(ZeroDivisionError):
        RequestReader().feed(b"GET /a-bug HTTP/1.1\r\n\r\n")  # a read no reader has seen: it is parsed


def test_a_read_seen_before_reads_the_same_and_only_at_a_request_boundary() -> None:
    get = b"GET /health/ready HTTP/1.1\r\nHost: known\r\n\r\n"
    known: KnownReads = {}
    assert read(get, known=known) == [Request("GET", "/health/ready", keep_alive=True)]
    assert list(known) == [get]  # remembered by the server's (here: this test's) known reads
    assert read(get, known=known) == read(get) == [Request("GET", "/health/ready", keep_alive=True)]

    # The same bytes as the body of another request are that body, not a request.
    body_first = b"POST /health HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(get)
    assert read(body_first, get, get, known=known) == [Request("POST", "/health", keep_alive=True), *read(get)]
    # ... and after half a request, they are the rest of its head.
    assert refusal(b"GET /x HTTP/1.1\r\n", get) == 400  # "GET /health/ready HTTP/1.1" is no header line
    assert isinstance(read(b"GET /x HTTP/1.1\r\n", get, known=known)[-1], HTTPError)  # not taken from known


def test_nothing_is_read_after_a_request_not_kept_alive() -> None:
    close = b"GET /health HTTP/1.0\r\n\r\n"
    for _ in range(2):  # parsed, then known
        assert read(close, b"GET / HTTP/1.1\r\n\r\n") == [Request("GET", "/health", keep_alive=False)]


@given(st.binary(max_size=300), st.lists(st.integers(min_value=0, max_value=300), max_size=4))
def test_any_bytes_in_any_reads_are_requests_then_at_most_one_refusal(data: bytes, cuts: list[int]) -> None:
    bounds = sorted({0, len(data), *(cut for cut in cuts if cut < len(data))})
    pieces = [data[start:end] for start, end in itertools.pairwise(bounds)]

    split, whole = read(*pieces), read(data)

    assert [as_value(item) for item in split] == [as_value(item) for item in whole]
    for item in whole[:-1]:
        assert isinstance(item, Request) and item.method and item.path
    if whole and isinstance(whole[-1], HTTPError):
        assert 400 <= whole[-1].status < 600


@given(
    st.sampled_from(["GET", "HEAD", "POST", "OPTIONS", "DELETE"]),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="%?#"), max_size=30),
    st.lists(st.tuples(st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,15}", fullmatch=True), st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40)), max_size=6),
)  # fmt: skip
def test_well_formed_requests_are_read_as_sent(method: str, path: str, fields: list[tuple[str, str]]) -> None:
    fields = [(name, value) for name, value in fields
              if name.lower() not in ("connection", "content-length", "transfer-encoding", "upgrade")]  # fmt: skip
    head = f"{method} /{path} HTTP/1.1\r\n" + "".join(f"{n}: {v}\r\n" for n, v in fields) + "\r\n"

    assert read(head.encode()) == [Request(method, f"/{path}", keep_alive=True)]


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


def test_response_heads_are_cached_per_server_and_match_the_uncached_response() -> None:
    body = b'{"status": "ready"}'
    heads, other = ResponseHeads(), ResponseHeads()

    first = heads.response(HTTPStatus.OK, body, keep_alive=True)
    again = heads.response(HTTPStatus.OK, body, keep_alive=True, send_body=False)

    assert first == again + body
    assert list(heads._heads[1].values()) == [again]  # built once for both answers
    assert other._heads == (0, {})  # another server's cache saw nothing of it

    def without_date(payload: bytes) -> list[bytes]:
        return [line for line in payload.split(b"\r\n") if not line.startswith(b"Date: ")]

    assert without_date(first) == without_date(response(HTTPStatus.OK, body, keep_alive=True))

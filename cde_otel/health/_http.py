"""The HTTP/1.1 the health endpoints speak: requests read by llhttp, small JSON responses written here.

Requests are parsed by ``httptools``, MagicStack's binding of llhttp (the parser of Node.js
and uvicorn), in llhttp's strict default mode, so that no request can be read two ways
(RFC 9112): CRLF line ends only, no obsolete line folding, no whitespace between a field
name and its colon, one Content-Length at most, methods and targets llhttp knows. Empty
lines before a request line are skipped. A :class:`RequestReader` is fed what a connection
receives and queues the requests it completes, pipelined ones in order; a request it cannot
take ends the queue with an :class:`HTTPError`, answered with its status and
``Connection: close``:

* anything llhttp rejects: 400;
* a version llhttp reads but the endpoints do not speak (HTTP/0.9, that is a request line
  without one, and HTTP/2.0): 505 — llhttp itself refuses the others (400);
* ``CONNECT`` and the HTTP/2 preface (``PRI``): 400;
* any ``Transfer-Encoding``: 501 (no endpoint takes a body, so no transfer coding is implemented);
* a head over ``MAX_HEAD_BYTES`` (431: a complete head as llhttp reports it, blanks around values
  not counted; an incomplete one after each read, with at most one read of slack) or a
  Content-Length over ``MAX_BODY_BYTES`` (413, before the body is sent). A body within the cap
  is read and ignored.

Keep-alive is llhttp's verdict (the version and the ``Connection`` field). A request asking to
upgrade (``Upgrade`` with ``Connection: upgrade``, as ``curl --http2`` sends) is answered in
HTTP/1.1 as RFC 9110 §7.8 allows, and then the connection closes: llhttp reads nothing after
it. A read that llhttp took as exactly one whole request is remembered (256 reads of up to 1 KiB):
a health checker sends the same bytes every time, and from a request boundary they parse the same
way, so the same read again skips the parser. Responses are rendered here: a status line and five
header lines, which each server caches for the second of their Date (:class:`ResponseHeads`). No
I/O: :mod:`cde_otel.health._connection` does the sockets.
"""

from __future__ import annotations

import functools
import json
import time
from collections import deque
from email.utils import formatdate
from http import HTTPStatus
from typing import NamedTuple, NoReturn
from urllib.parse import unquote

import httptools

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 1024
SUPPORTED_VERSIONS = ("1.1", "1.0")


class HTTPError(Exception):
    """A request the server refuses: answered with ``status`` and the connection closed."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Request(NamedTuple):
    method: str
    path: str  # percent-decoded, without query; "*" for OPTIONS *
    keep_alive: bool  # the client will send another request on this connection


class _Refused(Exception):
    """Raised inside a parser callback to stop llhttp; the reason is in ``RequestReader._refusal``."""


def _length(value: bytes) -> int:
    """A Content-Length value (llhttp has checked it is digits and surrounding blanks; a bad one counts as 0)."""
    value = value.strip(b" \t")
    return int(value) if value.isdigit() else 0


#: The parser of a reader that has none (yet, or any more): it takes no callbacks.
_NO_PARSER = httptools.HttpRequestParser(None)
_KNOWN_MAX = 256
_KNOWN_MAX_BYTES = 1024


#: Reads that llhttp took as exactly one whole request, from a message boundary: a health checker sends the
#: same bytes every time, and the same bytes from the same state parse the same way. Small reads only.
KnownReads = dict[bytes, Request]


class RequestReader:
    """The requests of one connection: :meth:`feed` it the bytes received, pop ``requests`` from the left.

    After an :class:`HTTPError` is queued the reader takes nothing more (the connection is closing). A read
    that llhttp already took as one whole request is answered from ``known`` without running the parser
    again, which costs a connection's worth of CPU each time (~15-20 µs in the server, most of it callbacks).
    ``known`` is the server's, shared by its connections (default: this reader's own).
    """

    __slots__ = ("_done", "_fed", "_head_bytes", "_head_start", "_in_head", "_in_message", "_known", "_parser",
                 "_read_start", "_refusal", "_url", "requests")  # fmt: skip

    def __init__(self, known: KnownReads | None = None) -> None:
        self._known: KnownReads = known if known is not None else {}
        self.requests: deque[Request | HTTPError] = deque()
        self._parser = _NO_PARSER  # made at the first read not already known
        self._url = b""
        self._fed = 0  # bytes fed so far
        self._read_start = 0  # where the bytes being fed start
        self._head_start = 0  # where the read that began the current head started
        self._in_message = False  # between a request's first byte and its end
        self._in_head = False
        self._head_bytes = 0  # of the current head, as llhttp reports it
        self._refusal: HTTPError | None = None
        self._done = False  # refused, closed, upgraded, or after a request not kept alive: nothing more is read

    def feed(self, data: bytes) -> None:
        if self._done:
            return
        at_boundary = not self._in_message
        if at_boundary and (known := self._known.get(data)) is not None:
            self._fed += len(data)
            self.requests.append(known)
            self._done = not known.keep_alive
            return
        queued = len(self.requests)
        plain = self._parse(data)
        if plain and at_boundary and not self._in_message and len(self.requests) == queued + 1:
            request = self.requests[-1]
            if isinstance(request, Request) and len(data) <= _KNOWN_MAX_BYTES:
                if len(self._known) >= _KNOWN_MAX:
                    self._known.clear()  # start over: atomic, where evicting one could race another thread
                self._known[data] = request

    def _parse(self, data: bytes) -> bool:
        """Feeds llhttp; False if the read ended in a refusal or an upgrade."""
        parser = self._parser
        if parser is _NO_PARSER:
            parser = self._parser = httptools.HttpRequestParser(self)
        self._read_start = self._fed
        self._fed += len(data)
        try:
            parser.feed_data(data)
        except httptools.HttpParserCallbackError as error:
            if self._refusal is None:  # not a refusal: a bug in a callback, for the caller to log
                raise error.__context__ or error from None
        except httptools.HttpParserUpgrade:
            self._done = True  # its request is queued (not kept alive); what follows is another protocol
            return False
        except httptools.HttpParserError as error:
            self._refuse(HTTPStatus.BAD_REQUEST, f"malformed request: {error}")
        else:
            if self._in_head and self._fed - self._head_start > MAX_HEAD_BYTES:
                self._refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request head too large")
        if self._refusal is not None:
            self._done = True
            self.requests.append(self._refusal)
            return False
        return True

    def close(self) -> None:
        """Takes nothing more, and frees the parser now (it refers back to this reader, a cycle for the GC)."""
        self._done = True
        self._parser = _NO_PARSER

    def _refuse(self, status: HTTPStatus, message: str) -> None:
        if self._refusal is None:
            self._refusal = HTTPError(status, message)

    def _stop(self, status: HTTPStatus, message: str) -> NoReturn:
        """Refuses from inside a callback: httptools turns the exception into an error that stops llhttp."""
        self._refuse(status, message)
        raise _Refused

    # -- llhttp callbacks (httptools calls them by name) --------------------------------------
    def on_message_begin(self) -> None:
        self._url = b""
        self._in_message = self._in_head = True
        self._head_bytes = 14  # request line and blank line beyond method and target: " ", " HTTP/1.1", 2 CRLFs
        self._head_start = self._read_start  # at most one read early: pipelined requests before it count too

    def on_url(self, url: bytes) -> None:
        self._url += url  # in pieces when the target spans reads

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4  # ": " and CRLF
        if len(name) == 14 and name.lower() == b"content-length" and _length(value) > MAX_BODY_BYTES:
            self._stop(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "health requests take no body")
        if len(name) == 17 and name.lower() == b"transfer-encoding":
            self._stop(HTTPStatus.NOT_IMPLEMENTED, "transfer codings are not accepted")

    def on_headers_complete(self) -> None:
        self._in_head = False
        parser = self._parser
        method = parser.get_method()
        if self._head_bytes + len(self._url) + len(method) > MAX_HEAD_BYTES:
            self._stop(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request head too large")
        if method == b"CONNECT":
            self._stop(HTTPStatus.BAD_REQUEST, "CONNECT is not supported")
        version = parser.get_http_version()
        if version not in SUPPORTED_VERSIONS:
            self._stop(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, f"HTTP/{version} is not supported")

    def on_message_complete(self) -> None:
        parser = self._parser
        try:
            path = _path(self._url)
        except HTTPError as error:
            self._stop(error.status, error.message)
        keep_alive = parser.should_keep_alive() and not parser.should_upgrade()
        self._in_message = False
        self._done = not keep_alive  # the connection closes after its answer: llhttp would refuse what follows
        self.requests.append(Request(parser.get_method().decode(), path, keep_alive))


@functools.lru_cache(maxsize=256)
def _path(target: bytes) -> str:
    """The decoded path of a request target llhttp accepted (origin, absolute or asterisk form)."""
    if target == b"*":
        return "*"
    try:
        path = (httptools.parse_url(target).path or b"/").decode("ascii")  # llhttp admits visible ASCII only
    except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
        raise HTTPError(HTTPStatus.BAD_REQUEST, "malformed request target") from None
    return unquote(path) if "%" in path else path


def json_body(document: object) -> bytes:
    return json.dumps(document, default=str).encode()


def error_body(message: str) -> bytes:
    return json_body({"status": "error", "error": {"message": message}})


_HeadKey = tuple[HTTPStatus, int, bool, tuple[tuple[str, str], ...]]


class ResponseHeads:
    """Complete JSON responses whose heads are built once per second for each status, length and
    connection (a head's Date changes each second). One per server: the cache is the server's."""

    def __init__(self) -> None:
        self._heads: tuple[int, dict[_HeadKey, bytes]] = (0, {})  # replaced whole each second

    def response(
        self,
        status: HTTPStatus,
        body: bytes,
        *,
        keep_alive: bool,
        send_body: bool = True,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> bytes:
        """A complete JSON response, its head from this second's cache; ``send_body=False`` (HEAD)
        keeps the headers, Content-Length included."""
        now = int(time.time())
        second, heads = self._heads
        if now != second:
            heads = {}
            self._heads = (now, heads)
        key = (status, len(body), keep_alive, headers)
        head = heads.get(key)
        if head is None:
            head = heads[key] = _head(key, now)
        return head + body if send_body else head


def _head(key: _HeadKey, now: int) -> bytes:
    status, length, keep_alive, headers = key
    lines = [
        f"HTTP/1.1 {status.value} {status.phrase}",
        "Content-Type: application/json",
        f"Content-Length: {length}",
        "Cache-Control: no-store",
        f"Date: {formatdate(now, usegmt=True)}",
        *(f"{name}: {value}" for name, value in headers),
        "Connection: keep-alive" if keep_alive else "Connection: close",
        "",
        "",
    ]
    return "\r\n".join(lines).encode("latin-1")

"""The part of HTTP/1.1 the health endpoints speak: request heads in, small JSON responses out.

Strict on purpose, so that no request can be read two ways (RFC 9112): a request line of
exactly three parts and version HTTP/1.0 or HTTP/1.1 (another version is 505), header
names that are tokens with no space before the colon, no obsolete line folding, at most
one Content-Length value and no Transfer-Encoding (501). Anything else is an
:class:`HTTPError`, answered with its status and ``Connection: close``. Lines may end in
CRLF or a bare LF; empty lines before a request line are skipped. A body announced by
Content-Length is read and ignored (no endpoint takes one).

Pure functions of bytes, no I/O; :mod:`cde_otel.health._server` does the sockets.
"""

from __future__ import annotations

import functools
import re
import time
from email.utils import formatdate
from http import HTTPStatus
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

_TOKEN_CHARS = r"!#$%&'*+\-.^_`|~0-9A-Za-z"  # noqa: S105 (RFC 9110 tchar, not a secret)
_TOKEN = re.compile(f"[{_TOKEN_CHARS}]+")
_VERSION = re.compile(r"HTTP/\d\.\d")
#: A whole request head, strictly: request line, header lines (name, colon, visible text), blank line.
_HEAD = re.compile(
    f"([{_TOKEN_CHARS}]+) ([!-~]+) (HTTP/\\d\\.\\d)\r?\n"
    f"((?:[{_TOKEN_CHARS}]+:[\t\x20-\x7e\x80-\xff]*\r?\n)*)\r?\n".encode("latin-1")
)
#: The header fields the server acts on, in the lower-cased header lines matched by ``_HEAD``.
_FIELDS = re.compile(rb"^(connection|content-length|transfer-encoding):[ \t]*(.*?)[ \t]*\r?$", re.MULTILINE)
SUPPORTED_VERSIONS = ("HTTP/1.1", "HTTP/1.0")


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
    body_length: int  # bytes of body after the head, to read and ignore


def skip_empty_lines(buffer: bytes) -> bytes:
    """``buffer`` without the empty lines a client may send before a request line (RFC 9112 §2.2)."""
    return buffer.lstrip(b"\r\n") if buffer[:1] in (b"\r", b"\n") else buffer


def head_length(buffer: bytes) -> int:
    """Bytes of the request head at the start of ``buffer``, blank line included; -1 while incomplete."""
    crlf = buffer.find(b"\r\n\r\n")
    lf = buffer.find(b"\n\n")
    if lf >= 0 and (crlf < 0 or lf < crlf):
        return lf + 2
    return crlf + 4 if crlf >= 0 else -1


@functools.lru_cache(maxsize=256)
def parse_head(head: bytes) -> Request:
    """The request that ``head`` (request line, header lines, blank line) asks for; :class:`HTTPError` if malformed.

    Memoised: a health checker sends the same head every time (a refused head is parsed again each time).
    """
    match = _HEAD.fullmatch(head)
    if match is None:
        raise _diagnosis(head)
    version = match.group(3).decode()
    if version not in SUPPORTED_VERSIONS:
        raise HTTPError(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, f"{version} is not supported")
    connection: set[bytes] = set()
    lengths: set[bytes] = set()
    fields = match.group(4).lower()
    if b"connection:" in fields or b"content-length:" in fields or b"transfer-encoding:" in fields:
        for field in _FIELDS.finditer(fields):
            name, value = field.group(1, 2)
            if name == b"connection":
                connection.update(token.strip() for token in value.split(b","))
            elif name == b"content-length":
                lengths.update(item.strip(b" \t") for item in value.split(b","))
            else:
                raise HTTPError(HTTPStatus.NOT_IMPLEMENTED, "transfer codings are not accepted")
        if len(lengths) > 1 or not all(length.isdigit() for length in lengths):
            raise HTTPError(HTTPStatus.BAD_REQUEST, "invalid Content-Length")
    if version == "HTTP/1.1":
        keep_alive = b"close" not in connection
    else:
        keep_alive = b"keep-alive" in connection and b"close" not in connection
    target = match.group(2).decode()
    return Request(match.group(1).decode(), _path(target), keep_alive, int(lengths.pop()) if lengths else 0)


def _diagnosis(head: bytes) -> HTTPError:
    """Why ``head`` does not match ``_HEAD``, as the error to answer."""
    lines = head.decode("latin-1").split("\n")
    parts = lines[0].rstrip("\r").split(" ")
    if len(parts) != 3:
        return HTTPError(HTTPStatus.BAD_REQUEST, "malformed request line")
    method, _, version = parts
    if not _TOKEN.fullmatch(method):
        return HTTPError(HTTPStatus.BAD_REQUEST, "malformed method")
    if not _VERSION.fullmatch(version):
        return HTTPError(HTTPStatus.BAD_REQUEST, "malformed HTTP version")
    for raw in lines[1:]:
        line = raw.rstrip("\r")
        if line and line[0] in " \t":
            return HTTPError(HTTPStatus.BAD_REQUEST, "obsolete line folding")
    return HTTPError(HTTPStatus.BAD_REQUEST, "malformed request target or header line")


def _path(target: str) -> str:
    if target.startswith("/"):
        path = target.partition("?")[0]
    elif target == "*":
        return target
    elif target[:7].lower() == "http://" or target[:8].lower() == "https://":
        path = urlsplit(target).path or "/"  # absolute form, as sent to a proxy
    else:
        raise HTTPError(HTTPStatus.BAD_REQUEST, "malformed request target")
    return unquote(path) if "%" in path else path


_second = 0
_heads: dict[tuple[HTTPStatus, int, bool, tuple[tuple[str, str], ...]], bytes] = {}


def response(
    status: HTTPStatus,
    body: bytes,
    *,
    keep_alive: bool,
    send_body: bool = True,
    headers: tuple[tuple[str, str], ...] = (),
) -> bytes:
    """A complete JSON response; ``send_body=False`` (HEAD) keeps the headers, Content-Length included.

    A head is built once per second for each status, length and connection (its Date changes each second).
    """
    global _second, _heads
    now = int(time.time())
    if now != _second:
        _second, _heads = now, {}
    key = (status, len(body), keep_alive, headers)
    head = _heads.get(key)
    if head is None:
        lines = [
            f"HTTP/1.1 {status.value} {status.phrase}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            "Cache-Control: no-store",
            f"Date: {formatdate(now, usegmt=True)}",
            *(f"{name}: {value}" for name, value in headers),
            "Connection: keep-alive" if keep_alive else "Connection: close",
            "",
            "",
        ]
        head = _heads[key] = "\r\n".join(lines).encode("latin-1")
    return head + body if send_body else head

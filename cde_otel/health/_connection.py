"""One client connection of the health server, driven by its event loop: read, parse, answer, write, close.

Non-blocking socket calls straight on the loop's selector (no transport, no task per connection).
What arrives is fed to a :class:`~cde_otel.health._http.RequestReader`; its requests are answered
one at a time, in order, by the :class:`ConnectionOwner` (the server). While an answer is being
computed by a worker or waits for a slow reader to take it, the connection stops reading, so
pipelined requests wait in the kernel. A refused request is answered, then the connection
half-closes and drops what the client still sends until it closes (or the read timeout), so that
the client reads the refusal instead of a reset.

``head_started`` is when the first byte of a request not yet complete arrived (None between
requests): the server closes a connection whose request is not complete within its head deadline,
however the bytes trickle in (each byte refreshes ``last_active``, the idle clock, but not this one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from http import HTTPStatus
from typing import Protocol

from cde_otel.health._http import HTTPError, KnownReads, Request, RequestReader, ResponseHeads, error_body

_log = logging.getLogger("cde_otel.health")

RECV_BYTES = 16 * 1024


class ConnectionOwner(Protocol):
    """What a connection needs from its server."""

    heads: ResponseHeads  # the server's cache of response heads
    known_reads: KnownReads  # the server's reads known to be one whole request

    @property
    def stopping(self) -> bool: ...

    def dispatch(self, conn: Connection, request: Request) -> None:
        """Answers ``request``: now through :meth:`Connection.reply`, or later through :meth:`Connection.answered`."""

    def forget(self, conn: Connection) -> None:
        """``conn`` is closed."""


class Connection:
    """A client connection; every method runs on the loop's thread."""

    __slots__ = (
        "_loop",
        "_owner",
        "busy",
        "close_after",
        "closed",
        "draining",
        "fd",
        "head_started",
        "last_active",
        "output",
        "reader",
        "reading",
        "sock",
        "writing",
    )

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop, owner: ConnectionOwner) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self._loop = loop
        self._owner = owner
        self.last_active = time.monotonic()
        self.head_started: float | None = None
        self.reader = RequestReader(owner.known_reads)
        self.output = b""  # answer not yet sent
        self.busy = False  # a worker is answering its request
        self.reading = False  # registered with the loop for reading
        self.writing = False
        self.close_after = False  # close once the output is sent
        self.draining = False  # answered and half-closed: input is dropped until the client closes
        self.closed = False

    @property
    def idle(self) -> bool:
        """Open, and ready to take its next request: nothing being answered, nothing left to send."""
        return not (self.busy or self.output or self.closed or self.draining)

    # -- reading -------------------------------------------------------------------------
    def want_read(self) -> None:
        if not self.reading and not self.closed:
            self._loop.add_reader(self.fd, self.read)
            self.reading = True

    def stop_reading(self) -> None:
        if self.reading:
            self._loop.remove_reader(self.fd)
            self.reading = False

    def read(self) -> None:
        try:
            data = self.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            self.want_read()
            return
        except OSError:
            self.close()
            return
        if not data:
            self.close()  # the client closed (or half-closed: it expects no answer it has not asked for)
            return
        if self.draining:
            return  # dropped; the read timeout still counts from the refusal
        self.last_active = now = time.monotonic()
        try:
            self.reader.feed(data)
        except Exception:  # a bug here must cost one connection, never the loop
            _log.exception("health server: failed to handle a request")
            self.close()
            return
        if self.reader.requests:
            self.head_started = None  # a request is complete: the next one's deadline starts with its first byte
        elif self.head_started is None:
            self.head_started = now
        self.process()

    def process(self) -> None:
        """Answers the requests read so far, one at a time, in order; then reads more, or waits for an answer."""
        try:
            requests = self.reader.requests
            while self.idle and requests:
                request = requests.popleft()
                if isinstance(request, HTTPError):
                    self._refuse(request)
                    return
                self._owner.dispatch(self, request)  # not idle after it: a worker or the writer carries on
                if self.idle and (self.close_after or self._owner.stopping):
                    self.close()
                    return
            if self.idle:
                self.want_read()
        except Exception:  # a bug here must cost one connection, never the loop
            _log.exception("health server: failed to handle a request")
            self.close()

    # -- answering -----------------------------------------------------------------------
    def reply(
        self,
        status: HTTPStatus,
        body: bytes,
        keep_alive: bool,
        *,
        send_body: bool = True,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """Sends an answer: what the socket takes now, the rest when it is writable (the caller carries on)."""
        self.close_after = not keep_alive
        self.output = self._owner.heads.response(
            status, body, keep_alive=keep_alive, send_body=send_body, headers=headers
        )
        self._flush()

    def answered(self, status: HTTPStatus, body: bytes, keep_alive: bool, send_body: bool) -> None:
        """The answer a worker computed, back on the loop."""
        self.busy = False
        if self.closed:
            return
        keep_alive = keep_alive and not self._owner.stopping  # stopping since: say so, and close after it
        self.reply(status, body, keep_alive, send_body=send_body)
        if not (self.output or self.closed):
            self._after_answer()

    def _refuse(self, error: HTTPError) -> None:
        """Answers a request that cannot be read, then half-closes: what the client sent after it is dropped."""
        self.stop_reading()
        self.draining = True
        self.reply(error.status, error_body(error.message), keep_alive=False)
        if not (self.output or self.closed):
            self._after_answer()

    def _flush(self) -> None:
        try:
            sent = self.sock.send(self.output)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self.close()
            return
        if sent:
            self.last_active = time.monotonic()
        self.output = self.output[sent:]
        if self.output:
            if not self.writing:  # the client reads slowly: wait until its socket takes more
                self.stop_reading()
                self._loop.add_writer(self.fd, self.writable)
                self.writing = True
            return
        if self.writing:
            self._loop.remove_writer(self.fd)
            self.writing = False

    def writable(self) -> None:
        self._flush()
        if not (self.output or self.closed):
            self._after_answer()

    def _after_answer(self) -> None:
        """Once an answer is out (never from inside :meth:`process`, which loops instead)."""
        if self.draining:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)  # the answer is out; a reset now could discard it
            self.want_read()  # until the client closes, or the read timeout
        elif self.close_after or self._owner.stopping:
            self.close()
        else:
            self.process()  # the next pipelined request, or wait for one

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.stop_reading()
        if self.writing:
            self._loop.remove_writer(self.fd)
            self.writing = False
        self.sock.close()
        self.reader.close()
        self._owner.forget(self)

"""Where operation lines go: the sinks, and the outputs a standalone instrumentor's lines follow.

A :class:`~cde_otel.logging.OperationEvents` made by a standalone instrumentor (no
``configure()``) has no reference to any logging set-up: it *follows* the current one, whose
file and console (``attach_logging``'s, or the deprecated ``setup_logging``'s) are registered
in :data:`FOLLOWED`, and written to from then on.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, TextIO

if TYPE_CHECKING:
    from cde_otel.logging._operations import OperationEvents

OPERATIONS_LOGGER = "cde_otel.operations"


class LineSink(Protocol):
    """Where a batch of complete JSON lines goes."""

    def write_lines(self, data: str) -> None: ...


class StreamSink:
    """A text stream (the opt-in console: ``sys.stderr``): one ``write()`` and a flush per batch."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write_lines(self, data: str) -> None:
        self.stream.write(data)
        self.stream.flush()


class _PreRendered(logging.Formatter):
    """The handler's own formatter, except for a batch of operation lines: those are written as they are."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "cde_otel_lines", False):
            return str(record.msg)
        return self.inner.format(record) if self.inner is not None else super().format(record)


class HandlerSink:
    """A logging handler (the rotating log file): one ``handle()`` per batch, so its inter-process
    lock and rollover check run once per batch, not once per line. A rolled file may therefore
    exceed ``CDE_OTEL_LOG_MAX_BYTES`` by one batch (at most 64 KiB)."""

    def __init__(self, handler: logging.Handler) -> None:
        self.handler = handler
        if not isinstance(handler.formatter, _PreRendered):
            handler.setFormatter(_PreRendered(handler.formatter))

    def write_lines(self, data: str) -> None:
        record = logging.LogRecord(OPERATIONS_LOGGER, logging.INFO, __file__, 0, data.removesuffix("\n"), None, None)
        record.cde_otel_lines = True
        self.handler.handle(record)


class FollowedOutputs:
    """The current set-up's outputs and level, and the live writers (the followers among them use them).

    One per process (:data:`FOLLOWED`), the only logging state outside an attachment: a standalone
    instrumentor's writer is made with no reference to any set-up, so the two meet here. Undoing
    the set-up (``detach()``, ``reset_logging()``) empties the outputs again.
    """

    def __init__(self) -> None:
        self.sinks: tuple[LineSink, ...] = ()
        self.level = logging.INFO
        self.writers: weakref.WeakSet[OperationEvents] = weakref.WeakSet()

    def follow(self, sinks: Sequence[LineSink], level: int = logging.INFO) -> None:
        """Makes ``sinks`` the outputs of every writer that follows the set-up, now and later; ``()``
        when the set-up is undone. Pending lines go to the outputs they were taken for first."""
        followers = [writer for writer in list(self.writers) if writer.follows_setup]
        for writer in followers:
            writer.flush()
        self.sinks, self.level = tuple(sinks), level
        for writer in followers:
            writer._use(self.sinks, level)

    def stop_following(self, sinks: Sequence[LineSink]) -> None:
        """Undoes ``follow(sinks)``, unless another set-up has replaced those sinks since."""
        if sinks and self.sinks == tuple(sinks):
            self.follow(())


FOLLOWED = FollowedOutputs()


def follow_setup(sinks: Sequence[LineSink], level: int = logging.INFO) -> None:
    """:meth:`FollowedOutputs.follow` on :data:`FOLLOWED`."""
    FOLLOWED.follow(sinks, level)


def stop_following(sinks: Sequence[LineSink]) -> None:
    """:meth:`FollowedOutputs.stop_following` on :data:`FOLLOWED`."""
    FOLLOWED.stop_following(sinks)

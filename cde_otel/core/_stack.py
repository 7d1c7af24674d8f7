"""Recursive work (JSON encoding and parsing) that must not depend on the caller's stack depth.

``json`` recurses once per nesting level and shares the interpreter's recursion limit with
the caller's frames, so the same document parses from a shallow stack and overflows from a
deep one. :func:`on_fresh_stack` retries an overflowing call on a new thread, whose stack
starts empty: the outcome then depends on the document alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def on_fresh_stack(call: Callable[[], T]) -> T:
    """``call()``; if it raises ``RecursionError``, ``call()`` again on a new thread (``call`` must be pure)."""
    try:
        return call()
    except RecursionError:
        pass
    outcome: list[tuple[bool, object]] = []

    def run() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as exc:  # handed back to the caller's thread below
            outcome.append((False, exc))

    worker = threading.Thread(target=run, name="cde-otel-fresh-stack", daemon=True)
    worker.start()
    worker.join()
    succeeded, value = outcome[0]
    if succeeded:
        return value  # type: ignore[return-value]
    assert isinstance(value, BaseException)
    raise value

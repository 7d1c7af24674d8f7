"""The last operations the process ran, kept so an error can say what led to it.

A bounded, thread-safe ring: recording is an append, and errors copy it when
they are built (PROD-01.4, "user actions leading to error"). The core records its
operations here; anything else may record its own (ids only, never payloads).

Pure standard library, imports nothing of ours, so every layer can use it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

MAX_BREADCRUMBS = 20

_lock = threading.Lock()
_ring: deque[dict[str, Any]] = deque(maxlen=MAX_BREADCRUMBS)


def record(operation: str, **ids: Any) -> None:
    """Remembers that ``operation`` ran, with the ids it touched (never payloads)."""
    crumb = {"operation": operation, "at": time.time(), **ids}
    with _lock:
        _ring.append(crumb)


def recent() -> list[dict[str, Any]]:
    with _lock:
        return list(_ring)


def clear() -> None:
    with _lock:
        _ring.clear()

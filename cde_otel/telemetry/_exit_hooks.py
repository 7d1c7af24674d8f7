"""The order of exit hooks: ``weakref.finalize``'s runs after cde-otel's bounded shutdown."""

from __future__ import annotations

import weakref


class _ExitAnchor:
    """Lives as long as the module: its finalizer runs only at exit, and does nothing."""


_EXIT_ANCHOR = _ExitAnchor()


def register_finalizers_exit_hook() -> None:
    """Registers :class:`weakref.finalize`'s exit hook now. Called just before the bounded shutdown
    is registered: exit hooks run last in, first out, so the finalizers' runs after the shutdown.

    An export still in flight when the shutdown budget ends (a daemon thread) may create the
    process's first finalizer -- urllib3 makes one per connection pool. Registered that late, the
    finalizers' exit hook would never run, and the pool's finalizer would fire during interpreter
    teardown, with modules half gone: an "Exception ignored ... TypeError" on the host's stderr.
    """
    weakref.finalize(_EXIT_ANCHOR, _nothing)


def _nothing() -> None:
    return None

"""``cde.features.active`` from the state the repositories load and save, per project.

A server such as the upstream orchestrator keeps no live objects: every tool call loads the
project, changes it, saves it and drops it. So the gauge is not counted from objects in memory
but from what passes through the instrumented store methods (``Role.STORE`` targets): the
project -- or the state dict of ``FileSystemStateRepository`` -- a load returned, or a save
was given and completed. The last state seen for a project is its truth until the next load or
save of that project; a change made in memory and never saved does not count.

Projects are keyed by where their state lives (the project's ``path``, the state repository's
``state_file_path``), so a project deleted and created again at the same place replaces the
old one. Only projects with active features are remembered: the bookkeeping stays as small as
what it reports.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from cde_otel._swallowed import swallowed
from cde_otel.instrumentation._targets import Target

_log = logging.getLogger("cde_otel.instrumentation")

#: Store methods whose first argument is the state written (the others return the state read).
SAVE_METHODS = frozenset({"save", "save_state"})
_TERMINAL = frozenset({"completed", "failed"})

Wrapper = Callable[[Any, Any, Any, Any], Any]


class ActiveFeatures:
    """Active features per project, from the states the instrumented repositories load and save."""

    def __init__(self) -> None:
        self.active = True  # cleared by uninstrument(): wrappers still installed stop counting
        self._by_project: dict[str, int] = {}
        self._lock = threading.Lock()

    def total(self) -> int:
        with self._lock:
            return sum(self._by_project.values())

    def observe(
        self, target: Target, instance: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], result: Any
    ) -> None:
        """Notes the state one completed store call read or wrote."""
        if target.method in SAVE_METHODS:
            written = (value for value in (*args, *kwargs.values()) if _is_state(value))
            self._note(instance, next(written, None))
        elif isinstance(result, list | tuple):
            for project in result:
                self._note(instance, project)
        else:
            self._note(instance, result)

    def _note(self, store: Any, state: Any) -> None:
        if isinstance(state, Mapping):  # FileSystemStateRepository: {"features": {id: {"status": ...}}}
            key = getattr(store, "state_file_path", None)
            features = state.get("features")
        else:  # a Project (ours or upstream's)
            key = getattr(state, "path", None) or getattr(state, "id", None)
            features = getattr(state, "features", None)
            if features is None:
                return  # not a project (e.g. a backup listing)
        if key is None:
            return
        count = count_active(features)
        with self._lock:
            if count:
                self._by_project[str(key)] = count
            else:
                self._by_project.pop(str(key), None)

    def observing(self, target: Target, func: Callable[..., Any], inner: Wrapper) -> Wrapper:
        """A wrapt-style wrapper around ``inner`` (the operation's telemetry wrapper) that notes the
        state the call read or wrote once it returned. Its own failures are swallowed and logged."""

        def note(instance: Any, args: Any, kwargs: Any, result: Any) -> None:
            if not self.active:
                return
            try:
                self.observe(target, instance, args, kwargs, result)
            except Exception:
                swallowed("features", _log, "cde-otel: counting the features of %s failed", target.spec)

        if inspect.iscoroutinefunction(func):

            async def async_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
                result = await inner(wrapped, instance, args, kwargs)
                note(instance, args, kwargs, result)
                return result

            return async_wrapper

        def sync_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            result = inner(wrapped, instance, args, kwargs)
            note(instance, args, kwargs, result)
            return result

        return sync_wrapper


def count_active(features: Any) -> int:
    """Features that are neither completed nor failed, in a ``{id: feature}`` mapping or a list;
    features may be objects with a ``status`` or dicts with a ``"status"`` key."""
    if not features:
        return 0
    # A snapshot, taken in one C call: another thread of the application may add a feature to the
    # same project meanwhile ("dictionary changed size during iteration").
    values = tuple(features.values()) if isinstance(features, Mapping) else tuple(features)
    return sum(1 for feature in values if not _is_terminal(feature))


def _is_state(value: Any) -> bool:
    return isinstance(value, Mapping) or hasattr(value, "features")


def _is_terminal(feature: Any) -> bool:
    status = feature.get("status") if isinstance(feature, Mapping) else getattr(feature, "status", None)
    return str(getattr(status, "value", status)).lower() in _TERMINAL

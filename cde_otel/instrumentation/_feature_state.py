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

import contextlib
import inspect
import logging
import threading
import weakref
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from itertools import islice
from operator import attrgetter, methodcaller
from typing import Any

from cde_otel._swallowed import swallowed
from cde_otel.instrumentation._targets import Target

_log = logging.getLogger("cde_otel.instrumentation")

_TERMINAL = frozenset({"completed", "failed"})

Wrapper = Callable[[Any, Any, Any, Any], Any]


class _Counted:
    """The project object last counted under a key (weakly), how many features it had, how many active."""

    __slots__ = ("active", "ref", "size")

    def __init__(self, ref: weakref.ref[Any] | None, size: int, active: int) -> None:
        self.ref = ref
        self.size = size
        self.active = active


class ActiveFeatures:
    """Active features per project, from the states the instrumented repositories load and save.

    Kept incrementally: the same project object seen again (the nested loads of one call, the save
    of what was loaded) costs nothing when it only gained features (only those are read) and none
    of its features was completed or failed meanwhile (:meth:`settled`: its next count is a full
    one). A state first seen - read from disk, or a state dict - is counted in one pass.
    """

    def __init__(self) -> None:
        self.active = True  # cleared by uninstrument(): wrappers still installed stop counting
        self._by_project: dict[str, int] = {}
        self._counted: dict[str, _Counted] = {}
        self._settled: set[str] = set()  # ids of projects with a feature completed or failed since
        self._total = 0
        self._lock = threading.Lock()

    def total(self) -> int:
        return self._total

    def settled(self, feature: Any) -> None:
        """A feature of this project was completed or failed (``Target.settles``)."""
        self._settled.add(str(getattr(feature, "project_id", "")))

    def observe(
        self, target: Target, instance: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], result: Any
    ) -> None:
        """Notes the state one completed store call read or wrote."""
        if target.writes:
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
            if key is None:
                return
            self._set(str(key), count_active(state.get("features")))
            return
        features = getattr(state, "features", None)  # a Project (ours or upstream's)
        key = getattr(state, "path", None) or getattr(state, "id", None)
        if features is None or key is None:
            return  # not a project (e.g. a backup listing)
        key = str(key)
        size = len(features)
        known = self._counted.get(key)
        settled = bool(self._settled) and str(getattr(state, "id", "")) in self._settled
        if settled:
            self._settled.discard(str(state.id))
        if known is not None and not settled and known.ref is not None and known.ref() is state:
            if size == known.size:
                return  # nothing changed that could change the count
            if size > known.size and isinstance(features, Mapping | Sequence):  # only added: count those
                if isinstance(features, Mapping):
                    added: Any = tuple(islice(features.values(), known.size, None))
                else:
                    added = features[known.size :]
                count = known.active + count_active(added)
                known.size, known.active = size, count
                self._set(key, count)
                return
        count = count_active(features)
        try:
            ref: weakref.ref[Any] | None = weakref.ref(state)
        except TypeError:  # no weak references to it: counted in full every time
            ref = None
        self._counted[key] = _Counted(ref, size, count)
        self._set(key, count)

    def _set(self, key: str, count: int) -> None:
        with self._lock:
            previous = self._by_project.pop(key, 0)
            if count:
                self._by_project[key] = count
            self._total += count - previous

    def observing(self, target: Target, func: Callable[..., Any], inner: Wrapper) -> Wrapper:
        """A wrapt-style wrapper around ``inner`` (the operation's telemetry wrapper) that notes the
        state the call read or wrote (a store target), or the feature it settled, once it returned.
        Its own failures are swallowed and logged."""

        def note(instance: Any, args: Any, kwargs: Any, result: Any) -> None:
            if not self.active:
                return
            try:
                if target.settles:
                    self.settled(instance)
                else:
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


_status_attr = attrgetter("status")
_status_key = methodcaller("get", "status")


def count_active(features: Any) -> int:
    """Features that are neither completed nor failed, in a ``{id: feature}`` mapping or a list;
    features may be objects with a ``status`` or dicts with a ``"status"`` key.

    One pass in C (the statuses tallied), then one test per distinct status, not per feature."""
    if not features:
        return 0
    # A snapshot, taken in one C call: another thread of the application may add a feature to the
    # same project meanwhile ("dictionary changed size during iteration").
    values = tuple(features.values()) if isinstance(features, Mapping) else tuple(features)
    if not values:
        return 0
    try:
        tally = Counter(map(_status_key if isinstance(values[0], Mapping) else _status_attr, values))
    except (AttributeError, TypeError):  # mixed shapes, a missing attribute, an unhashable status
        return sum(1 for feature in values if not _is_terminal(_status_of(feature)))
    return sum(n for status, n in tally.items() if not _is_terminal(status))


def _is_state(value: Any) -> bool:
    return isinstance(value, Mapping) or hasattr(value, "features")


def _status_of(feature: Any) -> Any:
    return feature.get("status") if isinstance(feature, Mapping) else getattr(feature, "status", None)


def _is_terminal(status: Any) -> bool:
    try:
        return _TERMINAL_BY_STATUS[status]
    except (KeyError, TypeError):  # not seen yet, or unhashable
        terminal = str(getattr(status, "value", status)).lower() in _TERMINAL
        if len(_TERMINAL_BY_STATUS) < _MAX_STATUSES:
            with contextlib.suppress(TypeError):
                _TERMINAL_BY_STATUS[status] = terminal
        return terminal


# A workflow has a handful of statuses (enum members, strings): each is judged once, not per load
# (an enum's ``.value`` is a property, slow); bounded in case statuses are made up on the fly.
_TERMINAL_BY_STATUS: dict[Any, bool] = {}
_MAX_STATUSES = 256

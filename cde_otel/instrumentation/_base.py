"""The instrumentor base under :class:`~cde_otel.instrumentation.CDEInstrumentor` and
:class:`~cde_otel.instrumentation.mcp.MCPInstrumentor`: targets plus a hook factory.

A subclass says what to patch (``_targets``) and what to put there (``_hook``, the hook factory:
a wrapt-style wrapper for one target, or None to leave it). The base does the rest, the same way
for both: patch a target whose module is loaded, register a post-import hook for one that is not
(patched on import, even after ``instrument()``), skip what is absent or already wrapped, unwrap
everything at ``uninstrument()``.

Users' ``request_hook``/``response_hook`` (contrib style, see :class:`UserHooks`) are kept here too:
a hook that raises is swallowed and counted (``cde.instrumentation.failures``), never raised.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Protocol

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import unwrap
from opentelemetry.trace import Span

from cde_otel._swallowed import swallowed

_log = logging.getLogger("cde_otel.instrumentation")

Wrapper = Callable[[Any, Any, tuple[Any, ...], dict[str, Any]], Any]
RequestHook = Callable[..., None]
ResponseHook = Callable[..., None]


class Patchable(Protocol):
    """A place to patch: ``module`` and ``attribute`` (``Class.method`` or a module function)."""

    @property
    def module(self) -> str: ...

    @property
    def attribute(self) -> str: ...

    @property
    def spec(self) -> str: ...


class UserHooks:
    """The user's ``request_hook(span, *call)`` and ``response_hook(span, *result)`` (what each
    instrumentor passes is in its docstring); a hook that raises is swallowed and counted."""

    __slots__ = ("request", "response")

    def __init__(self, request: RequestHook | None = None, response: ResponseHook | None = None) -> None:
        self.request = request
        self.response = response

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> UserHooks | None:
        request, response = kwargs.get("request_hook"), kwargs.get("response_hook")
        return cls(request, response) if request is not None or response is not None else None

    def on_request(self, span: Span, *call: Any) -> None:
        if self.request is not None:
            try:
                self.request(span, *call)
            except Exception:
                swallowed("hook.request", _log, "cde-otel: the request_hook raised")

    def on_response(self, span: Span, *result: Any) -> None:
        if self.response is not None:
            try:
                self.response(span, *result)
            except Exception:
                swallowed("hook.response", _log, "cde-otel: the response_hook raised")


def owner_of(target: Patchable) -> tuple[Any, str]:
    """(the class or module holding the attribute, its name); (None, name) when absent."""
    module = sys.modules.get(target.module)
    *path, name = target.attribute.split(".")
    owner: Any = module
    for part in path:
        owner = getattr(owner, part, None) if owner is not None else None
    return owner, name


class HookedInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Targets + hook factory; see the module docs."""

    _patch_site: ClassVar[str] = "patch"  # where failures are counted (cde.instrumentation.failures)
    _post_import_site: ClassVar[str] = "post_import"
    # Modules with a post-import hook registered, per instrumentor class (wrapt keeps a hook until it fires).
    _hooked_modules: ClassVar[dict[type, set[str]]] = {}
    _state: Any = None  # what _setup() made (the subclass's telemetry); None when not instrumented
    _patched: list[Any]
    _pending: list[Any]

    def instrumentation_dependencies(self) -> Iterable[str]:
        return ()  # nothing required: each target is patched if and when its module is imported

    # -- for subclasses ---------------------------------------------------------------
    def _setup(self, kwargs: dict[str, Any]) -> Any:
        """Builds what the hooks share (tracer, instruments, policies); kept as ``self._state``."""
        raise NotImplementedError

    def _targets(self, kwargs: dict[str, Any]) -> Iterable[Patchable]:
        raise NotImplementedError

    def _hook(self, target: Any, current: Any) -> Wrapper | None:
        """The hook factory: the wrapper for ``target`` (currently ``current``), None to skip it."""
        raise NotImplementedError

    def _teardown(self, state: Any) -> None:
        """Disarms what ``_setup`` made: wrappers a post-import hook installs later stay inert."""
        state.active = False

    def _patch_now(self, target: Any) -> bool:
        return target.module in sys.modules

    # -- the common part --------------------------------------------------------------
    def _instrument(self, **kwargs: Any) -> None:
        self._patched, self._pending = [], []
        self._state = self._setup(kwargs)
        for target in self._targets(kwargs):
            if self._patch_now(target):
                self._patch(target)
            else:
                self._defer(target)

    def _uninstrument(self, **kwargs: Any) -> None:
        if self._state is not None:
            self._teardown(self._state)
        for target in self._patched:
            owner, name = owner_of(target)
            if owner is not None:
                unwrap(owner, name)
        self._patched, self._pending = [], []
        self._state = None

    def _defer(self, target: Any) -> None:
        """Patched when its module is imported (telemetry may start before the host's imports)."""
        self._pending.append(target)
        hooked = HookedInstrumentor._hooked_modules.setdefault(type(self), set())
        if target.module not in hooked:
            hooked.add(target.module)
            wrapt.register_post_import_hook(_on_import(type(self)), target.module)

    def _patch(self, target: Any) -> None:
        if self._state is None or target in self._patched:
            return
        try:
            owner, name = owner_of(target)
            current = getattr(owner, name, None) if owner is not None else None
            if isinstance(current, wrapt.ObjectProxy):
                return  # already wrapped by an earlier instrumentor
            wrapper = self._hook(target, current)  # called for an absent one too: it may say why
            if wrapper is None or current is None:
                return  # not in this version of the library, or refused by the subclass
            wrapt.wrap_function_wrapper(target.module, target.attribute, wrapper)
            self._patched.append(target)
        except Exception as exc:
            self._patch_failed(target, exc)

    def _patch_failed(self, target: Any, exc: Exception) -> None:
        swallowed(self._patch_site, _log, "cde-otel: instrumenting %s failed; skipped", target.spec)

    def _on_module_imported(self, name: str) -> None:
        if self._state is None:  # not instrumented (the base class's flag is set only after _instrument)
            return
        for target in [t for t in self._pending if t.module == name]:
            self._pending.remove(target)
            self._patch(target)

    @property
    def patched_targets(self) -> list[Any]:
        return list(getattr(self, "_patched", []))

    @property
    def is_active(self) -> bool:
        """Instrumented, or being instrumented right now (``instrument()`` is running)."""
        return self._state is not None


def _on_import(cls: type[HookedInstrumentor]) -> Callable[[Any], None]:
    def on_import(module: Any) -> None:
        HookedInstrumentor._hooked_modules.get(cls, set()).discard(module.__name__)  # wrapt forgot it: so do we
        try:
            cls()._on_module_imported(module.__name__)
        except Exception:
            swallowed(cls._post_import_site, _log, "cde-otel: post-import patching of %s failed", module.__name__)

    return on_import

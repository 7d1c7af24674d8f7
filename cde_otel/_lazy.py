"""Lazy re-exports for a package's ``__init__``: names are imported on first access (PEP 562).

    __getattr__, __dir__ = lazy_exports(__name__, {"HealthMonitor": "cde_otel.health._monitor"}, __all__)

Keeps ``import cde_otel`` (and ``cde_otel.health``) cheap; type checkers see the real names
through ``if TYPE_CHECKING:`` imports beside the call. Pure standard library.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str], public: Sequence[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``: each name in ``exports`` comes from its module."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return list(public)

    return __getattr__, __dir__

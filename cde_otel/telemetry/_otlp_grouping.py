"""What both of cde-otel's OTLP encodings (JSON lines, protobuf) share: a batch grouped by
resource, then by scope, as the stock encoder groups it - equal ones together, first seen first -
and each resource's and scope's encoding kept, since they do not change during a process's life.

Objects are looked up by identity: hashing a ``Resource`` serialises its attributes, so the stock
encoder's dictionary keyed by resource costs more than the rest of a span. An object seen for the
first time is compared with the ones kept, so equal resources held by different objects still
share one group.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

Encoded = TypeVar("Encoded")
Item = TypeVar("Item")


class Canonical(Generic[Encoded]):
    """Per object: the first-seen object equal to it, and that one's encoding (at most ``limit`` kept)."""

    def __init__(self, encode: Callable[[Any], Encoded], limit: int) -> None:
        self._encode = encode
        self._limit = limit
        # Keyed by id(); the object is kept alive in its entry, so the id stays its own.
        self._known: dict[int, tuple[Any, Any, Encoded]] = {}

    def __call__(self, obj: Any) -> tuple[Any, Encoded]:
        known = self._known.get(id(obj))
        if known is None or known[0] is not obj:
            equal = next((entry for entry in self._known.values() if entry[1] == obj), None)
            if len(self._known) >= self._limit:  # a process has a few; never grow without bound
                self._known.clear()
            known = (obj, obj, self._encode(obj)) if equal is None else (obj, equal[1], equal[2])
            self._known[id(obj)] = known
        return known[1], known[2]


Scoped = tuple[Any, Encoded, list[Item]]  # (scope, its encoding, items)


def grouped(
    items: Iterable[Item], resources: Canonical[Encoded], scopes: Canonical[Encoded]
) -> list[tuple[Any, Encoded, list[Scoped[Encoded, Item]]]]:
    """``[(resource, its encoding, [(scope, its encoding, [item, ...]), ...]), ...]``, first seen first."""
    by_resource: dict[int, tuple[Any, Encoded, dict[int, Scoped[Encoded, Item]]]] = {}
    for item in items:
        resource, resource_encoded = resources(item.resource)  # type: ignore[attr-defined]
        entry = by_resource.get(id(resource))
        if entry is None:
            entry = by_resource[id(resource)] = (resource, resource_encoded, {})
        scope, scope_encoded = scopes(item.instrumentation_scope or None)  # type: ignore[attr-defined]
        scoped = entry[2].get(id(scope))
        if scoped is None:
            scoped = entry[2][id(scope)] = (scope, scope_encoded, [])
        scoped[2].append(item)
    return [(resource, encoded, list(by_scope.values())) for resource, encoded, by_scope in by_resource.values()]

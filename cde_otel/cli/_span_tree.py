"""Spans drawn as a tree with durations and key attributes: one drawing for ``demo`` and ``traces show``.

    tree = Tree("title"); add_span_tree(tree, spans)    # rich rendering
    span_tree_dicts(spans)                               # the same tree as nested dicts (--json)

Children are ordered by start time; a span whose parent is not among ``spans`` is a root.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from rich.markup import escape
from rich.tree import Tree

from cde_otel.cli._spans import SpanRecord
from cde_otel.semconv import ATTR_FEATURE_NEXT_PHASE, ATTR_FEATURE_PHASE


def _children(spans: Sequence[SpanRecord]) -> dict[str | None, list[SpanRecord]]:
    ids = {span.span_id for span in spans}
    children: dict[str | None, list[SpanRecord]] = defaultdict(list)
    for span in sorted(spans, key=lambda s: (s.start_ns, s.span_id)):
        children[span.parent_id if span.parent_id in ids else None].append(span)
    return children


def span_label(span: SpanRecord) -> str:
    """Name, duration and the attributes worth a glance: a phase transition, the error code."""
    label = f"{escape(span.name)} [dim]{span.duration_ms:.2f} ms[/]"
    if ATTR_FEATURE_NEXT_PHASE in span.attributes:
        phase, next_phase = span.attributes.get(ATTR_FEATURE_PHASE), span.attributes[ATTR_FEATURE_NEXT_PHASE]
        label += f" {escape(str(phase))} → {escape(str(next_phase))}"
    code = span.error_code
    if code is not None:
        label += f" [red]{escape(code)}[/]"
    elif span.status == "error":
        label += " [red]ERROR[/]"
    return label


def add_span_tree(node: Tree, spans: Sequence[SpanRecord]) -> Tree:
    """Adds every span below ``node`` (roots first, each followed by its subtree); returns ``node``."""
    children = _children(spans)
    seen: set[str] = set()

    def add(parent: Tree, parent_id: str | None) -> None:
        for span in children.get(parent_id, ()):
            if span.span_id in seen:  # a duplicated span id (an export sent twice) must not loop
                continue
            seen.add(span.span_id)
            add(parent.add(span_label(span)), span.span_id)

    add(node, None)
    return node


def span_tree_dicts(spans: Sequence[SpanRecord]) -> list[dict[str, Any]]:
    """The tree as nested dicts: each span's fields plus ``children``."""
    children = _children(spans)
    seen: set[str] = set()

    def build(parent_id: str | None) -> list[dict[str, Any]]:
        nodes = []
        for span in children.get(parent_id, ()):
            if span.span_id in seen:
                continue
            seen.add(span.span_id)
            nodes.append({**span.as_dict(), "children": build(span.span_id)})
        return nodes

    return build(None)

"""The command line of a benchmark module: ``python bench/bench_x.py [--quick]`` prints its JSON result."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any


def print_measurement(
    measure: Callable[..., dict[str, Any]], doc: str | None, argv: list[str] | None = None
) -> dict[str, Any]:
    """Parses ``--quick``, runs ``measure(quick=...)`` and writes its result as indented JSON; returns it."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    result = measure(quick=args.quick)
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return result

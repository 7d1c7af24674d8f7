"""Locates promtool (Debian's ``prometheus`` package, or ``CDE_OTEL_PROMTOOL_BIN``) for the rule tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "collector-config" / "rules"


def promtool() -> str:
    found = os.environ.get("CDE_OTEL_PROMTOOL_BIN") or shutil.which("promtool")
    assert found, (
        "promtool is required (apt-get install --no-install-recommends prometheus, "
        "or scripts/install-backends.sh; or set CDE_OTEL_PROMTOOL_BIN)"
    )
    return found


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=60, check=False)

"""``cde-otel demo`` as the end-to-end tests run it: a subprocess with none of this shell's telemetry settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_demo(cwd: Path, features: int, **env: str) -> subprocess.CompletedProcess[str]:
    """Runs ``cde-otel demo --features N`` in ``cwd`` with no ``OTEL_*``/``CDE_OTEL_*`` variable but ``env``.

    Asserts that it exited 0 (the end of its stderr otherwise); returns it with stdout and stderr as text.
    """
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CDE_OTEL_"))}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("cde-otel")), "demo", "--features", str(features)],
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done

"""One runtime object: what configure() made, returned by it and torn down by shutdown()."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import weakref
from collections.abc import Callable
from pathlib import Path

import cde_otel.telemetry as telemetry

EnvFactory = Callable[..., dict[str, str]]

SCRIPT = textwrap.dedent(
    """
    import json, threading
    from concurrent import futures
    import cde_otel
    from cde_otel.telemetry import Runtime, current_runtime, is_configured

    def wrapped():
        return {"start": hasattr(threading.Thread.start, "__wrapped__"),
                "submit": hasattr(futures.ThreadPoolExecutor.submit, "__wrapped__")}

    before = wrapped()
    runtime = cde_otel.configure()
    again = cde_otel.configure()
    during = {
        "runtime": isinstance(runtime, Runtime), "same": again is runtime, "current": current_runtime() is runtime,
        "instrumented": sorted(type(i).__name__ for i in runtime.instrumented),
        "attached": runtime.attached is not None, "hooks": wrapped(), "configured": is_configured(),
        "local_dir": str(runtime.local_dir),
    }
    report = cde_otel.shutdown()
    after = {"hooks": wrapped(), "instrumented": len(runtime.instrumented), "attached": runtime.attached is not None,
             "current": current_runtime() is None, "report": report is not None}
    second = cde_otel.configure()
    after["second_is_new"] = second is not runtime and isinstance(second, Runtime)
    cde_otel.shutdown()
    print(json.dumps({"before": before, "during": during, "after": after}))
    """
)


def test_configure_returns_the_runtime_and_shutdown_undoes_exactly_it(tmp_path: Path, clean_env: EnvFactory) -> None:
    env = clean_env(CDE_OTEL_LOCAL_DIR=str(tmp_path / "local"), CDE_OTEL_STARTUP_LINE="false")
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["before"] == {"start": False, "submit": False}
    during = found["during"]
    assert during["runtime"] and during["same"] and during["current"] and during["configured"]
    assert during["instrumented"] == ["CDEInstrumentor", "MCPInstrumentor", "ThreadContextInstrumentor"]
    assert during["attached"]
    assert during["hooks"] == {"start": True, "submit": True}
    assert during["local_dir"] == str(tmp_path / "local")
    after = found["after"]
    assert after == {
        "hooks": {"start": False, "submit": False},  # the thread context hooks are gone again
        "instrumented": 0,
        "attached": False,
        "current": True,
        "report": True,
        "second_is_new": True,
    }


def test_no_module_state_beside_the_runtime_holder() -> None:
    """telemetry's only mutable module-level object is STATE (the current runtime and what outlives it)."""
    mutable = (list, dict, set, weakref.WeakSet, bool, int)
    state = {
        name
        for name, value in vars(telemetry).items()
        if not name.startswith("__") and isinstance(value, mutable) and not isinstance(value, type)
    }
    assert state == set()
    assert telemetry.current_runtime() is telemetry._runtime.STATE.current

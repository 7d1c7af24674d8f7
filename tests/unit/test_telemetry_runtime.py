"""One runtime object: what configure() made, returned by it and torn down by shutdown()."""

from __future__ import annotations

import ast
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


CYCLES = textwrap.dedent(
    """
    import json, logging, os
    import cde_otel
    from cde_otel.health import sources

    original_factory, original_call_handlers = logging.getLogRecordFactory(), logging.Logger.callHandlers
    log = logging.getLogger("host")
    log.setLevel(logging.INFO)

    def held(runtime):
        attached = runtime.attached
        return {
            "call_handlers": logging.Logger.callHandlers is attached.delivery.hook,
            "factory": logging.getLogRecordFactory() is attached.stamping.factory,
            "health": sources.TELEMETRY.current is runtime.health_source is not None,
        }

    def restored():
        return {
            "call_handlers": logging.Logger.callHandlers is original_call_handlers,
            "factory": logging.getLogRecordFactory() is original_factory,
            "health": sources.telemetry_metric_reader() is None and sources.telemetry_export_status() == "disabled",
        }

    cycles = []
    for name in ("first", "second"):
        os.environ["CDE_OTEL_LOG_FILE"] = f"{name}.log"
        runtime = cde_otel.configure()
        log.info("logged during the %s runtime", name)
        during = held(runtime)
        attached, delivery, stamping = runtime.attached, runtime.attached.delivery, runtime.attached.stamping
        cde_otel.shutdown()
        log.info("logged after the %s runtime", name)
        cycles.append({
            "during": during, "after": restored(),
            "inactive": not (delivery.active or stamping.active or delivery.handlers),
            "ids": [id(attached), id(delivery), id(stamping)], "objects": [attached, delivery, stamping],
        })
    first, second = cycles
    fresh = all(a is not b for a, b in zip(first.pop("objects"), second.pop("objects")))
    files = {name: open(f"{name}.log").read() for name in ("first", "second")}
    print(json.dumps({"cycles": cycles, "fresh": fresh, "files": files}))
    """
)


def test_two_runtimes_hold_their_own_hooks_and_leave_nothing_behind(tmp_path: Path, clean_env: EnvFactory) -> None:
    """The stdlib's record factory and ``Logger.callHandlers`` are the runtime's attachment's while it
    runs, and the originals after ``shutdown()``; a second ``configure()`` makes fresh ones, and
    neither runtime sees the other's records or health source."""
    env = clean_env(CDE_OTEL_LOCAL_DIR=str(tmp_path / "local"), CDE_OTEL_STARTUP_LINE="false")
    done = subprocess.run(
        [sys.executable, "-c", CYCLES], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    for cycle in found["cycles"]:
        assert cycle["during"] == {"call_handlers": True, "factory": True, "health": True}
        assert cycle["after"] == {"call_handlers": True, "factory": True, "health": True}
        assert cycle["inactive"]
    assert found["fresh"]
    first, second = found["files"]["first"], found["files"]["second"]
    assert "logged during the first runtime" in first and "logged during the second runtime" in second
    assert "after the" not in first + second  # nothing delivered once a runtime is shut down
    assert "second runtime" not in first and "first runtime" not in second


def test_no_global_statement_in_the_package() -> None:
    """Process-wide state is held by objects (the runtime, its attachment, the few explicit
    process-wide holders), never rebound through ``global``."""
    package = Path(telemetry.__file__).resolve().parent.parent
    found = [
        f"{path.relative_to(package)}:{node.lineno}"
        for path in sorted(package.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Global)
    ]
    assert found == []

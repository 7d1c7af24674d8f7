"""No thread is started under a lock of ours: a target inside ``Thread.start`` cannot deadlock the host.

``Thread.start()`` waits for the new thread to signal that it runs (``Event.set`` →
``Condition.notify``). With ``threading:Condition.notify`` as a target, that signal is an
operation of its own, reported by the new thread; had the operation-line writer started its
flusher while holding its lock, the new thread would wait for the lock and the starter for the
new thread: the host hung for ever. Each case runs in a child process with a deadline.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

EnvFactory = Callable[..., dict[str, str]]
DEADLINE_S = 60  # generous: the child needs ~2 s; a deadlock never ends

HOST = textwrap.dedent(
    """
    import threading
    from cde_otel.core import Project  # telemetry starts here

    project = Project(name="threads", path="/nonexistent/threads")
    project.activate()  # the first operation line: the flusher thread starts
    done = threading.Event()
    worker = threading.Thread(target=done.set)
    worker.start()
    worker.join()
    assert done.is_set()
    print("done")
    """
)


def _run(tmp_path: Path, env: dict[str, str], source: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", source],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,  # raises TimeoutExpired (the test fails) instead of hanging the suite
        check=False,
    )


def test_condition_notify_as_a_target_with_a_log_file_does_not_hang(tmp_path: Path, clean_env: EnvFactory) -> None:
    log_file = tmp_path / "cde.log"
    env = clean_env(
        CDE_OTEL_ENABLED="true",
        CDE_OTEL_LOCAL_DIR=str(tmp_path / "telemetry"),
        CDE_OTEL_TARGETS="threading:Condition.notify",
        CDE_OTEL_LOG_FILE=str(log_file),
        CDE_OTEL_STARTUP_LINE="false",
    )
    result = _run(tmp_path, env, HOST)
    assert result.returncode == 0 and result.stdout.strip() == "done", result.stderr[-2000:]
    operations = log_file.read_text()
    assert "Project.activate succeeded" in operations
    assert "Condition.notify succeeded" in operations  # the target was recorded, not skipped


def test_condition_notify_with_the_console_does_not_hang(tmp_path: Path, clean_env: EnvFactory) -> None:
    env = clean_env(
        CDE_OTEL_ENABLED="true",
        CDE_OTEL_LOCAL_DIR=str(tmp_path / "telemetry"),
        CDE_OTEL_TARGETS="threading:Condition.notify,threading:Thread.start",
        CDE_OTEL_LOG_CONSOLE="true",
        CDE_OTEL_LOG_LEVEL="debug",
        CDE_OTEL_STARTUP_LINE="false",
    )
    result = _run(tmp_path, env, HOST)
    assert result.returncode == 0 and result.stdout.strip() == "done", result.stderr[-2000:]
    assert "Thread.start succeeded" in result.stderr

"""ErrorFormatter: the text, ASCII and JSON forms users and tool clients see (PROD-04)."""

from __future__ import annotations

import errno
import io
import json
from collections.abc import Callable
from pathlib import Path

import filelock
import pytest

from cde_otel.core import FileSystemProjectRepository, Project, ProjectStatus
from cde_otel.core import state as core_state
from cde_otel.core import state as state_codec
from cde_otel.core.state import LOCK_FILE, state_paths
from cde_otel.errors import CATALOG, ERROR_CODES, CDEError, ErrorFormatter, FeatureError, error_for
from cde_otel.errors.formatter import as_cde_error, interpolate, placeholder_text, prefers_ascii
from cde_otel.settings import load_settings
from cde_otel.testing import simulate_storage_error

_TRACEBACK_MARKERS = ("Traceback", 'File "')


def _raised(action: Callable[[], object]) -> CDEError:
    try:
        action()
    except CDEError as error:
        return error
    raise AssertionError("expected a CDEError")


def _active_feature(tmp_path: Path) -> tuple[Project, object]:
    project = FileSystemProjectRepository().get_or_create(tmp_path)
    project.activate()
    return project, project.start_feature("Add a login page")


def test_error_formatting_includes_suggestions(tmp_path: Path) -> None:
    project = FileSystemProjectRepository().get_or_create(tmp_path)  # ONBOARDING: not active yet
    try:
        project.start_feature("Add a login page")
    except FeatureError as e:
        message = ErrorFormatter.format(e, ascii=False)
        assert "💡 Suggestions:" in message
        assert "📖 More info:" in message
        assert e.code in message
        assert "project.activate()" in message
        lines = message.splitlines()
        assert lines[0] == f"❌ Feature Creation Failed [{e.code}]"
        bullets = [line for line in lines if line.startswith("  • ")]
        assert len(bullets) == len(CATALOG[e.code].suggestions)
        assert lines[-1] == "📖 More info: docs/errors/catalog.md#e101"
    else:
        raise AssertionError("start_feature on a non-active project must raise FeatureError")


def test_context_interpolation_works(tmp_path: Path) -> None:
    project = FileSystemProjectRepository().get_or_create(tmp_path)
    error = _raised(lambda: project.start_feature("x"))
    text = ErrorFormatter.format(error, ascii=True)
    assert f"Cannot start a feature while project {project.id} is onboarding." in text

    error = _raised(project.archive)  # onboarding -> archived is not allowed
    assert "from onboarding it can move to: active, error." in ErrorFormatter.format(error, ascii=True)

    spaced = tmp_path / "my project"
    error = _raised(lambda: FileSystemProjectRepository().get_or_create(spaced))
    text = ErrorFormatter.format(error, ascii=True)
    assert f"The project path '{spaced}' does not exist" in text
    assert f"mkdir -p '{spaced}'" in text  # commands users copy are shell-quoted


def test_missing_context_keys_never_crash() -> None:
    bare = error_for("E102")  # no context at all
    text = ErrorFormatter.format(bare, ascii=True)
    assert "Feature <unknown feature_id> is in phase '<unknown current_phase>'" in text
    partial = error_for("E206", path="/p/.cde/state.lock")
    assert "Waited <unknown timeout_s> seconds for the state lock '/p/.cde/state.lock'" in ErrorFormatter.format(
        partial
    )
    # Format specs, conversions, attribute and index access on a missing key all degrade the same way.
    assert interpolate("{a:>10} {b!r} {c.name} {d[0]} {e!q}", {}) == (
        "<unknown a> <unknown b> <unknown c> <unknown d> <unknown e>"
    )
    assert interpolate("{broken", {"broken": 1}) == "{broken"  # a malformed template is shown as written

    class Unprintable:
        def __format__(self, spec: str) -> str:
            raise RuntimeError("cannot render")

        def __repr__(self) -> str:
            raise RuntimeError("cannot represent")

    hostile = error_for("E104", feature_id=Unprintable(), project_id="p1")
    assert "Feature Not Found [E104]" in ErrorFormatter.format(hostile, ascii=True)
    assert json.loads(json.dumps(ErrorFormatter.to_json(hostile)))["context"]["feature_id"] == "<unrepresentable>"


def test_placeholder_text_shows_keys_in_capitals() -> None:
    assert placeholder_text("mkdir -p {path!q} for {project_id}; {{literal}}") == (
        "mkdir -p PATH for PROJECT_ID; {literal}"
    )


def test_ascii_form_is_pure_ascii_for_every_code() -> None:
    for code in ERROR_CODES:
        text = ErrorFormatter.format(error_for(code), ascii=True)
        assert text.isascii(), f"{code}: {text!r}"
        lines = text.splitlines()
        assert lines[0].startswith(f"{ERROR_CODES[code].severity.value}: ") and lines[0].endswith(f"[{code}]")
        assert "Suggestions:" in lines and lines[-1] == f"More info: docs/errors/catalog.md#{code.lower()}"


def test_ascii_chosen_automatically(monkeypatch: pytest.MonkeyPatch) -> None:
    error = error_for("E101", project_id="p1", status="archived")
    utf8 = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    latin1 = io.TextIOWrapper(io.BytesIO(), encoding="latin-1")
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert ErrorFormatter.format(error, stream=utf8).startswith("❌ ")
    assert ErrorFormatter.format(error, stream=latin1).startswith("ERROR: ")
    monkeypatch.setenv("NO_COLOR", "1")
    assert ErrorFormatter.format(error, stream=utf8).startswith("ERROR: ")
    assert prefers_ascii(utf8, environ={}) is False
    assert prefers_ascii(utf8, environ={"NO_COLOR": "1"}) is True
    assert prefers_ascii(io.StringIO(), environ={}) is True  # no declared encoding: play safe


def test_json_form_for_tool_clients(tmp_path: Path) -> None:
    project = FileSystemProjectRepository().get_or_create(tmp_path)
    project.transition_status(ProjectStatus.ERROR)
    error = _raised(lambda: project.start_feature("x"))
    data = ErrorFormatter.to_json(error)
    assert set(data) == {"code", "name", "title", "severity", "recoverable", "message", "details",
                         "suggestions", "docs", "context"}  # fmt: skip
    assert (data["code"], data["name"], data["severity"]) == ("E101", "FEATURE_PROJECT_NOT_ACTIVE", "ERROR")
    assert data["recoverable"] is False  # the instance's value: a project in ERROR cannot be activated
    assert data["message"] == f"Cannot start a feature while project {project.id} is error. The project must be ACTIVE."
    assert data["details"] == error.message
    assert "Activate the project: project.activate()" in data["suggestions"]
    assert data["docs"] == "docs/errors/catalog.md#e101"
    assert data["context"] == {"project_id": project.id, "status": "error", "path": project.path}
    encoded = ErrorFormatter.format_json(error)
    assert json.loads(encoded) == data
    for leak in ("stack", "breadcrumbs", "snapshot", *_TRACEBACK_MARKERS):
        assert leak not in encoded


def test_foreign_exceptions_become_internal_errors() -> None:
    try:
        raise KeyError("password=hunter2")
    except KeyError as exc:
        text = ErrorFormatter.format(exc, ascii=True)
        data = ErrorFormatter.to_json(exc)
        wrapped = as_cde_error(exc)
    assert text.splitlines()[0] == "CRITICAL: Internal Error [E902]"
    assert "An unexpected internal error happened (KeyError)." in text
    assert "hunter2" not in text and "hunter2" not in json.dumps(data)
    assert not any(marker in text for marker in _TRACEBACK_MARKERS)
    assert (data["code"], data["recoverable"], data["context"]) == ("E902", False, {"exception_type": "KeyError"})
    assert wrapped.to_dict()["causes"][0]["type"] == "KeyError"  # the original stays reachable for logs
    existing = error_for("E001", path="/x")
    assert as_cde_error(existing) is existing


def test_docs_url_from_argument_and_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    error = error_for("E206", path="/p", timeout_s=1.0)
    site = "https://docs.example.org/cde-otel/errors.html"
    assert ErrorFormatter.to_json(error, docs_url=site)["docs"] == f"{site}#e206"
    monkeypatch.setenv("CDE_OTEL_ERRORS_DOCS_URL", site)
    assert ErrorFormatter.format(error, ascii=True).endswith(f"More info: {site}#e206")
    # An unrelated broken setting must not break error formatting (that would hide the original error).
    monkeypatch.setenv("CDE_OTEL_HEALTH_PORT", "not-a-port")
    assert ErrorFormatter.format(error, ascii=True).endswith("More info: docs/errors/catalog.md#e206")


def _state_file_is_a_directory(tmp_path: Path) -> CDEError:
    repo = FileSystemProjectRepository()
    repo.get_or_create(tmp_path)
    _, state_file, _ = state_paths(tmp_path)
    state_file.unlink()
    state_file.mkdir()
    return _raised(lambda: FileSystemProjectRepository(recover_from_backups=False).get_by_path(tmp_path))


def _conflict(tmp_path: Path) -> CDEError:
    repo = FileSystemProjectRepository()
    first = repo.get_or_create(tmp_path)
    second = repo.get_by_path(tmp_path)
    assert second is not None
    first.activate()
    repo.save(first)
    second.activate()
    return _raised(lambda: repo.save(second))


def _lock_held(tmp_path: Path) -> CDEError:
    repo = FileSystemProjectRepository(lock_timeout=0.05)
    project = repo.get_or_create(tmp_path)
    state_dir, _, _ = state_paths(tmp_path)
    with filelock.FileLock(str(state_dir / LOCK_FILE)):
        return _raised(lambda: repo.save(project))


def _recovered(tmp_path: Path) -> CDEError:
    repo = FileSystemProjectRepository()
    project = repo.get_or_create(tmp_path)
    project.activate()
    repo.save(project)
    _, state_file, _ = state_paths(tmp_path)
    state_file.write_text("{ torn")
    assert repo.get_by_path(tmp_path) is not None
    return repo.recoveries[-1]


def _read_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CDEError:
    FileSystemProjectRepository().get_or_create(tmp_path)
    original = core_state.read_regular

    def refuse(path: Path) -> bytes:
        if path.name == "state.json":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return original(path)

    monkeypatch.setattr(core_state, "read_regular", refuse)
    return _raised(lambda: FileSystemProjectRepository().get_by_path(tmp_path))


def _breaker_open() -> CDEError:
    from cde_otel.resilience import CircuitBreaker

    breaker = CircuitBreaker(failure_threshold=1, timeout=60, name="test", register=False)

    def failing() -> None:
        raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(OSError):
        breaker.call(failing)
    return _raised(lambda: breaker.call(failing))


def _read_only(tmp_path: Path) -> CDEError:
    project, _ = _active_feature(tmp_path)
    project.read_only, project.read_only_reason = True, "the disk is full"
    return _raised(lambda: project.start_feature("x"))


def _detached(tmp_path: Path) -> CDEError:
    repo = FileSystemProjectRepository()
    project = repo.get_or_create(tmp_path)
    project.activate()
    repo.save(project)
    feature = project.start_feature("rolled back by the failing save")
    with simulate_storage_error(errno.EIO), pytest.raises(CDEError):
        repo.save(project)
    return _raised(lambda: feature.advance_phase("decompose"))


def _foreign_backup(tmp_path: Path) -> CDEError:
    repo = FileSystemProjectRepository()
    for name in ("x", "y"):
        (tmp_path / name).mkdir()
        repo.get_or_create(tmp_path / name)
    foreign = repo.list_backups(tmp_path / "y")[0]
    (tmp_path / "x" / ".cde" / "backups" / foreign.name).write_bytes(foreign.path.read_bytes())
    return _raised(lambda: repo.restore_backup(tmp_path / "x", foreign.name))


def _finished(tmp_path: Path) -> CDEError:
    _, feature = _active_feature(tmp_path)
    feature.fail("abandoned")  # type: ignore[attr-defined]
    return _raised(feature.complete)  # type: ignore[attr-defined]


_SCENARIOS: dict[str, Callable[[Path, pytest.MonkeyPatch], CDEError]] = {
    "E001": lambda t, m: _raised(lambda: FileSystemProjectRepository().get_or_create("/invalid")),
    "E002": lambda t, m: (m.setattr("os.access", lambda *a, **k: False),
                          _raised(lambda: FileSystemProjectRepository().get_or_create(t)))[1],
    "E003": lambda t, m: _raised(Project(name="p", path=str(t)).archive),
    "E101": lambda t, m: _raised(lambda: Project(name="p", path=str(t)).start_feature("x")),
    "E102": lambda t, m: _raised(lambda: _active_feature(t)[1].advance_phase("design")),  # type: ignore[attr-defined]
    "E103": lambda t, m: _finished(t),
    "E104": lambda t, m: _raised(lambda: _active_feature(t)[0].get_feature("missing")),
    "E105": lambda t, m: _raised(_active_feature(t)[1].complete),  # type: ignore[attr-defined]
    "E106": lambda t, m: _detached(t),
    "E201": lambda t, m: _state_file_is_a_directory(t),
    "E202": lambda t, m: _conflict(t),
    "E203": lambda t, m: _raised(lambda: state_codec.decode(b"{ torn", source="/p/.cde/state.json")),
    "E204": lambda t, m: _raised(lambda: state_codec.decode(b"[]", source="/p/.cde/state.json")),
    "E205": lambda t, m: _raised(lambda: state_codec.decode(b'{"schema_version": 999}', source="/p/state.json")),
    "E206": lambda t, m: _lock_held(t),
    "E207": lambda t, m: _read_only(t),
    "E208": lambda t, m: _recovered(t),
    "E209": lambda t, m: _raised(lambda: FileSystemProjectRepository().load_backup(t, "state-nope.json")),
    "E210": _read_refused,
    "E211": lambda t, m: _foreign_backup(t),
    "E301": lambda t, m: _raised(lambda: _active_feature(t)[0].start_feature("   ")),
    "E302": lambda t, m: _raised(lambda: _active_feature(t)[0].start_feature("x", name="")),
    "E303": lambda t, m: _raised(lambda: _active_feature(t)[1].advance_phase("ship")),  # type: ignore[attr-defined]
    "E304": lambda t, m: _raised(lambda: Project(name="p", path=str(t)).transition_status("bogus")),
    "E305": lambda t, m: _raised(lambda: _active_feature(t)[0].start_feature("x", workflow_type="bogus")),
    "E901": lambda t, m: _breaker_open(),
    "E903": lambda t, m: _raised(lambda: load_settings({"CDE_OTEL_HEALTH_PORT": "abc"})),
}  # fmt: skip


@pytest.mark.parametrize("code", sorted(_SCENARIOS))
def test_real_errors_fill_every_placeholder(code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each raise site supplies every key its catalog entry uses: no '<unknown ...>' for real errors."""
    error = _SCENARIOS[code](tmp_path, monkeypatch)
    assert error.code == code
    text = ErrorFormatter.format(error, ascii=True)
    assert "<unknown" not in text, text
    assert text.splitlines()[0].endswith(f"[{code}]")

"""`cde-otel state backups` and `cde-otel state restore`."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from cde_otel.cli.state import app
from cde_otel.core import FileSystemProjectRepository

runner = CliRunner()


def make_history(path: Path) -> FileSystemProjectRepository:
    repo = FileSystemProjectRepository()
    project = repo.get_or_create(path, name="first")
    project.name = "second"
    repo.save(project)
    return repo


def test_backups_lists_name_revision_size_validity(tmp_path: Path) -> None:
    repo = make_history(tmp_path)
    damaged, good = repo.list_backups(tmp_path)
    damaged.path.write_bytes(b"{}")
    result = runner.invoke(app, ["backups", str(tmp_path)], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if "state-r" in line}
    assert set(rows) == {damaged.name, good.name}
    assert "no (E209)" in rows[damaged.name]
    assert "yes" in rows[good.name]
    assert f"{good.size_bytes} B" in rows[good.name]
    assert " 1 " in rows[good.name]


def test_backups_of_missing_project_is_formatted_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["backups", str(tmp_path / "nope")], env={"NO_COLOR": "1"})
    assert result.exit_code == 1
    assert "E001" in result.output
    assert "Traceback" not in result.output


def test_restore_makes_backup_current(tmp_path: Path) -> None:
    repo = make_history(tmp_path)
    oldest = repo.list_backups(tmp_path)[-1]
    result = runner.invoke(app, ["restore", str(tmp_path), oldest.name], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "revision 3" in result.output
    loaded = FileSystemProjectRepository().get_by_path(tmp_path)
    assert loaded is not None
    assert loaded.name == "first"


def test_restore_unknown_backup_is_e209(tmp_path: Path) -> None:
    make_history(tmp_path)
    result = runner.invoke(app, ["restore", str(tmp_path), "state-r00000099-20250101T000000000000Z.json"])
    assert result.exit_code == 1
    assert "E209" in result.output
    loaded = FileSystemProjectRepository().get_by_path(tmp_path)
    assert loaded is not None
    assert loaded.name == "second"

"""An untrusted MCP client against the real `cde-otel mcp` over stdio (the official client):
project paths are confined to ``--project`` (and ``--allow-root``), read-only tools create
nothing, and huge arguments are refused with a coded error and a small answer.

Each server configuration is one session (a server start costs seconds); the tests read its
answers and the filesystem afterwards: nothing is created anywhere a refusal happened.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

EnvFactory = Callable[..., dict[str, str]]
TEN_MB = 10 * 1024 * 1024
#: An error answer quotes at most ~100 characters of the input: a few KB whatever was sent.
MAX_ERROR_ANSWER_BYTES = 8 * 1024
ESCAPES = ("../outside", "OUTSIDE", "escape", "escape/", "inner/../../outside", "~", "/")
HUGE: dict[str, tuple[str, dict[str, Any], str]] = {
    "10MB feature id": ("cde_getFeatureStatus", {"feature_id": "x" * TEN_MB}, "E005"),
    "10MB phase": ("cde_submitWork", {"feature_id": "f" * 32, "phase": "p" * TEN_MB}, "E005"),
    "10MB id on submit": ("cde_submitWork", {"feature_id": "x" * TEN_MB, "phase": "define"}, "E005"),
    "10MB path": ("cde_startFeature", {"prompt": "Add login", "project_path": "d" * TEN_MB}, "E005"),
    "NUL in path": ("cde_getFeatureStatus", {"project_path": "inner\x00/../.."}, "E006"),
    "line break in id": ("cde_getFeatureStatus", {"feature_id": "abc\n[E902] forged log line"}, "E006"),
}


def _cde_otel() -> str:
    return str(Path(sys.executable).with_name("cde-otel"))


def _tree(root: Path) -> set[str]:
    """Every path under ``root`` (the servers' stderr logs aside)."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if not p.name.endswith("stderr")}


def _answer(result: Any) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(result.content[0].text)
    return answer


def _layout(root: Path) -> dict[str, Path]:
    """``served`` (the --project, with ``inner``), ``outside`` and ``other`` beside it, ``served/escape`` -> outside."""
    paths = {name: root / name for name in ("served", "outside", "other")}
    for directory in (*paths.values(), paths["served"] / "inner"):
        directory.mkdir()
    (paths["served"] / "escape").symlink_to(paths["outside"], target_is_directory=True)
    (root / "link-to-served").symlink_to(paths["served"], target_is_directory=True)
    return {"root": root, **paths}


@pytest.fixture(scope="module")
def adversarial(
    tmp_path_factory: pytest.TempPathFactory, run_session: Callable[..., Any], clean_env: EnvFactory
) -> dict[str, Any]:
    """One `cde-otel mcp --project served` session: every escape, the read-only tool, every huge argument."""
    paths = _layout(tmp_path_factory.mktemp("confine"))
    before = _tree(paths["root"])

    async def scenario(session: Any) -> dict[str, Any]:
        escapes = []
        for given in ESCAPES:
            path = str(paths["outside"]) if given == "OUTSIDE" else given
            for tool, arguments in (
                ("cde_startFeature", {"prompt": "Add login", "project_path": path}),
                ("cde_getFeatureStatus", {"project_path": path}),
                ("cde_submitWork", {"feature_id": "f" * 32, "phase": "define", "project_path": path}),
                ("cde_getHealth", {"project_path": path}),
            ):
                escapes.append((tool, path, await session.call_tool(tool, arguments)))
        read_only = [
            await session.call_tool("cde_getFeatureStatus", {}),
            await session.call_tool("cde_getFeatureStatus", {"project_path": "inner"}),
            await session.call_tool("cde_getFeatureStatus", {"feature_id": "0" * 32}),
        ]
        huge = {name: await session.call_tool(tool, arguments) for name, (tool, arguments, _) in HUGE.items()}
        return {"escapes": escapes, "read_only": read_only, "huge": huge}

    answers = run_session(_cde_otel(), ["mcp", "--project", str(paths["served"])], clean_env(), paths["root"], scenario)
    return {
        **answers,
        "paths": paths,
        "created": _tree(paths["root"]) - before,
        "stderr": (paths["root"] / "server.stderr").read_text(),
    }


def test_paths_outside_the_project_are_refused(adversarial: dict[str, Any]) -> None:
    escapes = adversarial["escapes"]
    assert len(escapes) == 4 * len(ESCAPES)
    codes = [(tool, path, _answer(result).get("code")) for tool, path, result in escapes]
    assert codes == [(tool, path, "E004") for tool, path, _ in escapes]
    assert all(result.is_error for tool, _, result in escapes if tool != "cde_getHealth")


def test_a_refused_call_creates_nothing_anywhere(adversarial: dict[str, Any]) -> None:
    assert adversarial["created"] == set()
    assert not (adversarial["paths"]["outside"] / ".cde").exists()


def test_the_read_only_tool_never_creates_state(adversarial: dict[str, Any]) -> None:
    listing, nested, one = (_answer(result) for result in adversarial["read_only"])
    assert listing["features"] == [] and listing["project_id"] is None
    assert nested["features"] == [] and nested["project_path"] == str(adversarial["paths"]["served"] / "inner")
    assert adversarial["read_only"][2].is_error and one["code"] == "E104"
    assert not (adversarial["paths"]["served"] / ".cde").exists()
    assert not (adversarial["paths"]["served"] / "inner" / ".cde").exists()


@pytest.mark.parametrize("case", sorted(HUGE))
def test_a_huge_or_malformed_argument_gets_a_small_coded_answer(adversarial: dict[str, Any], case: str) -> None:
    result = adversarial["huge"][case]
    text = result.content[0].text
    assert result.is_error and _answer(result)["code"] == HUGE[case][2]
    assert len(text.encode()) < MAX_ERROR_ANSWER_BYTES, f"an answer of {len(text)} characters"
    assert "\n[E902]" not in text


def test_the_server_log_does_not_repeat_huge_input(adversarial: dict[str, Any]) -> None:
    assert len(adversarial["stderr"]) < 64 * 1024


def test_an_allowed_root_is_served_and_a_relative_path_starts_at_the_project(
    tmp_path: Path, run_session: Callable[..., Any], clean_env: EnvFactory
) -> None:
    """--project given through a symlink, plus --allow-root: both served, anything else refused."""
    paths = _layout(tmp_path)

    async def scenario(session: Any) -> list[Any]:
        return [
            await session.call_tool("cde_startFeature", {"prompt": "Add login", "project_path": str(paths["other"])}),
            await session.call_tool("cde_startFeature", {"prompt": "Add search", "project_path": "inner"}),
            await session.call_tool("cde_startFeature", {"prompt": "Add more", "project_path": str(paths["outside"])}),
        ]

    args = ["mcp", "--project", str(tmp_path / "link-to-served"), "--allow-root", str(paths["other"])]
    in_other, relative, outside = run_session(_cde_otel(), args, clean_env(), tmp_path, scenario)

    assert not in_other.is_error and (paths["other"] / ".cde" / "state.json").is_file()
    assert not relative.is_error and (paths["served"] / "inner" / ".cde" / "state.json").is_file()
    assert outside.is_error and _answer(outside)["code"] == "E004"
    assert not (paths["outside"] / ".cde").exists()


def test_without_project_the_working_directory_is_the_only_root(
    tmp_path: Path, run_session: Callable[..., Any], clean_env: EnvFactory
) -> None:
    paths = _layout(tmp_path)

    async def scenario(session: Any) -> list[Any]:
        return [
            await session.call_tool("cde_startFeature", {"prompt": "Add login", "project_path": "inner"}),
            await session.call_tool("cde_startFeature", {"prompt": "Add it", "project_path": str(paths["outside"])}),
        ]

    inside, outside = run_session(_cde_otel(), ["mcp"], clean_env(), paths["served"], scenario)

    assert not inside.is_error and (paths["served"] / "inner" / ".cde").is_dir()
    assert outside.is_error and _answer(outside)["code"] == "E004"
    assert not (paths["outside"] / ".cde").exists()

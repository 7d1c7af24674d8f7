"""The suite's own rules (tests/conftest.py, pyproject.toml), run on a throwaway suite through real pytest:
every skip and xfail fails, collection-time skips included, outside one explicit per-test opt-out; warnings
issued from cde_otel are errors, third-party ones are not."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CASES = {
    "test_skip.py": """
        import pytest
        def test_skipped():
            pytest.skip("not here")
        """,
    "test_skipif.py": """
        import pytest
        @pytest.mark.skipif(True, reason="never here")
        def test_skipped_by_marker():
            pass
        """,
    "test_module_skip.py": """
        import pytest
        pytest.skip("the whole module", allow_module_level=True)
        def test_never_collected():
            pass
        """,
    "test_importorskip.py": """
        import pytest
        pytest.importorskip("no_such_module_anywhere")
        def test_never_collected():
            pass
        """,
    "test_xfail.py": """
        import pytest
        @pytest.mark.xfail(reason="known bug")
        def test_xfails():
            assert False
        @pytest.mark.xfail(reason="known bug")
        def test_xpasses():
            pass
        """,
    "test_opt_out.py": """
        import pytest
        @pytest.mark.allow_skip_or_xfail(reason="needs a GPU, which CI does not have")
        def test_skipped_with_reason():
            pytest.skip("no GPU")
        @pytest.mark.allow_skip_or_xfail(reason="upstream bug 123")
        @pytest.mark.xfail(reason="upstream bug")
        def test_xfails_with_reason():
            assert False
        @pytest.mark.allow_skip_or_xfail(reason="  ")
        def test_skipped_with_blank_reason():
            pytest.skip("no reason given")
        """,
    "test_warnings.py": """
        import warnings
        def test_ours_is_an_error():
            warnings.warn_explicit("ours", DeprecationWarning, "x.py", 1, module="cde_otel.telemetry.x")
        def test_third_party_is_a_warning():
            warnings.warn_explicit("theirs", DeprecationWarning, "x.py", 1, module="opentelemetry.sdk.x")
        def test_plain_pass():
            pass
        """,
}


def test_every_skip_and_xfail_fails_except_the_explicit_opt_out(tmp_path: Path) -> None:
    for name, body in CASES.items():
        (tmp_path / name).write_text(textwrap.dedent(body))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider", "-c", str(ROOT / "pyproject.toml"),
         "--rootdir", str(tmp_path), "--continue-on-collection-errors", "-q", "-rfEsxX", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
        env={**_env(), "PYTHONPATH": str(ROOT / "tests")},
    )  # fmt: skip
    out = done.stdout
    failed = set(re.findall(r"^(?:FAILED|ERROR) (\S+?)(?: - |$)", out, re.MULTILINE))
    assert failed == {
        "test_skip.py::test_skipped",
        "test_skipif.py::test_skipped_by_marker",
        "test_module_skip.py",
        "test_importorskip.py",
        "test_xfail.py::test_xfails",
        "test_xfail.py::test_xpasses",
        "test_opt_out.py::test_skipped_with_blank_reason",
        "test_warnings.py::test_ours_is_an_error",
    }, out
    assert re.search(r"^SKIPPED .*test_opt_out.py:\d+: no GPU", out, re.MULTILINE), out
    assert re.search(r"^XFAIL test_opt_out.py::test_xfails_with_reason", out, re.MULTILINE), out
    assert "this suite fails on every skip" in out
    assert done.returncode == 1, out


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "CDE_OTEL_", "OTEL_"))}

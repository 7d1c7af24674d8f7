"""The settings table: typed fields, one parser per row for the environment and for overrides."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from cde_otel.errors import CDESystemError
from cde_otel.settings import SETTINGS, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_field_is_a_row_and_every_default_parses_as_itself() -> None:
    assert [s.name for s in SETTINGS] == [f.name for f in dataclasses.fields(Settings)]
    for row in SETTINGS:
        assert row.env == f"CDE_OTEL_{row.name.upper()}"
        assert row.parse(row.default) == row.default, row.name
    assert load_settings({}) == Settings()


def test_environment_values_are_parsed_to_their_types() -> None:
    settings = load_settings(
        {
            "CDE_OTEL_ENABLED": "yes",
            "CDE_OTEL_TARGETS": "a.b:C.d, e:F.g ,",
            "CDE_OTEL_HISTOGRAM": "Classic",
            "CDE_OTEL_HISTOGRAM_MAX_SIZE": " 160 ",
            "CDE_OTEL_ALERT_P99_S": "0.25",
        }
    )

    assert settings.enabled is True
    assert settings.targets == ("a.b:C.d", "e:F.g")
    assert settings.histogram == "classic"
    assert settings.histogram_max_size == 160
    assert settings.alert_p99_s == 0.25


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        ({"retry_attempts": 0}, "CDE_OTEL_RETRY_ATTEMPTS"),
        ({"retry_attempts": 2.5}, "CDE_OTEL_RETRY_ATTEMPTS"),
        ({"alert_p99_s": "fast"}, "CDE_OTEL_ALERT_P99_S"),
        ({"histogram": "linear"}, "CDE_OTEL_HISTOGRAM"),
        ({"enabled": "maybe"}, "CDE_OTEL_ENABLED"),
        ({"targets": 3}, "CDE_OTEL_TARGETS"),
    ],
)
def test_overrides_go_through_the_same_parsers(overrides: dict[str, object], setting: str) -> None:
    with pytest.raises(CDESystemError) as caught:
        load_settings({}, **overrides)

    assert caught.value.code == "E903" and caught.value.context["setting"] == setting


def test_valid_overrides_are_normalised_like_environment_values() -> None:
    settings = load_settings({}, alert_disk_free_mb=100, histogram="CLASSIC", targets=["m:C.f"])

    assert settings.alert_disk_free_mb == 100.0 and isinstance(settings.alert_disk_free_mb, float)
    assert settings.histogram == "classic"
    assert settings.targets == ("m:C.f",)
    assert settings.replace(retry_attempts="7").retry_attempts == 7


def test_unknown_names_are_refused() -> None:
    with pytest.raises(AttributeError, match="alert_p99"):
        load_settings({}, alert_p99=0.5)
    with pytest.raises(AttributeError):
        load_settings({}).alert_p99  # type: ignore[attr-defined]  # noqa: B018
    with pytest.raises(dataclasses.FrozenInstanceError):
        load_settings({}).histogram = "classic"  # type: ignore[misc]


def test_a_misspelt_setting_is_a_type_error(tmp_path: Path) -> None:
    snippet = tmp_path / "typo.py"
    snippet.write_text("from cde_otel.settings import load_settings\n\nload_settings().alert_p99\n")

    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(snippet)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )

    assert proc.returncode == 1, proc.stdout
    assert '"Settings" has no attribute "alert_p99"' in proc.stdout

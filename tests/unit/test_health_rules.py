"""Prometheus alerting rules: syntax and promtool unit tests (collector-config/rules/tests)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

RULES_DIR = Path(__file__).resolve().parents[2] / "collector-config" / "rules"
Promtool = Callable[..., subprocess.CompletedProcess[str]]


def test_alert_rules_pass_promtool_check(promtool: Promtool) -> None:
    result = promtool("check", "rules", str(RULES_DIR / "cde-alerts.yml"))

    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_pass_their_promtool_unit_tests(promtool: Promtool) -> None:
    tests = sorted(str(p) for p in (RULES_DIR / "tests").glob("*.yml"))
    assert tests

    result = promtool("test", "rules", *tests)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_four_thresholds_have_alerts() -> None:
    text = (RULES_DIR / "cde-alerts.yml").read_text(encoding="utf-8")

    for alert, threshold in (
        ("CDEHighErrorRate", "job:cde_operation_error_ratio:rate5m > 0.05"),
        ("CDESlowOperation", "p99_rate5m > 1"),
        ("CDEDiskSpaceLow", "cde_disk_free_bytes) < 100 * 1024 * 1024"),
        ("CDEMemoryHigh", "cde_system_memory_utilization_ratio) > 0.80"),
    ):
        assert f"alert: {alert}" in text and threshold in text

"""Prometheus alerting rules: syntax and promtool unit tests (collector-config/rules/tests)."""

from __future__ import annotations

from tests.unit.health_promtool import RULES_DIR, run_promtool


def test_alert_rules_pass_promtool_check() -> None:
    result = run_promtool("check", "rules", str(RULES_DIR / "cde-alerts.yml"))

    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_pass_their_promtool_unit_tests() -> None:
    tests = sorted(str(p) for p in (RULES_DIR / "tests").glob("*.yml"))
    assert tests

    result = run_promtool("test", "rules", *tests)

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

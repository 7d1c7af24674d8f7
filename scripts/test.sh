#!/usr/bin/env bash
# Sets up ./.venv, the real backends (OpenTelemetry Collector, Jaeger, Prometheus; built or installed
# once and cached outside the repo, keyed by version) and the MCP server venvs (fastmcp 2.13.0 and
# the current FastMCP, cached outside the repo), then runs every check: ruff, mypy, the collector
# and Prometheus config validators, promtool rule unit tests, docker-compose.yml through the real Compose
# (both profiles; no Docker engine needed), and pytest — unit, reliability and
# end-to-end tests; then the unit tests again with the newest release of every dependency, no constraints
# file, on Python 3.11 and 3.13 (scripts/test-newest.sh). Any failure, and any skipped test, fails the
# run. Extra arguments go to the main pytest.
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
cd "$ROOT"

echo "==> backends (cache: ${CDE_OTEL_BACKENDS_CACHE:-$HOME/.cache/cde-otel/backends})" >&2
while IFS='=' read -r name value; do
  case "$name" in CDE_OTEL_*_BIN) export "$name=$value" ;; esac
done < <(bash scripts/install-backends.sh)

echo "==> MCP server test venvs (cache: ${CDE_OTEL_VENVS_CACHE:-$HOME/.cache/cde-otel/venvs})" >&2
bash scripts/mcp-test-venvs.sh >/dev/null  # the tests re-check it (idempotent, about a second)

echo "==> ruff, mypy" >&2
ruff check .
ruff format --check .
mypy

echo "==> import contract (lint-imports)" >&2
lint-imports --no-cache

echo "==> collector and Prometheus configs" >&2
"$CDE_OTEL_OTELCOL_BIN" validate --config collector-config/otel-collector.yaml
"$CDE_OTEL_OTELCOL_BIN" validate --config collector-config/otel-agent.yaml
"$CDE_OTEL_OTELCOL_BIN" validate --config collector-config/otel-collector.yaml --config collector-config/otel-gateway.yaml
"$CDE_OTEL_PROMTOOL_BIN" check config collector-config/prometheus.yml
"$CDE_OTEL_PROMTOOL_BIN" check rules collector-config/rules/*.yml
"$CDE_OTEL_PROMTOOL_BIN" test rules collector-config/rules/tests/*.yml

echo "==> docker-compose.yml (default and scale profiles)" >&2
"$CDE_OTEL_COMPOSE_BIN" config --quiet
"$CDE_OTEL_COMPOSE_BIN" --profile scale config --quiet

echo "==> pytest" >&2
pytest -p no:cacheprovider "$@"  # skips and xfails fail the run (tests/conftest.py)

echo "==> the newest release of every dependency, no constraints: Python 3.11 and 3.13 (scripts/test-newest.sh)" >&2
bash scripts/test-newest.sh

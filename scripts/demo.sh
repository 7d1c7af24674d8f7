#!/usr/bin/env bash
# Sets up ./.venv and runs the demo workload with telemetry on.
# With no collector configured the telemetry stays local (OTLP-JSON files) and the demo prints a
# span tree and a P50/P95/P99 table; set OTEL_EXPORTER_OTLP_ENDPOINT to ship it to a collector.
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
cd "$ROOT"
exec cde-otel demo "$@"

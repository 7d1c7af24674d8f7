#!/usr/bin/env bash
# Checks that the lower bounds declared in pyproject.toml are real: installs every runtime
# requirement and the cli, grpc, distro and mcp extras at exactly their declared minimum into a throw-away venv, with
# the test tools, and runs the unit tests there. Not part of scripts/test.sh (it takes minutes
# and resolves another set); run it when a lower bound changes.
#
#   bash scripts/check-lowest.sh [pytest args]     # default: tests/unit, bench smoke excluded
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
mapfile -t LOWEST < <("$PY" - "$ROOT/pyproject.toml" <<'EOF'
import re, sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
extras = project["optional-dependencies"]
# The test-only contrib json-file exporter (the provider tests' "application's own" exporter) too.
test_only = [r for r in extras["dev"] if r.startswith("opentelemetry-exporter-otlp-json-file")]
for requirement in project["dependencies"] + extras["cli"] + extras["grpc"] + extras["distro"] + extras["mcp"] + test_only:
    name, low = re.match(r"^([A-Za-z0-9._-]+)\s*>=\s*([^,;\s]+)", requirement).groups()
    print(f"{name}=={low}")
EOF
)
echo "lowest: ${LOWEST[*]}" >&2
"$PY" -m venv "$TMP/venv"
"$TMP/venv/bin/python" -m pip install --quiet --upgrade pip
"$TMP/venv/bin/python" -m pip install --quiet "${LOWEST[@]}" pytest pytest-timeout hypothesis
"$TMP/venv/bin/python" -m pip install --quiet --no-deps -e "$ROOT"
"$TMP/venv/bin/python" -m pip freeze --exclude-editable >&2
cd "$ROOT"
CDE_OTEL_FAIL_ON_SKIP=1 "$TMP/venv/bin/python" -m pytest -p no:cacheprovider -q \
  "${@:-tests/unit}" --deselect tests/unit/test_bench_smoke.py \
  --deselect tests/unit/test_dependencies.py::test_constraints_pin_every_installed_package \
  --deselect tests/unit/test_settings.py::test_a_misspelt_setting_is_a_type_error  # runs mypy, a dev tool

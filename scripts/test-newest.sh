#!/usr/bin/env bash
# The newest release of every dependency, no constraints file: what `pip install cde-otel` gives a
# user today. For the oldest and the newest Python this project supports (3.11 and 3.13), makes a
# throw-away venv, installs `.[dev]` with no constraints, and runs the unit tests there -- the real
# MCP server tests included, whose server venvs (scripts/mcp-test-venvs.sh with
# CDE_OTEL_MCP_NEWEST=1) get fastmcp 2.13.0 and the newest FastMCP, also unconstrained.
# scripts/test.sh runs it after the locked suite, so a green locked run cannot hide a broken
# resolution. Fails when a Python is missing (never skips it).
#
#   bash scripts/test-newest.sh [pytest args]     # default: tests/unit
#   CDE_OTEL_NEWEST_PYTHONS="3.13" bash scripts/test-newest.sh   # one interpreter only
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSIONS="${CDE_OTEL_NEWEST_PYTHONS:-3.11 3.13}"

# An interpreter of exactly this minor version: on PATH, else pyenv's (shims may name versions
# that are not installed, so each candidate is asked for its version).
find_python() {
  local want="$1" candidate
  local roots=("$(pyenv root 2>/dev/null || true)" "${PYENV_ROOT:-}" "$HOME/.pyenv")
  local candidates=("python$want")
  for root in "${roots[@]}"; do
    [ -n "$root" ] || continue
    for dir in "$root"/versions/"$want"*/; do
      [ -x "${dir%/}/bin/python$want" ] && candidates+=("${dir%/}/bin/python$want")
    done
  done
  for candidate in "${candidates[@]}"; do
    if "$candidate" -c "import sys; sys.exit(0 if '%d.%d' % sys.version_info[:2] == '$want' else 1)" 2>/dev/null; then
      command -v "$candidate" 2>/dev/null || echo "$candidate"
      return 0
    fi
  done
  return 1
}

FAILED=()
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
cd "$ROOT"
for version in $VERSIONS; do
  PY="$(find_python "$version")" || {
    echo "test-newest: Python $version not found (on PATH or under pyenv's versions/); install it, or set" \
      "CDE_OTEL_NEWEST_PYTHONS to the versions to test" >&2
    exit 1
  }
  started=$SECONDS
  echo "==> newest releases on Python $version ($PY)" >&2
  venv="$TMP/py$version"
  "$PY" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  # cde-otel with its extras, the newest FastMCP beside it (the resolution a user gets) and the dev
  # tools -- but not the bench peers nor the test-only contrib json-file exporter: both pin sibling
  # packages exactly and would hold the OpenTelemetry SDK back. The json-file exporter (the
  # "application's own" exporter of the provider tests) goes in without its pins.
  mapfile -t TOOLS < <("$venv/bin/python" - "$ROOT/pyproject.toml" <<'EOF2'
import sys, tomllib
dev = tomllib.load(open(sys.argv[1], "rb"))["project"]["optional-dependencies"]["dev"]
print("\n".join(r for r in dev if not r.startswith(("cde-otel", "opentelemetry-exporter-otlp-json-file"))))
EOF2
  )
  "$venv/bin/python" -m pip install --quiet -e "$ROOT[cli,grpc,distro,mcp]" fastmcp "${TOOLS[@]}"
  "$venv/bin/python" -m pip install --quiet --no-deps opentelemetry-exporter-otlp-json-file \
    opentelemetry-exporter-otlp-json-common opentelemetry-proto-json
  "$venv/bin/python" -m pip check >&2 || true  # says which test-only pin is not met, never fails the run
  "$venv/bin/python" -m pip freeze --exclude-editable |
    grep -iE '^(fastmcp|mcp|opentelemetry-(api|sdk|instrumentation|exporter-otlp-proto-http)|protobuf|structlog)==' |
    paste -sd' ' >&2
  # The constraints test checks the locked venv only; the bench smoke belongs to the locked run.
  # Every Python runs even when one fails: the report names each that failed.
  if CDE_OTEL_FAIL_ON_SKIP=1 CDE_OTEL_MCP_NEWEST=1 CDE_OTEL_VENVS_CACHE="$TMP/mcp-venvs" PYTHON="$PY" \
    "$venv/bin/python" -m pytest -p no:cacheprovider -q \
    "${@:-tests/unit}" \
    --deselect tests/unit/test_dependencies.py::test_constraints_pin_every_installed_package \
    --deselect tests/unit/test_bench_smoke.py; then
    echo "==> Python $version: newest releases passed in $((SECONDS - started)) s" >&2
  else
    echo "==> Python $version: newest releases FAILED after $((SECONDS - started)) s" >&2
    FAILED+=("$version")
  fi
done
if [ "${#FAILED[@]}" -gt 0 ]; then
  echo "test-newest: failed on Python ${FAILED[*]}" >&2
  exit 1
fi

#!/usr/bin/env bash
# The MCP server test environments: one venv per server framework, cached OUTSIDE the repository,
# one set per checkout (two checkouts never test each other's code):
#   ${CDE_OTEL_VENVS_CACHE:-$HOME/.cache/cde-otel/venvs}/<checkout name>-<hash of its path>/<name>/
# each with its framework pinned exactly, every package it shares with constraints.txt at that
# file's version, and cde-otel installed from this checkout (as a user installs it beside their
# server: wheel + the start-up .pth). Idempotent: a venv is rebuilt only when its pins or the
# constraints change, and cde-otel is reinstalled only when the checkout's package changes. The
# venvs of checkouts that no longer exist are removed. Prints one line per venv on stdout,
# CDE_OTEL_VENV_<NAME>=<dir>; progress goes to stderr.
#
#   fastmcp_2_13  fastmcp==2.13.0 (what the upstream CDE orchestrator pins) on mcp 1.x
#   fastmcp_4     fastmcp==4.1.6, the current FastMCP (emits its own MCP spans), on mcp 2.x
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${CDE_OTEL_VENVS_CACHE:-$HOME/.cache/cde-otel/venvs}"
CHECKOUT="$CACHE/$(basename "$ROOT")-$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3

declare -A PINS=(
  [fastmcp_2_13]="fastmcp==2.13.0 mcp==1.30.0"
  [fastmcp_4]="fastmcp==4.1.6 mcp==2.3.0"
)
# CDE_OTEL_MCP_NEWEST=1 (scripts/test-newest.sh): no constraints file and the newest releases -- of
# FastMCP too -- in venvs of their own (per Python, remade by that script on every run).
NEWEST="${CDE_OTEL_MCP_NEWEST:-}"
if [ "$NEWEST" = 1 ]; then
  PINS=([fastmcp_2_13]="fastmcp==2.13.0" [fastmcp_4]="fastmcp>=4")
  CHECKOUT="$CHECKOUT-newest-$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
fi

# What a reinstall of cde-otel depends on: the package sources, pyproject.toml and the .pth.
package_stamp() {
  (cd "$ROOT" && find cde_otel -name '*.py' -print0 | sort -z | xargs -0 sha256sum
   sha256sum pyproject.toml cde_otel_bootstrap.pth) | sha256sum | cut -d' ' -f1
}

# constraints.txt without the packages a venv pins itself (its framework's own versions win).
constraints_for() {
  [ "$NEWEST" = 1 ] && return 0
  local names
  names="$(printf '%s\n' $1 | sed 's/==.*//' | tr 'A-Z_.' 'a-z--' | paste -sd'|')"
  grep -v '^#' "$ROOT/constraints.txt" | awk -F'==' -v skip="^($names)\$" \
    '{ name = tolower($1); gsub(/[_.]/, "-", name); if (name !~ skip) print }'
}

mkdir -p "$CACHE"
# Checkouts that are gone leave their venvs behind: remove them (under the cache-wide lock).
exec 8>"$CACHE/.lock"
flock 8
for dir in "$CACHE"/*/; do
  owner="$(cat "$dir/.checkout" 2>/dev/null || true)"
  if [ -n "$owner" ] && [ ! -f "$owner/scripts/mcp-test-venvs.sh" ]; then
    echo "==> removing the MCP test venvs of $owner (gone)" >&2
    rm -rf "$dir"
  fi
done
mkdir -p "$CHECKOUT"
echo "$ROOT" > "$CHECKOUT/.checkout"
flock -u 8

exec 9>"$CHECKOUT/.lock"
flock 9  # parallel test runs of this checkout share its venvs
STAMP="$(package_stamp)"
for name in "${!PINS[@]}"; do
  venv="$CHECKOUT/$name"
  pins="${PINS[$name]}"
  constraints="$(constraints_for "$pins")"
  want="$pins $(printf '%s' "$constraints" | sha256sum | cut -c1-16)"
  if [ "$(cat "$venv/.pins" 2>/dev/null)" != "$want" ]; then
    echo "==> venv $name: $pins, the rest from constraints.txt" >&2
    rm -rf "$venv"
    "$PY" -m venv "$venv"
    printf '%s\n' "$constraints" > "$venv/.constraints"
    "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
    # shellcheck disable=SC2086
    "$venv/bin/python" -m pip install --quiet -c "$venv/.constraints" $pins "$ROOT" >&2
    echo "$want" > "$venv/.pins"
    echo "$STAMP" > "$venv/.cde-otel"
  elif [ "$(cat "$venv/.cde-otel" 2>/dev/null)" != "$STAMP" ]; then
    echo "==> venv $name: reinstalling cde-otel from $ROOT" >&2
    "$venv/bin/python" -m pip install --quiet --no-deps --force-reinstall "$ROOT" >&2
    # ...and any dependency it gained since the venv was made (the line above installs none).
    # shellcheck disable=SC2086
    "$venv/bin/python" -m pip install --quiet -c "$venv/.constraints" $pins "$ROOT" >&2
    echo "$STAMP" > "$venv/.cde-otel"
  fi
  # The pins must still hold, and every package shared with constraints.txt be at its version.
  # shellcheck disable=SC2086
  "$venv/bin/python" - "$venv/.constraints" $pins <<'EOF' >&2
import re, sys
from importlib.metadata import distributions

def key(name):
    return re.sub(r"[-_.]+", "-", name).lower()

installed = {key(d.metadata["Name"]): d.version for d in distributions()}
wanted = dict(p.split("==", 1) for p in sys.argv[2:] if "==" in p)
wanted.update(line.strip().split("==", 1) for line in open(sys.argv[1]) if "==" in line)
wrong = {n: (v, installed[key(n)]) for n, v in wanted.items() if key(n) in installed and installed[key(n)] != v}
missing = [p for p in sys.argv[2:] if key(re.split("[=<>]", p)[0]) not in installed]
sys.exit(f"not as pinned (wanted, installed): {wrong} {missing}" if wrong or missing else 0)
EOF
  echo "CDE_OTEL_VENV_${name^^}=$venv"
done

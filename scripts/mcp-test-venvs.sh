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
#   fastmcp_2_13    fastmcp==2.13.0 (what the upstream CDE orchestrator pins) on mcp 1.x
#   fastmcp_4       fastmcp==4.1.7, the newest FastMCP that installs beside the locked SDK (emits its
#                   own MCP spans), on mcp 2.x
#   fastmcp_newest  fastmcp==4.2.3, the newest release: the OpenTelemetry family as the resolver picks
#                   it (4.2.3 needs opentelemetry-api>=1.45.2, newer than constraints.txt), the rest
#                   from constraints.txt
#   unconstrained   `pip install fastmcp <this checkout>` with no constraints at all: what a new user
#                   gets; proves the two resolve together
# fastmcp_2_13 also gets the contrib OTLP-JSON file exporter (bench/_floor_server.py's baseline).
# The first two also get what `opentelemetry-instrument` needs to trace the HTTP transport (the
# distro and the Starlette/ASGI instrumentations; the Starlette one pins the 0.66b1 SDK family, so
# it cannot go beside fastmcp 4.2.3 today).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${CDE_OTEL_VENVS_CACHE:-$HOME/.cache/cde-otel/venvs}"
CHECKOUT="$CACHE/$(basename "$ROOT")-$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3

LAUNCHER="opentelemetry-distro==0.66b1 opentelemetry-instrumentation-starlette==0.66b1 opentelemetry-instrumentation-asgi==0.66b1"
# The MCP benchmark's hand-written floor exports with the stock contrib OTLP-JSON file exporter.
FLOOR_EXPORTER="opentelemetry-exporter-otlp-json-file==0.66b1"
declare -A PINS=(
  [fastmcp_2_13]="fastmcp==2.13.0 mcp==1.30.0 $LAUNCHER $FLOOR_EXPORTER"
  [fastmcp_4]="fastmcp==4.1.7 mcp==2.3.0 $LAUNCHER"
  [fastmcp_newest]="fastmcp==4.2.3"
  [unconstrained]="fastmcp"
)
# Venvs whose framework must be the version pip picks for it alone (`pip install fastmcp`): a
# dependency of cde-otel that holds the framework back fails the venv.
declare -A NEWEST=(
  [unconstrained]="fastmcp"
)
# Packages left to the resolver (not taken from constraints.txt), per venv; "*" means all of them.
declare -A FREE=(
  [fastmcp_newest]="opentelemetry-.*"
  [unconstrained]="*"
)
# Venvs that are another's directory under another name (printed, not built).
declare -A SAME_AS=()
# CDE_OTEL_MCP_NEWEST=1 (scripts/test-newest.sh): no constraints file and the newest releases -- of
# FastMCP and the launcher's instrumentations too -- in venvs of their own (per Python, remade by that
# script on every run). There the newest FastMCP venv is the unconstrained one.
NEWEST_MODE="${CDE_OTEL_MCP_NEWEST:-}"
if [ "$NEWEST_MODE" = 1 ]; then
  LAUNCHER="opentelemetry-distro opentelemetry-instrumentation-starlette opentelemetry-instrumentation-asgi"
  # The launcher's newest Starlette instrumentation may lag the newest FastMCP: fastmcp_4 is the newest
  # FastMCP that installs beside it, `unconstrained` the newest FastMCP, which must not be held back.
  PINS=([fastmcp_2_13]="fastmcp==2.13.0 $LAUNCHER" [fastmcp_4]="fastmcp>=4 $LAUNCHER" [unconstrained]="fastmcp")
  FREE=([fastmcp_2_13]="*" [fastmcp_4]="*" [unconstrained]="*")
  NEWEST=([unconstrained]="fastmcp")
  SAME_AS=([fastmcp_newest]=unconstrained)
  CHECKOUT="$CHECKOUT-newest-$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
fi

# What a reinstall of cde-otel depends on: the package sources, pyproject.toml and the .pth.
package_stamp() {
  (cd "$ROOT" && find cde_otel -name '*.py' -print0 | sort -z | xargs -0 sha256sum
   sha256sum pyproject.toml cde_otel_bootstrap.pth) | sha256sum | cut -d' ' -f1
}

# constraints.txt without the packages a venv pins itself (its framework's own versions win) and
# those it leaves to the resolver ($2: a regular expression, or "*" for no constraints at all).
constraints_for() {
  local names
  [ "${2:-}" = "*" ] && return 0
  names="$(printf '%s\n' $1 | sed 's/==.*//' | tr 'A-Z_.' 'a-z--' | paste -sd'|')"
  [ -n "${2:-}" ] && names="$names|$2"
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

# Makes (or refreshes) one venv; runs in a subshell under `set -e`, so one venv that cannot be made
# (a resolution that fails) does not stop the others.
build_venv() {
  local name="$1" venv="$CHECKOUT/$1" pins="${PINS[$1]}" constraints want
  constraints="$(constraints_for "$pins" "${FREE[$name]:-}")"
  want="$pins $(printf '%s' "$constraints" | sha256sum | cut -c1-16)"
  # What the resolver picks changes with every release: such a venv is made afresh once a day.
  [ "${FREE[$name]:-}" = "*" ] && want="$want $(date -u +%F)"
  # A venv that could not be made is not tried again until its inputs change (a failed resolution
  # costs minutes); it is reported as failed every time.
  local failed_mark="$CHECKOUT/.failed-$name" deps
  deps="$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"  # what the resolution depends on
  if [ "$(cat "$failed_mark" 2>/dev/null)" = "$want $deps" ]; then
    echo "==> venv $name: could not be made with these inputs (last attempt: $failed_mark)" >&2
    return 1
  fi
  rm -f "$failed_mark"
  if [ "$(cat "$venv/.pins" 2>/dev/null)" != "$want" ]; then
    echo "$want $deps" > "$failed_mark"  # removed below once the venv is made
    echo "==> venv $name: $pins${FREE[$name]:+ (left to the resolver: ${FREE[$name]})}, the rest from constraints.txt" >&2
    rm -rf "$venv"
    "$PY" -m venv "$venv"
    printf '%s\n' "$constraints" > "$venv/.constraints"
    "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
    # shellcheck disable=SC2086
    if ! "$venv/bin/python" -m pip install --quiet -c "$venv/.constraints" $pins "$ROOT" >&2; then
      rm -rf "$venv"
      return 1
    fi
    if [ -n "${NEWEST[$name]:-}" ]; then
      local alone installed
      alone="$("$venv/bin/python" -m pip install --quiet --dry-run --ignore-installed --report - "${NEWEST[$name]}" |
        "$venv/bin/python" -c 'import json, sys; r = json.load(sys.stdin); print(next(i["metadata"]["version"] for i in r["install"] if i["metadata"]["name"].lower() == sys.argv[1]))' "${NEWEST[$name]}")"
      installed="$("$venv/bin/python" -c 'import sys; from importlib.metadata import version; print(version(sys.argv[1]))' "${NEWEST[$name]}")"
      if [ "$alone" != "$installed" ]; then
        echo "==> venv $name: ${NEWEST[$name]} $installed installed beside cde-otel, but $alone alone: cde-otel holds it back" >&2
        rm -rf "$venv"
        return 1
      fi
    fi
    echo "$want" > "$venv/.pins"
    echo "$STAMP" > "$venv/.cde-otel"
    rm -f "$failed_mark"
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
pins = sys.argv[2:]
wanted = dict(p.split("==", 1) for p in pins if "==" in p)
wanted.update(line.strip().split("==", 1) for line in open(sys.argv[1]) if "==" in line)
wrong = {n: (v, installed[key(n)]) for n, v in wanted.items() if key(n) in installed and installed[key(n)] != v}
missing = [p for p in pins if key(re.split("[=<>]", p)[0]) not in installed]
sys.exit(f"not as pinned (wanted, installed): {wrong} {missing}" if wrong or missing else 0)
EOF
}

failed=()
for name in $(printf '%s\n' "${!PINS[@]}" | sort); do
  set +e
  ( set -e; build_venv "$name" )  # not in an `if`: there bash would ignore the subshell's set -e
  status=$?
  set -e
  if [ "$status" -eq 0 ]; then
    echo "CDE_OTEL_VENV_${name^^}=$CHECKOUT/$name"
  else
    echo "==> venv $name could NOT be made (see above)" >&2
    failed+=("$name")
  fi
done
for name in "${!SAME_AS[@]}"; do
  [[ " ${failed[*]} " == *" ${SAME_AS[$name]} "* ]] || echo "CDE_OTEL_VENV_${name^^}=$CHECKOUT/${SAME_AS[$name]}"
done
# Every venv that could be made is printed; the exit status says whether one could not.
[ "${#failed[@]}" -eq 0 ] || { echo "==> failed: ${failed[*]}" >&2; exit 3; }

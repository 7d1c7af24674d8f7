#!/usr/bin/env bash
# The MCP server test environments: one venv per server framework, cached OUTSIDE the repository
#   ${CDE_OTEL_VENVS_CACHE:-$HOME/.cache/cde-otel/venvs}/<name>/
# each with its framework pinned exactly and cde-otel installed from this checkout (as a user
# installs it beside their server: wheel + the start-up .pth). Idempotent: a venv is rebuilt only
# when its pins change, and cde-otel is reinstalled only when the checkout's package changes.
# Prints one line per venv on stdout, CDE_OTEL_VENV_<NAME>=<dir>; progress goes to stderr.
#
#   fastmcp_2_13  fastmcp==2.13.0 (what the upstream CDE orchestrator pins) on mcp 1.x
#   fastmcp_4     fastmcp==4.1.6, the current FastMCP (emits its own MCP spans), on mcp 2.x
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${CDE_OTEL_VENVS_CACHE:-$HOME/.cache/cde-otel/venvs}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3

declare -A PINS=(
  [fastmcp_2_13]="fastmcp==2.13.0 mcp==1.30.0"
  [fastmcp_4]="fastmcp==4.1.6 mcp==2.3.0"
)

# What a reinstall of cde-otel depends on: the package sources, pyproject.toml and the .pth.
package_stamp() {
  (cd "$ROOT" && find cde_otel -name '*.py' -print0 | sort -z | xargs -0 sha256sum
   sha256sum pyproject.toml cde_otel_bootstrap.pth) | sha256sum | cut -d' ' -f1
}

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9  # parallel test runs share the cache
STAMP="$(package_stamp)"
for name in "${!PINS[@]}"; do
  venv="$CACHE/$name"
  pins="${PINS[$name]}"
  if [ "$(cat "$venv/.pins" 2>/dev/null)" != "$pins" ]; then
    echo "==> venv $name: $pins" >&2
    rm -rf "$venv"
    "$PY" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
    # shellcheck disable=SC2086
    "$venv/bin/python" -m pip install --quiet $pins "$ROOT" >&2
    echo "$pins" > "$venv/.pins"
    echo "$STAMP" > "$venv/.cde-otel"
  elif [ "$(cat "$venv/.cde-otel" 2>/dev/null)" != "$STAMP" ]; then
    echo "==> venv $name: reinstalling cde-otel from $ROOT" >&2
    "$venv/bin/python" -m pip install --quiet --no-deps --force-reinstall "$ROOT" >&2
    # ...and any dependency it gained since the venv was made (the line above installs none).
    "$venv/bin/python" -m pip install --quiet "$ROOT" >&2
    echo "$STAMP" > "$venv/.cde-otel"
  fi
  # The pins must still hold (a dependency of cde-otel could have moved the framework).
  # shellcheck disable=SC2086
  "$venv/bin/python" - $pins <<'EOF' >&2
import sys
from importlib.metadata import version
wrong = [p for p in sys.argv[1:] if version(p.split("==")[0]) != p.split("==")[1]]
sys.exit(f"pins not satisfied: {wrong}" if wrong else 0)
EOF
  echo "CDE_OTEL_VENV_${name^^}=$venv"
done

# Sourced by scripts/demo.sh and scripts/test.sh: creates ./.venv (Python >= 3.11) and installs
# cde-otel with its dev extra at the exact versions of constraints.txt (pyproject.toml only declares
# ranges), reinstalling only when pyproject.toml, constraints.txt or the .pth hook change.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      PY="$candidate"; break
    fi
  done
fi
[ -n "$PY" ] || { echo "cde-otel needs Python >= 3.11 on PATH (or set PYTHON=...)" >&2; exit 1; }
VENV="$ROOT/.venv"
STAMP="$VENV/.cde-otel-installed"
WANT="$(cat "$ROOT/pyproject.toml" "$ROOT/constraints.txt" "$ROOT/cde_otel_bootstrap.pth" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  # A fresh venv each time the inputs change: what is installed is exactly constraints.txt, no leftovers.
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -c "$ROOT/constraints.txt" -e "$ROOT[dev]"
  echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"

#!/usr/bin/env bash
# One entry point for a fresh clone: sets up .venv from requirements.lock (idempotent), then
#   ./dev.sh demo [ARGS]   runs `cubehub demo` on the embedded demo archive
#   ./dev.sh test [ARGS]   runs the test suite (what .ci/run calls)
#   ./dev.sh docs          builds the API reference from the docstrings into docs/api/
#   ./dev.sh setup         only installs
# Needs only python3 (>= 3.11) with venv and pip.
set -euo pipefail
cd "$(dirname "$0")"

VENV=.venv
PY=${PYTHON:-python3}
STAMP=$VENV/.cubehub-installed

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -c 'import sys; assert sys.version_info >= (3, 11), "cubehub needs Python 3.11 or newer"'
    "$PY" -m venv "$VENV"
  fi
  # Reinstall only when the lock file or the project metadata changed.
  local want
  want=$(cat requirements.lock pyproject.toml | "$VENV/bin/python" -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')
  if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
    echo "Installing the environment from requirements.lock into $VENV (first run takes a few minutes)..."
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.lock
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e .
    echo "$want" > "$STAMP"
  fi
  # The released JupyterHub chart the platform tests render, downloaded once unless cached.
  "$VENV/bin/python" helm/fetch_dependencies.py
  # The web map's library (Leaflet, pinned in web/package-lock.json), copied into the package
  # for `cubehub serve`; needs npm (Debian: apt-get install npm).
  if [ ! -d src/cubehub/maps/static/vendor ] || [ web/package-lock.json -nt src/cubehub/maps/static/vendor ]; then
    if command -v npm >/dev/null; then
      npm ci --prefix web --no-audit --no-fund --loglevel=error
      npm run --prefix web --silent build
    else
      echo "npm not found: cubehub serve's web page needs it (apt-get install npm), skipping its build" >&2
    fi
  fi
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  setup) setup ;;
  demo) setup; exec "$VENV/bin/cubehub" demo "$@" ;;
  test) setup; exec "$VENV/bin/python" -m pytest "$@" ;;
  # The names cubehub exports, one page (tests/test_api_docs.py builds it the same way).
  docs) setup; exec "$VENV/bin/python" -m pdoc --docformat google --output-directory docs/api cubehub ;;
  *) echo "usage: ./dev.sh {demo|test|docs|setup} [ARGS...]" >&2; exit 2 ;;
esac

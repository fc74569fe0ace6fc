#!/usr/bin/env bash
# Set up everything the inventory needs on Debian/Ubuntu, idempotently:
#   OS packages   libsqlite3-mod-spatialite (the embedded store's spatial extension) and
#                 fonts-noto-cjk (Chinese in the plots and the meeting pack);
#                 with --test also PostgreSQL + PostGIS, GDAL's command-line tools, and
#                 Chromium for the map tests and PDF packs
#   Python        a virtualenv in .venv with the package and its dependencies
# Usage: scripts/setup.sh [--test]
set -euo pipefail
cd "$(dirname "$0")/.."

with_test=0
[ "${1:-}" = "--test" ] && with_test=1

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@";
  elif command -v sudo >/dev/null; then sudo "$@";
  else echo "setup: need root (or sudo) to run: $*" >&2; exit 1; fi
}
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

apt_updated=0
apt_install() {
  local missing=()
  for p in "$@"; do installed "$p" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null; then
    echo "setup: please install these packages with your system's package manager: ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing OS packages: ${missing[*]}"
  if [ $apt_updated = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

apt_install libsqlite3-mod-spatialite fonts-noto-cjk
if [ $with_test = 1 ]; then
  apt_install postgresql gdal-bin chromium
  pg_major=$(ls /usr/lib/postgresql | sort -n | tail -1)
  apt_install "postgresql-${pg_major}-postgis-3"
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup: the inventory needs Python >= 3.11; set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  if ! "$python" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    apt_install python3-venv
    "$python" -m venv .venv
  fi
fi
# Reinstall only when the project's requirements changed since the last install.
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing Python packages into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[test]"
  touch "$stamp"
fi

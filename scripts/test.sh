#!/usr/bin/env bash
# Set up everything and run the whole test suite on both backends (SpatiaLite and PostGIS).
# Uses the PostGIS server in $INVENTORY_TEST_POSTGIS_URL when set; otherwise starts a
# local one from the OS packages. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh --test
if [ -z "${INVENTORY_TEST_POSTGIS_URL:-}" ]; then
  INVENTORY_TEST_POSTGIS_URL=$(scripts/local_postgis.sh)
  export INVENTORY_TEST_POSTGIS_URL
fi
# A PostGIS test that cannot reach its server fails here instead of being skipped.
export INVENTORY_TEST_REQUIRE_POSTGIS=1
.venv/bin/ruff check inventory tests benchmarks
.venv/bin/python -m pytest "$@"

#!/usr/bin/env bash
# Set up everything and run the main job on the embedded SpatiaLite store:
# a fresh store, the Jinsong North sample survey imported, and what the inventory holds.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
.venv/bin/inventory demo "$@"

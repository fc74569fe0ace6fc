#!/usr/bin/env bash
# Refresh the Leaflet build shipped in inventory/static/leaflet (inlined into every map so
# that maps open with no network). Takes it from the npm registry; run by hand, commit.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:-1.9.4}
tmp=$(mktemp -d)
(cd "$tmp" && npm pack --silent "leaflet@${version}" >/dev/null && tar xzf "leaflet-${version}.tgz")
cp "$tmp/package/dist/leaflet.js" "$tmp/package/dist/leaflet.css" "$tmp/package/LICENSE" inventory/static/leaflet/
echo "$version" > inventory/static/leaflet/VERSION
rm -rf "$tmp"

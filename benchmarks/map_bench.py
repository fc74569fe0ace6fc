"""City-scale maps: HTML size and time to first paint, against plain Folium in the same run.

Run on demand (not part of the tests; needs Debian's chromium):

    .venv/bin/python benchmarks/map_bench.py --n 100000

It generates a synthetic city (``synthetic_inventory``: communities of 100 spaces),
imports it into a fresh embedded store with the inventory's importer, finds the bundles,
then writes two maps of the same spaces:

- the anchor: plain Folium, one ``folium.GeoJson`` of every space with a popup of
  some of the same fields (what a notebook would do), Leaflet inlined as in the
  inventory's map so both open offline;
- the inventory's map (``mode="auto"``, i.e. the city map above 3,000 spaces), with the
  community boundaries and bundles as well.

Each page is opened in headless Chromium (no network); a probe appended to the page
logs, in milliseconds from navigation start, when the map was first painted (two
animation frames after the load event), and, for the city map, when the compressed
space data were unpacked and how long drawing the spaces of one community at zoom 17
took. Printed: build time, HTML size and the times, with ratios to the anchor.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import folium
import pyogrio
from folium.features import GeoJsonPopup

from inventory import listing, maps, store
from inventory.bundles import find_bundles
from inventory.db import connect
from inventory.importer import import_file
from inventory.samples import synthetic_inventory

DATA = Path(__file__).resolve().parent / "_data"
FIELDS = ["survey_ref", "kind", "floor_area_m2", "usable_area_m2", "owner_name", "notes"]

PROBE = """
<script>
window.addEventListener("load", function () {
  var map = null;
  for (var k in window) { try { if (window[k] instanceof L.Map) { map = window[k]; } } catch (e) {} }
  var out = {};
  function report() { console.log("MAP-BENCH " + JSON.stringify(out)); }
  requestAnimationFrame(function () { requestAnimationFrame(function () {
    out.first_paint_ms = performance.now();
    if (!map._inventory) { report(); return; }
    (function wait() {
      if (!map._inventory.ready && !map._inventory.error) { setTimeout(wait, 20); return; }
      out.data_ready_ms = performance.now();
      out.error = map._inventory.error;
      var start = performance.now();
      map.setView(TARGET, 17, {animate: false});
      requestAnimationFrame(function () { requestAnimationFrame(function () {
        out.zoom_in_ms = performance.now() - start;
        out.drawn = map._inventory.drawn;
        report();
      }); });
    })();
  }); });
});
</script>
"""


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def open_in_chromium(chromium: str, page: Path, target: tuple[float, float]) -> dict:
    """Open ``page`` with the probe in headless Chromium; return what the probe logged."""
    probe = page.with_name(page.stem + "_probe.html")
    html = page.read_text(encoding="utf-8")
    script = PROBE.replace("TARGET", json.dumps(list(target)))
    probe.write_text(html.replace("</body>", script + "</body>"), encoding="utf-8")
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.Popen(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--window-size=1200,800",
                f"--user-data-dir={profile}",
                "--enable-logging=stderr",
                "--v=0",
                probe.as_uri(),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 300
            for line in proc.stderr:
                found = re.search(r'"MAP-BENCH (\{.*\})"', line)
                if found:
                    return json.loads(found.group(1))
                if time.monotonic() > deadline:
                    break
            raise SystemExit(f"Chromium gave no timing for {page}")
        finally:
            proc.kill()
            proc.wait()
            probe.unlink()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="spaces (default 100,000)")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise SystemExit("Needs chromium (Debian: apt-get install chromium).")
    DATA.mkdir(exist_ok=True)
    gpkg = DATA / f"city_{args.n}.gpkg"
    if not gpkg.exists():
        communities, spaces = synthetic_inventory(max(args.n // 100, 1), 100)
        pyogrio.write_dataframe(communities, gpkg, layer="communities")
        pyogrio.write_dataframe(spaces.iloc[: args.n], gpkg, layer="spaces")
    db = DATA / "map_bench.sqlite"
    db.unlink(missing_ok=True)
    engine = connect(str(db), create=True)
    store.init(engine)
    import_file(engine, gpkg, layer="communities", communities=True)
    import_file(engine, gpkg, layer="spaces")
    spaces = listing.spaces(engine)
    boundaries = listing.communities(engine)
    engine.dispose()
    bundles, members = find_bundles(spaces)
    print(f"{len(spaces):,} spaces in {len(boundaries):,} communities, {len(bundles):,} bundles")
    first = boundaries.geometry.iloc[0].centroid
    target = (first.y, first.x)

    def plain_folium() -> Path:
        minx, miny, maxx, maxy = spaces.total_bounds
        m = folium.Map(tiles=None)
        # the same inlined Leaflet as the inventory's map (the page must open offline)
        m.default_js = []
        m.default_css = []
        m.fit_bounds([[miny, minx], [maxy, maxx]])
        folium.GeoJson(
            spaces[[*FIELDS, "geometry"]].to_json(),
            popup=GeoJsonPopup(fields=FIELDS),
        ).add_to(m)
        return maps.save(m, DATA / "map_plain_folium.html")

    def inventory_map() -> Path:
        m = maps.build_map(spaces, communities=boundaries, bundles=bundles, members=members)
        return maps.save(m, DATA / "map_inventory.html")

    rows = []
    for name, build in (("plain Folium (anchor)", plain_folium), ("inventory map", inventory_map)):
        seconds, path = timed(build)
        probe = open_in_chromium(chromium, path, target)
        rows.append((name, seconds, path.stat().st_size / 1e6, probe))
    anchor = rows[0]
    print(f"{'':24} {'build s':>8} {'HTML MB':>8} {'paint ms':>9} {'× size':>7} {'× paint':>8}")
    for name, seconds, mb, probe in rows:
        paint = probe["first_paint_ms"]
        print(
            f"{name:24} {seconds:8.1f} {mb:8.1f} {paint:9.0f} "
            f"{mb / anchor[2]:7.2f} {paint / anchor[3]['first_paint_ms']:8.2f}"
        )
    city = rows[1][3]
    if "data_ready_ms" in city:
        print(
            f"inventory map: space data unpacked at {city['data_ready_ms']:.0f} ms; "
            f"zoom to one community at 17 drew {city['drawn']} spaces in {city['zoom_in_ms']:.0f} ms"
            + (f" (error: {city['error']})" if city.get("error") else "")
        )
    print("targets for 100k spaces: HTML ≤ 10 MB, first paint < 2,000 ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

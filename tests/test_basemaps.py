"""What maps are drawn on: online tile sources (Tianditu with a key, Gaode in GCJ-02
with the data shifted onto it) and the user's own layers inlined offline."""

from __future__ import annotations

import json
import re
import subprocess

import geopandas as gpd
import pytest
import shapely

from inventory import basemaps, listing, maps
from inventory.chinacoords import wgs84_to_gcj02
from inventory.errors import InputError
from tests.test_maps import CHROMIUM_FLAGS, _chromium

BOUNDS = (116.4610, 39.8775, 116.4695, 39.8812)


def test_tile_sources_by_name():
    osm = basemaps.tiles("osm")
    assert osm.layers[0][0] == "https://tile.openstreetmap.org/{z}/{x}/{y}.png" and not osm.gcj02
    assert basemaps.tiles("gaode").gcj02 and basemaps.tiles("gaode-satellite").gcj02
    assert (
        basemaps.tiles("Esri.WorldImagery").layers[0][0].startswith("https://server.arcgisonline")
    )
    assert basemaps.tiles("none") is None and basemaps.tiles(None) is None
    tdt = basemaps.tiles("tianditu", "0123456789abcdef0123456789abcdef")
    assert len(tdt.layers) == 2  # the map and its annotation
    assert all("tk=0123456789abcdef0123456789abcdef" in layer[0] for layer in tdt.layers)
    assert "LAYER=vec" in tdt.layers[0][0] and "LAYER=cva" in tdt.layers[1][0]


@pytest.mark.parametrize(
    ("name", "key", "message"),
    [
        ("tianditu", None, "Tianditu key"),
        ("tianditu", "x';alert(1)//", "Tianditu key"),  # a key is letters and digits only
        ("no-such-tiles", None, "not a tile source"),
        ("Thunderforest.OpenCycleMap", None, "API key of its own"),
    ],
)
def test_bad_tile_sources_say_what_to_do(name, key, message):
    with pytest.raises(InputError, match=message):
        basemaps.tiles(name, key)


def test_data_are_shifted_onto_gcj02_tiles(mapped_spaces, tmp_path):
    spaces = mapped_spaces
    page = maps.save(maps.build_map(spaces, tiles="gaode"), tmp_path / "g.html").read_text(
        encoding="utf-8"
    )
    assert "webrd0" in page  # Gaode's tiles
    config = json.loads(re.search(r"inventoryFullMap\(map_\w+, (\{.*?\})\); \}\);", page).group(1))
    drawn = {
        f["properties"]["survey_ref"]: shapely.geometry.shape(f["geometry"])
        for layer in config["layers"]
        for f in layer["data"]["features"]
    }
    original = spaces.set_index("survey_ref").geometry["JS-013"].centroid
    lon, lat = wgs84_to_gcj02(original.x, original.y)
    shifted = drawn["JS-013"].centroid
    assert shifted.x == pytest.approx(float(lon), abs=1e-7)
    assert shifted.y == pytest.approx(float(lat), abs=1e-7)
    assert abs(shifted.x - original.x) > 0.001  # GCJ-02 is hundreds of metres off in Beijing


@pytest.fixture
def mapped_spaces(engine, sample):
    return listing.spaces(engine)


def _roads(path, crs="EPSG:4548"):
    lines = [
        shapely.LineString([(116.455, 39.8790), (116.475, 39.8790)]),  # across the estate
        shapely.LineString([(116.30, 39.95), (116.31, 39.95)]),  # far away: clipped out
    ]
    frame = gpd.GeoDataFrame({"名称": ["劲松路", "远处"]}, geometry=lines, crs=4326)
    frame.to_crs(crs).to_file(path)
    return path


def test_the_users_own_layer_is_read_reprojected_and_clipped(tmp_path):
    base = basemaps.read_base(_roads(tmp_path / "roads.gpkg"), BOUNDS)
    assert len(base) == 1 and base.crs.to_epsg() == 4326
    minx, _, maxx, _ = base.total_bounds
    assert minx > 116.455 and maxx < 116.475  # clipped to the map, with a margin
    no_crs = _roads(tmp_path / "nocrs.shp")
    no_crs.with_suffix(".prj").unlink()  # a shapefile without its .prj
    with pytest.raises(InputError, match="no coordinate system"):
        basemaps.read_base(no_crs, BOUNDS)
    with pytest.raises(InputError, match="not found"):
        basemaps.read_base(tmp_path / "missing.gpkg", BOUNDS)


def test_a_basemap_is_drawn_under_the_spaces_offline(engine, sample, tmp_path):
    roads = _roads(tmp_path / "roads.gpkg")
    path, _ = maps.map_from_store(engine, tmp_path / "b.html", base=[roads])
    page = path.read_text(encoding="utf-8")
    assert not re.search(r"<(script|link)[^>]+(src|href)=\"https?://", page)
    assert "劲松路" not in page  # only the geometry is inlined
    chromium = _chromium()
    probe = page.replace(
        "</body>",
        "<script>window.addEventListener('load', function () { setTimeout(function () {"
        " var map = null; for (var k in window) { try { if (window[k] instanceof L.Map) { map = window[k]; } } catch (e) {} }"
        " var n = 0; map.eachLayer(function (l) { if (l.options && l.options.pane === 'inventoryBase' && l._parts) { n++; } });"
        " var names = Array.prototype.map.call(document.querySelectorAll('.leaflet-control-layers-overlays span'), function (s) { return s.textContent.trim(); });"
        " var o = document.createElement('pre'); o.id = 'probe'; o.textContent = JSON.stringify({n: n, names: names,"
        " bg: getComputedStyle(map.getContainer()).backgroundColor}); document.body.appendChild(o); }, 300); });"
        "</script></body>",
    )
    (tmp_path / "probe.html").write_text(probe, encoding="utf-8")
    dom = subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            (tmp_path / "probe.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    found = json.loads(re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S).group(1))
    assert found["n"] == 1 and "roads" in found["names"]
    assert found["bg"] == "rgb(255, 255, 255)"  # a white sheet without tiles

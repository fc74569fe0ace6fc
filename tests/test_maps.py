"""Planners' maps: self-contained, escaped, and checked in a real headless browser."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely import MultiPoint

from inventory import listing, maps
from inventory.bundles import find_bundles
from inventory.importer import import_file
from tests.util import frame, room, write

XSS_NOTE = "<img src=x onerror=\"document.body.setAttribute('data-xss','img')\"><script>document.body.setAttribute('data-xss','script')</script>"


@pytest.fixture
def mapped(engine, sample, tmp_path):
    evil = frame(
        [
            {
                "编号": "X-1",
                "类型": "门房",
                "备注": XSS_NOTE,
                "名称": "<b>bold</b>",
                "geometry": room(0, 40),
            }
        ]
    )
    import_file(engine, write(evil, tmp_path / "evil.geojson"), community="劲松北社区")
    spaces = listing.spaces(engine)
    bundles, members = find_bundles(spaces)
    communities = listing.communities(engine)
    return spaces, communities, bundles, members


def _expected_paths(spaces, communities, bundles) -> int:
    points = sum(
        len(shapely.get_parts(g)) for g in spaces.geometry if g.geom_type in ("MultiPoint", "Point")
    )
    polygons = sum(1 for g in spaces.geometry if g.geom_type not in ("MultiPoint", "Point"))
    return points + polygons + len(communities) + len(bundles)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_map_is_self_contained_and_escaped(mapped, tmp_path, lang):
    spaces, communities, bundles, members = mapped
    m = maps.build_map(spaces, communities=communities, bundles=bundles, members=members, lang=lang)
    page = maps.save(m, tmp_path / "map.html").read_text(encoding="utf-8")
    assert not re.search(r"<(script|link)[^>]+(src|href)=\"https?://", page)
    assert "Leaflet" in page and "L.map(" in page
    assert ("产权障碍" if lang == "zh" else "Blocking gap") in page
    boiler = "锅炉房" if lang == "zh" else "Boiler room"
    assert boiler in page or boiler.encode("unicode_escape").decode() in page
    # the note travels as JSON text with "<" escaped: no value can open a tag or close a script
    assert "\\u003cimg src=x onerror" in page
    assert "<img src=x onerror" not in page and "<b>bold</b>" not in page


def test_bad_options(mapped):
    spaces, *_ = mapped
    with pytest.raises(maps.InputError, match="use zh or en"):
        maps.build_map(spaces, lang="fr")
    with pytest.raises(maps.InputError, match="No spaces to map"):
        maps.build_map(spaces.iloc[0:0])


def _chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") or os.environ.get("INVENTORY_TEST_REQUIRE_POSTGIS"):
            pytest.fail("chromium is required here (the test command installs Debian's chromium)")
        pytest.skip("no chromium installed")
    return found


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--virtual-time-budget=5000",
]


def _render_with_probe(
    mapped, tmp_path, probe_script: str, **options
) -> tuple[str, list[str], object]:
    """Save the map, run it in headless Chromium with ``probe_script`` appended, return the DOM."""
    chromium = _chromium()
    spaces, communities, bundles, members = mapped
    path = maps.save(
        maps.build_map(
            spaces, communities=communities, bundles=bundles, members=members, **options
        ),
        tmp_path / "map.html",
    )
    probe = tmp_path / "probe.html"
    probe.write_text(
        path.read_text(encoding="utf-8").replace("</body>", probe_script + "</body>"),
        encoding="utf-8",
    )
    flags = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(
        [*flags, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    return dom, flags, path


def _screenshot(flags: list[str], page, out) -> None:
    """Save a screenshot of ``page`` (kept under the test's tmp dir to look at)."""
    subprocess.run(
        [*flags, "--window-size=1200,800", f"--screenshot={out}", page.as_uri()],
        capture_output=True,
        timeout=120,
    )
    assert out.read_bytes()[:4] == b"\x89PNG"


PROBE = """
<script>
window.addEventListener("load", function () {
  setTimeout(function () {
    var map = null;
    for (var k in window) { try { if (window[k] instanceof L.Map) { map = window[k]; } } catch (e) {} }
    var texts = [], error = "";
    var layers = [];
    map.eachLayer(function (layer) { layers.push(layer); });
    try { layers.forEach(function (layer) {
      // Folium binds popups on the GeoJSON group: a click on a feature opens its popup
      if (layer.feature && layer.feature.properties && "survey_ref" in layer.feature.properties) {
        var at = layer.getBounds ? layer.getBounds().getCenter() : layer.getLatLng();
        map.closePopup();
        layer.fire("click", {latlng: at}, true);
        var open = document.querySelectorAll(".leaflet-popup-content");
        if (open.length) { texts.push(open[open.length - 1].textContent); }
      }
    }); } catch (e) { error = String(e); }
    var out = document.createElement("pre");
    out.id = "probe";
    out.setAttribute("data-paths", document.querySelectorAll("path.leaflet-interactive").length);
    out.setAttribute("data-popups", texts.length);
    out.textContent = error + texts.join("\\n");
    document.body.appendChild(out);
  }, 300);
});
</script>
"""


def test_map_in_headless_chromium(mapped, tmp_path):
    spaces, communities, bundles, _ = mapped
    dom, chromium, path = _render_with_probe(mapped, tmp_path, PROBE)
    found = re.search(
        r'<pre id="probe" data-paths="(\d+)" data-popups="(\d+)">(.*?)</pre>', dom, re.S
    )
    assert found, dom[-2000:]
    paths, popups, text = int(found.group(1)), int(found.group(2)), found.group(3)
    assert paths == _expected_paths(spaces, communities, bundles)
    assert popups >= len(spaces)
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert "data-xss" not in body  # neither the <img onerror> nor the <script> ran
    assert "&lt;img src=x onerror" in text  # shown as text in its popup
    _screenshot(chromium, path, tmp_path / "map.png")


def test_parking_points_are_drawn_one_circle_each(engine, tmp_path):
    gdf = frame(
        [
            {
                "编号": "P",
                "类型": "停车位",
                "车位数": 12,
                "geometry": MultiPoint([(116.4655, 39.8795), (116.4657, 39.8795)]),
            }
        ]
    )
    import_file(engine, write(gdf, tmp_path / "p.geojson"), community="X")
    spaces = listing.spaces(engine)
    page = maps.save(maps.build_map(spaces), tmp_path / "p.html").read_text(encoding="utf-8")
    assert "circleMarker" in page or "CircleMarker" in page


LEGEND_PROBE = """
<script>
window.addEventListener("load", function () {
  setTimeout(function () {
    var before = document.querySelector(".legend-layer[data-layer^='空间组团']").style.display;
    document.querySelectorAll(".leaflet-control-layers-overlays label").forEach(function (label) {
      var text = label.textContent.trim();
      if (text.indexOf("空间组团") === 0 || text.indexOf("社区边界") !== 0) {
        label.querySelector("input").click();  // bundles and every layer of spaces off
      }
    });
    var out = document.createElement("pre");
    out.id = "legend";
    out.setAttribute("data-before", before || "shown");
    out.setAttribute("data-bundles", document.querySelector(".legend-layer[data-layer^='空间组团']").style.display || "shown");
    out.setAttribute("data-boundary", document.querySelector(".legend-layer[data-layer^='社区边界']").style.display || "shown");
    out.setAttribute("data-key", document.querySelector(".legend-spaces").style.display || "shown");
    document.body.appendChild(out);
  }, 300);
});
</script>
"""


def test_legend_switches_with_its_layers(mapped, tmp_path):
    dom, _, _ = _render_with_probe(mapped, tmp_path, LEGEND_PROBE)
    found = re.search(r'<pre id="legend" ([^>]*)>', dom)
    assert found, dom[-1500:]
    attrs = dict(re.findall(r'data-(\w+)="([^"]*)"', found.group(1)))
    assert attrs == {"before": "shown", "bundles": "none", "boundary": "shown", "key": "none"}


def _city_payload(page: str) -> dict:
    """Unpack the compressed space data of a city map as the browser does."""
    import base64
    import gzip
    import json

    packed = re.search(r'"data": "([A-Za-z0-9+/=]+)"', page).group(1)
    return json.loads(gzip.decompress(base64.b64decode(packed)))


def _decode(block: dict, g: int) -> list:
    """Coordinates of geometry ``g`` of a ragged block (the same walk as city_map.js)."""
    import numpy as np

    xy = np.cumsum(np.array(block["xy"], dtype=np.int64).reshape(-1, 2), axis=0) * maps.COORD_STEP
    lo, hi = g, g + 1
    for level in reversed(block["offsets"]):
        lo, hi = level[lo], level[hi]
    return xy[lo:hi].tolist()


def test_auto_mode_draws_a_city_map_above_the_limit(mapped, tmp_path, monkeypatch):
    spaces, communities, bundles, members = mapped
    full = maps.save(maps.build_map(spaces), tmp_path / "full.html").read_text(encoding="utf-8")
    assert "inventoryCityMap(" not in full
    monkeypatch.setattr(maps, "FULL_LIMIT", len(spaces) - 1)
    m = maps.build_map(spaces, communities=communities, bundles=bundles, members=members)
    page = maps.save(m, tmp_path / "city.html").read_text(encoding="utf-8")
    assert "inventoryCityMap(" in page
    assert not re.search(r"<(script|link)[^>]+(src|href)=\"https?://", page)
    data = _city_payload(page)
    # every space is there once, polygons first, with its popup text and status
    polygons = [g for g in spaces.geometry if g.geom_type == "MultiPolygon"]
    assert data["polygons"] == len(polygons)
    assert len(data["kind"]) == len(spaces) == len(data["columns"]["survey_ref"]["v"])
    refs = data["columns"]["survey_ref"]["v"]
    assert sorted(refs) == sorted(spaces["survey_ref"])
    notes = data["columns"]["notes"]
    note_of = dict(
        zip(refs, notes["v"] if "v" in notes else [notes["d"][c] for c in notes["c"]], strict=True)
    )
    assert note_of["X-1"] == XSS_NOTE  # raw text: the browser writes it with textContent
    # coordinates survive the rounding to 1e-6° (0.1 m)
    by_ref = spaces.set_index("survey_ref").geometry
    for i, ref in enumerate(refs[: data["polygons"]]):
        ring = _decode(data["geometry"]["polygons"], i)
        exterior = shapely.get_coordinates(by_ref[ref])[: len(ring)]
        assert (
            max(
                abs(a - b)
                for p, q in zip(ring, exterior.tolist(), strict=True)
                for a, b in zip(p, q, strict=True)
            )
            <= 1e-6
        )


CITY_PROBE = """
<script>
window.addEventListener("load", function () {
  var map = null;
  for (var k in window) { try { if (window[k] instanceof L.Map) { map = window[k]; } } catch (e) {} }
  function finish() {
    var st = map._inventory, texts = [], error = st.error, layers = [];
    var detail = st.drawn;
    map.eachLayer(function (layer) { layers.push(layer); });
    try { layers.forEach(function (layer) {
      if (!layer.getPopup || !layer.getPopup() || layer instanceof L.CircleMarker && layer._eventParents) { return; }
      var at = layer.getBounds ? layer.getBounds().getCenter() : layer.getLatLng();
      map.closePopup();
      layer.fire("click", {latlng: at}, true);
      var open = document.querySelectorAll(".leaflet-popup-content");
      if (open.length) { texts.push(open[open.length - 1].textContent); }
    }); } catch (e) { error += String(e); }
    map.setZoom(12, {animate: false});
    var out = document.createElement("pre");
    out.id = "probe";
    out.setAttribute("data-drawn", detail);
    out.setAttribute("data-popups", texts.length);
    out.setAttribute("data-totals", st.totals);
    out.setAttribute("data-drawn-zoomed-out", st.drawn);
    out.textContent = error + texts.join("\\n");
    document.body.appendChild(out);
  }
  // the page's own load handler (registered after this probe) sets up map._inventory;
  // at zoom 16 the whole estate is in view, so no popup's auto-pan moves a space out
  (function wait() { var st = map._inventory; if (st && (st.ready || st.error)) { map.setZoom(16, {animate: false}); setTimeout(finish, 100); } else { setTimeout(wait, 50); } })();
});
</script>
"""


def test_city_map_in_headless_chromium(mapped, tmp_path):
    spaces, *_ = mapped
    dom, chromium, path = _render_with_probe(mapped, tmp_path, CITY_PROBE, mode="city")
    found = re.search(r'<pre id="probe" ([^>]*)>(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    attrs = dict(re.findall(r'data-([\w-]+)="([^"]*)"', found.group(1)))
    text = found.group(2)
    # zoomed in: every space of the estate drawn and clickable; zoomed out: one circle
    assert int(attrs["drawn"]) == len(spaces)
    assert int(attrs["popups"]) == len(spaces), text[:500]
    assert int(attrs["totals"]) == spaces["community"].nunique()
    assert int(attrs["drawn-zoomed-out"]) == 0
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert "data-xss" not in body
    assert "&lt;img src=x onerror" in text  # the note shown as text in its popup
    assert "锅炉房" in text
    _screenshot(chromium, path, tmp_path / "city.png")


def test_bad_mode(mapped):
    spaces, *_ = mapped
    with pytest.raises(maps.InputError, match="use auto, full"):
        maps.build_map(spaces, mode="tiles")


def test_popups_carry_the_estimated_rent(engine, sample, tmp_path):
    from inventory import revenue

    estimate = revenue.estimate_in_store(engine, "jinsong_north")
    per_space = maps.revenue_by_space(estimate)
    boiler = per_space.set_index("survey_ref").loc["JS-013"]
    # the boiler room on allocated land earns nothing as surveyed, most once it is resolved
    assert boiler["rent_wan"] == 0 and boiler["rent_resolved_wan"] > 300
    surveyed = estimate.variants["as surveyed"].allocation["rent_wan_year_mature"].sum()
    assert per_space["rent_wan"].sum() == pytest.approx(surveyed)
    for mode in ("full", "city"):
        m = maps.build_map(sample, revenue=per_space, mode=mode, lang="en")
        page = maps.save(m, tmp_path / f"{mode}.html").read_text(encoding="utf-8")
        expected = (
            f"{boiler['rent_resolved_wan']:,.1f} (Elderly care)"  # the class the scenario gives it
        )
        if mode == "city":
            rents = _city_payload(page)["columns"]["rent_resolved"]
            values = rents["v"] if "v" in rents else [rents["d"][c] for c in rents["c"]]
            assert expected in values
        else:
            assert expected in page and "Est. rent as surveyed" in page
    plain = maps.save(maps.build_map(sample), tmp_path / "plain.html").read_text(encoding="utf-8")
    assert "Est. rent" not in plain and "估算年租金" not in plain


def test_demo_map_in_headless_chromium(tmp_path):
    """The README's first command's map: offline, every feature drawn, popups with rents."""
    from inventory import demo

    chromium = _chromium()
    result = demo.run(db=tmp_path / "demo.sqlite", out_dir=tmp_path / "maps")
    page = result.map_html.read_text(encoding="utf-8")
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    flags = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(
        [*flags, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    found = re.search(
        r'<pre id="probe" data-paths="(\d+)" data-popups="(\d+)">(.*?)</pre>', dom, re.S
    )
    assert found, dom[-2000:]
    from inventory.db import connect

    engine = connect(str(tmp_path / "demo.sqlite"))
    spaces, communities = listing.spaces(engine), listing.communities(engine)
    engine.dispose()
    assert int(found.group(1)) == _expected_paths(spaces, communities, result.bundles)
    assert int(found.group(2)) >= len(spaces) == 22
    text = re.sub(r"\s+", " ", found.group(3))
    boiler = maps.revenue_by_space(result.revenue).set_index("survey_ref").loc["JS-013"]
    assert boiler["rent_resolved_wan"] >= 350  # "≥ 3.5 million yuan/year" once resolved
    assert f"产权理顺后年租金 万元 {boiler['rent_resolved_wan']:,.1f}" in text
    assert "产权问题 划拨用地" in text  # its gap named in the map's language, not as a code
    _screenshot(flags, result.map_html, tmp_path / "demo.png")


def _payloads(marker) -> dict[str, str]:
    """Jinja template payloads, one per text field: each would show or do something if run."""
    run = "{{ cycler.__init__.__globals__.os.popen('touch " + str(marker) + "').read() }}"
    return {
        "编号": "T-{{ 7*191919 }}",
        "名称": "{{ 7*192919 }}",
        "备注": run,
        "产权单位": "{% for i in range(3) %}loop{% endfor %}",
        "当前用途": "{{ ' broken",
        "争议说明": "{# comment #}{{ config }}",
        "经营权人": "{{ self.__init__.__globals__ }}",
        "产权证号": "${7*193919}{{7*193919}}",
    }


@pytest.mark.parametrize("mode", ["full", "city"])
def test_template_text_in_the_data_is_never_run(engine, tmp_path, mode):
    """No text from the store or the command line reaches a template (issue #17, item 1)."""
    marker = tmp_path / "ran"
    payloads = _payloads(marker)
    rows = [{"类型": "门房", "geometry": room(0, 0), **payloads}]
    community = "{{ 7*194919 }}社区"
    import_file(engine, write(frame(rows), tmp_path / "t.geojson"), community=community)
    spaces = listing.spaces(engine)
    assert len(spaces) == 1
    bundles, members = find_bundles(spaces)
    title = "{{ 7*195919 }} {% if true %}yes{% endif %}"
    m = maps.build_map(spaces, bundles=bundles, members=members, title=title, mode=mode)
    page = maps.save(m, tmp_path / "t.html").read_text(encoding="utf-8")
    assert not marker.exists()
    # seven digits, not inside a longer word: the page's element ids are random hex, in
    # which a short number turns up now and then (1337 did)
    for product in (7 * 191919, 7 * 192919, 7 * 193919, 7 * 195919):
        assert not re.search(rf"(?<![0-9A-Za-z]){product}(?![0-9A-Za-z])", page), product
    assert "looploop" not in page and "yes</b>" not in page
    assert "{{ 7*195919 }}" in page  # the title, shown as typed
    if mode == "city":
        data = _city_payload(page)
        columns = {
            name: c["v"] if "v" in c else [c["d"][i] for i in c["c"]]
            for name, c in data["columns"].items()
        }
        assert columns["notes"] == [payloads["备注"]]
        assert columns["survey_ref"] == [payloads["编号"]]
        assert columns["owner"] == [payloads["产权单位"]]
        assert "{{ 7*194919 }}社区" in page  # the community's totals circle
    else:
        for text in (payloads["编号"], payloads["名称"], payloads["产权单位"]):
            assert text in page or json.dumps(text, ensure_ascii=False)[1:-1] in page
        assert html.escape(payloads["备注"]) in page or "os.popen" in page


def test_map_follows_the_chosen_policy(engine, sample, tmp_path):
    path, _ = maps.map_from_store(engine, tmp_path / "b.html", policy="beijing-2021", lang="en")
    page = path.read_text(encoding="utf-8")
    assert "community services under a temporary permit (Beijing 2021)" in page
    default, _ = maps.map_from_store(engine, tmp_path / "d.html", lang="en")
    assert "Beijing 2021" not in default.read_text(encoding="utf-8")


DELIVERABLE_PROBE = """
<script>
window.addEventListener("load", function () {
  setTimeout(function () {
    var map = null;
    for (var k in window) { try { if (window[k] instanceof L.Map) { map = window[k]; } } catch (e) {} }
    var out = document.createElement("pre");
    out.id = "probe";
    var fills = {};
    map.eachLayer(function (layer) {
      if (layer.feature && layer.feature.properties && layer._path && layer.feature.properties.color_key
          && layer._path.getAttribute("fill").indexOf("url(") !== 0) {
        fills[layer.feature.properties.color_key] = layer._path.getAttribute("fill");
      }
    });
    map.setZoom(18, {animate: false});
    var labels = Array.prototype.map.call(document.querySelectorAll(".inventory-label"), function (n) { return n.textContent; });
    var scale = Array.prototype.map.call(document.querySelectorAll(".leaflet-control-scale-line"), function (n) { return n.textContent; });
    var result = {
      fills: fills,
      labels: labels,
      htmlInLabels: document.querySelectorAll(".inventory-label b").length,
      scale: scale,
      north: document.querySelectorAll(".inventory-north").length,
      papers: Array.prototype.map.call(document.querySelectorAll(".inventory-print button[data-paper]"), function (b) { return b.getAttribute("data-paper"); }),
      png: document.querySelectorAll(".inventory-print .inventory-png").length,
      found: map.inventoryFind("JS-013"),
      popup: (document.querySelector(".leaflet-popup-content") || {}).textContent || "",
      missing: map.inventoryFind("NO-SUCH-ROOM")
    };
    map.inventoryPng().then(function (url) {
      var img = new Image();
      img.onload = function () {
        var c = document.createElement("canvas");
        c.width = img.width; c.height = img.height;
        var ctx = c.getContext("2d");
        ctx.drawImage(img, 0, 0);
        var data = ctx.getImageData(0, 0, c.width, c.height).data, colours = {}, ink = 0;
        for (var i = 0; i < data.length; i += 4 * 37) {
          colours[data[i] + "," + data[i + 1] + "," + data[i + 2]] = 1;
          if (data[i] + data[i + 1] + data[i + 2] < 600) { ink++; }
        }
        result.pngWidth = img.width;
        result.pngColours = Object.keys(colours).length;
        result.pngInk = ink;
        out.textContent = JSON.stringify(result);
        document.body.appendChild(out);
      };
      img.src = url;
    }).catch(function (e) { result.error = String(e); out.textContent = JSON.stringify(result); document.body.appendChild(out); });
  }, 300);
});
</script>
"""


def test_a_map_to_hand_out_in_headless_chromium(mapped, tmp_path):
    """Coloured by kind, labelled, with north arrow, metric scale, search, print and PNG."""
    dom, chromium, path = _render_with_probe(mapped, tmp_path, DELIVERABLE_PROBE, color_by="kind")
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    result = json.loads(html.unescape(found.group(1)))
    assert "error" not in result, result.get("error")
    fills = result["fills"]
    assert fills["boiler_room"] == maps.KIND_COLOURS["boiler_room"]
    assert fills["boiler_room"] != fills["bike_shed"]  # two kinds differ in colour
    assert any(label.startswith("JS-013") for label in result["labels"])
    assert "X-1 <b>bold</b>" in result["labels"] and result["htmlInLabels"] == 0  # as text
    assert len(result["scale"]) == 1 and re.fullmatch(r"\d+ k?m", result["scale"][0])
    assert result["north"] == 1 and result["papers"] == ["A4", "A3"] and result["png"] == 1
    assert result["found"] is True and "JS-013" in result["popup"]
    assert result["missing"] is False
    # the PNG is the map at twice the screen's pixels, with ink and colour on it
    assert result["pngWidth"] > 1000 and result["pngColours"] > 10 and result["pngInk"] > 500
    page = path.read_text(encoding="utf-8")
    assert "劲松北社区 存量空间资源图" in page and "调查日期" in page


def test_colour_by_needs_what_it_shows(mapped):
    spaces, *_ = mapped
    with pytest.raises(maps.InputError, match="status, kind, vacancy, bundle, use"):
        maps.build_map(spaces, color_by="rent")
    with pytest.raises(maps.InputError, match="scenario"):
        maps.build_map(spaces, color_by="use")


def test_classes_cut_by_quantiles_and_natural_breaks():
    values = np.array([0.0, 1, 2, 3, 10, 11, 12, 50, 51, np.nan])
    for scheme in maps.CLASS_SCHEMES:
        classes, legend = maps.classify(values, "blocking_share", scheme, "zh")
        assert classes[-1] == len(maps.CLASS_COLOURS["blocking_share"])  # no value
        assert legend[-1] == ("无数据", maps.NO_CATEGORY)
        known = classes[:-1]
        assert list(known) == sorted(known) and known[0] < known[-1]  # more, redder
    breaks, _ = maps.classify(values, "blocking_share", "natural_breaks", "en")
    assert breaks[7] == breaks[8] and breaks[6] < breaks[7]  # 50 and 51 together
    one, legend = maps.classify(np.array([5.0, 5.0]), "revenue", "quantiles", "en")
    assert len(set(one)) == 1 and len(legend) == 1


def test_city_circles_are_classed_by_the_chosen_measure(mapped, tmp_path):
    spaces, communities, *_ = mapped
    copies = []
    for i in range(6):  # six communities, i of their spaces with an unknown owner
        copy = spaces.copy()
        copy["community"] = f"C{i}"
        copy["owner_name"] = [None if j < 3 * i else o for j, o in enumerate(copy["owner_name"])]
        copy.geometry = copy.geometry.translate(0.02 * i, 0)
        copies.append(copy)
    city = gpd.GeoDataFrame(pd.concat(copies, ignore_index=True), crs=4326)
    for scheme in maps.CLASS_SCHEMES:
        page = maps.save(
            maps.build_map(city, mode="city", classes=scheme), tmp_path / f"city_{scheme}.html"
        ).read_text(encoding="utf-8")
        config = json.loads(
            re.search(r"inventoryCityMap\(map_\w+, (\{.*?\})\); \}\);", page).group(1)
        )
        totals = sorted(config["totals"], key=lambda t: t["value"])
        assert [t["name"] for t in totals] == [f"C{i}" for i in range(6)]
        assert totals[0]["cls"] < totals[-1]["cls"]  # a class of their own colour
        assert {config["classColours"][t["cls"]] for t in totals} <= set(
            maps.CLASS_COLOURS["blocking_share"]
        )
        assert "存在产权障碍的空间占比（%）" in page and "legend-sizes" in page
    with pytest.raises(maps.InputError, match="scenario"):
        maps.build_map(city, mode="city", city_measure="revenue")


def test_a_map_of_one_district_holds_its_communities_only(engine, sample, tmp_path):
    from typer.testing import CliRunner

    from inventory.bundles import bundles_in_store
    from inventory.cli import app

    other = gpd.GeoDataFrame(
        {"名称": ["海淀一社区"], "所属区": ["海淀区"]},
        geometry=[room(3000, 0, 200, 200)],
        crs=4326,
    )
    import_file(engine, write(other, tmp_path / "haidian.geojson"), communities=True)
    rooms = frame(
        [
            {"编号": "HD-1", "类型": "门房", "geometry": room(3050, 50)},
            {"编号": "HD-2", "类型": "配套用房", "geometry": room(3065, 50)},
        ]
    )
    import_file(engine, write(rooms, tmp_path / "hd.geojson"), community="海淀一社区")
    path, n = maps.map_from_store(engine, tmp_path / "hd.html", district="海淀区", mode="full")
    page = path.read_text(encoding="utf-8")
    assert n == 2 and "HD-1" in page and "HD-2" in page
    assert "JS-" not in page and "劲松北社区" not in page
    _, every = maps.map_from_store(engine, tmp_path / "all.html", mode="full")
    assert every == len(sample) + 2
    # the bundles of a district are those of its communities
    chaoyang, _ = bundles_in_store(engine, district="朝阳区")
    jinsong, _ = bundles_in_store(engine, community="劲松北社区")
    haidian, members = bundles_in_store(engine, district="海淀区")
    assert chaoyang["members"].tolist() == jinsong["members"].tolist() and len(jinsong)
    assert haidian["members"].tolist() == ["HD-1, HD-2"]
    assert set(members["community"]) == {"海淀一社区"}
    with pytest.raises(maps.InputError, match="Districts in the store: 朝阳区, 海淀区"):
        maps.map_from_store(engine, tmp_path / "x.html", district="西城区")
    result = CliRunner().invoke(
        app,
        [
            "map",
            str(tmp_path / "x.html"),
            "--district",
            "西城区",
            "--db",
            engine.url.render_as_string(hide_password=False),
        ],
    )
    assert result.exit_code == 1 and "`district='西城区'`" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "x.html").exists()

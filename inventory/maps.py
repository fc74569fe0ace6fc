"""Planners' maps: one self-contained HTML file that opens anywhere, even offline.

Spaces are drawn per kind (each a layer that can be switched off), coloured by title
status, with blocking gaps outlined in red; community boundaries and bundles are
outlined; parking shows its capacity. Labels and the legend are in Chinese or English.
Leaflet (from the npm registry, shipped in ``inventory/static/leaflet``) is inlined and
Folium's other CDN assets are left out, so the file needs no network; basemap tiles are
optional. Every attribute is HTML-escaped before it reaches the page: Folium's popups
insert values as HTML, so a surveyor's note holding ``<script>`` must arrive as text.
"""

from __future__ import annotations

import html
import json
from datetime import date
from pathlib import Path

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
from folium.features import GeoJsonPopup, GeoJsonTooltip

from inventory.codes import CERTIFICATE_STATUS, KIND, LAND_TYPE
from inventory.errors import InputError
from inventory.gaps import annotate

STATIC = Path(__file__).resolve().parent / "static" / "leaflet"
STATUS_COLOURS = {
    "clean": "#2e7d32",
    "minor": "#f9a825",
    "transitional": "#ef6c00",
    "blocking": "#c62828",
}
LABELS = {
    "zh": {
        "clean": "产权清晰",
        "minor": "轻微问题",
        "transitional": "过渡期许可",
        "blocking": "产权障碍",
        "legend": "产权状况",
        "bundles": "空间组团",
        "community": "社区边界",
        "survey_ref": "编号",
        "kind": "类型",
        "name": "名称",
        "floor": "建筑面积 m²",
        "usable": "使用面积 m²",
        "owner": "产权单位",
        "land": "土地性质",
        "certificate": "产权证",
        "gap": "产权问题",
        "bundle": "组团",
        "parking": "车位",
        "notes": "备注",
        "data_date": "数据日期",
        "title": "存量空间资源图",
    },
    "en": {
        "clean": "Clean title",
        "minor": "Minor issue",
        "transitional": "Transitional permit",
        "blocking": "Blocking gap",
        "legend": "Title status",
        "bundles": "Bundles",
        "community": "Community boundary",
        "survey_ref": "Ref",
        "kind": "Kind",
        "name": "Name",
        "floor": "Floor area m²",
        "usable": "Usable area m²",
        "owner": "Owner",
        "land": "Land",
        "certificate": "Certificate",
        "gap": "Title gap",
        "bundle": "Bundle",
        "parking": "Parking spaces",
        "notes": "Notes",
        "data_date": "Data date",
        "title": "Stock-space inventory",
    },
}
POPUP_FIELDS = (
    "survey_ref",
    "kind",
    "name",
    "floor",
    "usable",
    "parking",
    "owner",
    "land",
    "certificate",
    "gap",
    "bundle",
    "notes",
)


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:,.1f}"
    return html.escape(str(value))


def _code_label(codes, value: object, lang: str) -> str:
    return _text(codes.label(value, lang)) if isinstance(value, str) and value else ""


def _popup_frame(spaces: gpd.GeoDataFrame, bundle_of: dict, lang: str) -> gpd.GeoDataFrame:
    """Return the spaces with escaped, labelled text columns for popups and the status."""
    g = annotate(spaces)
    out = gpd.GeoDataFrame(
        {
            "survey_ref": g["survey_ref"].map(_text),
            "kind": g["kind"].map(lambda k: _text(KIND.label(k, lang))),
            "name": g["name"].map(_text),
            "floor": g["floor_area_m2"].astype(float).map(_text),
            "usable": g["usable_area_m2"].astype(float).map(_text),
            "parking": g["parking_spaces"]
            .astype(float)
            .map(lambda v: "" if np.isnan(v) else f"{v:,.0f}"),
            "owner": g["owner_name"].map(_text),
            "land": g["land_type"].map(lambda v: _code_label(LAND_TYPE, v, lang)),
            "certificate": g["certificate_status"].map(
                lambda v: _code_label(CERTIFICATE_STATUS, v, lang)
            ),
            "gap": [_text(", ".join(gaps)) if gaps else "" for gaps in g["gaps"]],
            "bundle": [_text(bundle_of.get(r, "")) for r in g["survey_ref"]],
            "notes": g["notes"].map(_text),
            "status": g["gap_severity"].fillna("clean"),
            "kind_code": g["kind"],
        },
        geometry=g.geometry.values,
        crs=4326,
    )
    return out


def _style(feature: dict) -> dict:
    status = feature["properties"]["status"]
    return {
        "fillColor": STATUS_COLOURS[status],
        "color": "#b71c1c" if status == "blocking" else "#37474f",
        "weight": 3 if status == "blocking" else 1,
        "fillOpacity": 0.6,
    }


def build_map(
    spaces: gpd.GeoDataFrame,
    *,
    communities: gpd.GeoDataFrame | None = None,
    bundles: gpd.GeoDataFrame | None = None,
    members: pd.DataFrame | None = None,
    lang: str = "zh",
    title: str | None = None,
    data_date: date | None = None,
    tiles: str | None = None,
) -> folium.Map:
    """Return a Folium map of the spaces (EPSG:4326), ready for :func:`save`.

    Raises:
        InputError: an unknown language, no spaces, or an unknown tile source.

    """
    if lang not in LABELS:
        raise InputError(f"--lang {lang!r}: use zh or en.")
    if spaces.empty:
        raise InputError("No spaces to map: import a survey first, or check --community/--kind.")
    if tiles not in (None, "none", "osm"):
        raise InputError(f"--tiles {tiles!r}: use none (default, offline) or osm.")
    t = LABELS[lang]
    minx, miny, maxx, maxy = spaces.total_bounds
    m = folium.Map(
        location=[(miny + maxy) / 2, (minx + maxx) / 2],
        tiles=None,
        prefer_canvas=False,
        control_scale=True,
        zoom_start=17,
    )
    # no CDN: Leaflet is inlined by save(); jQuery, Bootstrap and fonts are not needed
    m.default_js = []
    m.default_css = []
    if tiles == "osm":
        folium.TileLayer("OpenStreetMap", name="OpenStreetMap").add_to(m)
    m.fit_bounds([[miny, minx], [maxy, maxx]])
    if communities is not None and not communities.empty:
        c = communities[["name", "geometry"]].copy()
        c["name"] = c["name"].map(_text)
        folium.GeoJson(
            c.to_json(ensure_ascii=False),
            name=t["community"],
            style_function=lambda f: {
                "color": "#1565c0",
                "weight": 2,
                "dashArray": "6 4",
                "fill": False,
            },
            tooltip=GeoJsonTooltip(fields=["name"], labels=False),
        ).add_to(m)
    bundle_of = {}
    if members is not None and not members.empty:
        bundle_of = dict(zip(members["survey_ref"], members["bundle_id"], strict=True))
    # one feature per parking point: Leaflet draws a MultiPoint as a group of markers whose
    # children carry no feature, and Folium's popup code then fails on click
    features = _popup_frame(spaces, bundle_of, lang)
    points = features.geom_type.isin(["MultiPoint"])
    if points.any():
        features = pd.concat(
            [features[~points], features[points].explode(index_parts=False)], ignore_index=True
        )
    fields = list(POPUP_FIELDS)
    space_layers: list[str] = []
    outline_layers: dict[str, tuple[str, str]] = {}  # layer name → (colour, dash)
    if communities is not None and not communities.empty:
        outline_layers[t["community"]] = ("#1565c0", "6 4")
    for kind in KIND.codes:
        layer = features[features["kind_code"] == kind]
        if layer.empty:
            continue
        count = layer["survey_ref"].nunique()  # spaces, not the points of a parking row
        group = folium.FeatureGroup(name=f"{KIND.label(kind, lang)} ({count})")
        space_layers.append(group.layer_name)
        folium.GeoJson(
            layer.drop(columns="kind_code").to_json(ensure_ascii=False),
            style_function=_style,
            marker=folium.CircleMarker(radius=7, fill=True),
            popup=GeoJsonPopup(fields=fields, aliases=[t[f] for f in fields], localize=False),
            tooltip=GeoJsonTooltip(fields=["survey_ref", "kind"], labels=False),
        ).add_to(group)
        group.add_to(m)
    if bundles is not None and not bundles.empty:
        b = bundles[["bundle_id", "members", "usable_area_m2", "geometry"]].copy()
        b["members"] = b["members"].map(_text)
        group = folium.FeatureGroup(name=f"{t['bundles']} ({len(b)})")
        outline_layers[group.layer_name] = ("#6a1b9a", "3 3")
        folium.GeoJson(
            b.to_json(ensure_ascii=False),
            style_function=lambda f: {
                "color": "#6a1b9a",
                "weight": 2,
                "dashArray": "3 3",
                "fillOpacity": 0.05,
            },
            tooltip=GeoJsonTooltip(fields=["bundle_id", "members", "usable_area_m2"], labels=False),
        ).add_to(group)
        group.add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    heading = _text(title or t["title"])
    when = (data_date or date.today()).isoformat()
    legend_rows = (
        '<div class="legend-spaces">'
        + "".join(
            f'<div><span style="display:inline-block;width:12px;height:12px;background:{colour};'
            f'margin-right:6px;border:1px solid #555"></span>{html.escape(t[status])}</div>'
            for status, colour in STATUS_COLOURS.items()
        )
        + "</div>"
    )
    # one entry per outlined layer; each shows only while its layer is on
    legend_rows += "".join(
        f'<div class="legend-layer" data-layer="{html.escape(name)}"><span style="display:'
        f"inline-block;width:16px;height:0;border-top:2px dashed {colour};margin:0 6px 3px 0"
        f'"></span>{html.escape(name.split(" (")[0])}</div>'
        for name, (colour, _dash) in outline_layers.items()
    )
    m.get_root().html.add_child(
        folium.Element(
            f'<div id="inventory-title" style="position:fixed;top:10px;left:50px;z-index:1000;'
            f"background:white;padding:6px 10px;border-radius:4px;font:14px sans-serif;"
            f'box-shadow:0 1px 4px rgba(0,0,0,.3)"><b>{heading}</b><br>'
            f"<small>{html.escape(t['data_date'])}: {when}</small></div>"
            f'<div id="inventory-legend" style="position:fixed;bottom:30px;right:10px;z-index:1000;'
            f"background:white;padding:8px 10px;border-radius:4px;font:13px sans-serif;"
            f'box-shadow:0 1px 4px rgba(0,0,0,.3)"><b>{html.escape(t["legend"])}</b>{legend_rows}</div>'
        )
    )
    # legends switch with their layers: outline entries follow their layer, the title-status
    # key shows while any layer of spaces is on (on load: the map is defined after this)
    toggle = f"""
    window.addEventListener("load", function () {{
      var map = {m.get_name()};
      var spaceLayers = {json.dumps(space_layers, ensure_ascii=False)};
      var shown = new Set(spaceLayers);
      function refresh() {{
        var key = document.querySelector("#inventory-legend .legend-spaces");
        if (key) {{ key.style.display = shown.size ? "" : "none"; }}
      }}
      function change(name, on) {{
        if (spaceLayers.indexOf(name) >= 0) {{ if (on) {{ shown.add(name); }} else {{ shown.delete(name); }} refresh(); }}
        document.querySelectorAll("#inventory-legend .legend-layer").forEach(function (el) {{
          if (el.getAttribute("data-layer") === name) {{ el.style.display = on ? "" : "none"; }}
        }});
      }}
      map.on("overlayadd", function (e) {{ change(e.name, true); }});
      map.on("overlayremove", function (e) {{ change(e.name, false); }});
    }});
    """
    m.get_root().script.add_child(folium.Element(toggle))
    return m


def communities_frame(engine, names: list[str] | None = None) -> gpd.GeoDataFrame:
    """Return community boundaries from the store (EPSG:4326)."""
    import shapely
    from sqlalchemy import func, select

    from inventory.models import Community

    stmt = select(Community.name, func.ST_AsBinary(Community.boundary)).where(
        Community.boundary.isnot(None)
    )
    if names:
        stmt = stmt.where(Community.name.in_(names))
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return gpd.GeoDataFrame(
        {"name": [r[0] for r in rows]},
        geometry=[shapely.from_wkb(bytes(r[1])) for r in rows],
        crs=4326,
    )


def save(m: folium.Map, path: str | Path) -> Path:
    """Write ``m`` as one HTML file with Leaflet inlined; refuse any remote script or style.

    Raises:
        InputError: the page would still load something from the network (a bug).

    """
    root = m.get_root()
    js = (STATIC / "leaflet.js").read_text(encoding="utf-8")
    css = (STATIC / "leaflet.css").read_text(encoding="utf-8")
    root.header.add_child(
        folium.Element(f"<style>{css}</style>"), name="leaflet_css_inline", index=0
    )
    root.header.add_child(
        folium.Element(f"<script>{js}</script>"), name="leaflet_js_inline", index=1
    )
    page = root.render()
    for marker in ('<script src="http', '<link rel="stylesheet" href="http'):
        if marker in page:
            raise InputError(
                f"The map would load {marker!r}… from the network; refusing to write it."
            )
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(page, encoding="utf-8")
    return p

"""Planners' maps: one self-contained HTML file that opens anywhere, even offline.

Spaces are drawn per kind (each a layer that can be switched off), coloured by title
status, with blocking gaps outlined in red; community boundaries and bundles are
outlined; parking shows its capacity. Labels and the legend are in Chinese or English.
Leaflet (from the npm registry, shipped in ``inventory/static/leaflet``) is inlined and
Folium's other CDN assets are left out, so the file needs no network; basemap tiles are
optional. User text is data, never code: the features reach the page as one JSON value
(``<`` escaped) that ``static/full_map.js`` or ``static/city_map.js`` draws, writing every
text as DOM text; no text from the store or the command line is ever parsed as a Jinja
template (branca compiles an element's text, and re-reads each element's output, as one).
"""

from __future__ import annotations

import base64
import gzip
import html
import json
from datetime import date
from pathlib import Path

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from branca.element import Element
from jinja2 import Template

from inventory import basemaps, i18n
from inventory.codes import CERTIFICATE_STATUS, KIND, LAND_TYPE, VACANCY
from inventory.defaults import DEFAULT_MAX_GAP_M
from inventory.errors import InputError
from inventory.gaps import STATUS_COLOURS, annotate, annotated_policy, gap_label
from inventory.geodesy import metres_per_degree

STATIC = Path(__file__).resolve().parent / "static" / "leaflet"
FULL_LIMIT = 3_000  # above this many spaces, mode "auto" draws the city map
DETAIL_ZOOM = 16  # the city map draws spaces from this zoom on (about 2 km across)
MAX_DRAWN = 5_000  # spaces drawn at once on the city map; more asks to zoom in
COORD_STEP = 1e-6  # degrees (about 0.1 m): coordinates are rounded to this on the city map
#: The map's words in each language (the catalogue is :data:`inventory.i18n.MAP`).
LABELS = {lang: i18n.words(i18n.MAP, lang) for lang in i18n.LANGUAGES}
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
#: What a map may colour its spaces by (``color_by``).
COLOR_BY = ("status", "kind", "vacancy", "bundle", "use")
#: Fill colours of the kinds: distinct on screen and in print, none of them the red of a
#: blocking outline.
KIND_COLOURS = {
    "boiler_room": "#8c510a",
    "coal_yard": "#525252",
    "bike_shed": "#4575b4",
    "gatehouse": "#8073ac",
    "basement": "#35978f",
    "idle_land": "#a6d96a",
    "parking": "#92c5de",
    "service_room": "#f1a340",
    "dwelling": "#de77ae",
    "public_housing": "#f1b6da",
    "shop": "#fee08b",
    "land_parcel": "#c7e9c0",
    "ev_charger": "#1a9850",
    "ad_spot": "#bcbddc",
    "lift": "#bf812d",
    "other": "#bdbdbd",
}
VACANCY_COLOURS = {"idle": "#d95f02", "under_used": "#fdb863", "in_use": "#66a61e"}
#: Colours given in turn to bundles and uses (ColorBrewer Set2 and Dark2: print-safe).
CYCLE = (
    "#66c2a5",
    "#fc8d62",
    "#8da0cb",
    "#e78ac3",
    "#a6d854",
    "#ffd92f",
    "#e5c494",
    "#1b9e77",
    "#d95f02",
    "#7570b3",
    "#e7298a",
    "#66a61e",
    "#e6ab02",
    "#a6761d",
)
NO_CATEGORY = "#d9d9d9"
#: How the title status is drawn when the fill says something else: outline colour,
#: width and dashes (blocking is hatched too).
STATUS_OUTLINES = {
    "clean": ("#546e7a", 1, None),
    "minor": ("#f9a825", 2.5, "2 3"),
    "transitional": ("#ef6c00", 2.5, "6 3"),
    "blocking": ("#c62828", 3, None),
}
LABEL_ZOOM = 17  # labels (编号 / 名称) show from this zoom on
#: What the city map's community circles are classed by (``city_measure``).
CITY_MEASURES = ("blocking_share", "usable_per_household", "revenue")
#: How the classes are cut (``classes``): equal counts, or natural breaks (Fisher-Jenks).
CLASS_SCHEMES = ("quantiles", "natural_breaks")
CITY_CLASSES = 5
#: Sequential colours of the classes: more blocking is redder; more area or rent bluer.
CLASS_COLOURS = {
    "blocking_share": ("#ffffb2", "#fecc5c", "#fd8d3c", "#f03b20", "#bd0026"),
    "usable_per_household": ("#ffffcc", "#a1dab4", "#41b6c4", "#2c7fb8", "#253494"),
    "revenue": ("#ffffcc", "#a1dab4", "#41b6c4", "#2c7fb8", "#253494"),
}

#: Popup fields added when the map is given a revenue estimate.
REVENUE_FIELDS = ("use", "rent", "rent_resolved")
#: Popup fields added when the map is given the tenure records.
TENURE_FIELDS = ("rights",)


class _Verbatim(Element):
    """A piece of the page written out as it is, never parsed as a Jinja template.

    ``folium.Element(text)`` compiles ``text`` as a template, so a ``{{ … }}`` in a
    surveyor's note or a title would run on the machine that writes the map. Here the
    text is the *value* of a fixed template: Jinja outputs it and never evaluates it.
    """

    _template = Template("{{ this.text }}")

    def __init__(self, text: str):
        super().__init__()
        self.text = text


def _text(value: object, escape: bool = True) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:,.1f}"
    return html.escape(str(value)) if escape else str(value)


def _popup_frame(
    spaces: gpd.GeoDataFrame,
    bundle_of: dict,
    lang: str,
    revenue: pd.DataFrame | None = None,
    rights: pd.DataFrame | None = None,
) -> gpd.GeoDataFrame:
    """Return the spaces with labelled text columns for popups, and their title status.

    Text stays as typed: both renderers write it into the page as DOM text, never as HTML.
    """
    g = annotate(spaces, policy=annotated_policy(spaces))  # under the policy it was given

    def text(value: object) -> str:
        return _text(value, escape=False)

    def plain(column: pd.Series) -> pd.Series:
        """Return a text column as :func:`text` gives it, in one pass."""
        return column.astype(object).where(column.notna(), "").astype(str)

    def code(codes, value: object) -> str:
        return text(codes.label(value, lang)) if isinstance(value, str) and value else ""

    gap_texts: dict = {}  # a city's spaces share a few combinations of gaps

    def gap_text(gaps) -> str:
        if not gaps:
            return ""
        key = tuple(gaps)
        if key not in gap_texts:
            gap_texts[key] = text(", ".join(gap_label(gap, lang) for gap in gaps))
        return gap_texts[key]

    out = gpd.GeoDataFrame(
        {
            "survey_ref": plain(g["survey_ref"]),
            "kind": _by_value(g["kind"], lambda k: text(KIND.label(k, lang))),
            "name": plain(g["name"]),
            "floor": _by_value(g["floor_area_m2"].astype(float), text),
            "usable": _by_value(g["usable_area_m2"].astype(float), text),
            "parking": _by_value(
                g["parking_spaces"].astype(float),
                lambda v: "" if np.isnan(v) else f"{v:,.0f}",
            ),
            "owner": plain(g["owner_name"]),
            "land": _by_value(g["land_type"], lambda v: code(LAND_TYPE, v)),
            "certificate": _by_value(
                g["certificate_status"], lambda v: code(CERTIFICATE_STATUS, v)
            ),
            "gap": [gap_text(gaps) for gaps in g["gaps"]],
            "bundle": [text(bundle_of.get(r, "")) for r in g["survey_ref"]],
            "notes": plain(g["notes"]),
            **_revenue_columns(g["survey_ref"], revenue, lang, text),
            **_rights_column(g, rights, lang, text),
            "status": g["gap_severity"].fillna("clean"),
            "kind_code": g["kind"],
            "vacancy_code": g["vacancy"] if "vacancy" in g else None,
            "community": g["community"] if "community" in g else None,
            "usable_m2": g["usable_area_m2"].astype(float),
        },
        geometry=g.geometry.values,
        crs=4326,
    )
    return out


def _by_value(column: pd.Series, fn) -> pd.Series:
    """Return ``fn`` of each value of ``column``, called once per distinct value."""
    codes, uniques = pd.factorize(column, use_na_sentinel=False)
    if isinstance(uniques, pd.Index):
        uniques = uniques.to_numpy(dtype=object)
    texts = np.empty(len(uniques), dtype=object)
    texts[:] = [fn(v) for v in uniques]
    return pd.Series(texts[codes], index=column.index, dtype=object)


def _rights_column(g, rights: pd.DataFrame | None, lang: str, text) -> dict:
    """Each space's owners with shares, leases and permits (with uses and end), as one text."""
    if rights is None:
        return {}
    from inventory.codes import RIGHT_KIND

    live = rights[rights["status"].isin(["active", "approved", "applied"])]
    if live.empty:
        return {"rights": [""] * len(g)}
    # column by column: a city holds millions of rights
    kinds = {k: RIGHT_KIND.label(k, lang) for k in live["kind"].unique()}
    part = live["kind"].map(kinds) + ": " + live["holder"].astype(str)
    share = pd.to_numeric(live["share"], errors="coerce")
    part = part.where(share.isna(), part + " " + share.map(lambda v: f"{v:.0%}"))
    uses = live["allowed_uses"].map(lambda u: "、".join(u) if isinstance(u, list) else "")
    part = part.where(uses == "", part + " (" + uses + ")")
    until = " 至 " if lang == "zh" else " until "
    ends = live["end_date"].notna()
    part = part.where(~ends, part + until + live["end_date"].astype(str))
    keys = live["community"].astype(str) + "\x1f" + live["survey_ref"].astype(str)
    several = keys.duplicated(keep=False)  # most spaces have one right: no group to join
    joined = pd.concat(
        [
            pd.Series(part[~several].to_numpy(), index=keys[~several].to_numpy()),
            part[several].groupby(keys[several], sort=False).agg("; ".join),
        ]
    )
    wanted = g["community"].astype(str) + "\x1f" + g["survey_ref"].astype(str)
    found = joined.reindex(wanted.to_numpy()).fillna("").to_numpy(dtype=object)
    return {"rights": found.tolist()}  # texts already, as text() gives them


def _revenue_columns(refs: pd.Series, revenue: pd.DataFrame | None, lang: str, text) -> dict:
    if revenue is None:
        return {}
    by_ref = revenue.set_index("survey_ref")

    def rent(column: str) -> list[str]:
        values = by_ref[column].reindex(refs.to_numpy()).to_numpy(dtype=float)
        return ["" if np.isnan(v) else f"{v:,.1f}" for v in values]

    suffix = "zh" if lang == "zh" else "en"
    use = by_ref[f"use_{suffix}"].reindex(refs.to_numpy()).to_numpy(dtype=object)
    then = by_ref[f"use_resolved_{suffix}"].reindex(refs.to_numpy()).to_numpy(dtype=object)
    # the use after resolving shows when it changes (the target shares rebalance)
    resolved = [
        r + (f" ({b})" if isinstance(b, str) and b != a else "")
        for r, a, b in zip(rent("rent_resolved_wan"), use, then, strict=True)
    ]
    return {
        "use": [text(v) if isinstance(v, str) else "" for v in use],
        "rent": rent("rent_wan"),
        "rent_resolved": [text(v) for v in resolved],
    }


def revenue_by_space(result) -> pd.DataFrame:
    """Return per space of a revenue estimate its use and mature rent (万元/year).

    Rent as surveyed, and with every title gap resolved (which may bring in spaces the
    surveyed case leaves out); for :func:`build_map`'s ``revenue``.
    """
    columns = ["survey_ref", "use_class", "use_class_zh", "use_class_en", "rent_wan_year_mature"]
    names = {
        "use_class": "use",
        "use_class_zh": "use_zh",
        "use_class_en": "use_en",
        "rent_wan_year_mature": "rent_wan",
    }
    surveyed = result.variants["as surveyed"].allocation[columns].rename(columns=names)
    resolved = (
        result.variants["all gaps resolved"]
        .allocation[columns]
        .rename(
            columns={
                k: v.replace("use", "use_resolved").replace("rent_wan", "rent_resolved_wan")
                for k, v in names.items()
            }
        )
    )
    out = surveyed.merge(resolved, on="survey_ref", how="outer")
    # a space the surveyed case leaves out has no use there, only once gaps are resolved
    out["rent_wan"] = out["rent_wan"].fillna(0.0)
    out["rent_resolved_wan"] = out["rent_resolved_wan"].fillna(out["rent_wan"])
    for col in ("use", "use_zh", "use_en"):
        out[col.replace("use", "use_resolved")] = out[col.replace("use", "use_resolved")].fillna(
            out[col]
        )
    return out.rename(columns={"use": "use_class"})


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
    mode: str = "auto",
    revenue: pd.DataFrame | None = None,
    rights: pd.DataFrame | None = None,
    color_by: str = "status",
    source: str | None = None,
    city_measure: str = "blocking_share",
    classes: str = "quantiles",
    tiles_key: str | None = None,
    base: list[tuple[str, gpd.GeoDataFrame]] | None = None,
) -> folium.Map:
    """Return a Folium map of the spaces (EPSG:4326), ready for :func:`save`.

    ``color_by`` (:data:`COLOR_BY`): the fill says the title status (default), the kind,
    the vacancy, the bundle or the use in the scenario (needs ``revenue``); unless it is
    the status, the title status is drawn as the outline (blocking hatched). Every map has
    labels (编号 / 名称) from zoom :data:`LABEL_ZOOM`, a north arrow, a metric scale, a search
    box by reference or name, and print (A4 / A3 landscape) and save-PNG controls that lay
    out the title, legend, scale and ``source`` line. The title names the community when
    the spaces are of one; the date line gives the survey dates of the spaces shown
    (``data_date`` instead, when given). The city map classes its community circles by
    ``city_measure`` (:data:`CITY_MEASURES`: the share of spaces blocked, usable area per
    household, rent potential with ``revenue``) cut by ``classes`` (:data:`CLASS_SCHEMES`),
    sizes them by their spaces, and labels them.

    ``tiles``: none (offline, default) or an online source of
    :func:`inventory.basemaps.tiles` (osm, tianditu with ``tiles_key``, gaode — whose
    GCJ-02 tiles the data are shifted onto —, any xyzservices name). ``base``: (name,
    layer) pairs of the user's own data (:func:`inventory.basemaps.read_base`), inlined and
    drawn under the spaces, offline.

    ``revenue`` (from :func:`revenue_by_space`) adds each space's use in the scenario
    and its estimated rent, as surveyed and with gaps resolved, to the popups; ``rights``
    (:func:`inventory.tenure.records`) each space's owners with shares, leases and permits.

    ``mode``: ``full`` draws every space as a vector feature (a community: tens to
    thousands of spaces); ``city`` draws one circle of totals per community when zoomed
    out and, from zoom 16, the spaces in view on a canvas, from compressed data (100k
    spaces in a few MB); ``auto`` (default) picks ``city`` above 3,000 spaces.

    Raises:
        InputError: an unknown language, mode or tile source, or no spaces.

    """
    if lang not in LABELS:
        raise InputError(f"`lang={lang!r}`: use zh or en.")
    if mode not in ("auto", "full", "city"):
        raise InputError(f"`mode={mode!r}`: use auto, full (every space drawn) or city.")
    if spaces.empty:
        raise InputError(
            "No spaces to map: import a survey first, or check `community` and `kinds`."
        )
    source_tiles = basemaps.tiles(tiles, tiles_key)
    if source_tiles is not None and source_tiles.gcj02:  # put the data where the tiles are
        spaces = basemaps.to_gcj02(spaces)
        communities, bundles = basemaps.to_gcj02(communities), basemaps.to_gcj02(bundles)
        base = [(name, basemaps.to_gcj02(layer)) for name, layer in base or []]
    if color_by not in COLOR_BY:
        raise InputError(f"`color_by={color_by!r}`: use one of {', '.join(COLOR_BY)}.")
    if city_measure not in CITY_MEASURES:
        raise InputError(f"`city_measure={city_measure!r}`: use one of {', '.join(CITY_MEASURES)}.")
    if classes not in CLASS_SCHEMES:
        raise InputError(f"`classes={classes!r}`: use one of {', '.join(CLASS_SCHEMES)}.")
    if city_measure == "revenue" and revenue is None:
        raise InputError(
            "`city_measure=revenue` needs a scenario (`scenario=jinsong_north`) to estimate the rent."
        )
    if color_by == "use" and revenue is None:
        raise InputError(
            "`color_by=use` colours each space by its use in a scenario: give the scenario "
            "(`scenario=jinsong_north`), or colour by status, kind, vacancy or bundle."
        )
    if mode == "auto":
        mode = "city" if len(spaces) > FULL_LIMIT else "full"
    t = LABELS[lang]
    minx, miny, maxx, maxy = spaces.total_bounds
    m = folium.Map(
        location=[(miny + maxy) / 2, (minx + maxx) / 2],
        tiles=None,
        prefer_canvas=mode == "city",
        control_scale=False,  # metric only: map_tools.js adds it
        zoom_start=17,
    )
    # no CDN: Leaflet is inlined by save(); jQuery, Bootstrap and fonts are not needed
    m.default_js = []
    m.default_css = []
    for url, attribution, name, max_zoom, subdomains in source_tiles.layers if source_tiles else ():
        folium.TileLayer(
            tiles=url,
            attr=attribution,
            name=name,
            max_zoom=max_zoom,
            subdomains=subdomains,
            overlay=False,
        ).add_to(m)
    m.fit_bounds([[miny, minx], [maxy, maxx]])
    bundle_of = {}
    if members is not None and not members.empty:
        bundle_of = dict(zip(members["survey_ref"], members["bundle_id"], strict=True))
    has_communities = communities is not None and not communities.empty
    has_bundles = bundles is not None and not bundles.empty
    draw = _draw_city if mode == "city" else _draw_full
    fields = [*POPUP_FIELDS, *(REVENUE_FIELDS if revenue is not None else ())]
    if rights is not None:
        fields.insert(fields.index("owner") + 1, "rights")
    features = _popup_frame(spaces, bundle_of, lang, revenue=revenue, rights=rights)
    features["color_key"], legend = _categories(features, color_by, lang)
    features["label"] = [
        f"{r} {n}" if n and n != r else r
        for r, n in zip(features["survey_ref"], features["name"], strict=True)
    ]
    if revenue is not None:
        potential = revenue.set_index("survey_ref")["rent_resolved_wan"]
        features["potential_wan"] = (
            potential.reindex(spaces["survey_ref"].to_numpy()).fillna(0.0).to_numpy()
        )
    households = {}
    if has_communities and "households" in communities:
        households = dict(zip(communities["name"], communities["households"], strict=True))
    style = {
        "colorBy": color_by,
        "palette": {k: c for k, _, c in legend},
        "city": (city_measure, classes, households),
    }
    space_layers, outline_layers = draw(
        m,
        features,
        communities if has_communities else None,
        bundles if has_bundles else None,
        fields,
        lang,
        style,
    )
    names = spaces["community"].dropna().unique() if "community" in spaces else []
    heading = title or (f"{names[0]} {t['title']}" if len(names) == 1 else t["title"])
    when = f"{t['data_date']}: {data_date.isoformat()}" if data_date else _survey_dates(spaces, t)
    city_legend = style.get("classes")
    _add_title_and_legend(
        m, t, heading, when, space_layers, outline_layers, mode, legend, color_by, city_legend
    )
    _add_tools(m, t, heading, when, source, legend, outline_layers, color_by, city_legend, base)
    if source_tiles is None:  # no tiles: a white sheet, as printed
        m.get_root().header.add_child(
            _Verbatim("<style>.leaflet-container { background: #ffffff; }</style>"),
            name="inventory_white_sheet",
        )
    return m


def _survey_dates(spaces: pd.DataFrame, t: dict) -> str:
    """Return the line naming when the spaces shown were surveyed (first – last day)."""
    days = pd.to_datetime(spaces.get("surveyed_at"), errors="coerce").dropna()
    if days.empty:
        return t["no_survey_date"]
    first, last = days.min().date().isoformat(), days.max().date().isoformat()
    return f"{t['survey_dates']}: {first}" + (f" – {last}" if last != first else "")


def _categories(features: gpd.GeoDataFrame, color_by: str, lang: str) -> tuple[list, list]:
    """Return each space's colour key and the legend: (key, label, colour) in order."""
    t = LABELS[lang]
    if color_by == "status":
        keys = features["status"].tolist()
        return keys, [(s, t[s], c) for s, c in STATUS_COLOURS.items()]
    if color_by == "kind":
        keys = features["kind_code"].tolist()
        present = [k for k in KIND.codes if k in set(keys)]
        return keys, [(k, KIND.label(k, lang), KIND_COLOURS[k]) for k in present]
    if color_by == "vacancy":
        keys = [v if isinstance(v, str) and v else "none" for v in features["vacancy_code"]]
        legend = [
            (v, VACANCY.label(v, lang), VACANCY_COLOURS[v]) for v in VACANCY.codes if v in keys
        ]
        return keys, legend + ([("none", t["none"], NO_CATEGORY)] if "none" in keys else [])
    column = "bundle" if color_by == "bundle" else "use"
    keys = [v if v else "none" for v in features[column]]
    values = sorted({k for k in keys if k != "none"}, key=lambda v: (len(v), v))
    legend = [(v, v, CYCLE[i % len(CYCLE)]) for i, v in enumerate(values)]
    return keys, legend + ([("none", t["none"], NO_CATEGORY)] if "none" in keys else [])


def _draw_full(m, features, communities, bundles, fields, lang, style):
    """Draw every space, boundary and bundle as a vector feature (full_map.js, SVG).

    The features go to the page as one JSON value for ``full_map.js``, not through
    Folium's GeoJson elements: branca re-reads each element's output as a Jinja template,
    so a ``{{`` in a note would be evaluated when the page is written.
    """
    t = LABELS[lang]
    outline_layers: dict[str, str] = {}  # layer name → colour
    config: dict = {
        "colours": STATUS_COLOURS,
        "fields": fields,
        "fieldLabels": [t[f] for f in fields],
        **style,
        "outlines": {
            s: {"color": c, "weight": w, "dashArray": d} for s, (c, w, d) in STATUS_OUTLINES.items()
        },
        "noCategory": NO_CATEGORY,
        "labelZoom": LABEL_ZOOM,
    }
    if communities is not None:
        c = communities[["name", "geometry"]].copy()
        c["name"] = c["name"].map(lambda v: _text(v, escape=False))
        config["communities"] = {"name": t["community"], "data": _geojson(c)}
        outline_layers[t["community"]] = "#1565c0"
    # one feature per parking point: a MultiPoint would be one group of markers for many places
    points = features.geom_type.isin(["MultiPoint"])
    if points.any():
        features = pd.concat(
            [features[~points], features[points].explode(index_parts=False)], ignore_index=True
        )
    space_layers: list[str] = []
    config["layers"] = []
    for kind in KIND.codes:
        layer = features[features["kind_code"] == kind]
        if layer.empty:
            continue
        count = layer["survey_ref"].nunique()  # spaces, not the points of a parking row
        name = f"{KIND.label(kind, lang)} ({count})"
        space_layers.append(name)
        data = _geojson(layer.drop(columns=["kind_code", "vacancy_code", "community", "usable_m2"]))
        config["layers"].append({"name": name, "data": data})
    if bundles is not None:
        b = bundles[["bundle_id", "members", "usable_area_m2", "geometry"]].copy()
        b["members"] = b["members"].map(lambda v: _text(v, escape=False))
        b["usable_area_m2"] = b["usable_area_m2"].astype(float).map(_text)
        name = f"{t['bundles']} ({len(b)})"
        outline_layers[name] = "#6a1b9a"
        config["bundles"] = {"name": name, "data": _geojson(b)}
    _add_script(m, "full_map.js", "inventoryFullMap", config)
    return space_layers, outline_layers


def _geojson(frame: gpd.GeoDataFrame) -> dict:
    """Return a frame as a GeoJSON FeatureCollection (a value, for ``json.dumps``)."""
    return json.loads(frame.to_json(ensure_ascii=False, drop_id=True))


def _add_script(m: folium.Map, script: str, entry: str, config: dict) -> None:
    """Inline ``static/<script>`` and call ``entry(map, config)`` once the page has loaded.

    ``config`` is written as JSON with every ``<`` escaped, so no value can close the
    script element; it never passes through a template.
    """
    root = m.get_root()
    js = (STATIC.parent / script).read_text(encoding="utf-8")
    root.header.add_child(_Verbatim(f"<script>{js}</script>"), name=f"inventory_{entry}")
    config_js = json.dumps(config, ensure_ascii=False).replace("<", "\\u003c")
    root.script.add_child(
        _Verbatim(
            f'window.addEventListener("load", function () {{ {entry}({m.get_name()}, {config_js}); }});'
        )
    )


def _ragged(geoms, kind: str) -> dict:
    """Encode polygons or points as shapely ragged arrays with delta-coded 1e-6° integers."""
    geoms = np.asarray(shapely.force_2d(np.asarray(geoms, dtype=object)), dtype=object)
    if kind == "polygon":
        geoms = shapely.simplify(geoms, COORD_STEP, preserve_topology=True)
        multi = shapely.get_type_id(geoms) == 3  # Polygon → MultiPolygon: one offset layout
        geoms[multi] = shapely.multipolygons(geoms[multi][:, None])
        empty = {"type": kind, "xy": [], "offsets": [[0], [0], [0]]}
    else:
        single = shapely.get_type_id(geoms) == 0
        geoms[single] = shapely.multipoints(geoms[single][:, None])
        empty = {"type": kind, "xy": [], "offsets": [[0]]}
    if len(geoms) == 0:
        return empty
    _, coords, offsets = shapely.to_ragged_array(geoms)
    q = np.rint(coords / COORD_STEP).astype(np.int64)
    deltas = np.diff(q, axis=0, prepend=np.zeros((1, 2), dtype=np.int64))
    return {"type": kind, "xy": deltas.ravel().tolist(), "offsets": [o.tolist() for o in offsets]}


def _columns(frame: pd.DataFrame, names) -> dict:
    """Encode text columns: plain lists, or a dictionary and codes when values repeat."""
    out = {}
    for name in names:
        values = frame[name].astype(str).to_numpy()
        # hashed, then only the distinct values sorted (np.unique sorted a million strings)
        codes, uniques = pd.factorize(values, sort=True)
        if len(uniques) * 2 > len(values):
            out[name] = {"v": values.tolist()}
        else:
            out[name] = {"d": uniques.tolist(), "c": codes.tolist()}
    return out


def _totals(
    features: gpd.GeoDataFrame, measure: str, households: dict, lang: str, scheme: str
) -> tuple[list[dict], list[tuple[str, str]]]:
    """Return one circle per community, classed by ``measure``, and the classes' legend.

    A circle has where the community's spaces are, how many, their area and gaps; the
    legend is (range label, colour) per class.
    """
    at = shapely.point_on_surface(features.geometry.values)
    frame = pd.DataFrame(
        {
            "name": features["community"].fillna("").astype(str),
            "x": shapely.get_x(at),
            "y": shapely.get_y(at),
            "usable": features["usable_m2"].fillna(0.0),
            "blocking": features["status"].eq("blocking"),
            "potential": features["potential_wan"] if "potential_wan" in features else 0.0,
        }
    )
    bounds = features.geometry.bounds
    grouped = frame.groupby("name", sort=True).agg(
        lng=("x", "mean"),
        lat=("y", "mean"),
        count=("x", "size"),
        usable=("usable", "sum"),
        blocking=("blocking", "sum"),
        potential=("potential", "sum"),
    )
    # how far the community's spaces reach from its centre, in metres (at least 50 m)
    box = bounds.groupby(frame["name"].to_numpy(), sort=True).agg(
        {"minx": "min", "miny": "min", "maxx": "max", "maxy": "max"}
    )
    per_x, per_y = metres_per_degree(grouped["lat"].to_numpy())
    reach = np.maximum((box["maxx"] - box["minx"]) * per_x, (box["maxy"] - box["miny"]) * per_y)
    grouped["extent"] = np.maximum(50.0, 0.5 * reach)
    if measure == "blocking_share":
        values = 100.0 * grouped["blocking"] / grouped["count"]
    elif measure == "usable_per_household":
        homes = grouped.index.map(lambda n: households.get(n)).astype(float)
        values = grouped["usable"] / homes.where(homes > 0)
    else:
        values = grouped["potential"].astype(float)
    classes, legend = classify(values.to_numpy(dtype=float), measure, scheme, lang)
    return [
        {
            "name": name or "—",
            "lat": round(float(r.lat), 6),
            "lng": round(float(r.lng), 6),
            "count": int(r["count"]),
            "usable": round(float(r.usable)),
            "blocking": int(r.blocking),
            "extent": round(float(r.extent)),
            "value": None if np.isnan(v) else round(float(v), 1),
            "cls": int(c),
        }
        for (name, r), v, c in zip(grouped.iterrows(), values, classes, strict=True)
    ], legend


def classify(
    values: np.ndarray, measure: str, scheme: str, lang: str
) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Return each value's class (-1: no value) and the legend, (range label, colour) per class.

    Classes by mapclassify: ``quantiles`` (equal counts) or ``natural_breaks``
    (Fisher-Jenks, sampled above 2,000 values); at most :data:`CITY_CLASSES`, fewer when
    there are fewer distinct values.
    """
    import warnings

    import mapclassify

    t = LABELS[lang]
    colours = CLASS_COLOURS[measure]
    known = ~np.isnan(values)
    out = np.full(len(values), -1, dtype=int)
    legend: list[tuple[str, str]] = []
    distinct = np.unique(values[known])
    if len(distinct):
        k = min(CITY_CLASSES, len(distinct))
        if k == 1:
            bins = distinct
        else:
            with warnings.catch_warnings():  # "numba not installed": the pure-Python path is used
                warnings.simplefilter("ignore")
                if scheme == "quantiles":
                    found = mapclassify.Quantiles(values[known], k=k)
                elif len(distinct) > 2000:
                    found = mapclassify.FisherJenksSampled(values[known], k=k, pct=0.1)
                else:
                    found = mapclassify.FisherJenks(values[known], k=k)
            bins = np.unique(found.bins)
        out[known] = np.searchsorted(bins, values[known], side="left").clip(0, len(bins) - 1)
        # spread the palette over the classes there are
        pick = np.linspace(0, len(colours) - 1, len(bins)).round().astype(int)
        low = float(distinct[0])
        for i, high in enumerate(bins):
            legend.append((f"{_figure(low)} – {_figure(float(high))}", colours[pick[i]]))
            low = float(high)
        out[known] = pick[out[known]]
    if (~known).any():
        out[~known] = len(colours)
        legend.append((t["no_value"], NO_CATEGORY))
    return out, legend


def _figure(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}"


def _draw_city(m, features, communities, bundles, fields, lang, style):
    """Draw community totals zoomed out and the spaces in view zoomed in (city_map.js)."""
    t = LABELS[lang]
    measure, scheme, households = style["city"]
    totals, class_legend = _totals(features, measure, households, lang, scheme)
    style["classes"] = (t[f"measure_{measure}"], class_legend)
    is_point = features.geom_type.isin(["Point", "MultiPoint"]).to_numpy()
    features = pd.concat([features[~is_point], features[is_point]], ignore_index=True)
    n_polygons = int((~is_point).sum())
    kinds = [k for k in KIND.codes if (features["kind_code"] == k).any()]
    space_layers = [
        f"{KIND.label(k, lang)} ({int((features['kind_code'] == k).sum())})" for k in kinds
    ]
    statuses = list(STATUS_COLOURS)
    payload: dict = {
        "polygons": n_polygons,
        "kind": features["kind_code"].map({k: i for i, k in enumerate(kinds)}).tolist(),
        "status": features["status"].map({s: i for i, s in enumerate(statuses)}).tolist(),
        "fill": features["color_key"].map({k: i for i, k in enumerate(style["palette"])}).tolist(),
        "columns": _columns(features, fields),
        "geometry": {
            "polygons": _ragged(features.geometry.values[:n_polygons], "polygon"),
            "points": _ragged(features.geometry.values[n_polygons:], "point"),
        },
    }
    names = {"totals": t["totals"]}
    outline_layers: dict[str, str] = {}
    if communities is not None:
        names["community"] = t["community"]
        outline_layers[t["community"]] = "#1565c0"
        payload["communities"] = {
            "geometry": _ragged(communities.geometry.values, "polygon"),
            "columns": _columns(communities, ["name"]),
        }
    if bundles is not None:
        names["bundles"] = f"{t['bundles']} ({len(bundles)})"
        outline_layers[names["bundles"]] = "#6a1b9a"
        b = bundles[["bundle_id", "members", "usable_area_m2"]].copy()
        b["usable_area_m2"] = b["usable_area_m2"].astype(float).map(_text)
        payload["bundles"] = {
            "geometry": _ragged(bundles.geometry.values, "polygon"),
            "columns": _columns(b, ["bundle_id", "members", "usable_area_m2"]),
        }
    packed = base64.b64encode(
        gzip.compress(json.dumps(payload, ensure_ascii=False).encode("utf-8"), 6, mtime=0)
    ).decode("ascii")
    config = {
        "detailZoom": DETAIL_ZOOM,
        "maxDrawn": MAX_DRAWN,
        "statuses": statuses,
        "colours": STATUS_COLOURS,
        "colorBy": style["colorBy"],
        "palette": list(style["palette"].values()),
        "outlines": [STATUS_OUTLINES[s][0] for s in statuses],
        "kinds": [{"code": k, "layer": name} for k, name in zip(kinds, space_layers, strict=True)],
        "names": names,
        "fields": fields,
        "fieldLabels": [t[f] for f in fields],
        "labels": {
            "measure": t[f"measure_{measure}"],
            **{
                key: t[key]
                for key in (
                    "community_name",
                    "spaces",
                    "usable",
                    "blocking_spaces",
                    "bundle",
                    "members",
                    "zoom_in",
                    "too_many",
                    "old_browser",
                )
            },
        },
        "totals": totals,
        "classColours": [*CLASS_COLOURS[measure], NO_CATEGORY],
        "totalLabelZoom": 12,
        "data": packed,
    }
    _add_script(m, "city_map.js", "inventoryCityMap", config)
    return space_layers, outline_layers


def _add_title_and_legend(
    m, t, heading, when, space_layers, outline_layers, mode, legend, color_by, city_legend=None
) -> None:
    """Add the title, the date line and a legend whose entries switch with their layers."""
    title_key = t["legend"] if color_by == "status" else t[f"color_{color_by}"]
    legend_rows = (
        '<div class="legend-spaces">'
        + "".join(
            f'<div><span style="display:inline-block;width:12px;height:12px;background:{colour};'
            f'margin-right:6px;border:1px solid #555"></span>{html.escape(label)}</div>'
            for _, label, colour in legend
        )
        + "</div>"
    )
    if color_by != "status":  # the title status is the outline
        legend_rows += (
            f'<div class="legend-outlines"><b>{html.escape(t["outline_key"])}</b>'
            + "".join(
                f'<div><span style="display:inline-block;width:12px;height:12px;border:{max(1, round(w))}px '
                f'{"dashed" if d else "solid"} {c};margin-right:6px{";background:repeating-linear-gradient(45deg,#c62828 0 2px,transparent 2px 5px)" if status == "blocking" else ""}"></span>'
                f"{html.escape(t[status])}</div>"
                for status, (c, w, d) in STATUS_OUTLINES.items()
            )
            + "</div>"
        )
    if mode == "city" and city_legend:
        measure_title, classes = city_legend
        sizes = "".join(
            f'<span style="display:inline-block;width:{2 * r}px;height:{2 * r}px;'
            f'border-radius:50%;border:1px solid #37474f;margin:0 4px;vertical-align:middle">'
            f"</span>{n:,}"
            for n, r in ((10, 9), (30, 16), (64, 24))  # radius: 3·√spaces, at most 24 px
        )
        legend_rows += (
            f'<div class="legend-classes"><b>{html.escape(measure_title)}</b>'
            + "".join(
                f'<div><span style="display:inline-block;width:12px;height:12px;'
                f'border-radius:6px;background:{colour};margin-right:6px;border:1px solid #555">'
                f"</span>{html.escape(label)}</div>"
                for label, colour in classes
            )
            + f'<div class="legend-sizes"><b>{html.escape(t["size_key"])}</b> {sizes}</div>'
            + f'<div style="max-width:220px"><small>{html.escape(t["totals_key"])}</small></div>'
            + "</div>"
        )
    # one entry per outlined layer; each shows only while its layer is on
    legend_rows += "".join(
        f'<div class="legend-layer" data-layer="{html.escape(name)}"><span style="display:'
        f"inline-block;width:16px;height:0;border-top:2px dashed {colour};margin:0 6px 3px 0"
        f'"></span>{html.escape(name.split(" (")[0])}</div>'
        for name, colour in outline_layers.items()
    )
    hint = '<br><small id="inventory-hint"></small>' if mode == "city" else ""
    m.get_root().html.add_child(
        _Verbatim(
            f'<div id="inventory-title" style="position:fixed;top:10px;left:50px;z-index:1000;'
            f"background:white;padding:6px 10px;border-radius:4px;font:14px sans-serif;"
            f'box-shadow:0 1px 4px rgba(0,0,0,.3)"><b>{html.escape(heading)}</b><br>'
            f"<small>{html.escape(when)}</small>{hint}</div>"
            f'<div id="inventory-legend" style="position:fixed;bottom:30px;right:10px;z-index:1000;'
            f"background:white;padding:8px 10px;border-radius:4px;font:13px sans-serif;"
            f'box-shadow:0 1px 4px rgba(0,0,0,.3)"><b>{html.escape(title_key)}</b>{legend_rows}</div>'
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
    m.get_root().script.add_child(_Verbatim(toggle))


def _add_tools(
    m, t, heading, when, source, legend, outline_layers, color_by, city_legend=None, base=None
) -> None:
    """Add the scale, north arrow, search, print and PNG controls (``static/map_tools.js``)."""
    source_line = " · ".join(
        part
        for part in (f"{t['source']}: {source}" if source else "", when, t["made_with"])
        if part
    )
    config = {
        "labels": {key: t[key] for key in ("north", "search", "not_found", "print", "png")},
        "title": heading,
        "when": when,
        "sourceLine": source_line,
        "legendTitle": t["legend"] if color_by == "status" else t[f"color_{color_by}"],
        "legend": [[label, colour] for _, label, colour in legend],
        "outlineTitle": t["outline_key"],
        "outlines": None
        if color_by == "status"
        else [[t[s], c, d] for s, (c, _, d) in STATUS_OUTLINES.items()],
        "outlineLayers": [[name.split(" (")[0], colour] for name, colour in outline_layers.items()],
        "fileName": "inventory-map",
        "base": [
            {"name": _text(name, escape=False), "data": _geojson(layer)}
            for name, layer in base or []
        ],
    }
    if city_legend:  # zoomed out, the circles are what the PNG shows
        measure_title, classes = city_legend
        config["legendTitle"] = measure_title
        config["legend"] = [[label, colour] for label, colour in classes] + config["legend"]
    _add_script(m, "map_tools.js", "inventoryMapTools", config)


def map_from_store(
    engine,
    path: str | Path,
    *,
    lang: str = "zh",
    community: str | None = None,
    kinds: list[str] | None = None,
    title: str | None = None,
    tiles: str | None = None,
    max_gap_m: float = DEFAULT_MAX_GAP_M,
    mode: str = "auto",
    scenario: str | Path | None = None,
    policy: str | Path | None = None,
    color_by: str = "status",
    city_measure: str = "blocking_share",
    classes: str = "quantiles",
    tiles_key: str | None = None,
    base: list[str | Path] | None = None,
    district: str | None = None,
) -> tuple[Path, int]:
    """Write the map of the store's spaces (one community, one district, or all) to ``path``.

    ``color_by``: see :func:`build_map` (``use`` needs ``scenario``). The source line
    names the survey files the spaces shown came from. ``base``: files of the user's own
    layers (roads, buildings) drawn under the spaces (:func:`inventory.basemaps.read_base`).

    Bundles come from the store (:func:`inventory.bundles.bundles_in_store`), as
    ``inventory bundles`` and ``export`` give them; with ``scenario`` the popups carry
    each space's use and estimated rent. Title gaps follow ``policy`` (a regime of
    :func:`inventory.gaps.load_policy`; default: the default rules), and so does the
    estimate. Returns the file and the number of spaces.

    Raises:
        InputError: an unknown kind, language, mode or tile source, or no spaces.

    """
    from inventory import listing
    from inventory.bundles import bundles_in_store
    from inventory.tenure import records

    # the title status of each space, once for the bundles and the popups
    chosen = {"community": community, "district": district}
    spaces = annotate(listing.spaces(engine, kinds=kinds, **chosen), policy=policy)
    found, members = (
        bundles_in_store(engine, max_gap_m, kinds=kinds, loaded=spaces, **chosen)
        if len(spaces)
        else (None, None)  # build_map says there is nothing to map
    )
    estimate = None
    if scenario:
        from inventory.revenue import estimate_in_store

        estimate = estimate_in_store(engine, scenario, community, policy=policy)
    m = build_map(
        spaces,
        communities=listing.communities(
            engine, [community] if community else None, district=district
        ),
        bundles=found,
        members=members,
        lang=lang,
        title=title,
        tiles=tiles,
        mode=mode,
        revenue=revenue_by_space(estimate) if estimate else None,
        rights=records(engine, community, district=district)["rights"],
        color_by=color_by,
        source=_sources(engine, spaces),
        city_measure=city_measure,
        classes=classes,
        tiles_key=tiles_key,
        base=[(Path(f).stem, basemaps.read_base(f, tuple(spaces.total_bounds))) for f in base or []]
        if len(spaces)
        else None,
    )
    return save(m, path), len(spaces)


def _sources(engine, spaces: pd.DataFrame) -> str | None:
    """Return the survey files the spaces came from, as one line (the first few, then a count)."""
    from sqlalchemy import select

    from inventory.models import ImportBatch

    ids = sorted({int(b) for b in spaces["batch_id"].dropna()}) if "batch_id" in spaces else []
    if not ids:
        return None
    with engine.connect() as conn:
        files = conn.execute(
            select(ImportBatch.source_file).where(ImportBatch.id.in_(ids)).order_by(ImportBatch.id)
        ).scalars()
        names = list(dict.fromkeys(Path(f).name for f in files))
    shown = "、".join(names[:4])
    return shown + (f" (+{len(names) - 4})" if len(names) > 4 else "")


def save(m: folium.Map, path: str | Path) -> Path:
    """Write ``m`` as one HTML file with Leaflet inlined; refuse any remote script or style.

    Raises:
        InputError: the page would still load something from the network (a bug).

    """
    root = m.get_root()
    js = (STATIC / "leaflet.js").read_text(encoding="utf-8")
    css = (STATIC / "leaflet.css").read_text(encoding="utf-8")
    root.header.add_child(_Verbatim(f"<style>{css}</style>"), name="leaflet_css_inline", index=0)
    root.header.add_child(_Verbatim(f"<script>{js}</script>"), name="leaflet_js_inline", index=1)
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

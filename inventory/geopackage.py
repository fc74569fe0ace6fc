"""GeoPackages as QGIS expects them: one geometry type per layer, typed fields, a style.

A result mixing outlines and points (rooms and parking points) becomes two layers, the
outlines as ``LAYER`` (MultiPolygon) and the points as ``LAYER_points`` (MultiPoint), so
QGIS opens each as one layer instead of asking which part to load. Fields keep their
types: whole numbers as Integer, dates as Date, times as DateTime (UTC), yes/no as
Boolean, lists and mappings as JSON text. :func:`add_styles` stores a default QGIS style
per layer in the ``layer_styles`` table, which QGIS applies when the layer is opened.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sqlite3
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio.raw
import shapely

#: GeoPackage version written: 1.2 opens in every QGIS and GDAL of the last years.
VERSION = "1.2"
#: Result columns named otherwise than the store's, with the type they hold.
RESULT_TYPES = {
    "space_id": "int",
    "party_id": "int",
    "right_id": "int",
    "source_id": "int",
    "member_count": "int",
    "permit_end": "date",
    "file_size": "int",
    "share_with_gap_pct": "real",
}


@functools.cache
def declared_types() -> dict[str, str]:
    """Return each column name of the store's tables (and results) → int, real, bool, date or time.

    Read from the schema, so a column keeps its type even when every value of it is
    NULL (a reader then has nothing to infer the type from). A name with different types
    in different tables is left out.
    """
    from sqlalchemy import Boolean, Date, DateTime, Float, Integer, Numeric

    from inventory.models import Base

    found: dict[str, set[str]] = {}
    for table in Base.metadata.tables.values():
        for col in table.columns:
            kind = (
                "bool"
                if isinstance(col.type, Boolean)
                else "int"
                if isinstance(col.type, Integer)
                else "real"
                if isinstance(col.type, Float | Numeric)
                else "time"
                if isinstance(col.type, DateTime)
                else "date"
                if isinstance(col.type, Date)
                else "text"
            )
            found.setdefault(col.name, set()).add(kind)
    types = {name: kinds.pop() for name, kinds in found.items() if len(kinds) == 1}
    types.pop("id", None)
    return {**types, **RESULT_TYPES}


# shapely type ids → (family, GeoPackage geometry type, layer suffix)
_FAMILIES = {
    0: "points",
    4: "points",
    1: "lines",
    2: "lines",
    5: "lines",
    3: "",
    6: "",
    7: "other",
}
_TYPES = {
    "": "MultiPolygon",
    "points": "MultiPoint",
    "lines": "MultiLineString",
    "other": "Unknown",
}


def write_geopackage(frame: pd.DataFrame, path: Path, layer: str) -> list[tuple[str, int]]:
    """Write ``frame`` as layer(s) of the GeoPackage ``path``; return (layer, rows) for each.

    Outlines go to ``layer`` as MultiPolygon; points, lines and mixed collections, where
    the frame also has outlines, to ``layer_points``, ``layer_lines`` and ``layer_other``.
    A frame of one kind of geometry (or none) is one layer named ``layer``. Existing layers
    of other names stay.
    """
    spatial = isinstance(frame, gpd.GeoDataFrame) and frame.geometry.name in frame.columns
    if not spatial:
        _write(pd.DataFrame(frame), None, path, layer, None, None)
        return [(layer, len(frame))]
    geoms = frame.geometry.to_numpy()
    ids = shapely.get_type_id(geoms)
    family = np.array([_FAMILIES.get(int(i), "") for i in ids], dtype=object)
    present = [f for f in ("", "points", "lines", "other") if (family[ids >= 0] == f).any()]
    main = present[0] if present else ""
    family[ids < 0] = main  # rows without geometry stay in the main layer
    attributes = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    crs = frame.crs.to_string() if frame.crs is not None else None
    written = []
    for f in present or [""]:
        rows = family == f
        name = layer if f == main else f"{layer}_{f}"
        _write(attributes[rows].reset_index(drop=True), geoms[rows], path, name, _TYPES[f], crs)
        written.append((name, int(rows.sum())))
    return written


def _write(table, geoms, path: Path, layer: str, geometry_type, crs) -> None:
    fields, data, masks = [], [], []
    for col in table.columns:
        values, mask = field_values(table[col], str(col))
        fields.append(str(col))
        data.append(values)
        masks.append(mask)
    options = {"dataset_options": {"VERSION": VERSION}} if not Path(path).exists() else {}
    pyogrio.raw.write(
        path,
        None if geoms is None else shapely.to_wkb(geoms),
        data,
        fields,
        field_mask=masks,
        layer=layer,
        driver="GPKG",
        geometry_type=geometry_type,
        crs=crs,
        promote_to_multi=geometry_type is not None and geometry_type.startswith("Multi"),
        append=False,
        **options,
    )


def field_values(column: pd.Series, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Return a column as a typed array for GDAL and its null mask (None: no nulls to mark).

    The type is the store's for the column's name (:func:`declared_types`), else the
    values': Python ints and nullable integers become integers, ``date`` objects dates,
    times UTC times, bools booleans, lists and dicts JSON text, anything else text.
    """
    missing = column.isna().to_numpy()
    declared = declared_types().get(name)
    present = column[~missing]
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        return _times(column), None
    if pd.api.types.is_bool_dtype(column.dtype) or declared == "bool":
        values = column.astype(object).where(~missing, False).astype(bool).to_numpy()
        return values, missing if missing.any() else None
    if pd.api.types.is_integer_dtype(column.dtype):
        return _integers(column, missing)
    numeric = pd.api.types.is_numeric_dtype(column.dtype)
    if declared == "int" and (numeric or present.map(_is_number).all()):
        whole = pd.to_numeric(present)
        if (whole == whole.round()).all():
            return _integers(column, missing)
    if declared == "real" and (numeric or present.map(_is_number).all()):
        return pd.to_numeric(column).astype(float).to_numpy(), None
    if numeric:
        return column.to_numpy(dtype=float), None
    if declared == "date" or (len(present) and present.map(_is_date).all()):
        if present.map(_is_date).all():
            return _days(column, missing), None
    if len(present) and present.map(lambda v: isinstance(v, datetime)).all():
        return _times(pd.to_datetime(column, utc=True)), None
    if declared == "time" and present.empty:
        return np.full(len(column), np.datetime64("NaT"), dtype="datetime64[ms]"), None
    kinds = {type(v) for v in present}
    if kinds and kinds <= {bool, np.bool_}:
        return column.astype(object).where(~missing, False).astype(bool).to_numpy(), missing
    if kinds and all(issubclass(k, int | np.integer) and not issubclass(k, bool) for k in kinds):
        return _integers(column, missing)
    return np.array([_text(v) for v in column], dtype=object), None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | Decimal | np.number) and not isinstance(value, bool)


def _is_date(value: object) -> bool:
    return isinstance(value, date) and not isinstance(value, datetime)


def _days(column: pd.Series, missing: np.ndarray) -> np.ndarray:
    return np.array(
        [
            np.datetime64("NaT") if m else np.datetime64(v, "D")
            for v, m in zip(column, missing, strict=True)
        ],
        dtype="datetime64[D]",
    )


def _integers(column: pd.Series, missing: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    values = pd.to_numeric(column.where(~missing, 0)).to_numpy(dtype=np.int64)
    small = len(values) == 0 or (values.min() >= -(2**31) and values.max() < 2**31)
    return values.astype(np.int32 if small else np.int64), missing if missing.any() else None


def _times(column: pd.Series) -> np.ndarray:
    if getattr(column.dt, "tz", None) is not None:
        column = column.dt.tz_convert(UTC).dt.tz_localize(None)
    return column.to_numpy(dtype="datetime64[ms]")


def _text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, list | dict | tuple):
        return json.dumps(value, ensure_ascii=False, default=str)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


# ---- styles ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Category:
    """One class of a categorised style: the value, its label and its colour (#rrggbb)."""

    value: str
    label: str
    colour: str


@dataclass(frozen=True)
class Style:
    """A layer's default QGIS style: a fill or marker per category, or one outline."""

    name: str
    field: str | None = None
    categories: tuple[Category, ...] = ()
    outline: str = "#232323"
    dashed: bool = False
    #: field → the name QGIS shows for it (its alias)
    aliases: dict[str, str] = dataclasses.field(default_factory=dict)


def qml(style: Style, geometry: str) -> str:
    """Return the QGIS style (QML) of ``style`` for a layer of ``geometry`` type."""
    marker = "Point" in geometry
    categories = "Symbology|Fields" if style.aliases else "Symbology"
    root = ET.Element("qgis", version="3.28", styleCategories=categories)
    if style.field and style.categories:
        renderer = ET.SubElement(
            root,
            "renderer-v2",
            type="categorizedSymbol",
            attr=style.field,
            symbollevels="0",
            enableorderby="0",
            forceraster="0",
        )
        cats = ET.SubElement(renderer, "categories")
        symbols = ET.SubElement(renderer, "symbols")
        for i, cat in enumerate(style.categories):
            ET.SubElement(
                cats, "category", value=cat.value, label=cat.label, symbol=str(i), render="true"
            )
            _symbol(symbols, str(i), cat.colour, style.outline, marker, style.dashed, filled=True)
    else:
        renderer = ET.SubElement(
            root,
            "renderer-v2",
            type="singleSymbol",
            symbollevels="0",
            enableorderby="0",
            forceraster="0",
        )
        symbols = ET.SubElement(renderer, "symbols")
        _symbol(symbols, "0", style.outline, style.outline, marker, style.dashed, filled=False)
    if style.aliases:
        aliases = ET.SubElement(root, "aliases")
        for i, (name, alias) in enumerate(style.aliases.items()):
            ET.SubElement(aliases, "alias", field=name, name=alias, index=str(i))
    ET.SubElement(root, "layerGeometryType").text = "0" if marker else "2"
    return "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + ET.tostring(
        root, encoding="unicode"
    )


def _rgba(colour: str, alpha: int = 255) -> str:
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"{r},{g},{b},{alpha}"


def _symbol(parent, name, fill, outline, marker, dashed, filled) -> None:
    symbol = ET.SubElement(
        parent,
        "symbol",
        type="marker" if marker else "fill",
        name=name,
        alpha="1",
        clip_to_extent="1",
        force_rhr="0",
    )
    layer = ET.SubElement(
        symbol,
        "layer",
        {"class": "SimpleMarker" if marker else "SimpleFill"},
        enabled="1",
        locked="0",
        **{"pass": "0"},
    )
    props = {
        "color": _rgba(fill, 200 if filled else 0),
        "outline_color": _rgba(outline),
        "outline_style": "dash" if dashed else "solid",
        "outline_width": "0.4" if not filled else "0.26",
        "outline_width_unit": "MM",
        "style": "solid" if filled else "no",
    }
    if marker:
        props.update({"name": "circle", "size": "2.6", "size_unit": "MM", "style": "solid"})
        props["color"] = _rgba(fill, 230)
    options = ET.SubElement(layer, "Option", type="Map")
    for key, value in props.items():  # both forms: QGIS 3.26+ reads Option, older prop
        ET.SubElement(options, "Option", name=key, type="QString", value=value)
    for key, value in props.items():
        ET.SubElement(layer, "prop", k=key, v=value)


def add_styles(path: Path, styles: dict[str, Style]) -> list[str]:
    """Store ``styles`` (layer → style) as each layer's default QGIS style; return the layers.

    Layers not in the file are left out. The ``layer_styles`` table is the one QGIS
    itself writes ("Save as default" in a GeoPackage), registered as an attribute table.
    """
    layers = dict(pyogrio.list_layers(path))
    rows = []
    for name, style in styles.items():
        geometry = layers.get(name)
        if geometry is None:
            continue
        fields = set(pyogrio.read_info(path, layer=name)["fields"])
        aliases = {f: a for f, a in style.aliases.items() if f in fields}
        rows.append((name, replace(style, aliases=aliases), geometry))
    if not rows:
        return []
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    n = len(rows)
    pyogrio.raw.write(
        path,
        None,
        [
            np.array([""] * n, dtype=object),
            np.array([""] * n, dtype=object),
            np.array([r[0] for r in rows], dtype=object),
            np.array(["geom"] * n, dtype=object),
            np.array([r[1].name for r in rows], dtype=object),
            np.array([qml(r[1], r[2]) for r in rows], dtype=object),
            np.array([""] * n, dtype=object),
            np.ones(n, dtype=bool),
            np.array([f"Default style for {r[0]}" for r in rows], dtype=object),
            np.array([""] * n, dtype=object),
            np.array([None] * n, dtype=object),
            np.array([now] * n, dtype="datetime64[ms]"),
        ],
        [
            "f_table_catalog",
            "f_table_schema",
            "f_table_name",
            "f_geometry_column",
            "styleName",
            "styleQML",
            "styleSLD",
            "useAsDefault",
            "description",
            "owner",
            "ui",
            "update_time",
        ],
        layer="layer_styles",
        driver="GPKG",
        layer_options={"FID": "id"},
    )
    return [r[0] for r in rows]


def styles_in(path: Path) -> dict[str, str]:
    """Return the default style (QML) stored for each layer of a GeoPackage."""
    with sqlite3.connect(path) as conn:
        found = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'layer_styles'"
        ).fetchone()
        if not found:
            return {}
        return dict(
            conn.execute("SELECT f_table_name, styleQML FROM layer_styles WHERE useAsDefault")
        )

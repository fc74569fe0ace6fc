"""Writing results where analysts take them: CSV, JSON, GeoJSON, GeoPackage, Excel."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio

from inventory.errors import InputError

FORMATS = ("csv", "json", "geojson", "gpkg", "xlsx")


def format_for(path: str | Path, fmt: str | None = None) -> str:
    """Return the output format named by ``fmt`` or by the file's suffix.

    Raises:
        InputError: the format is not one of :data:`FORMATS`.

    """
    chosen = (fmt or Path(path).suffix.lstrip(".")).lower()
    if chosen == "xls":
        chosen = "xlsx"
    if chosen not in FORMATS:
        raise InputError(
            f"Cannot write {Path(path).name!r} as {chosen or 'an unknown format'}: use one of "
            f"{', '.join(FORMATS)} (--format, or the file's suffix)."
        )
    return chosen


def _flatten(frame: pd.DataFrame) -> pd.DataFrame:
    """Turn lists and dicts into JSON text, for formats with flat columns."""
    out = frame.copy()
    for col in out.columns:
        if col == "geometry" or out[col].dtype != object:
            continue
        if out[col].map(lambda v: isinstance(v, list | dict)).any():
            out[col] = out[col].map(
                lambda v: json.dumps(v, ensure_ascii=False) if isinstance(v, list | dict) else v
            )
    return out


def write(
    frame: pd.DataFrame, path: str | Path, fmt: str | None = None, layer: str | None = None
) -> Path:
    """Write ``frame`` (a GeoDataFrame in EPSG:4326, or a plain DataFrame) to ``path``.

    Geometries become WKT in CSV, JSON and Excel; GeoJSON and GeoPackage keep them.
    CSV carries a UTF-8 BOM so that Excel shows Chinese text. ``layer`` names the
    GeoPackage layer (several calls may add layers to one file).

    Raises:
        InputError: the format is unknown, or a map format was asked of a table.

    """
    p = Path(path)
    chosen = format_for(p, fmt)
    p.parent.mkdir(parents=True, exist_ok=True)
    spatial = isinstance(frame, gpd.GeoDataFrame) and frame.geometry.name in frame.columns
    if chosen == "gpkg" and not spatial:  # a GeoPackage holds plain attribute tables too
        pyogrio.write_dataframe(
            _flatten(pd.DataFrame(frame)), p, driver="GPKG", layer=layer or p.stem
        )
        return p
    if chosen in ("geojson", "gpkg"):
        if not spatial:
            raise InputError(
                f"{p.name}: this result has no geometry; write it as csv, json or xlsx."
            )
        flat = gpd.GeoDataFrame(_flatten(frame), geometry=frame.geometry.name, crs=frame.crs)
        for col in flat.columns:  # dates as ISO text: every reader understands them
            if flat[col].map(lambda v: hasattr(v, "isoformat")).any():
                flat[col] = flat[col].map(lambda v: v.isoformat() if hasattr(v, "isoformat") else v)
        if chosen == "geojson":
            p.unlink(missing_ok=True)
            pyogrio.write_dataframe(flat, p, driver="GeoJSON")
        else:
            pyogrio.write_dataframe(
                flat, p, driver="GPKG", layer=layer or p.stem, geometry_type="Unknown"
            )
        return p
    table = pd.DataFrame(frame)
    if spatial:
        table[frame.geometry.name] = frame.geometry.to_wkt()
    if chosen == "json":
        p.write_text(
            table.to_json(orient="records", force_ascii=False, date_format="iso", indent=2),
            encoding="utf-8",
        )
    elif chosen == "csv":
        _flatten(table).to_csv(p, index=False, encoding="utf-8-sig")
    else:
        _flatten(table).to_excel(p, index=False, sheet_name=(layer or "data")[:31])
    return p


def write_layers(path: str | Path, fmt: str | None, layers: dict) -> list[tuple[str, Path, int]]:
    """Write named result frames: as layers of one GeoPackage, else one file each.

    The first frame goes to ``path``, the others beside it as ``STEM_NAME.SUFFIX``; a table
    asked for as GeoJSON is written as CSV. Returns (name, file, rows) for each.
    """
    p = Path(path)
    chosen = format_for(p, fmt)
    if chosen == "gpkg":
        p.unlink(missing_ok=True)
    written = []
    for i, (name, frame) in enumerate(layers.items()):
        target, kind = p, chosen
        if i > 0 and chosen != "gpkg":
            target = p.with_name(f"{p.stem}_{name}{p.suffix}")
        if kind == "geojson" and "geometry" not in frame.columns:
            target, kind = target.with_suffix(".csv"), "csv"  # a table has no GeoJSON form
        write(frame, target, kind, layer=name)
        written.append((name, target, len(frame)))
    return written

"""Writing results where analysts take them: CSV, JSON, GeoJSON, GeoPackage, Excel."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from inventory import i18n
from inventory.errors import InputError
from inventory.geopackage import write_geopackage

FORMATS = ("csv", "json", "geojson", "gpkg", "xlsx")


def format_for(path: str | Path, fmt: str | None = None) -> str:
    """Return the output format named by ``fmt`` or by the file's suffix.

    Raises:
        InputError: the format is not one of :data:`FORMATS`.

    """
    suffix = Path(path).suffix.lstrip(".").lower()
    suffix = "xlsx" if suffix == "xls" else suffix
    chosen = (fmt or suffix).lower()
    if chosen == "xls":
        chosen = "xlsx"
    if fmt and suffix in FORMATS and suffix != chosen:
        raise InputError(
            f"Cannot write {Path(path).name!r} as {chosen}: its suffix says {suffix}. Give "
            f"the file a .{chosen} suffix, or leave out `fmt`."
        )
    if chosen not in FORMATS:
        raise InputError(
            f"Cannot write {Path(path).name!r} as {chosen or 'an unknown format'}: use one of "
            f"{', '.join(FORMATS)} (`fmt`, or the file's suffix)."
        )
    return chosen


def _with_wkt(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` as a plain table, its geometry (if any) as WKT text."""
    table = pd.DataFrame(frame)
    if isinstance(frame, gpd.GeoDataFrame) and frame.geometry.name in frame.columns:
        table[frame.geometry.name] = frame.geometry.to_wkt()
    return table


#: JSON text as ``json.dumps(v, ensure_ascii=False)`` writes it, from one encoder (dumps
#: with options builds one per call: 1.3 s of the title gaps' 190,000 lists at 200,000).
_to_json = json.JSONEncoder(ensure_ascii=False).encode


def _flatten(frame: pd.DataFrame) -> pd.DataFrame:
    """Turn lists and dicts into JSON text, for formats with flat columns."""
    out = frame.copy()
    for col in out.columns:
        if col == "geometry" or out[col].dtype != object:
            continue
        values = out[col].tolist()
        if any(isinstance(v, list | dict) for v in values):
            out[col] = pd.Series(
                [_to_json(v) if isinstance(v, list | dict) else v for v in values],
                index=out.index,
                dtype=object,
            )
    return out


def write(
    frame: pd.DataFrame, path: str | Path, fmt: str | None = None, layer: str | None = None
) -> Path:
    """Write ``frame`` (a GeoDataFrame in EPSG:4326, or a plain DataFrame) to ``path``.

    Geometries become WKT in CSV, JSON and Excel; GeoJSON and GeoPackage keep them.
    CSV carries a UTF-8 BOM so that Excel shows Chinese text. ``layer`` names the
    GeoPackage layer (several calls may add layers to one file); outlines and points of
    one result become two layers there (see :func:`inventory.geopackage.write_geopackage`).

    Raises:
        InputError: the format is unknown, or a map format was asked of a table.

    """
    p = Path(path)
    chosen = format_for(p, fmt)
    p.parent.mkdir(parents=True, exist_ok=True)
    spatial = isinstance(frame, gpd.GeoDataFrame) and frame.geometry.name in frame.columns
    if chosen == "gpkg":  # a GeoPackage holds plain attribute tables too
        write_geopackage(frame, p, layer or p.stem)
        return p
    if chosen == "geojson":
        if not spatial:
            raise InputError(
                f"{p.name}: this result has no geometry; write it as csv, json or xlsx."
            )
        flat = gpd.GeoDataFrame(_flatten(frame), geometry=frame.geometry.name, crs=frame.crs)
        for col in flat.columns:  # dates as ISO text: every reader understands them
            if flat[col].map(lambda v: hasattr(v, "isoformat")).any():
                flat[col] = flat[col].map(lambda v: v.isoformat() if hasattr(v, "isoformat") else v)
        p.unlink(missing_ok=True)
        import pyogrio

        pyogrio.write_dataframe(flat, p, driver="GeoJSON")
        return p
    table = _with_wkt(frame)
    if chosen == "json":
        p.write_text(
            table.to_json(orient="records", force_ascii=False, date_format="iso", indent=2),
            encoding="utf-8",
        )
    elif chosen == "csv":
        # the BOM, then plain UTF-8: the same bytes as pandas' "utf-8-sig", whose codec
        # is Python code called once per row (a quarter of the time of a large file)
        with open(p, "w", encoding="utf-8", newline="") as out:
            out.write("\ufeff")
            _neutralise_formulas(_flatten(table)).to_csv(out, index=False)
    else:
        write_workbook(p, {layer or "data": table})
    return p


#: What a spreadsheet reads as the start of a formula in a text cell (OWASP CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_FIRST = frozenset(FORMULA_START)  # each one character


def _neutralise_formulas(table: pd.DataFrame) -> pd.DataFrame:
    """Prefix text that a spreadsheet would run as a formula with ``'``, for CSV files.

    Excel and LibreOffice evaluate ``=HYPERLINK(…)`` or ``@SUM(…)`` typed into a CSV
    cell; a leading apostrophe makes them show the text instead. Only text cells change.
    """
    out = table.copy()
    for col in out.columns:
        if not pd.api.types.is_object_dtype(out[col]) and not pd.api.types.is_string_dtype(
            out[col]
        ):
            continue
        if not _may_start_formula(out[col]):
            continue
        starts = np.fromiter(  # a set lookup of the first character per cell is fastest
            (isinstance(v, str) and v[:1] in _FORMULA_FIRST for v in out[col].to_numpy()),
            dtype=bool,
            count=len(out),
        )
        if starts.any():
            out.loc[starts, col] = "'" + out.loc[starts, col]
    return out


#: A cell's start in a column's texts joined by NUL: one search finds them all.
_FORMULA_AFTER_NUL = re.compile("\x00[" + re.escape("".join(FORMULA_START)) + "]")


def _may_start_formula(column: pd.Series) -> bool:
    """Return False when no text cell of ``column`` starts like a formula.

    One search of the column's texts joined (in C) instead of a test per cell; True
    (look cell by cell) when the column holds values other than text, or a text holds
    NUL where a match might not be a cell's start.
    """
    values = column.to_numpy()
    values = values[pd.notna(values)] if len(values) else values
    try:
        joined = "\x00" + "\x00".join(values)
    except TypeError:  # numbers, lists or dates among the texts
        return True
    return _FORMULA_AFTER_NUL.search(joined) is not None


def _visible_controls(text: str) -> str:
    """Replace the control characters a workbook cannot hold by their visible symbols (␇)."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE  # workbooks only: not on start-up

    return ILLEGAL_CHARACTERS_RE.sub(lambda m: chr(0x2400 + ord(m.group())), text)


def write_workbook(path: str | Path, sheets: dict[str, pd.DataFrame]) -> Path:
    """Write frames as the sheets of one Excel workbook, ready to read and filter.

    Each sheet has a bold shaded header row that stays in view, filters on every column
    and widths that fit its contents. Text is always stored as text: a cell holding
    ``=HYPERLINK(…)`` shows those characters and never runs as a formula. Geometries go in
    as WKT; lists and dicts as JSON.
    """
    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill
    from openpyxl.utils import get_column_letter

    book = Workbook()
    book.remove(book.active)
    header_font, header_fill = Font(bold=True), PatternFill("solid", fgColor="DDE6F0")
    for name, frame in sheets.items():
        table = _flatten(_with_wkt(frame))
        sheet = book.create_sheet(_sheet_name(name, book.sheetnames))
        widths = [len(str(c)) for c in table.columns]
        sheet.append([str(c) for c in table.columns])
        for cell in sheet[1]:
            cell.font, cell.fill = header_font, header_fill
        for r, row in enumerate(table.itertuples(index=False), start=2):
            for c, value in enumerate(row, start=1):
                cell = sheet.cell(row=r, column=c)
                if isinstance(value, str):
                    cell.value = _visible_controls(value)
                    cell.data_type = "s"  # openpyxl would take "=…" as a formula
                elif value is None or (not isinstance(value, list | dict) and pd.isna(value)):
                    continue
                elif hasattr(value, "item"):  # numpy scalars
                    cell.value = value.item()
                elif isinstance(value, datetime):  # pd.Timestamp too
                    cell.value = _naive_utc(value)
                else:
                    cell.value = value
                if value is not None:
                    widths[c - 1] = max(widths[c - 1], _display_width(value))
        sheet.freeze_panes = "A2"
        if len(table.columns):
            sheet.auto_filter.ref = (
                f"A1:{get_column_letter(len(table.columns))}{max(1, len(table) + 1)}"
            )
        for c, width in enumerate(widths, start=1):
            sheet.column_dimensions[get_column_letter(c)].width = min(60, width + 2)
    if not book.sheetnames:
        book.create_sheet("data")
    book.save(path)
    return Path(path)


def _naive_utc(value: datetime) -> datetime:
    """Return a time Excel can hold: with a time zone, as UTC without one (Excel has none)."""
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _display_width(value: object) -> int:
    """Columns a value takes in a spreadsheet: CJK characters count twice."""
    text = f"{value:,.2f}" if isinstance(value, float) else str(value)
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text[:80])


def _sheet_name(name: str, taken: list[str]) -> str:
    """Return a sheet name Excel accepts (31 characters, no []:*?/ or backslash), unique."""
    clean = "".join("_" if ch in "[]:*?/\\" else ch for ch in str(name))[:31] or "data"
    candidate, n = clean, 2
    while candidate in taken:
        candidate = f"{clean[: 31 - len(str(n)) - 1]}_{n}"
        n += 1
    return candidate


def in_language(frame: pd.DataFrame, lang: str) -> pd.DataFrame:
    """Return ``frame`` with its column headers in ``lang`` (the geometry column stays)."""
    geometry = frame.geometry.name if isinstance(frame, gpd.GeoDataFrame) else None
    return frame.rename(
        columns={c: i18n.column(str(c), lang) for c in frame.columns if c != geometry}
    )


def to_text(frame: pd.DataFrame, fmt: str = "csv") -> str:
    """Return ``frame`` as CSV or JSON text, for a pipe (geometries as WKT).

    Raises:
        InputError: another format was asked for (it needs a file).

    """
    if fmt not in ("csv", "json"):
        raise InputError(f"`fmt={fmt}` cannot go to stdout: use csv or json, or a file name.")
    table = _with_wkt(frame)
    if fmt == "json":
        return (
            table.to_json(orient="records", force_ascii=False, date_format="iso", indent=2) + "\n"
        )
    return _neutralise_formulas(_flatten(table)).to_csv(index=False)


def write_layers(
    path: str | Path, fmt: str | None, layers: dict, lang: str | None = None
) -> list[tuple[str, Path, int]]:
    """Write named result frames: as layers of one GeoPackage, else one file each.

    A GeoPackage holds them all as layers and a workbook as sheets; otherwise the first
    frame goes to ``path``, the others beside it as ``STEM_NAME.SUFFIX``, and a table
    asked for as GeoJSON is written as CSV. ``lang`` (zh, en) puts the headers of a
    workbook or CSV, and a workbook's sheet names, in that language (:mod:`inventory.i18n`);
    other formats keep the column names. Returns (name, file, rows) for each.
    """
    p = Path(path)
    chosen = format_for(p, fmt)
    if lang is not None and chosen in ("xlsx", "csv"):
        layers = {name: in_language(frame, lang) for name, frame in layers.items()}
    if chosen == "xlsx":
        p.parent.mkdir(parents=True, exist_ok=True)
        sheets = {i18n.layer(name, lang): frame for name, frame in layers.items()}
        write_workbook(p, sheets)
        return [(name, p, len(frame)) for name, frame in layers.items()]
    if chosen == "gpkg":
        p.unlink(missing_ok=True)
        return [
            (layer, p, rows)
            for name, frame in layers.items()
            for layer, rows in write_geopackage(frame, p, name)
        ]
    written = []
    for i, (name, frame) in enumerate(layers.items()):
        target, kind = p, chosen
        if i > 0:
            target = p.with_name(f"{p.stem}_{name}{p.suffix}")
        if kind == "geojson" and "geometry" not in frame.columns:
            target, kind = target.with_suffix(".csv"), "csv"  # a table has no GeoJSON form
        write(frame, target, kind, layer=name)
        written.append((name, target, len(frame)))
    return written

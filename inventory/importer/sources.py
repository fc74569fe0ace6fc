"""Reading a surveyor's file: format, layer, text encoding and CRS, with nothing guessed silently.

Vector formats are read with pyogrio (GDAL); spreadsheets (CSV, XLSX) with pandas, their
geometry from a WKT column or longitude/latitude columns. What was decided, and why, is
returned with the data so the import report can say it.
"""

from __future__ import annotations

import csv
import io
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyogrio.errors import DataLayerError, DataSourceError
from pyproj import CRS
from pyproj.exceptions import CRSError

from inventory.errors import InputError

VECTOR_SUFFIXES = {".shp", ".gpkg", ".geojson", ".json", ".kml", ".fgb", ".gml"}
TABLE_SUFFIXES = {".csv", ".xlsx", ".xls", ".txt"}
#: Web-map coordinate systems accepted as `crs`, shifted to WGS84 on import.
SHIFTED_CRS = {"gcj02": "GCJ-02 (Amap/Tencent web maps)", "bd09": "BD-09 (Baidu maps)"}
CRS_HELP = (
    "`crs=EPSG:4326` (WGS84 lon/lat), `crs=EPSG:4490` (CGCS2000 lon/lat), `crs=EPSG:4548` "
    "(CGCS2000 Gauss-Krüger CM 117E; zones are EPSG:4534-4554), or `crs=gcj02` / `crs=bd09` for "
    "coordinates taken from Amap/Tencent or Baidu web maps"
)
# DBF header language-driver ids of the Chinese code pages (others are Western or unset).
_DBF_LDID = {0x4D: "GB18030", 0x7A: "GB18030"}
_WKT_COLUMNS = ("wkt", "geometry", "geom", "the_geom", "几何", "坐标串")
_LON_COLUMNS = ("lon", "lng", "long", "longitude", "x", "经度", "东经")
_LAT_COLUMNS = ("lat", "latitude", "y", "纬度", "北纬")
_CJK = re.compile(r"[\u3400-\u9fff]")
_LATIN1_HIGH = re.compile(r"[\u0080-\u00ff]")


@dataclass
class Source:
    """A file's features as read: raw attributes and geometries, plus how they were read."""

    path: Path
    layer: str | None
    driver: str
    encoding: str | None
    encoding_note: str
    crs: CRS | None
    crs_label: str
    shift: str | None  # "gcj02" / "bd09": coordinates to unshift to WGS84
    attributes: pd.DataFrame
    geometries: np.ndarray  # shapely geometries, None where missing or unparsable
    raw_geometry: list[str | None]  # what the file held where it could not be parsed
    notes: list[str] = field(default_factory=list)
    #: why a geometry could not be made, where the reader knows better than "unreadable"
    geometry_problems: list[str | None] | None = None
    #: the number the user sees for the first feature: its Excel row (the header's + 1),
    #: its CSV line, its record number in a DBF or GIS layer (1)
    first_row: int = 1
    #: each feature's row as the user sees it, where rows were skipped (blank lines)
    row_numbers: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.attributes)

    def __getstate__(self) -> dict:
        # to a worker process and back: the outlines as one WKB array, not one pickle each
        # (100,000 of them: 0.05 s instead of 1.5 s)
        return {**vars(self), "geometries": shapely.to_wkb(self.geometries, include_srid=True)}

    def __setstate__(self, state: dict) -> None:
        vars(self).update(state, geometries=shapely.from_wkb(state["geometries"]))

    def row(self, i: int) -> int:
        """Return the row number the user sees for feature ``i`` (0-based) of this source."""
        if self.row_numbers is not None:
            return int(self.row_numbers[i])
        return self.first_row + i


def list_layers(path: Path) -> list[str]:
    """Return the names of the layers in a vector file."""
    return [str(name) for name, _ in pyogrio.list_layers(path)]


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputError(f"File not found: {path}. Check the path and the file name.")
    if path.is_dir():
        raise InputError(f"{path} is a folder; give the .shp/.gpkg/.geojson/.csv file in it.")
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty (0 bytes); the copy may have failed. Copy it again.")
    if path.suffix.lower() == ".shp":
        for part, role in ((".dbf", "attributes"), (".shx", "index")):
            if not _sibling(path, part):
                raise InputError(
                    f"{path.name} has no {part} file beside it (the shapefile's {role}); a "
                    f"shapefile is several files: copy {path.stem}.shp, .shx, .dbf and .prj "
                    "together (or zip them)."
                )
        _check_complete(path)
        _check_complete(_sibling(path, ".shx"))
        _check_complete(_sibling(path, ".dbf"))


def _check_complete(part: Path | None) -> None:
    """Refuse a shapefile part shorter than its header says: GDAL would read it in part."""
    if part is None:
        return
    data = part.read_bytes()[:32]
    size = part.stat().st_size
    if part.suffix.lower() in (".shp", ".shx"):
        declared = int.from_bytes(data[24:28], "big") * 2 if len(data) >= 28 else None
    else:
        n, header, record = (
            (
                int.from_bytes(data[4:8], "little"),
                int.from_bytes(data[8:10], "little"),
                int.from_bytes(data[10:12], "little"),
            )
            if len(data) >= 12
            else (0, 0, 0)
        )
        declared = header + n * record if len(data) >= 12 else None
    if declared is None or size < declared:
        raise InputError(
            f"{part.name} is truncated: its header says {declared or 'at least 100'} bytes but "
            f"the file has {size}. The copy or download was cut short; copy it again."
        )


def _sibling(path: Path, suffix: str) -> Path | None:
    for candidate in (path.with_suffix(suffix), path.with_suffix(suffix.upper())):
        if candidate.exists():
            return candidate
    return None


def _dbf_text(dbf: Path) -> bytes:
    """Return the bytes of a DBF's records (the text), without the binary header.

    Field names are left out: writers cut them at 10 bytes, often through the middle of
    a multi-byte character, so they cannot decide the encoding.
    """
    data = dbf.read_bytes()
    if len(data) < 32:
        raise InputError(f"{dbf} is too short to be a DBF file; copy it again.")
    header_len = int.from_bytes(data[8:10], "little")
    return data[header_len:]


def _decodes(raw: bytes, encoding: str) -> bool:
    try:
        raw.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return False
    return True


def _codec(name: str, origin: str) -> str:
    cleaned = name.strip().upper()
    aliases = {
        "936": "GB18030",
        "CP936": "GB18030",
        "GBK": "GB18030",
        "GB2312": "GB18030",
        "88591": "ISO-8859-1",
        "1252": "CP1252",
        "65001": "UTF-8",
        "UTF8": "UTF-8",
    }
    cleaned = aliases.get(cleaned, cleaned)
    try:
        "".encode(cleaned)
    except LookupError:
        raise InputError(
            f"The encoding {name!r} ({origin}) is not one Python knows. Use e.g. "
            "`encoding=gbk` or `encoding=utf-8`."
        ) from None
    return cleaned


def detect_dbf_encoding(shp: Path, override: str | None = None) -> tuple[str, str]:
    """Return (encoding, how it was decided) for a shapefile's DBF.

    Order: ``override`` (the `encoding` given), the .cpg file, the DBF header's code page, then
    detection: ASCII, UTF-8, else GB18030 (a superset of GBK and GB2312) when the text
    decodes as such and holds Chinese characters.

    Raises:
        InputError: the declared encoding does not fit the bytes, or none could be found.

    """
    dbf = _sibling(shp, ".dbf")
    assert dbf is not None
    raw = _dbf_text(dbf)
    guess = _guess(raw)
    if override:
        enc = _codec(override, "given with `encoding`")
        if not _decodes(raw, enc):
            raise InputError(
                f"{dbf.name} cannot be decoded as {override}"
                + (f"; it reads as {guess}: pass `encoding={guess.lower()}`" if guess else "")
                + "."
            )
        return enc, "given with `encoding`"
    cpg = _sibling(shp, ".cpg")
    if cpg is not None:
        declared = cpg.read_text(errors="replace").strip()
        enc = _codec(declared, f"from {cpg.name}")
        wrong = not _decodes(raw, enc) or (
            guess == "GB18030"
            and enc not in ("GB18030", "UTF-8")
            and _CJK.search(raw.decode(guess))
        )
        if wrong:
            raise InputError(
                f"{cpg.name} says the attributes are {declared!r}, but {dbf.name} is not: "
                + (f"it reads as {guess} (Chinese text). " if guess else "")
                + f"Fix or delete the .cpg, or pass `encoding={(guess or 'gbk').lower()}`."
            )
        return enc, f"from {cpg.name}"
    ldid = dbf.read_bytes()[29]
    if ldid in _DBF_LDID and _decodes(raw, _DBF_LDID[ldid]):
        return _DBF_LDID[ldid], "from the DBF header's code page"
    if guess is None:
        raise InputError(
            f"Cannot tell the text encoding of {dbf.name}: it is neither UTF-8 nor GBK/GB18030 "
            "and there is no .cpg. Pass `encoding` (e.g. `encoding=big5`)."
        )
    note = {"ASCII": "detected: plain ASCII", "UTF-8": "detected: UTF-8 (no .cpg)"}.get(
        guess, "detected: GBK/GB18030 Chinese text (no .cpg)"
    )
    return ("UTF-8" if guess == "ASCII" else guess), note


def _guess(raw: bytes) -> str | None:
    if raw.isascii():
        return "ASCII"
    if _decodes(raw, "utf-8"):
        return "UTF-8"
    if _decodes(raw, "gb18030") and _CJK.search(raw.decode("gb18030")):
        return "GB18030"
    return None


def check_mojibake(frame: pd.DataFrame, where: str) -> None:
    """Raise InputError when decoded text looks garbled (Chinese read with the wrong encoding).

    The heuristic: a column name or value (every distinct value of every text column, so
    a garbled row far down a file is found too) that holds U+FFFD, or that holds Latin-1
    letters and symbols (``¹øÂ¯·¿``) but no Chinese character while its Latin-1 bytes
    decode as Chinese in GBK.
    """
    texts = [frame[c] for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    # one search of every text at once first: most files hold neither sign (values
    # that are not text, dates or numbers, read as ASCII)
    joined = "\n".join([str(c) for c in frame.columns] + [_joined_texts(col) for col in texts])
    if "\ufffd" not in joined and not _LATIN1_HIGH.search(joined):
        return
    samples = [str(c) for c in frame.columns]
    for col in texts:
        samples.extend(str(v) for v in pd.unique(col.dropna()))
    if any("\ufffd" in value for value in samples):
        raise InputError(
            f"The text of {where} holds undecodable characters (�): the encoding is wrong. "
            "Pass `encoding` (e.g. `encoding=gbk` or `encoding=utf-8`)."
        )
    # A value is garbled when it holds no Chinese but its Latin-1 bytes read as Chinese
    # in GBK: the signature of GBK text decoded as Latin-1 (or Windows-1252).
    for value in samples:
        if _LATIN1_HIGH.search(value) and not _CJK.search(value):
            recovered = _try_recover(value)
            if recovered:
                raise InputError(
                    f"The text of {where} looks garbled, e.g. {value[:30]!r} (as GBK it reads "
                    f"{recovered!r}): it was read with the wrong encoding. Pass `encoding=gbk` "
                    "(or fix the encoding the file was saved with)."
                )


def _joined_texts(column: pd.Series) -> str:
    """Return the texts of ``column`` joined by newlines (values that are not text left out)."""
    values = column.to_numpy()
    values = values[pd.notna(values)] if len(values) else values
    try:
        return "\n".join(values)  # one C loop: most columns hold only text
    except TypeError:  # dates, numbers or bytes among them
        return "\n".join(v for v in values if isinstance(v, str))


def _try_recover(text: str) -> str | None:
    try:
        fixed = text.encode("latin-1").decode("gb18030")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return None
    return fixed[:20] if _CJK.search(fixed) else None


def resolve_crs(
    option: str | None, file_crs: str | None, path: Path
) -> tuple[CRS | None, str, str | None]:
    """Return (CRS to read the coordinates in, label for the report, web-map shift or None).

    Raises:
        InputError: neither the file nor ``option`` gives a CRS, or ``option`` is not a CRS.

    """
    if option:
        key = option.strip().lower().replace("-", "").replace("_", "")
        if key in SHIFTED_CRS:
            return CRS.from_epsg(4326), SHIFTED_CRS[key] + " → WGS84, from `crs`", key
        text = option.strip()
        if text.isdigit():
            text = f"EPSG:{text}"
        try:
            crs = CRS.from_user_input(text)
        except CRSError:
            raise InputError(
                f"`crs={option!r}` is not a coordinate reference system. Use {CRS_HELP}."
            ) from None
        label = f"{_crs_name(crs)}, from `crs`"
        if file_crs and CRS.from_user_input(file_crs) != crs:
            label += f" (overrides the file's {_crs_name(CRS.from_user_input(file_crs))})"
        return crs, label, None
    named = _geojson_crs_member(path)
    if named is not None:
        try:
            CRS.from_user_input(named)
        except CRSError:
            # GDAL reads an unknown "crs" member as WGS84: the coordinates would be misplaced
            raise InputError(
                f'{path.name} names its coordinate system {named!r} (its "crs" member), '
                f"which is not a known CRS. Pass the right one: {CRS_HELP}."
            ) from None
    if not file_crs:
        prj = path.with_suffix(".prj") if path.suffix.lower() == ".shp" else None
        if prj is not None and (prj.exists() or path.with_suffix(".PRJ").exists()):
            found = prj if prj.exists() else path.with_suffix(".PRJ")
            first = found.read_bytes()[:60].decode("utf-8", errors="replace").strip()
            raise InputError(
                f"{path.name} has a .prj file, but it does not describe a coordinate "
                f"system (it begins {first!r}). Replace it with the right .prj, or pass {CRS_HELP}."
            )
        what = ".prj file" if path.suffix.lower() == ".shp" else "coordinate reference system"
        raise InputError(
            f"{path.name} has no {what}, so its coordinates cannot be placed. Pass {CRS_HELP}."
        )
    crs = CRS.from_user_input(file_crs)
    return crs, f"{_crs_name(crs)}, from the file", None


def _geojson_crs_member(path: Path) -> str | None:
    """Return the name in a GeoJSON file's (old-style) "crs" member, if it has one."""
    if path.suffix.lower() not in (".geojson", ".json"):
        return None
    head = path.read_bytes()[:65536].decode("utf-8", errors="replace")
    found = re.search(
        r'"crs"\s*:\s*\{[^{}]*"properties"\s*:\s*\{[^{}]*"name"\s*:\s*"([^"]+)"', head
    )
    return found.group(1) if found else None


def _crs_name(crs: CRS) -> str:
    epsg = crs.to_epsg(min_confidence=70)
    return f"{crs.name} (EPSG:{epsg})" if epsg else crs.name


def read(
    path: str | Path,
    *,
    layer: str | None = None,
    encoding: str | None = None,
    crs: str | None = None,
    skip: int = 0,
    limit: int | None = None,
    decided: Source | None = None,
    header_row: int | None = None,
    checked: bool = False,
) -> Source:
    """Read one layer of a surveyor's file (or, with ``skip``/``limit``, a run of its features).

    ``skip`` and ``limit`` apply to GIS files read directly (see :func:`can_read_in_parts`);
    ``decided``, an earlier part of the same layer, gives the encoding already decided;
    ``checked``: these features' text was found well decoded before (a second pass).
    ``header_row`` (1-based, as Excel numbers rows) is the row of a table's column names;
    without it a title row above the header is recognised and skipped.

    Raises:
        InputError: the file is missing, empty, incomplete, unreadable, has several layers
            and none was chosen, has no CRS and none was given, or its text is garbled.

    """
    path = Path(path)
    _check_file(path)
    suffix = path.suffix.lower()
    if suffix in (".zip", ".kmz"):  # a KMZ is a zipped KML (doc.kml and its icons)
        return _read_zip(path, layer=layer, encoding=encoding, crs=crs, header_row=header_row)
    if suffix in TABLE_SUFFIXES:
        return _read_table(path, layer=layer, encoding=encoding, crs=crs, header_row=header_row)
    return _read_vector(
        path,
        layer=layer,
        encoding=encoding,
        crs=crs,
        skip=skip,
        limit=limit,
        decided=decided,
        checked=checked,
    )


def _decided_encoding(path: Path, decided: Source) -> str | None:
    """Return the encoding to read more of a layer with, as decided for its first part."""
    own = path.suffix.lower() != ".shp" and decided.encoding == "UTF-8"
    return None if own else decided.encoding


def read_column(first: Source, column: str) -> pd.Series | None:
    """Return one attribute column of the whole layer ``first`` began, without geometry.

    As :func:`read` gives it (same encoding, missing values None), for a GIS file read
    in parts; None for a layer whose columns are not the file's own (KML description
    tables) or a column the file does not hold.
    """
    path = first.path
    if path.suffix.lower() in (".kml", ".kmz") or not can_read_in_parts(path):
        return None
    try:
        meta, _fids, _wkb, field_data = pyogrio.raw.read(
            path,
            layer=first.layer,
            encoding=_decided_encoding(path, first),
            columns=[column],
            read_geometry=False,
        )
    except (DataSourceError, DataLayerError) as exc:
        raise InputError(
            f"{path.name} cannot be read ({_first_line(exc)}). It may be truncated or "
            "damaged; copy it again or export it anew."
        ) from None
    if [str(c) for c in meta["fields"]] != [column]:
        return None
    values = pd.Series(field_data[0], dtype=object)
    return values.where(values.notna(), None)


def can_read_in_parts(path: str | Path) -> bool:
    """Whether :func:`read` can take the file's features a run at a time (not zips, tables)."""
    suffix = Path(path).suffix.lower()
    return suffix not in (".zip", ".kmz") and suffix not in TABLE_SUFFIXES


def count_features(path: str | Path, layer: str | None) -> int:
    """Return the number of features in a layer of a GIS file."""
    return int(pyogrio.read_info(path, layer=layer, force_feature_count=True)["features"])


def _read_zip(path: Path, **kwargs) -> Source:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        what = "KMZ (a zipped KML)" if path.suffix.lower() == ".kmz" else "zip archive"
        raise InputError(f"{path.name} is not a readable {what}; copy it again.") from None
    with archive, tempfile.TemporaryDirectory(prefix="inventory-zip-") as tmp:
        _extract(archive, Path(tmp), path.name)
        found = sorted(
            p
            for p in Path(tmp).rglob("*")
            if p.suffix.lower() in VECTOR_SUFFIXES | TABLE_SUFFIXES and not p.name.startswith(".")
        )
        if len(found) != 1:
            names = ", ".join(p.name for p in found) or "none"
            raise InputError(
                f"{path.name} should hold exactly one dataset (.shp, .gpkg, ...); it holds: "
                f"{names}. Import the files one by one."
            )
        try:
            source = read(found[0], **kwargs)
        except InputError as exc:
            raise InputError(f"{path.name}: {exc}") from None
        source.path = path
        return source


def _member_name(info: zipfile.ZipInfo) -> str:
    """Return a zip member's name, decoded as GBK when Chinese Windows wrote it.

    A name without the UTF-8 flag is code page 437 by the zip format, which is what
    Python decodes; Windows in Chinese writes the system's code page (GBK) instead.
    """
    name = info.filename
    if info.flag_bits & 0x800:
        return name
    try:
        raw = name.encode("cp437")
    except UnicodeEncodeError:
        return name
    if raw.isascii():
        return name
    try:
        return raw.decode("gb18030")
    except UnicodeDecodeError:
        return name


def _extract(archive: zipfile.ZipFile, into: Path, label: str) -> None:
    """Extract every member, its name decoded (:func:`_member_name`), none outside ``into``."""
    root = into.resolve()
    for info in archive.infolist():
        target = (into / _member_name(info)).resolve()
        if not target.is_relative_to(root):
            raise InputError(
                f"{label} holds a file outside its own folder ({info.filename!r}); it is not "
                "read. Re-create the zip from the survey's files."
            )
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(archive.read(info))


def _read_vector(
    path: Path,
    *,
    layer: str | None,
    encoding: str | None,
    crs: str | None,
    skip: int = 0,
    limit: int | None = None,
    decided: Source | None = None,
    checked: bool = False,
) -> Source:
    try:
        layers = list_layers(path)
    except (DataSourceError, DataLayerError) as exc:
        raise InputError(
            f"{path.name} cannot be read as a GIS file ({_first_line(exc)}). It may be "
            "truncated or of another format; copy it again or export it anew."
        ) from None
    if layer is None:
        if len(layers) > 1:
            raise InputError(
                f"{path.name} has {len(layers)} layers ({', '.join(layers)}); choose one with "
                "`layer=NAME`, or import them all with `all_layers=True`."
            )
        layer = layers[0] if layers else None
    elif layer not in layers:
        raise InputError(f"{path.name} has no layer {layer!r}; its layers: {', '.join(layers)}.")
    enc, enc_note = None, "UTF-8 (the format's own)"
    if decided is not None:  # the same as for the first part, without reading it all again
        enc, enc_note = _decided_encoding(path, decided), decided.encoding_note
    elif path.suffix.lower() == ".shp":
        enc, enc_note = detect_dbf_encoding(path, encoding)
    elif encoding:
        enc, enc_note = _codec(encoding, "given with `encoding`"), "given with `encoding`"
    try:
        meta, _fids, wkb, field_data = pyogrio.raw.read(
            path, layer=layer, encoding=enc, skip_features=skip, max_features=limit
        )
    except (DataSourceError, DataLayerError) as exc:
        raise InputError(
            f"{path.name} cannot be read ({_first_line(exc)}). It may be truncated or "
            "damaged; copy it again or export it anew."
        ) from None
    columns = [str(c) for c in meta["fields"]]
    attributes = pd.DataFrame(
        {
            name: pd.Series(values, dtype=object)
            for name, values in zip(columns, field_data, strict=True)
        }
    )
    attributes = attributes.where(attributes.notna(), None)
    if path.suffix.lower() in (".kml", ".kmz"):
        attributes = with_description_fields(_without_kml_styling(attributes))
    if not checked:
        check_mojibake(attributes, path.name)
    target_crs, crs_label, shift = resolve_crs(crs, meta.get("crs"), path)
    if wkb is None:
        raise InputError(f"{path.name} (layer {layer}) has no geometry; import a spatial layer.")
    geometries = shapely.from_wkb(wkb, on_invalid="ignore")
    raw = [None] * len(geometries)
    for i in np.flatnonzero(pd.isna(geometries) & pd.notna(wkb)):
        raw[i] = "WKB:" + bytes(wkb[i]).hex()
    return Source(
        path=path,
        layer=layer,
        driver=meta.get("driver") or path.suffix,
        encoding=enc or "UTF-8",
        encoding_note=enc_note,
        crs=target_crs,
        crs_label=crs_label,
        shift=shift,
        attributes=attributes.reset_index(drop=True),
        geometries=np.asarray(geometries, dtype=object),
        raw_geometry=raw,
    )


class _Cells(HTMLParser):
    """The rows of cells of an HTML fragment (a placemark's description table)."""

    def __init__(self):
        super().__init__()
        self.rows: list[list[str]] = []
        self.lines: list[str] = [""]
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag in ("br", "p", "div", "li"):
            self.lines.append("")

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            if not self.rows:
                self.rows.append([])
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        else:
            parts = data.split("\n")
            self.lines[-1] += parts[0]
            self.lines += parts[1:]


#: A "key: value" line of a description (编号：JS-001), with a Chinese or ASCII colon.
_KEY_VALUE = re.compile(r"^\s*([^:：=＝]{1,40}?)\s*[:：=＝]\s*(.*?)\s*$")


def description_fields(text: object) -> dict[str, str]:
    """Return the fields a KML placemark's description carries, as {name: value}.

    Google Earth and 奥维互动地图 (Ovi maps) put a feature's attributes in its description:
    an HTML table of name/value rows, or lines like ``编号：JS-001`` (``<br>`` or new
    lines between them). Anything else gives nothing.
    """
    if not isinstance(text, str) or not text.strip():
        return {}
    parser = _Cells()
    try:
        parser.feed(text)
        parser.close()
    except Exception:  # a description is free text: never a reason to refuse the file
        return {}
    out: dict[str, str] = {}
    for row in parser.rows:
        if len(row) == 2 and row[0]:
            out.setdefault(row[0].rstrip(":："), row[1])
    if not out:
        for line in parser.lines:
            match = _KEY_VALUE.match(line)
            if match and match.group(1).strip():
                out.setdefault(match.group(1).strip(), match.group(2))
    return out


#: Columns GDAL's KML readers give every placemark (display settings, not survey data).
_KML_STYLING = (
    "id",
    "timestamp",
    "begin",
    "end",
    "altitudeMode",
    "tessellate",
    "extrude",
    "visibility",
    "drawOrder",
    "icon",
    "snippet",
)


def _without_kml_styling(attributes: pd.DataFrame) -> pd.DataFrame:
    """Drop the KML reader's display columns where they hold nothing but their defaults."""
    idle = [
        c
        for c in _KML_STYLING
        if c in attributes
        and attributes[c].map(lambda v: v is None or v == "" or v in (-1, 0)).all()
    ]
    return attributes.drop(columns=idle)


def with_description_fields(attributes: pd.DataFrame) -> pd.DataFrame:
    """Return KML attributes with the fields of each description as columns of their own.

    A field the layer already has as a column keeps the column's value; the description
    itself stays (an extra attribute, unless it maps to a field).
    """
    column = next((c for c in attributes.columns if c.lower() == "description"), None)
    if column is None:
        return attributes
    parsed = [description_fields(v) for v in attributes[column]]
    names: list[str] = []
    for fields in parsed:
        names += [n for n in fields if n not in names and n not in attributes.columns]
    if not names:
        return attributes
    extra = pd.DataFrame(
        {n: [f.get(n) or None for f in parsed] for n in names}, index=attributes.index, dtype=object
    )
    return pd.concat([attributes, extra], axis=1)


def _read_table(
    path: Path,
    *,
    layer: str | None = None,
    encoding: str | None,
    crs: str | None,
    header_row: int | None = None,
) -> Source:
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xls"):
        frame, layer, first_row = _read_sheet(path, layer, header_row)
        enc, enc_note = None, "the workbook's own (Unicode)"
    else:
        raw = path.read_bytes()
        if encoding:
            enc, enc_note = _codec(encoding, "given with `encoding`"), "given with `encoding`"
        else:
            guess = _guess(raw.removeprefix(b"\xef\xbb\xbf"))
            if guess is None:
                raise InputError(f"Cannot tell the text encoding of {path.name}; pass `encoding`.")
            enc = "UTF-8-SIG" if guess in ("ASCII", "UTF-8") else guess
            enc_note = f"detected: {guess if guess != 'GB18030' else 'GBK/GB18030 Chinese text'}"
        try:
            text = raw.decode(enc.replace("UTF-8-SIG", "utf-8-sig"))
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{path.name} is not {enc} text ({_first_line(exc)}); pass `encoding`."
            ) from None
        sep = _delimiter(text)
        records = list(csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=sep))
        width = max((len(r) for r in records), default=0)
        grid = pd.DataFrame([r + [None] * (width - len(r)) for r in records], dtype=object)
        frame, first_row = _with_header(grid, header_row, path.name)
        header = records[first_row - 2] if records else []
        longer = [
            int(n)
            for n, k in zip(frame.attrs.get("rows", []), range(len(frame)), strict=False)
            if len(records[int(n) - 1]) > len(header)
        ]
        if longer:
            raise InputError(
                f"{path.name} cannot be read as CSV: row {longer[0]} has more "
                f"{_SEPARATOR_NAMES.get(sep, repr(sep))}-separated fields than the header "
                f"(row {first_row - 1}); check its separators and quotes."
            )
    rows = frame.attrs.get("rows")
    frame.columns = [str(c).strip() for c in frame.columns]
    frame = frame.where(frame.notna(), None).reset_index(drop=True)
    check_mojibake(frame, path.name)
    lower = {c.lower(): c for c in frame.columns}
    wkt_col = next((lower[c] for c in _WKT_COLUMNS if c in lower), None)
    lon_col = next((lower[c] for c in _LON_COLUMNS if c in lower), None)
    lat_col = next((lower[c] for c in _LAT_COLUMNS if c in lower), None)
    n = len(frame)
    raw_geometry: list[str | None] = [None] * n
    problems: list[str | None] | None = None
    if wkt_col:
        texts = frame.pop(wkt_col)
        geometries = np.array([_parse_wkt(t) for t in texts], dtype=object)
        for i in np.flatnonzero(pd.isna(geometries)):
            raw_geometry[i] = None if texts[i] is None else str(texts[i])
    elif lon_col and lat_col:
        lon_text, lat_text = frame.pop(lon_col), frame.pop(lat_col)
        lon = pd.to_numeric(lon_text, errors="coerce").to_numpy(dtype="float64")
        lat = pd.to_numeric(lat_text, errors="coerce").to_numpy(dtype="float64")
        ok = np.isfinite(lon) & np.isfinite(lat)
        geometries = np.full(n, None, dtype=object)
        geometries[ok] = shapely.points(lon[ok], lat[ok])
        problems = [None] * n
        for i in np.flatnonzero(~ok):
            if lon_text[i] is None and lat_text[i] is None:
                continue  # no coordinates at all: "no geometry"
            # kept in the quarantine as typed, so the row can be fixed and imported back
            raw_geometry[i] = f"{lon_col}={lon_text[i]}, {lat_col}={lat_text[i]}"
            problems[i] = (
                f"the coordinates are not finite numbers ({raw_geometry[i]}); give decimal degrees"
            )
    else:
        raise InputError(
            f"{path.name} has no geometry: give a WKT column (named one of "
            f"{', '.join(_WKT_COLUMNS)}) or longitude/latitude columns (e.g. lon/lat, 经度/纬度)."
        )
    target_crs, crs_label, shift = resolve_crs(crs, None, path)
    return Source(
        path=path,
        layer=layer if suffix == ".xlsx" else None,
        driver="CSV" if suffix != ".xlsx" else "XLSX",
        encoding=enc,
        encoding_note=enc_note,
        crs=target_crs,
        crs_label=crs_label,
        shift=shift,
        attributes=frame,
        geometries=geometries,
        raw_geometry=raw_geometry,
        geometry_problems=problems,
        first_row=first_row,
        row_numbers=rows,
    )


_SEPARATOR_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "bar"}


def _delimiter(text: str) -> str:
    """Return the field separator of a CSV file (comma, or a semicolon, tab or bar).

    Read from the fullest of the first lines, so a title line above the header misleads
    nothing.
    """
    lines = text.lstrip("\ufeff").splitlines()[:_HEADER_SEARCH_ROWS]
    header = max(lines, key=lambda ln: sum(ln.count(s) for s in _SEPARATOR_NAMES), default="")
    counts = {sep: header.count(sep) for sep in _SEPARATOR_NAMES}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] > counts[","] else ","


def _read_sheet(
    path: Path, layer: str | None, header_row: int | None
) -> tuple[pd.DataFrame, str | None, int]:
    """Read the sheet ``layer`` (or the first) of a workbook, refusing formulas without values.

    Returns the table, the sheet's name (None for a workbook of one sheet) and the Excel
    row of its first data row. ``.xls`` (Excel 97-2003) is read with python-calamine.

    Raises:
        InputError: the workbook cannot be read, the sheet does not exist, the first sheet
            has no geometry columns while another has, or cells hold formulas whose values
            were never saved (a file written by a program, not by Excel).

    """
    engine = "calamine" if path.suffix.lower() == ".xls" else "openpyxl"
    try:
        raw_sheets = pd.read_excel(path, dtype=object, sheet_name=None, header=None, engine=engine)
    except Exception as exc:  # openpyxl and calamine raise many kinds for a damaged workbook
        raise InputError(
            f"{path.name} cannot be read as a spreadsheet ({_first_line(exc)}); open it in "
            "Excel or LibreOffice, save it as .xlsx, and import that."
        ) from None
    names = list(raw_sheets)
    if layer is not None and layer not in raw_sheets:
        raise InputError(
            f"{path.name} has no sheet {layer!r}; its sheets: {', '.join(names)} (`layer=NAME`)."
        )
    sheets = {
        n: _with_header(f, header_row, f"{path.name} (sheet {n})") for n, f in raw_sheets.items()
    }
    name = layer or names[0]
    if layer is None and not _has_geometry_columns(sheets[name][0]):
        others = [n for n in names[1:] if _has_geometry_columns(sheets[n][0])]
        if others:
            raise InputError(
                f"The first sheet of {path.name} ({name!r}) has no geometry columns, but "
                f"sheet {others[0]!r} has: import it with `layer={others[0]}`."
            )
    frame, first_row = sheets[name]
    if engine == "openpyxl":  # .xls keeps no formulas apart from their values
        _refuse_unsaved_formulas(path, name, frame, first_row)
    return frame, (name if len(names) > 1 else None), first_row


#: Rows looked at for the header when none is given: a title or two, a blank line.
_HEADER_SEARCH_ROWS = 10


def _with_header(raw: pd.DataFrame, header_row: int | None, label: str) -> tuple[pd.DataFrame, int]:
    """Return a table read without a header as (table with its column names, first data row).

    The header is ``header_row`` (1-based), else the first of the top rows that fills most
    columns: a title (劲松北社区存量空间调查表) or a blank line above it is skipped. Rows
    are numbered as Excel or a text editor shows them.

    Raises:
        InputError: ``header_row`` is beyond the table, or holds no names.

    """
    filled = raw.map(lambda v: v is not None and not pd.isna(v) and str(v).strip() != "")
    if header_row is not None:
        if not 1 <= header_row <= len(raw):
            raise InputError(
                f"{label}: `header_row={header_row}` is beyond its {len(raw)} rows; give the "
                "row (as numbered in Excel) that holds the column names."
            )
        index = header_row - 1
        if not filled.iloc[index].any():
            raise InputError(
                f"{label}: row {header_row} (`header_row={header_row}`) is empty; give the row that holds "
                "the column names."
            )
    else:
        counts = filled.head(_HEADER_SEARCH_ROWS).sum(axis=1).tolist()
        widest = max(counts, default=0)
        index = next((i for i, n in enumerate(counts) if n >= max(2, 0.5 * widest)), 0)
    if raw.empty:
        return pd.DataFrame(), 2
    names = []
    for j, value in enumerate(raw.iloc[index]):
        text = "" if value is None or pd.isna(value) else str(value).strip()
        names.append(text or f"column_{j + 1}")
    body = raw.iloc[index + 1 :]
    keep = [
        j
        for j, n in enumerate(names)
        if not n.startswith("column_") or filled.iloc[index + 1 :, j].any()
    ]
    table = body.iloc[:, keep].copy()
    table.columns = [names[j] for j in keep]
    table = table.where(filled.iloc[index + 1 :, keep].to_numpy(), None)  # "" and NaN: None
    # a blank row carries nothing: dropped, but the numbering keeps the rows as seen
    blank = ~filled.iloc[index + 1 :, keep].any(axis=1)
    table = table[~blank.to_numpy()]
    rows = (body.index[~blank.to_numpy()] + 1).to_numpy()  # 1-based, as the user sees them
    table = table.reset_index(drop=True)
    table.attrs["rows"] = rows
    return table, index + 2


def _has_geometry_columns(frame: pd.DataFrame) -> bool:
    lower = {str(c).strip().lower() for c in frame.columns}
    return bool(lower & set(_WKT_COLUMNS)) or (
        bool(lower & set(_LON_COLUMNS)) and bool(lower & set(_LAT_COLUMNS))
    )


def _refuse_unsaved_formulas(path: Path, sheet: str, frame: pd.DataFrame, first_row: int) -> None:
    """Refuse cells holding a formula whose value was never saved: they would read as empty."""
    from openpyxl import load_workbook

    rows = {int(r): k for k, r in enumerate(frame.attrs.get("rows", []))}
    columns = set(frame.columns)
    book = load_workbook(path, read_only=True, data_only=False)
    try:
        unsaved = []
        header = None
        for r, row in enumerate(book[sheet].iter_rows(min_row=first_row - 1, values_only=True)):
            if header is None:
                header = [str(v).strip() if v is not None else "" for v in row]
                continue
            k = rows.get(first_row + r - 1)
            for c, value in enumerate(row):
                if not (isinstance(value, str) and value.startswith("=")):
                    continue
                name = header[c] if c < len(header) else ""
                if k is None or name not in columns or pd.isna(frame.at[k, name]):
                    unsaved.append(f"{_cell_name(first_row + r - 1, c + 1)} {value}")
    finally:
        book.close()
    if unsaved:
        raise InputError(
            f"{len(unsaved)} cell(s) of {path.name} hold formulas whose values were never "
            f"saved (first: {unsaved[0]}), so they would import as empty. Open the file in "
            "Excel or LibreOffice, save it, and import it again."
        )


def _cell_name(row: int, column: int) -> str:
    from openpyxl.utils import get_column_letter

    return f"{get_column_letter(column)}{row}"


def _parse_wkt(text: object):
    if text is None:
        return None
    try:
        return shapely.from_wkt(str(text))
    except shapely.errors.GEOSException:
        return None


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__

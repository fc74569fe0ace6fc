"""What every import shares: checks and limits, field parsing, geometry cleaning, the batch and the quarantine."""

from __future__ import annotations

import hashlib
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from itertools import compress
from pathlib import Path

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import insert, update

from inventory.chinacoords import bd09_to_wgs84, gcj02_to_wgs84
from inventory.codes import normalise
from inventory.errors import InputError
from inventory.geodesy import CHINA_ALBERS, area_m2, reproject
from inventory.importer.fields import (
    MAX_PLAUSIBLE_AREA_M2,
    SPACE_FIELDS,
    map_columns,
    parse_bool,
    parse_code,
    parse_date,
    parse_number,
    parse_text,
)
from inventory.importer.report import FeatureIssue, ImportReport
from inventory.importer.sources import Source
from inventory.models import Community, ImportBatch, RejectedFeature, Space
from inventory.store import who

#: Rough bounding box of China (incl. the South China Sea islands' latitudes), lon/lat.
CHINA_BBOX = (73.4, 3.8, 135.1, 53.6)
#: A space under this footprint is a digitising slip, not a room.
MIN_AREA_M2 = 1.0
#: Isoperimetric quotient (4πA/P²) under which a polygon is flagged as a sliver.
SLIVER_QUOTIENT = 0.08
#: Recorded floor area vs footprint × floors outside this ratio is flagged.
AREA_MISMATCH = (0.5, 2.0)
#: Features read and validated at a time from a large GIS file (bounds the memory used).
CHUNK_FEATURES = 100_000
#: Outline overlap (intersection over union) above which a new space is the same as a
#: stored one of another reference: a probable duplicate (or, with match_geometry, it).
DUPLICATE_IOU = 0.5
#: Points (parking, counted facilities) this close to a stored one are the same.
DUPLICATE_POINT_M = 1.0
#: Layer names taken as community boundaries by --all-layers.
COMMUNITY_LAYER_NAMES = ("community", "communities", "社区", "小区", "boundary", "社区边界")

Progress = Callable[[str, int, int], None]

#: Columns the inventory itself writes into a rejects file to fix (``rejects --output``):
#: read back, they are notes, not survey fields.
FILE_NOTES = ("rejected_because", "raw_geometry")

#: The largest value an INTEGER column holds on PostgreSQL (SQLite would store more).
_INT_MAX = 2**31 - 1


def _text_field(
    model, name: str, label: str | None = None
) -> Callable[[pd.Series], tuple[list, list]]:
    """Parse a text field with the limit of its column in the store (both backends)."""
    length = getattr(model.__table__.c[name].type, "length", None)
    label = label or name.replace("_", " ")
    return lambda column: parse_text(column, label, length)


_SPACE_PARSERS: dict[str, Callable[[pd.Series], tuple[list, list]]] = {
    "survey_ref": _text_field(Space, "survey_ref"),
    "name": _text_field(Space, "name"),
    "kind": lambda c: parse_code(c, "kind", "kind", required=True),
    "floor_area_m2": lambda c: parse_number(c, "floor area", maximum=MAX_PLAUSIBLE_AREA_M2),
    "usable_area_m2": lambda c: parse_number(c, "usable area", maximum=MAX_PLAUSIBLE_AREA_M2),
    "floors": lambda c: parse_number(
        c, "floors", integer=True, positive=False, minimum=-10, maximum=100
    ),
    "parking_spaces": lambda c: parse_number(
        c, "parking spaces", integer=True, positive=False, minimum=0, maximum=100_000
    ),
    "units": lambda c: parse_number(
        c, "units", integer=True, positive=False, minimum=0, maximum=1_000_000
    ),
    "condition": lambda c: parse_code(c, "condition", "condition"),
    "current_use": _text_field(Space, "current_use"),
    "vacancy": lambda c: parse_code(c, "vacancy", "vacancy"),
    "surveyed_at": lambda c: parse_date(c, "survey date"),
    "notes": _text_field(Space, "notes"),
    "owner_name": _text_field(Space, "owner_name"),
    "owner_type": lambda c: parse_code(c, "owner_type", "owner type"),
    "land_type": lambda c: parse_code(c, "land_type", "land type"),
    "certificate_status": lambda c: parse_code(c, "certificate_status", "certificate status"),
    "disputed": lambda c: parse_bool(c, "dispute"),
    "dispute_note": _text_field(Space, "dispute_note"),
    "operating_right_holder": _text_field(Space, "operating_right_holder"),
    "operating_right_start": lambda c: parse_date(c, "operating right start"),
    "operating_right_end": lambda c: parse_date(c, "operating right end"),
    "tenure_source_ref": _text_field(Space, "tenure_source_ref"),
    "community": _text_field(Community, "name", "community"),
}
_COMMUNITY_PARSERS: dict[str, Callable[[pd.Series], tuple[list, list]]] = {
    "name": _text_field(Community, "name"),
    "district": _text_field(Community, "district"),
    "street_office": _text_field(Community, "street_office"),
    "built_year": lambda c: parse_number(c, "built year", integer=True, minimum=1900, maximum=2100),
    "households": lambda c: parse_number(
        c, "households", integer=True, positive=False, minimum=0, maximum=_INT_MAX
    ),
    "residents": lambda c: parse_number(
        c, "residents", integer=True, positive=False, minimum=0, maximum=_INT_MAX
    ),
    "floor_area_m2": lambda c: parse_number(c, "floor area", maximum=1e8),
}
_SPACE_COLUMNS = [f for f in SPACE_FIELDS if f != "community"]
_COMPARED = [*_SPACE_COLUMNS, "footprint_area_m2", "quality_flags", "extra_attributes"]


def _checksum(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _jsonable(value: object) -> object:
    if value is None:
        return None
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, datetime | date | pd.Timestamp):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value if isinstance(value, int | str | bool) else str(value)


@dataclass
class ImportOptions:
    """How to import a file (see :func:`inventory.importer.import_file`)."""

    overrides: dict[str, str] = field(default_factory=dict)
    community: str | None = None
    dry_run: bool = False
    imported_by: str | None = None
    constants: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, dict[str, str]] = field(default_factory=dict)
    match_geometry: bool = False
    progress: Progress | None = None


class _Import(ABC):
    """Shared machinery of a space or community import over one source layer."""

    target = ""
    known: dict[str, tuple[str, ...]] = {}
    parsers: dict[str, Callable[[pd.Series], tuple[list, list]]] = {}

    def __init__(self, engine, source: Source, options: ImportOptions):
        self.engine = engine
        self.source = source
        self.options = options
        self.aliases = options.aliases or {}
        # what a fixed rejects file says about itself is not the survey's
        ignored = [c for c in source.attributes.columns if c in FILE_NOTES]
        if ignored:
            source.attributes = source.attributes.drop(columns=ignored)
        overrides = dict(options.overrides or {})
        for target, value in (options.constants or {}).items():
            # a constant is a column of its own: parsed and checked like any other
            column = f"{target} (--set)"
            source.attributes[column] = value
            overrides[column] = target
        self.offset = 0  # rows of the file before this source's first (files read in parts)
        self.community = options.community
        self.dry_run = options.dry_run
        self.imported_by = options.imported_by or _who(engine)
        self.progress = options.progress or (lambda stage, done, total: None)
        columns = list(source.attributes.columns)
        self.mapping = map_columns(columns, self.known, overrides)
        n = len(source)
        self.reasons: list[list[str]] = [[] for _ in range(n)]
        self.repairs: list[list[str]] = [[] for _ in range(n)]
        self.flags: list[list[str]] = [[] for _ in range(n)]
        self.values: dict[str, list] = {}
        self.report = ImportReport(
            source=str(source.path),
            layer=source.layer,
            target=self.target,
            dry_run=self.dry_run,
            encoding=source.encoding or "",
            encoding_note=source.encoding_note,
            crs=source.crs_label,
            fields=self.mapping.as_profile(),
            unmapped=self.mapping.unmapped,
            read=n,
        )

    def __getstate__(self) -> dict:
        # a part checked in a worker process comes back without the store and the bar
        return {**vars(self), "engine": None, "progress": None}

    def row(self, i: int) -> int:
        """Return feature ``i``'s row as the user sees it (Excel row, CSV line, record)."""
        return self.offset + self.source.row(i)

    # -- parsing ---------------------------------------------------------------------

    def require_field(self, name: str, what: str) -> None:
        """Refuse a file with no column for the field ``name`` (``what`` it holds).

        Raises:
            InputError: no column maps to ``name``; the message lists the file's columns.

        """
        if name not in self.mapping.fields:
            src = self.source
            raise InputError(
                f"{src.path.name}: no column gives {what}. Its columns: "
                f"{', '.join(src.attributes.columns)}. Name it with `field_map=COLUMN={name}`."
            )

    def parse_fields(self) -> None:
        n = len(self.source)
        for target, parser in self.parsers.items():
            column = self.mapping.fields.get(target)
            if column is None:
                self.values[target] = [None] * n
                continue
            raw = self.source.attributes[column]
            if target in self.aliases:  # the surveyor's own words for a code (仓库 → service_room)
                table = self.aliases[target]
                raw = raw.map(lambda v, t=table: t.get(normalise(v), v) if v is not None else v)
            values, errors = parser(raw)
            self.values[target] = values
            for i in compress(range(n), errors):  # the rows with an error (few)
                self.reasons[i].append(errors[i])
        self.extras = self._extras()

    def _extras(self) -> list[dict | None]:
        unmapped = self.mapping.unmapped
        if not unmapped:
            return [None] * len(self.source)
        frame = self.source.attributes[unmapped]
        return [
            {
                k: _jsonable(v)
                for k, v in zip(unmapped, row, strict=True)
                if _jsonable(v) is not None
            }
            or None
            for row in frame.itertuples(index=False, name=None)
        ]

    def clean_geometries(self, allow_points: np.ndarray) -> np.ndarray:
        """Return EPSG:4326 geometries, None where rejected (with the reason recorded)."""
        src = self.source
        geoms = src.geometries.copy()
        n = len(geoms)
        missing = pd.isna(geoms)
        problems = src.geometry_problems or [None] * n
        for i in np.flatnonzero(missing):
            self.reasons[i].append(
                problems[i]
                or (
                    "geometry cannot be read (unclosed ring, too few points or corrupt)"
                    if src.raw_geometry[i]
                    else "no geometry"
                )
            )
        present = ~missing
        empty = np.zeros(n, dtype=bool)
        empty[present] = shapely.is_empty(geoms[present])
        for i in np.flatnonzero(empty):
            self.reasons[i].append("empty geometry")
        ok = present & ~empty
        has_z = np.zeros(n, dtype=bool)
        has_m = np.zeros(n, dtype=bool)
        has_z[ok] = shapely.has_z(geoms[ok])
        has_m[ok] = shapely.has_m(geoms[ok])  # measures (M) are dropped too, and said
        if (has_z | has_m).any():
            dropped = has_z | has_m
            geoms[dropped] = shapely.force_2d(geoms[dropped])
            for i in np.flatnonzero(dropped):
                what = "/".join(d for d, hit in (("Z", has_z[i]), ("M", has_m[i])) if hit)
                self.repairs[i].append(f"{what} coordinates dropped")
        # lat/lon swapped: only decidable for lon/lat CRSs
        if src.crs is not None and src.crs.is_geographic and ok.any():
            b = shapely.bounds(geoms[ok])
            swapped = (
                (b[:, 0] >= CHINA_BBOX[1])
                & (b[:, 2] <= CHINA_BBOX[3])
                & (b[:, 1] >= CHINA_BBOX[0])
                & (b[:, 3] <= CHINA_BBOX[2])
                & ~((b[:, 0] >= CHINA_BBOX[0]) & (b[:, 1] >= CHINA_BBOX[1]))
            )
            for i in np.flatnonzero(ok)[swapped]:
                x, y = shapely.get_coordinates(geoms[i])[0]
                self.reasons[i].append(
                    f"coordinates look swapped: ({x:.5f}, {y:.5f}) is (latitude, longitude); "
                    "swap the columns (x = longitude, y = latitude)"
                )
                ok[i] = False
        if ok.any():
            if src.shift:
                unshift = gcj02_to_wgs84 if src.shift == "gcj02" else bd09_to_wgs84
                geoms[ok] = shapely.transform(
                    geoms[ok], lambda xy: np.column_stack(unshift(xy[:, 0], xy[:, 1]))
                )
            elif src.crs is not None and src.crs.to_epsg() != 4326:
                geoms[ok] = reproject(geoms[ok], src.crs, "EPSG:4326")
            b = shapely.bounds(geoms[ok])
            inside = (
                (b[:, 0] >= CHINA_BBOX[0])
                & (b[:, 1] >= CHINA_BBOX[1])
                & (b[:, 2] <= CHINA_BBOX[2])
                & (b[:, 3] <= CHINA_BBOX[3])
            )
            rows = np.flatnonzero(ok)
            for k in np.flatnonzero(~inside):
                i, (x, y) = rows[k], b[k, :2]
                self.reasons[i].append(
                    f"outside China after reading as {src.crs_label}: lon/lat ({x:.4f}, "
                    f"{y:.4f}); check `crs`"
                )
                ok[i] = False
        kinds = shapely.get_type_id(np.where(ok, geoms, None))
        polygonal = ok & np.isin(kinds, (3, 6))
        pointal = ok & np.isin(kinds, (0, 4))
        other = ok & ~polygonal & ~pointal
        for i in np.flatnonzero(other):
            self.reasons[i].append(f"a {geoms[i].geom_type}, not a polygon")
        for i in np.flatnonzero(pointal & ~allow_points):
            self.reasons[i].append(self.point_reason(i))
        pointal &= allow_points
        invalid = np.zeros(n, dtype=bool)
        invalid[polygonal] = ~shapely.is_valid(geoms[polygonal])
        for i in np.flatnonzero(invalid):
            why = shapely.is_valid_reason(geoms[i])
            fixed = _polygonal_part(shapely.make_valid(geoms[i]))
            if fixed is None:
                self.reasons[i].append(f"degenerate geometry ({why}) with no area after repair")
                polygonal[i] = False
            else:
                geoms[i] = fixed
                self.repairs[i].append(f"repaired invalid polygon ({why})")
        singles = polygonal & (shapely.get_type_id(np.where(polygonal, geoms, None)) == 3)
        if singles.any():
            geoms[singles] = [shapely.MultiPolygon([g]) for g in geoms[singles]]
        self.area = np.zeros(n)
        if polygonal.any():
            # one projection to equal-area for both the areas and the sliver test
            projected = reproject(geoms[polygonal], "EPSG:4326", CHINA_ALBERS)
            areas = shapely.area(projected)
            self.area[polygonal] = areas
            quotient = 4 * np.pi * areas / np.maximum(shapely.length(projected), 1e-9) ** 2
            rows = np.flatnonzero(polygonal)
            small = areas < MIN_AREA_M2
            for i in rows[small]:
                self.reasons[i].append(
                    f"degenerate: footprint {self.area[i]:.2f} m² is under {MIN_AREA_M2:g} m²"
                )
                polygonal[i] = False
            for k in np.flatnonzero(~small & (quotient < SLIVER_QUOTIENT)):
                self.flags[rows[k]].append(f"sliver (compactness {quotient[k]:.3f})")
        keep = polygonal | pointal
        return np.where(keep, geoms, None)

    def point_reason(self, i: int) -> str:
        return "a point where a polygon is expected; digitise the outline"

    # -- bookkeeping -----------------------------------------------------------------

    def new_batch(self, conn, checksum: str | None = None) -> int:
        """Record the batch (``checksum``: the file's SHA-256, if already computed)."""
        src = self.source
        return conn.execute(
            insert(ImportBatch)
            .values(
                source_file=str(src.path),
                layer=src.layer,
                checksum_sha256=checksum or _checksum(src.path),
                imported_by=self.imported_by,
                source_crs=src.crs_label,
                encoding=src.encoding,
                field_mapping={"target": self.target, "fields": self.mapping.as_profile()},
                read_count=0,
                loaded_count=0,
                updated_count=0,
                unchanged_count=0,
                rejected_count=0,
            )
            .returning(ImportBatch.id)
        ).scalar_one()

    def quarantine(self, conn, batch_id: int, rejected_rows: list[int], refs: list) -> None:
        rows = []
        attributes = self.source.attributes
        for i in rejected_rows:
            raw = self.source.raw_geometry[i]
            if raw is None and self.source.geometries[i] is not None:
                raw = shapely.to_wkt(self.source.geometries[i], rounding_precision=-1)
            rows.append(
                {
                    "batch_id": batch_id,
                    "source_row": self.row(i),
                    "survey_ref": refs[i],
                    "raw_attributes": {c: _jsonable(v) for c, v in attributes.iloc[i].items()},
                    "raw_geometry_wkt": raw,
                    "reasons": self.reasons[i],
                }
            )
        if rows:
            conn.execute(insert(RejectedFeature), rows)

    def finish_batch(self, conn, batch_id: int) -> None:
        r = self.report
        conn.execute(
            update(ImportBatch)
            .where(ImportBatch.id == batch_id)
            .values(
                read_count=r.read,
                loaded_count=r.loaded,
                updated_count=r.updated,
                unchanged_count=r.unchanged,
                rejected_count=r.rejected,
                finished_at=datetime.now(UTC),
            )
        )

    def collect_issues(self, refs: list) -> None:
        for i in range(len(self.source)):
            if self.reasons[i]:
                self.report.issues.append(
                    FeatureIssue(self.row(i), refs[i], "rejected", self.reasons[i])
                )
            elif self.repairs[i] or self.flags[i]:
                status = "repaired" if self.repairs[i] else "flagged"
                self.report.issues.append(
                    FeatureIssue(self.row(i), refs[i], status, self.repairs[i] + self.flags[i])
                )

    @abstractmethod
    def run(self) -> ImportReport:
        """Validate, write in one transaction, and return the report."""


def _polygonal_part(geom):
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    polys = [q for p in parts for q in shapely.get_parts(p)]
    polys = [p for p in polys if not p.is_empty and p.area > 0]
    return shapely.MultiPolygon(polys) if polys else None


def _who(engine) -> str | None:
    """Who imports: the database's session user on a shared store, else the login name."""
    with engine.connect() as conn:
        return who(conn)


def _duplicates(refs: list) -> dict[str, int]:
    """Survey references that occur more than once, with the row of their first occurrence."""
    first: dict[str, int] = {}
    again: set[str] = set()
    for i, ref in enumerate(refs):
        if ref is None:
            continue
        if ref in first:
            again.add(ref)
        else:
            first[ref] = i
    return {ref: first[ref] for ref in again}


def _overlap_flags(geoms: np.ndarray, refs: list) -> dict[int, list[str]]:
    """Return flags, by index, for polygons sharing at least 0.5 m² with another one.

    Each polygon's flags name the others in their order in ``geoms``.
    """
    geoms = np.asarray(geoms, dtype=object)
    found = _overlap_messages(*_overlaps(geoms, *_touching(geoms)), refs)
    return {i: [m for _, m in sorted(named)] for i, named in found.items()}


def _touching(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the pairs (left < right) of indices of polygons that intersect."""
    if len(geoms) < 2:
        return np.array([], dtype=np.intp), np.array([], dtype=np.intp)
    # the boxes first, then each pair tested once (the tree's predicate tests both ways)
    left, right = shapely.STRtree(geoms).query(geoms)
    keep = left < right
    left, right = left[keep], right[keep]
    hit = shapely.intersects(geoms[left], geoms[right])
    return left[hit], right[hit]


def _overlaps(geoms: np.ndarray, left, right) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return those pairs of ``geoms`` sharing at least 0.5 m², with the area shared."""
    if not len(left):
        return left, right, np.array([], dtype=float)
    shared = np.asarray(area_m2(shapely.intersection(geoms[left], geoms[right])), dtype=float)
    big = shared >= 0.5
    return left[big], right[big], shared[big]


def _overlap_messages(left, right, shared, refs: list) -> dict[int, list[tuple[int, str]]]:
    """Return, by index, (the other's index, flag) for each overlapping pair it is in."""
    found: dict[int, list[tuple[int, str]]] = {}
    for a, b, s in zip(left.tolist(), right.tolist(), shared.tolist(), strict=True):
        found.setdefault(a, []).append((b, f"overlaps {refs[b]} by {s:,.1f} m²"))
        found.setdefault(b, []).append((a, f"overlaps {refs[a]} by {s:,.1f} m²"))
    return found


def _take(values: list, index: np.ndarray) -> list:
    """Return ``values`` at ``index`` (increasing positions): all of them as they are."""
    if len(index) == len(values):  # nothing rejected: no copy through an array
        return values
    return np.asarray(values, dtype=object)[index].tolist() if len(index) else []


def _differs(old: object, new: object) -> bool:
    if isinstance(old, float) or isinstance(new, float):
        if old is None or new is None:
            return old is not new
        return not math.isclose(float(old), float(new), rel_tol=1e-9, abs_tol=1e-6)
    if isinstance(old, datetime):
        old = old.date()
    return old != new


def _as_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, date):
        return value.isoformat()
    return str(value)

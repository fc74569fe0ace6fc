"""Importing surveyors' files into the store: nothing lost, all or nothing, a report out.

Every feature read ends up loaded, updated, unchanged or quarantined in
``rejected_feature`` with its raw attributes, raw geometry and reasons, so that
``read == loaded + updated + unchanged + rejected`` always (the database checks it too).
A batch is one transaction holding the store's write lock: it commits whole or not at
all, and re-running an interrupted or repeated import is safe. Spaces are matched to
what the store holds by (community, survey reference); changed tenure and status
fields are written to ``space_history``.
"""

from __future__ import annotations

import csv
import getpass
import hashlib
import json
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import Engine, func, insert, select, update

from inventory._gc import gc_paused
from inventory.backends import backend, write_transaction
from inventory.chinacoords import bd09_to_wgs84, gcj02_to_wgs84
from inventory.errors import InputError, InventoryError
from inventory.fields import (
    COMMUNITY_FIELDS,
    MAX_PLAUSIBLE_AREA_M2,
    SPACE_FIELDS,
    FieldMapping,
    load_profile,
    map_columns,
    parse_bool,
    parse_code,
    parse_date,
    parse_number,
    parse_overrides,
    parse_text,
    save_profile,
)
from inventory.geodesy import CHINA_ALBERS, area_m2, reproject
from inventory.models import (
    TRACKED_FIELDS,
    Community,
    ImportBatch,
    RejectedFeature,
    Space,
    SpaceHistory,
)
from inventory.sources import Source, can_read_in_parts, count_features, list_layers, read
from inventory.store import require_schema

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
#: Layer names taken as community boundaries by --all-layers.
COMMUNITY_LAYER_NAMES = ("community", "communities", "社区", "小区", "boundary", "社区边界")

Progress = Callable[[str, int, int], None]

_SPACE_PARSERS: dict[str, Callable[[pd.Series], tuple[list, list]]] = {
    "survey_ref": parse_text,
    "name": parse_text,
    "kind": lambda c: parse_code(c, "kind", "kind"),
    "floor_area_m2": lambda c: parse_number(c, "floor area", maximum=MAX_PLAUSIBLE_AREA_M2),
    "usable_area_m2": lambda c: parse_number(c, "usable area", maximum=MAX_PLAUSIBLE_AREA_M2),
    "floors": lambda c: parse_number(
        c, "floors", integer=True, positive=False, minimum=-10, maximum=100
    ),
    "parking_spaces": lambda c: parse_number(
        c, "parking spaces", integer=True, positive=False, minimum=0, maximum=100_000
    ),
    "condition": lambda c: parse_code(c, "condition", "condition"),
    "current_use": parse_text,
    "vacancy": lambda c: parse_code(c, "vacancy", "vacancy"),
    "surveyed_at": lambda c: parse_date(c, "survey date"),
    "notes": parse_text,
    "owner_name": parse_text,
    "owner_type": lambda c: parse_code(c, "owner_type", "owner type"),
    "land_type": lambda c: parse_code(c, "land_type", "land type"),
    "certificate_status": lambda c: parse_code(c, "certificate_status", "certificate status"),
    "disputed": lambda c: parse_bool(c, "dispute"),
    "dispute_note": parse_text,
    "operating_right_holder": parse_text,
    "operating_right_start": lambda c: parse_date(c, "operating right start"),
    "operating_right_end": lambda c: parse_date(c, "operating right end"),
    "tenure_source_ref": parse_text,
    "community": parse_text,
}
_COMMUNITY_PARSERS: dict[str, Callable[[pd.Series], tuple[list, list]]] = {
    "name": parse_text,
    "district": parse_text,
    "street_office": parse_text,
    "built_year": lambda c: parse_number(c, "built year", integer=True, minimum=1900, maximum=2100),
    "households": lambda c: parse_number(c, "households", integer=True, positive=False, minimum=0),
    "residents": lambda c: parse_number(c, "residents", integer=True, positive=False, minimum=0),
    "floor_area_m2": lambda c: parse_number(c, "floor area", maximum=1e8),
}
_SPACE_COLUMNS = [f for f in SPACE_FIELDS if f != "community"]
_COMPARED = [*_SPACE_COLUMNS, "footprint_area_m2", "quality_flags", "extra_attributes"]


@dataclass
class FeatureIssue:
    """One line of the report: a feature that was rejected, repaired or flagged."""

    row: int
    survey_ref: str | None
    status: str  # "rejected" | "repaired" | "flagged"
    reasons: list[str]


@dataclass
class ImportReport:
    """What one import did: how the file was read, the counts, and every feature's issue."""

    source: str
    layer: str | None
    target: str  # "spaces" | "communities"
    dry_run: bool
    encoding: str
    encoding_note: str
    crs: str
    fields: dict[str, str]
    unmapped: list[str]
    read: int = 0
    loaded: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    batch_id: int | None = None
    communities_created: list[str] = field(default_factory=list)
    issues: list[FeatureIssue] = field(default_factory=list)

    @property
    def imported(self) -> int:
        """Features now in the store from this file (loaded, updated or unchanged)."""
        return self.loaded + self.updated + self.unchanged

    def write(self, path: str | Path) -> None:
        """Write the report: ``.json`` (everything) or ``.csv`` (one line per issue)."""
        p = Path(path)
        if p.suffix.lower() == ".csv":
            with p.open("w", newline="", encoding="utf-8-sig") as fh:  # BOM: Excel reads UTF-8
                writer = csv.writer(fh)
                writer.writerow(["source", "layer", "row", "survey_ref", "status", "reasons"])
                for issue in self.issues:
                    writer.writerow(
                        [
                            self.source,
                            self.layer or "",
                            issue.row,
                            issue.survey_ref or "",
                            issue.status,
                            "; ".join(issue.reasons),
                        ]
                    )
            return
        if p.suffix.lower() != ".json":
            raise InputError(f"Cannot write the report {p.name!r}: give a .json or .csv file name.")
        p.write_text(json.dumps(self.as_dict(), ensure_ascii=False, indent=2), encoding="utf-8")

    def as_dict(self) -> dict:
        """Return the report as plain data."""
        return asdict(self)


def write_reports(reports: list[ImportReport], path: str | Path) -> None:
    """Write several reports (one per file or layer) into one .json or .csv file."""
    if len(reports) == 1:
        reports[0].write(path)
        return
    p = Path(path)
    if p.suffix.lower() == ".json":
        p.write_text(
            json.dumps([r.as_dict() for r in reports], ensure_ascii=False, indent=2),
            encoding="utf-8",
        )
        return
    merged = ImportReport(**{**asdict(reports[0]), "issues": []})
    merged.issues = [i for r in reports for i in r.issues]
    merged.source = "; ".join(r.source for r in reports)
    merged.write(p)


def import_file(
    engine: Engine,
    path: str | Path,
    *,
    layer: str | None = None,
    all_layers: bool = False,
    communities: bool = False,
    crs: str | None = None,
    encoding: str | None = None,
    community: str | None = None,
    field_map: list[str] | dict[str, str] | None = None,
    profile: str | Path | None = None,
    save_profile_to: str | Path | None = None,
    dry_run: bool = False,
    imported_by: str | None = None,
    progress: Progress | None = None,
) -> list[ImportReport]:
    """Import a surveyor's file (every chosen layer) into the store; return one report per layer.

    Args:
        engine: the store (see :func:`inventory.db.connect`).
        path: Shapefile (or a .zip of one), GeoPackage, GeoJSON, KML, CSV or XLSX.
        layer: the layer to read, for files with several.
        all_layers: read every layer; those named like ``community``/``社区`` are taken
            as community boundaries and imported first.
        communities: the file holds community boundaries, not spaces.
        crs: the coordinates' CRS when the file has none or a wrong one (``EPSG:4548``,
            ``gcj02``, ``bd09``...).
        encoding: the attribute text's encoding, when detection gets it wrong.
        community: put every space in this community (created if new).
        field_map: overrides, ``["面积=floor_area_m2"]`` or ``{"面积": "floor_area_m2"}``.
        profile: a saved mapping profile (JSON) to apply; explicit options win over it.
        save_profile_to: write the mapping used to this profile file.
        dry_run: validate and count, then roll back: the store is left as it was.
        imported_by: who ran the import (default: the login name).
        progress: callback(stage, done, total).

    Raises:
        InputError: the file cannot be read or used (see the message for the fix).
        SchemaError: the store has no schema yet.

    """
    require_schema(engine)
    settings = load_profile(profile) if profile else {}
    overrides = dict(settings.get("fields", {}))
    overrides.update(field_map if isinstance(field_map, dict) else parse_overrides(field_map))
    crs = crs or settings.get("crs")
    encoding = encoding or settings.get("encoding")
    community = community or settings.get("community")
    path = Path(path)
    if all_layers:
        names = list_layers(path)
        targets = sorted(
            ((name, name.casefold() in COMMUNITY_LAYER_NAMES) for name in names),
            key=lambda t: not t[1],
        )
    else:
        targets = [(layer, communities)]
    reports = []
    for name, is_community in targets:
        in_parts = not is_community and can_read_in_parts(path)
        limit = CHUNK_FEATURES if in_parts else None
        source = read(path, layer=name, encoding=encoding, crs=crs, limit=limit)
        if len(source) == 0:
            raise InputError(
                f"{path.name}{f' (layer {name})' if name else ''} holds no features: nothing "
                "to import. Check that the right file or layer was exported."
            )
        options = (overrides, community, dry_run, imported_by, progress)
        total = count_features(path, source.layer) if len(source) == limit else len(source)
        if is_community:
            report = _CommunityImport(engine, source, *options).run()
        elif total > len(source):
            report = _import_in_parts(engine, source, total, crs, options)
        else:
            with gc_paused():
                report = _SpaceImport(engine, source, *options).run()
        if save_profile_to and not is_community:
            save_profile(
                save_profile_to,
                FieldMapping(fields={t: s for s, t in report.fields.items()}),
                crs=crs,
                encoding=encoding,
                community=community,
            )
        reports.append(report)
    return reports


@dataclass
class ImportRun:
    """What importing several files did: one report per file or layer, and the failures."""

    reports: list[ImportReport] = field(default_factory=list)
    failed: list[tuple[Path, InventoryError]] = field(default_factory=list)
    report_file: Path | None = None

    @property
    def ok(self) -> bool:
        """True when every file was read and imported something."""
        return not self.failed and all(r.imported for r in self.reports)


def import_files(
    engine: Engine,
    paths: list[str | Path],
    *,
    report_to: str | Path | None = None,
    save_profile_to: str | Path | None = None,
    **options,
) -> ImportRun:
    """Import files in turn (``options``: see :func:`import_file`); a failure stops no other.

    A file that cannot be imported is kept in :attr:`ImportRun.failed` with its error.

    ``report_to`` (.json or .csv) receives the reports of all files. Where the report and
    the profile go is checked before anything is imported, so a bad name never fails
    after data were committed.

    Raises:
        InputError: ``report_to`` or ``save_profile_to`` cannot be written.

    """
    if report_to is not None:
        _check_output(Path(report_to), (".json", ".csv"), "the report")
    if save_profile_to is not None:
        _check_output(Path(save_profile_to), (".json",), "the profile")
    run = ImportRun()
    for path in paths:
        try:
            run.reports += import_file(engine, path, save_profile_to=save_profile_to, **options)
        except InventoryError as exc:
            run.failed.append((Path(path), exc))
    if report_to is not None and run.reports:
        write_reports(run.reports, report_to)
        run.report_file = Path(report_to)
    return run


def _check_output(path: Path, suffixes: tuple[str, ...], what: str) -> None:
    """Refuse, before any work, an output file that could not be written."""
    if path.suffix.lower() not in suffixes:
        raise InputError(
            f"Cannot write {what} to {path.name!r}: give a {' or '.join(suffixes)} file name."
        )
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir() or not folder.is_dir() or not os.access(folder, os.W_OK):
        raise InputError(
            f"Cannot write {what} to {str(path)!r}: "
            + (
                "it is a folder"
                if path.is_dir()
                else f"the folder {str(folder)!r} is missing or not writable"
            )
            + "; give a file in a folder you can write to."
        )


def _import_in_parts(engine, first: Source, total: int, crs, options) -> ImportReport:
    """Import a large layer ``CHUNK_FEATURES`` features at a time, in one transaction.

    Memory holds one part of the file, not all of it. What depends on the whole file is
    found in a first pass that validates every part and keeps only the survey
    references and the polygons that take part in the overlap test; the second pass
    validates each part again and writes it with the whole file's duplicates and
    overlaps, so the store and the report are the same as from reading it all at once.
    """
    path, layer = first.path, first.layer

    def parts():
        yield 0, first
        for start in range(len(first), total, CHUNK_FEATURES):
            part = read(path, layer=layer, crs=crs, skip=start, limit=CHUNK_FEATURES, decided=first)
            if len(part):
                yield start, part

    report_progress = options[-1] or (lambda stage, done, count: None)

    def job(start: int, part: Source, stage: str) -> _SpaceImport:
        j = _SpaceImport(engine, part, *options)
        j.offset = start
        # one bar per pass over the whole file, not one per part
        j.progress = lambda step, done, count: (
            report_progress(stage, start + done, total) if step == "validate" else None
        )
        return j

    with write_transaction(engine) as conn:
        refs: list = []
        good_rows, good_geoms = [], []
        for start, part in parts():
            with gc_paused():
                j = job(start, part, "check (pass 1 of 2)")
                geoms, part_refs = j.validate(duplicates={})
                j.assign(conn, geoms)
                good = j.overlap_candidates(geoms)
            good_rows += [start + i for i in good]
            good_geoms.append(geoms[good])
            refs += part_refs
        duplicates = _duplicates(refs)
        # duplicates are rejected, so they take no part in the overlap test
        keep = [k for k, r in enumerate(good_rows) if refs[r] not in duplicates]
        rows = [good_rows[k] for k in keep]
        polygons = np.concatenate(good_geoms)[keep] if good_geoms else np.array([])
        found = _overlap_flags(polygons, [refs[r] for r in rows])
        overlaps = {rows[k]: messages for k, messages in found.items()}
        del refs, good_rows, good_geoms, polygons
        report, batch_id = None, None
        for start, part in parts():
            with gc_paused():
                j = job(start, part, "import (pass 2 of 2)")
                geoms, part_refs = j.validate(duplicates=duplicates)
                names = j.assign(conn, geoms)
                j.flag_overlaps(geoms, overlaps)
                if batch_id is None:
                    batch_id = j.new_batch(conn)
                j.store(conn, batch_id, geoms, names, part_refs)
            if report is None:
                report = j.report
            else:
                for count in ("read", "loaded", "updated", "unchanged", "rejected"):
                    setattr(report, count, getattr(report, count) + getattr(j.report, count))
                report.issues += j.report.issues
                report.communities_created += j.report.communities_created
        report.communities_created = sorted(report.communities_created)
        j.report = report  # the whole file's report closes the batch
        j.close(conn, batch_id)
    return report


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


class _Import(ABC):
    """Shared machinery of a space or community import over one source layer."""

    target = ""
    known: dict[str, tuple[str, ...]] = {}
    parsers: dict[str, Callable[[pd.Series], tuple[list, list]]] = {}

    def __init__(
        self, engine, source: Source, overrides, community, dry_run, imported_by, progress
    ):
        self.engine = engine
        self.source = source
        self.offset = 0  # rows of the file before this source's first (files read in parts)
        self.community = community
        self.dry_run = dry_run
        self.imported_by = imported_by or _login()
        self.progress = progress or (lambda stage, done, total: None)
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
            dry_run=dry_run,
            encoding=source.encoding or "",
            encoding_note=source.encoding_note,
            crs=source.crs_label,
            fields=self.mapping.as_profile(),
            unmapped=self.mapping.unmapped,
            read=n,
        )

    # -- parsing ---------------------------------------------------------------------

    def parse_fields(self) -> None:
        n = len(self.source)
        for target, parser in self.parsers.items():
            column = self.mapping.fields.get(target)
            if column is None:
                self.values[target] = [None] * n
                continue
            values, errors = parser(self.source.attributes[column])
            self.values[target] = values
            for i, err in enumerate(errors):
                if err:
                    self.reasons[i].append(err)
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
        for i in np.flatnonzero(missing):
            self.reasons[i].append(
                "geometry cannot be read (unclosed ring, too few points or corrupt)"
                if src.raw_geometry[i]
                else "no geometry"
            )
        present = ~missing
        empty = np.zeros(n, dtype=bool)
        empty[present] = shapely.is_empty(geoms[present])
        for i in np.flatnonzero(empty):
            self.reasons[i].append("empty geometry")
        ok = present & ~empty
        has_z = np.zeros(n, dtype=bool)
        has_z[ok] = shapely.has_z(geoms[ok])
        if has_z.any():
            geoms[has_z] = shapely.force_2d(geoms[has_z])
            for i in np.flatnonzero(has_z):
                self.repairs[i].append("Z/M coordinates dropped")
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
            for i, s in zip(np.flatnonzero(ok), swapped, strict=True):
                if s:
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
            for i, inn, (x, y) in zip(np.flatnonzero(ok), inside, b[:, :2], strict=True):
                if not inn:
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
            for i, q in zip(np.flatnonzero(polygonal), quotient, strict=True):
                if self.area[i] < MIN_AREA_M2:
                    self.reasons[i].append(
                        f"degenerate: footprint {self.area[i]:.2f} m² is under {MIN_AREA_M2:g} m²"
                    )
                    polygonal[i] = False
                elif q < SLIVER_QUOTIENT:
                    self.flags[i].append(f"sliver (compactness {q:.3f})")
        keep = polygonal | pointal
        return np.where(keep, geoms, None)

    def point_reason(self, i: int) -> str:
        return "a point where a polygon is expected; digitise the outline"

    # -- bookkeeping -----------------------------------------------------------------

    def new_batch(self, conn) -> int:
        src = self.source
        return conn.execute(
            insert(ImportBatch)
            .values(
                source_file=str(src.path),
                layer=src.layer,
                checksum_sha256=_checksum(src.path),
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
                    "source_row": self.offset + i + 1,
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
                    FeatureIssue(self.offset + i + 1, refs[i], "rejected", self.reasons[i])
                )
            elif self.repairs[i] or self.flags[i]:
                status = "repaired" if self.repairs[i] else "flagged"
                self.report.issues.append(
                    FeatureIssue(
                        self.offset + i + 1, refs[i], status, self.repairs[i] + self.flags[i]
                    )
                )

    @abstractmethod
    def run(self) -> ImportReport:
        """Validate, write in one transaction, and return the report."""


def _polygonal_part(geom):
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    polys = [q for p in parts for q in shapely.get_parts(p)]
    polys = [p for p in polys if not p.is_empty and p.area > 0]
    return shapely.MultiPolygon(polys) if polys else None


def _login() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return None


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
    """Return flags, by index, for polygons sharing at least 0.5 m² with another one."""
    found: dict[int, list[str]] = {}
    if len(geoms) < 2:
        return found
    geoms = np.asarray(geoms, dtype=object)
    left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    if len(left):
        shared = area_m2(shapely.intersection(geoms[left], geoms[right]))
        for a, b, s in zip(left.tolist(), right.tolist(), shared, strict=True):
            if s >= 0.5:
                found.setdefault(a, []).append(f"overlaps {refs[b]} by {s:,.1f} m²")
                found.setdefault(b, []).append(f"overlaps {refs[a]} by {s:,.1f} m²")
    return found


class _SpaceImport(_Import):
    target = "spaces"
    known = SPACE_FIELDS
    parsers = _SPACE_PARSERS

    def point_reason(self, i: int) -> str:
        kind = self.values["kind"][i]
        if kind == "parking":
            return "a parking point needs a space count (车位数) greater than 0"
        return (
            f"a point where a polygon is expected: a {kind or 'space'} needs its outline; only "
            "parking may be recorded as points (with a space count)"
        )

    def run(self) -> ImportReport:
        geoms, refs = self.validate()
        with write_transaction(self.engine) as conn:
            names = self.assign(conn, geoms)
            self.flag_overlaps(geoms)
            batch_id = self.new_batch(conn)
            self.store(conn, batch_id, geoms, names, refs)
            self.close(conn, batch_id)
        return self.report

    def close(self, conn, batch_id: int) -> None:
        """Record the batch's counts; roll back a dry run, else note the batch in the report."""
        self.finish_batch(conn, batch_id)
        if self.dry_run:
            conn.rollback()
        else:
            self.report.batch_id = batch_id

    def validate(self, duplicates: dict[str, int] | None = None) -> tuple[np.ndarray, list]:
        """Parse and check every feature; return (clean geometries or None, survey refs).

        ``duplicates`` maps the survey references that occur more than once in the whole
        file to the row (0-based, in the file) of their first occurrence; without it the
        source is the whole file and they are found here.
        """
        src = self.source
        n = len(src)
        if "kind" not in self.mapping.fields:
            raise InputError(
                f"{src.path.name}: no column gives the kind of space (类型/用途/kind). Its "
                f"columns: {', '.join(src.attributes.columns)}. Name it with `field_map=COLUMN=kind`."
            )
        self.progress("validate", 0, n)
        self.parse_fields()
        refs = self.values["survey_ref"]
        if "survey_ref" not in self.mapping.fields:
            refs = [f"{src.path.stem}#{self.offset + i + 1}" for i in range(n)]
            self.values["survey_ref"] = refs
        else:
            for i, ref in enumerate(refs):
                if ref is None:
                    self.reasons[i].append("no survey reference (编号)")
        if duplicates is None:
            duplicates = _duplicates(refs)
        for i, ref in enumerate(refs):
            if ref is not None and ref in duplicates:
                self.reasons[i].append(
                    f"survey reference {ref!r} appears more than once in the file (first at row "
                    f"{duplicates[ref] + 1}); give each space its own"
                )
        spaces = np.array([v or 0 for v in self.values["parking_spaces"]])
        kinds = np.array(self.values["kind"], dtype=object)
        allow_points = (kinds == "parking") & (spaces > 0)
        geoms = self.clean_geometries(allow_points)
        self._area_checks(geoms)
        self.progress("validate", n, n)
        return geoms, refs

    def overlap_candidates(self, geoms: np.ndarray) -> list[int]:
        """Rows whose polygons take part in the overlap test (loaded, with an area)."""
        return [
            i
            for i in range(len(geoms))
            if geoms[i] is not None and not self.reasons[i] and self.area[i] > 0
        ]

    def flag_overlaps(self, geoms: np.ndarray, found: dict[int, list[str]] | None = None) -> None:
        """Flag spaces overlapping another of the file: found here, or given by file row."""
        if found is None:
            good = self.overlap_candidates(geoms)
            found = _overlap_flags(geoms[good], [self.values["survey_ref"][i] for i in good])
            found = {good[k]: v for k, v in found.items()}
        else:
            found = {r - self.offset: v for r, v in found.items()}
        for i, messages in found.items():
            if 0 <= i < len(geoms):
                self.flags[i].extend(messages)

    def store(self, conn, batch_id: int, geoms, names, refs) -> None:
        """Write the loaded, updated and quarantined features and note every issue."""
        self._write(conn, batch_id, geoms, names, refs)
        rejected_rows = [i for i in range(len(geoms)) if self.reasons[i]]
        self.report.rejected = len(rejected_rows)
        self.quarantine(conn, batch_id, rejected_rows, refs)
        self.collect_issues(refs)

    def _area_checks(self, geoms: np.ndarray) -> None:
        floor = self.values["floor_area_m2"]
        floors = self.values["floors"]
        for i in range(len(geoms)):
            if geoms[i] is None or self.area[i] <= 0 or floor[i] is None:
                continue
            expected = self.area[i] * max(floors[i] or 1, 1)
            ratio = floor[i] / expected
            if not AREA_MISMATCH[0] <= ratio <= AREA_MISMATCH[1]:
                self.flags[i].append(
                    f"area mismatch: recorded floor area {floor[i]:,.1f} m² vs footprint "
                    f"{self.area[i]:,.1f} m² × {floors[i] or 1} floor(s)"
                )

    def assign(self, conn, geoms: np.ndarray) -> list[str | None]:
        """Put each space in its community (column, --community or boundary)."""
        n = len(geoms)
        rows = conn.execute(
            select(Community.id, Community.name, func.ST_AsBinary(Community.boundary))
        ).all()
        boundaries = {name: shapely.from_wkb(wkb) for _, name, wkb in rows if wkb is not None}
        self.community_ids = {name: cid for cid, name, _ in rows}
        column = self.values["community"]
        names: list[str | None] = [self.community or column[i] for i in range(n)]
        need = [i for i in range(n) if names[i] is None and geoms[i] is not None]
        if need and boundaries:
            bnames = list(boundaries)
            tree = shapely.STRtree(list(boundaries.values()))
            points = shapely.point_on_surface(geoms[need])
            hit_in, hit_tree = tree.query(points, predicate="within")
            for pi, ti in zip(hit_in, hit_tree, strict=True):
                names[need[pi]] = bnames[ti]
        for i in range(n):
            if names[i] is None and not self.reasons[i]:
                self.reasons[i].append(
                    "lies in no community's boundary and names no community; pass "
                    "`community=NAME`, add a community column, or import the boundaries "
                    "first (`communities=True`)"
                )
            elif names[i] in boundaries and geoms[i] is not None and not self.reasons[i]:
                if not shapely.covered_by(geoms[i], boundaries[names[i]].buffer(1e-6)):
                    self.flags[i].append(f"outside the boundary of {names[i]}")
        return names

    def _ensure_communities(self, conn, names: set[str]) -> None:
        missing = sorted(names - set(self.community_ids))
        if missing:
            created = conn.execute(
                insert(Community).returning(Community.name, Community.id),
                [{"name": name} for name in missing],
            )
            self.community_ids.update({name: cid for name, cid in created})
        self.report.communities_created = missing

    def _write(self, conn, batch_id: int, geoms, names, refs) -> None:
        ok = np.array([i for i in range(len(geoms)) if not self.reasons[i]], dtype=int)
        self._ensure_communities(conn, {names[i] for i in ok})
        # object columns: a list of ints with None must not become floats (1 → 1.0)
        rows = pd.DataFrame(
            {c: pd.Series(_take(self.values[c], ok), dtype=object) for c in _SPACE_COLUMNS}
        )
        rows["disputed"] = [bool(v) for v in rows["disputed"]]
        area = np.round(self.area[ok], 2)
        rows["footprint_area_m2"] = np.where(area > 0, area, None).astype(object)
        # usable area defaults to the floor area, or for open ground to the footprint
        open_ground = rows["kind"].isin(["idle_land", "coal_yard"]).to_numpy()
        fallback = np.where(open_ground, rows["footprint_area_m2"], None)
        rows["usable_area_m2"] = [
            u if u is not None else (f if f is not None else g)
            for u, f, g in zip(rows["usable_area_m2"], rows["floor_area_m2"], fallback, strict=True)
        ]
        rows["quality_flags"] = [self.flags[i] or None for i in ok]
        rows["extra_attributes"] = _take(self.extras, ok)
        rows["community_id"] = [self.community_ids[names[i]] for i in ok]
        rows = rows.astype(object).where(rows.notna(), None)
        geoms_ok = geoms[ok]
        existing = self._existing(conn, set(rows["community_id"]))
        is_new = np.ones(len(rows), dtype=bool)
        history = []
        if existing:
            keys = zip(rows["community_id"], rows["survey_ref"], strict=True)
            for j, key in enumerate(keys):
                old = existing.get(key)
                if old is None:
                    continue
                is_new[j] = False
                history += self._update(conn, batch_id, old, rows.iloc[j].to_dict(), geoms_ok[j])
        if history:
            conn.execute(insert(SpaceHistory), history)
        new = rows[is_new].copy()
        new["batch_id"] = batch_id
        self.progress("write", 0, len(new))
        backend(conn).bulk_insert(conn, Space.__table__, new, geoms_ok[is_new], "geom")
        self.report.loaded = len(new)
        self.progress("write", len(new), len(new))

    def _update(self, conn, batch_id: int, old: dict, row: dict, geom) -> list[dict]:
        """Update one existing space if anything differs; return its history rows."""
        changed = [c for c in _COMPARED if _differs(old[c], row[c])]
        same_geom = shapely.equals_exact(old["geom"], geom, tolerance=1e-9)
        if not changed and same_geom:
            self.report.unchanged += 1
            return []
        self.report.updated += 1
        values = {**row, "batch_id": batch_id, "updated_at": func.now()}
        if not same_geom:
            values["geom"] = func.ST_GeomFromText(shapely.to_wkt(geom, rounding_precision=-1), 4326)
            changed.append("geometry")
        conn.execute(update(Space).where(Space.id == old["id"]).values(**values))
        return [
            {
                "space_id": old["id"],
                "field": c,
                "batch_id": batch_id,
                "old_value": None if c == "geometry" else _as_text(old[c]),
                "new_value": None if c == "geometry" else _as_text(row[c]),
                "changed_by": self.imported_by,
            }
            for c in changed
            if c in TRACKED_FIELDS or c == "geometry"
        ]

    def _existing(self, conn, community_ids: set[int]) -> dict:
        if not community_ids:
            return {}
        cols = [Space.id, Space.community_id, *[getattr(Space, c) for c in _COMPARED]]
        result = {}
        for rec in conn.execute(
            select(*cols, func.ST_AsBinary(Space.geom).label("wkb")).where(
                Space.community_id.in_(community_ids)
            )
        ).mappings():
            row = dict(rec)
            row["geom"] = shapely.from_wkb(row.pop("wkb"))
            result[(row["community_id"], row["survey_ref"])] = row
        return result


def _take(values: list, index: np.ndarray) -> list:
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


class _CommunityImport(_Import):
    target = "communities"
    known = COMMUNITY_FIELDS
    parsers = _COMMUNITY_PARSERS

    def run(self) -> ImportReport:
        src = self.source
        n = len(src)
        if "name" not in self.mapping.fields:
            raise InputError(
                f"{src.path.name}: no column gives the community's name (社区名称/名称/name). Its "
                f"columns: {', '.join(src.attributes.columns)}. Name it with `field_map=COLUMN=name`."
            )
        self.parse_fields()
        names = self.values["name"]
        for i, name in enumerate(names):
            if name is None:
                self.reasons[i].append("no community name")
        dup = (
            pd.Series(names).duplicated(keep=False).to_numpy()
            & pd.notna(pd.Series(names)).to_numpy()
        )
        for i in np.flatnonzero(dup):
            self.reasons[i].append(f"community {names[i]!r} appears more than once in the file")
        geoms = self.clean_geometries(np.zeros(n, dtype=bool))
        with write_transaction(self.engine) as conn:
            batch_id = self.new_batch(conn)
            existing = {
                r.name: r
                for r in conn.execute(
                    select(Community.__table__, func.ST_AsBinary(Community.boundary).label("wkb"))
                ).mappings()
            }
            for i in range(n):
                if self.reasons[i]:
                    continue
                row = {c: self.values[c][i] for c in COMMUNITY_FIELDS}
                row["site_area_m2"] = round(float(self.area[i]), 1)
                old = existing.get(row["name"])
                wkt = shapely.to_wkt(geoms[i], rounding_precision=-1)
                boundary = func.ST_GeomFromText(wkt, 4326)
                if old is None:
                    conn.execute(insert(Community).values(**row, boundary=boundary))
                    self.report.loaded += 1
                    continue
                same_geom = old["wkb"] is not None and shapely.equals_exact(
                    shapely.from_wkb(old["wkb"]), geoms[i], tolerance=1e-9
                )
                if same_geom and not any(_differs(old[c], row[c]) for c in row):
                    self.report.unchanged += 1
                    continue
                conn.execute(
                    update(Community)
                    .where(Community.id == old["id"])
                    .values(**row, boundary=boundary)
                )
                self.report.updated += 1
            rejected_rows = [i for i in range(n) if self.reasons[i]]
            self.report.rejected = len(rejected_rows)
            self.quarantine(conn, batch_id, rejected_rows, names)
            self.finish_batch(conn, batch_id)
            self.collect_issues(names)
            if self.dry_run:
                conn.rollback()
            else:
                self.report.batch_id = batch_id
        return self.report

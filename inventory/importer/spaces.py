"""Importing spaces: validation, duplicates and overlaps, community assignment, the write."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import func, insert, select, update

from inventory.backends import backend, write_transaction
from inventory.codes import COUNTED_KINDS
from inventory.importer.base import (
    _COMPARED,
    _SPACE_COLUMNS,
    _SPACE_PARSERS,
    AREA_MISMATCH,
    _as_text,
    _differs,
    _duplicates,
    _Import,
    _overlap_flags,
    _take,
)
from inventory.importer.fields import MAX_PLAUSIBLE_AREA_M2, SPACE_FIELDS
from inventory.importer.report import ImportReport
from inventory.models import (
    TRACKED_FIELDS,
    Community,
    Space,
    SpaceHistory,
)
from inventory.tenure import sync_survey_rights


class _SpaceImport(_Import):
    target = "spaces"
    known = SPACE_FIELDS
    parsers = _SPACE_PARSERS

    def point_reason(self, i: int) -> str:
        kind = self.values["kind"][i]
        if kind == "parking":
            return "a parking point needs a space count (车位数) greater than 0"
        if kind in COUNTED_KINDS:
            return f"a {kind} point needs a count (数量/units) greater than 0"
        return (
            f"a point where a polygon is expected: a {kind or 'space'} needs its outline; only "
            "parking (with a space count) and counted facilities (charging posts, lifts, "
            "advertising spots, with a count) may be recorded as points"
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
        self.require_field("kind", "the kind of space (类型/用途/kind)")
        self.progress("validate", 0, n)
        self.parse_fields()
        refs = self.values["survey_ref"]
        derive = "survey_ref" not in self.mapping.fields
        if not derive:
            for i, ref in enumerate(refs):
                if ref is None:
                    self.reasons[i].append("no survey reference (编号)")
        spaces = np.array([v or 0 for v in self.values["parking_spaces"]])
        units = np.array([v or 0 for v in self.values["units"]])
        kinds = np.array(self.values["kind"], dtype=object)
        geoms = self.clean_geometries(
            ((kinds == "parking") & (spaces > 0)) | (np.isin(kinds, COUNTED_KINDS) & (units > 0))
        )
        if derive:
            # from the outline, not the row: a re-export in another order, or another file
            # of the same name, cannot overwrite a space it does not describe
            refs = outline_refs(geoms, [f"{src.path.stem}#{self.offset + i + 1}" for i in range(n)])
            self.values["survey_ref"] = refs
        starts, ends = self.values["operating_right_start"], self.values["operating_right_end"]
        for i, (start, end) in enumerate(zip(starts, ends, strict=True)):
            if start is not None and end is not None and end < start:
                self.reasons[i].append(
                    f"the operating right ends ({end}) before it starts ({start}); "
                    "check the two dates"
                )
        if duplicates is None:
            duplicates = _duplicates(refs)
        for i, ref in enumerate(refs):
            if ref is not None and ref in duplicates:
                self.reasons[i].append(
                    f"the same outline as row {duplicates[ref] + 1} (the file has no survey "
                    "reference column, so its spaces are told apart by their outlines)"
                    if derive
                    else f"survey reference {ref!r} appears more than once in the file (first "
                    f"at row {duplicates[ref] + 1}); give each space its own"
                )
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
            if self.area[i] > MAX_PLAUSIBLE_AREA_M2 and not self.reasons[i]:
                # a district outline or a unit error would add km² to every capacity total
                self.reasons[i].append(
                    f"footprint {self.area[i]:,.0f} m² is larger than any stock space "
                    f"({MAX_PLAUSIBLE_AREA_M2:,.0f} m²): a boundary or a unit error? Import "
                    "community boundaries with `communities=True`"
                )
                continue
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
        # the survey's owner, operating right and certificate as tenure records
        sync_survey_rights(conn, select(Space.id).where(Space.batch_id == batch_id))
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


def outline_refs(geoms: np.ndarray, fallback: list[str]) -> list[str]:
    """Return survey references derived from each outline (``G-`` and 12 hex digits).

    The same outline (to 1e-6°, about 0.1 m, in any vertex order) always gives the same
    reference, so importing a file without a reference column again, reordered or under
    another name, updates or keeps its spaces and never overwrites another's. A row with
    no usable geometry (it is rejected anyway) keeps ``fallback``.
    """
    out = list(fallback)
    present = np.array([g is not None for g in geoms], dtype=bool)
    if present.any():
        snapped = shapely.normalize(shapely.set_precision(geoms[present], 1e-6))
        for i, wkb in zip(np.flatnonzero(present), shapely.to_wkb(snapped), strict=True):
            out[i] = "G-" + hashlib.sha1(wkb, usedforsecurity=False).hexdigest()[:12]
    return out

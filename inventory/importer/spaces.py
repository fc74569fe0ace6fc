"""Importing spaces: validation, duplicates and overlaps, community assignment, the write."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import func, insert, literal, select, update

from inventory.backends import backend, write_transaction
from inventory.codes import COUNTED_KINDS
from inventory.geodesy import area_m2, metres_per_degree
from inventory.importer.base import (
    _COMPARED,
    _SPACE_COLUMNS,
    _SPACE_PARSERS,
    AREA_MISMATCH,
    DUPLICATE_IOU,
    DUPLICATE_POINT_M,
    _as_text,
    _differs,
    _duplicates,
    _Import,
    _overlap_messages,
    _overlaps,
    _take,
    _touching,
)
from inventory.importer.fields import MAX_PLAUSIBLE_AREA_M2, SPACE_FIELDS
from inventory.importer.report import FieldChange, ImportReport
from inventory.models import (
    TRACKED_FIELDS,
    BatchSpace,
    Community,
    RejectedFeature,
    RightSource,
    Space,
    SpaceHistory,
    TenureRight,
)
from inventory.tenure import SURVEY_TENURE_COLUMNS, sync_survey_rights

_SURVEY_TENURE = frozenset(SURVEY_TENURE_COLUMNS)


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
            with self.bulk_load(conn, len(geoms)):
                self.store(conn, batch_id, geoms, names, refs)
            self.close(conn, batch_id)
        return self.report

    @staticmethod
    def bulk_load(conn, rows: int):
        """Return the backend's fast path for ``rows`` spaces: their rights, rounds and history.

        Communities are analysed after it too: the planner must know how many the
        batch brought before it joins them to a large batch's spaces.
        """
        tables = [
            Space.__table__,
            TenureRight.__table__,
            BatchSpace.__table__,
            RightSource.__table__,
            SpaceHistory.__table__,  # a second round's changes: one per changed field
        ]
        return backend(conn).bulk_load(conn, tables, rows, analyse=[Community.__table__])

    def close(self, conn, batch_id: int) -> None:
        """Record the batch's counts; roll back a dry run, else note the batch in the report."""
        self.resolve_rejects(conn, batch_id)
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
        self.progress("validate", n // 4, n)  # the steps' shares of the time, measured
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
        self.progress("validate", n * 3 // 4, n)
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
                    f"the same outline as row {self.first_row_of(duplicates[ref])} (the file has no survey "
                    "reference column, so its spaces are told apart by their outlines)"
                    if derive
                    else f"survey reference {ref!r} appears more than once in the file (first "
                    f"at row {self.first_row_of(duplicates[ref])}); give each space its own"
                )
        self._area_checks(geoms)
        self.progress("validate", n, n)
        return geoms, refs

    def first_row_of(self, index: int) -> int:
        """Return the row the user sees of feature ``index`` (0-based, in the whole file)."""
        local = index - self.offset
        if 0 <= local < len(self.source):
            return self.row(local)
        return self.source.first_row + index  # another part of a GIS file: records are rows

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
            self.flag_overlaps_within(geoms, self.overlap_candidates(geoms))
            return
        for r, messages in found.items():
            if 0 <= r - self.offset < len(geoms):
                self.flags[r - self.offset].extend(messages)

    def flag_overlaps_within(self, geoms: np.ndarray, good: list[int]) -> tuple:
        """Flag the ``good`` spaces overlapping another of them.

        Returns the overlapping pairs: indices into ``good`` (left < right), area shared.
        """
        polygons = geoms[good] if good else np.array([], dtype=object)
        pairs = _overlaps(polygons, *_touching(polygons))
        found = _overlap_messages(*pairs, [self.values["survey_ref"][i] for i in good])
        for k, named in found.items():
            self.flags[good[k]].extend(m for _, m in sorted(named))
        return pairs

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
        area = self.area
        n = len(geoms)
        # the tests as arrays, the messages for the rows they hit (a part: 100,000 rows)
        rejected = np.fromiter(map(bool, self.reasons), dtype=bool, count=n)
        too_big = (area > MAX_PLAUSIBLE_AREA_M2) & ~rejected
        for i in np.flatnonzero(too_big):
            # a district outline or a unit error would add km² to every capacity total
            self.reasons[i].append(
                f"footprint {area[i]:,.0f} m² is larger than any stock space "
                f"({MAX_PLAUSIBLE_AREA_M2:,.0f} m²): a boundary or a unit error? Import "
                "community boundaries with `communities=True`"
            )
        recorded = np.array([np.nan if v is None else v for v in floor], dtype=float)
        storeys = np.array([max(v or 1, 1) for v in floors], dtype=float)
        has_geom = np.fromiter((g is not None for g in geoms), dtype=bool, count=n)
        tested = ~too_big & has_geom & (area > 0) & ~np.isnan(recorded)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = recorded / (area * storeys)
        fits = (AREA_MISMATCH[0] <= ratio) & (ratio <= AREA_MISMATCH[1])
        for i in np.flatnonzero(tested & ~fits):
            self.flags[i].append(
                f"area mismatch: recorded floor area {floor[i]:,.1f} m² vs footprint "
                f"{area[i]:,.1f} m² × {floors[i] or 1} floor(s)"
            )

    @staticmethod
    def community_rows(conn) -> list[tuple[int, str, bytes | None]]:
        """Return the store's communities: (id, name, boundary as WKB or None)."""
        return [
            (cid, name, None if wkb is None else bytes(wkb))
            for cid, name, wkb in conn.execute(
                select(Community.id, Community.name, func.ST_AsBinary(Community.boundary))
            )
        ]

    def assign(self, conn, geoms: np.ndarray, rows=None) -> list[str | None]:
        """Put each space in its community (column, --community or boundary).

        ``rows``: the store's :meth:`community_rows` read before (``conn`` is then unused).
        """
        n = len(geoms)
        rows = self.community_rows(conn) if rows is None else rows
        bounded = [(name, wkb) for _, name, wkb in rows if wkb is not None]
        outlines = shapely.from_wkb([wkb for _, wkb in bounded])  # one call for them all
        boundaries = dict(zip([name for name, _ in bounded], outlines, strict=True))
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
        named = [
            i
            for i in range(n)
            if names[i] in boundaries and geoms[i] is not None and not self.reasons[i]
        ]
        if named:
            # each boundary grown (and prepared) once, not once for each of its spaces
            grown = {name: boundaries[name].buffer(1e-6) for name in {names[i] for i in named}}
            shapely.prepare(list(grown.values()))
            within = shapely.covered_by(
                geoms[named], np.array([grown[names[i]] for i in named], dtype=object)
            )
            for i, inside in zip(named, within.tolist(), strict=True):
                if not inside:
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
        # the columns as lists of Python values, None for none, each made once: one
        # frame of object columns (a list of ints with None must not become floats, 1 →
        # 1.0), not columns inferred by pandas and converted back (0.5 s a part)
        columns = {c: _take(self.values[c], ok) for c in _SPACE_COLUMNS}
        columns["disputed"] = [bool(v) for v in columns["disputed"]]
        area = np.round(self.area[ok], 2)
        footprint = np.where(area > 0, area, None).tolist()
        columns["footprint_area_m2"] = footprint
        # usable area defaults to the floor area, or for open ground to the footprint
        open_ground = np.isin(np.asarray(columns["kind"], dtype=object), ["idle_land", "coal_yard"])
        columns["usable_area_m2"] = [
            u if u is not None else f if f is not None else g if o else None
            for u, f, g, o in zip(
                columns["usable_area_m2"],
                columns["floor_area_m2"],
                footprint,
                open_ground.tolist(),
                strict=True,
            )
        ]
        columns["quality_flags"] = [self.flags[i] or None for i in ok]
        columns["extra_attributes"] = _take(self.extras, ok)
        columns["community_id"] = [self.community_ids[names[i]] for i in ok.tolist()]
        geoms_ok = geoms[ok]
        existing = self._existing(conn, set(columns["community_id"]))
        is_new = np.ones(len(ok), dtype=bool)
        history = []
        self.updated_ids: list[int] = []
        self.retitled_ids: list[int] = []  # updated, and their survey tenure changed
        self.unchanged_ids: list[int] = []
        if existing:
            # compared with the stored spaces as a frame; a store with none of the file's
            # communities (a first import) takes the columns as they are
            rows = pd.DataFrame({c: pd.Series(v, dtype=object) for c, v in columns.items()})
            keys = list(zip(rows["community_id"], rows["survey_ref"], strict=True))
            matches = self._same_in_store(rows, geoms_ok, keys, existing, batch_id)
            for j, (old, how) in matches.items():
                if self.options.match_geometry:
                    self.report.matched.append((rows.at[j, "survey_ref"], old["survey_ref"], how))
                    rows.at[j, "survey_ref"] = old["survey_ref"]  # the stored space's reference
                    keys[j] = (old["community_id"], old["survey_ref"])
                else:
                    flag = f"probable duplicate of {old['survey_ref']} in the store ({how})"
                    self.flags[ok[j]].append(flag)
                    rows.at[j, "quality_flags"] = [*(rows.at[j, "quality_flags"] or []), flag]
                    self.report.duplicates.append(
                        (rows.at[j, "survey_ref"], old["survey_ref"], how)
                    )
            # one conversion, not a Series per row; tolist() gives each column's objects as
            # they are (to_dict boxes each of 5 million values through a Python check)
            fields = rows.columns.tolist()  # plain names: an Index is walked per item
            columns = {c: rows[c].tolist() for c in fields}  # with the matches' changes
            del rows
            records = [
                dict(zip(fields, values, strict=True))
                for values in zip(*columns.values(), strict=True)
            ]
            changed = []
            for j, key in enumerate(keys):
                old = existing.get(key)
                if old is None:
                    continue
                is_new[j] = False
                history += self._compare(batch_id, old, records[j], geoms_ok[j], changed)
                if old["retired_at"] is not None:
                    self.report.retired_delivered.append(old["survey_ref"])
            self._apply(conn, batch_id, changed)
        if history:
            backend(conn).bulk_insert(
                conn, SpaceHistory.__table__, pd.DataFrame(history, dtype=object)
            )
        keep = np.flatnonzero(is_new)
        new = {c: _take(v, keep) for c, v in columns.items()}  # all: the lists as they are
        del columns
        count = len(keep)
        new["batch_id"] = [batch_id] * count
        # the rows as they go in, then the tenure records and the round (a tenth)
        total = count + max(1, count // 10)
        self.progress("write", 0, total)
        # the new spaces' ids in hand: their rights and the round are written from them,
        # not read back from a table whose indexes may be down for the load
        ids = backend(conn).reserve_ids(conn, Space.__table__, count)
        new = {"id": ids, **new}
        backend(conn).bulk_insert(
            conn,
            Space.__table__,
            new,
            geoms_ok[is_new],
            "geom",
            progress=lambda rows: self.progress("write", rows, total),
        )
        self.report.loaded = count
        # the survey's owner, operating right and certificate as tenure records
        surveyed = list(zip(ids, *(new[c] for c in SURVEY_TENURE_COLUMNS), strict=True))
        sync_survey_rights(conn, ids, fresh=True, surveyed=surveyed)
        # the rights of a space come from its tenure columns: a round that changed areas
        # or use leaves them be
        for start in range(0, len(self.retitled_ids), 10_000):
            sync_survey_rights(conn, self.retitled_ids[start : start + 10_000])
        self._record_round(conn, batch_id, ids)
        self.progress("write", total, total)

    def _same_in_store(self, rows, geoms, keys, existing, batch_id) -> dict[int, tuple[dict, str]]:
        """Return, by row, the stored space of another reference that this one is (best first).

        A polygon is the same when its outline and a stored one's overlap by more than
        :data:`DUPLICATE_IOU` of their union; a point, within :data:`DUPLICATE_POINT_M`.
        Each stored space is claimed once (the closest match), and only by a row whose
        own reference the store does not hold. Spaces of this batch (an earlier part of the
        same file) are the file's own: its overlap test sees them.
        """
        delivered = set(keys)
        stored = [
            old
            for key, old in existing.items()
            if key not in delivered
            and old["retired_at"] is None
            and old["geom"] is not None
            and old["batch_id"] != batch_id
        ]
        new = [j for j, key in enumerate(keys) if key not in existing and geoms[j] is not None]
        if not stored or not new:
            return {}
        tree = shapely.STRtree([old["geom"] for old in stored])
        candidates = np.asarray(geoms, dtype=object)[new]
        is_point = np.isin(shapely.get_type_id(candidates), (0, 4))
        pairs = []
        if (~is_point).any():
            where = np.flatnonzero(~is_point)
            hit, other = tree.query(candidates[where], predicate="intersects")
            pairs.append((where[hit], other))
        if is_point.any():  # 2e-5° is two metres or more anywhere in China: a margin
            where = np.flatnonzero(is_point)
            hit, other = tree.query(candidates[where], predicate="dwithin", distance=2e-5)
            pairs.append((where[hit], other))
        left = np.concatenate([p[0] for p in pairs])
        right = np.concatenate([p[1] for p in pairs])
        if not len(left):
            return {}
        mine = np.asarray(geoms, dtype=object)[[new[i] for i in left]]
        theirs = np.asarray([stored[k]["geom"] for k in right], dtype=object)
        polygonal = np.isin(shapely.get_type_id(mine), (3, 6)) & np.isin(
            shapely.get_type_id(theirs), (3, 6)
        )
        score = np.zeros(len(left))
        if polygonal.any():
            inter = area_m2(shapely.intersection(mine[polygonal], theirs[polygonal]))
            union = area_m2(shapely.union(mine[polygonal], theirs[polygonal]))
            score[polygonal] = inter / np.maximum(union, 1e-9)
        points = ~polygonal & np.isin(shapely.get_type_id(mine), (0, 4))
        if points.any():
            a = shapely.centroid(mine[points])
            b = shapely.centroid(theirs[points])
            lon, lat = shapely.get_x(a), shapely.get_y(a)
            kx, ky = metres_per_degree(lat)
            dist = np.hypot((shapely.get_x(b) - lon) * kx, (shapely.get_y(b) - lat) * ky)
            score[points] = np.where(dist <= DUPLICATE_POINT_M, 1 - dist / 100, 0)
        found: dict[int, tuple[dict, str]] = {}
        claimed: set[int] = set()
        for k in np.argsort(-score, kind="stable"):
            row, other = new[left[k]], int(right[k])
            if row in found or other in claimed:
                continue
            if polygonal[k] and score[k] > DUPLICATE_IOU:
                how = f"outlines overlap {score[k]:.0%}"
            elif points[k] and score[k] > 0:
                how = f"{(1 - score[k]) * 100:.1f} m apart"
            else:
                continue
            found[row] = (stored[other], how)
            claimed.add(other)
        return found

    def _record_round(self, conn, batch_id: int, written) -> None:
        """Note what this part of the batch delivered (``batch_space``): loaded, updated, unchanged.

        ``written``: the ids of the new spaces, increasing. When they are one run, the
        server lists them from the table's primary key (no 100,000 rows to send).
        """
        loaded = written
        if written and written[-1] - written[0] + 1 == len(written):
            conn.execute(
                insert(BatchSpace).from_select(
                    ["batch_id", "space_id", "action"],
                    select(literal(batch_id), Space.id, literal("loaded")).where(
                        Space.id.between(written[0], written[-1])
                    ),
                )
            )
            loaded = []
        for action, ids in (
            ("loaded", loaded),
            ("updated", self.updated_ids),
            ("unchanged", self.unchanged_ids),
        ):
            if ids:
                backend(conn).bulk_insert(
                    conn,
                    BatchSpace.__table__,
                    pd.DataFrame(
                        {"batch_id": batch_id, "space_id": ids, "action": action}, dtype=object
                    ),
                )

    def resolve_rejects(self, conn, batch_id: int) -> None:
        """Mark resolved the earlier batches' rejects whose survey reference this batch delivered."""
        refs = (
            select(Space.survey_ref)
            .join(BatchSpace, BatchSpace.space_id == Space.id)
            .where(BatchSpace.batch_id == batch_id)
        )
        self.report.rejects_resolved = conn.execute(
            update(RejectedFeature)
            .where(
                RejectedFeature.resolved_batch_id.is_(None),
                RejectedFeature.batch_id != batch_id,
                RejectedFeature.survey_ref.in_(refs),
            )
            .values(resolved_batch_id=batch_id, resolved_at=func.now())
        ).rowcount

    def _compare(self, batch_id: int, old: dict, row: dict, geom, changed: list) -> list[dict]:
        """Compare a delivered space with its stored self; return its history rows.

        Only what the file delivers changes: a field the file has no column for keeps its
        stored value (a second round that surveys areas and use leaves tenure alone), and
        attributes kept verbatim are merged with the stored ones. A space that differs is
        appended to ``changed`` as ``(id, row, geometry or None when unchanged)``.
        """
        delivered = set(self.mapping.fields)
        for c in _SPACE_COLUMNS:
            if c not in delivered and not (c == "usable_area_m2" and old[c] is None):
                row[c] = old[c]  # usable area is derived (from the floor area) only if none
        if old["extra_attributes"] or row["extra_attributes"]:
            row["extra_attributes"] = {
                **(old["extra_attributes"] or {}),
                **(row["extra_attributes"] or {}),
            }
        # equal values are the same (the cheap test first); unequal ones may be the same
        # number written differently, or a date stored with a time
        fields = [c for c in _COMPARED if old[c] != row[c] and _differs(old[c], row[c])]
        same_geom = shapely.equals_exact(old["geom"], geom, tolerance=1e-9)
        if not fields and same_geom:
            self.report.unchanged += 1
            self.unchanged_ids.append(old["id"])
            return []
        self.report.updated += 1
        self.updated_ids.append(old["id"])
        if not _SURVEY_TENURE.isdisjoint(fields):
            self.retitled_ids.append(old["id"])
        self.report.changes += [
            FieldChange(row["survey_ref"], c, _as_text(old[c]), _as_text(row[c]))
            for c in fields
            if c not in ("quality_flags", "extra_attributes")
        ] + ([] if same_geom else [FieldChange(row["survey_ref"], "geometry", None, None)])
        changed.append((old["id"], row, None if same_geom else geom))
        if not same_geom:
            fields.append("geometry")
        return [
            {
                "space_id": old["id"],
                "field": c,
                "batch_id": batch_id,
                "old_value": None if c == "geometry" else _as_text(old[c]),
                "new_value": None if c == "geometry" else _as_text(row[c]),
                "changed_by": self.imported_by,
            }
            for c in fields
            if c in TRACKED_FIELDS or c == "geometry"
        ]

    @staticmethod
    def _apply(conn, batch_id: int, changed: list) -> None:
        """Write the ``changed`` spaces of :meth:`_compare`: two bulk updates, not one each.

        Those whose outline moved get it too; the others keep the stored one as it is.
        """
        for moved in (False, True):
            part = [(sid, row, geom) for sid, row, geom in changed if (geom is not None) == moved]
            if not part:
                continue
            frame = pd.DataFrame([row for _, row, _ in part], dtype=object)
            frame.insert(0, "id", pd.Series([sid for sid, _, _ in part], dtype=object))
            frame["batch_id"] = pd.Series(batch_id, index=frame.index, dtype=object)
            backend(conn).bulk_update(
                conn,
                Space.__table__,
                frame,
                np.array([geom for _, _, geom in part], dtype=object) if moved else None,
                "geom" if moved else None,
                stamped=("updated_at",),
            )

    def _existing(self, conn, community_ids: set[int]) -> dict:
        if not community_ids:
            return {}
        cols = [
            Space.id,
            Space.community_id,
            Space.retired_at,
            Space.batch_id,
            *[getattr(Space, c) for c in _COMPARED],
        ]
        found = conn.execute(
            select(*cols, func.ST_AsBinary(Space.geom).label("geom")).where(
                Space.community_id.in_(community_ids)
            )
        )
        names = list(found.keys())
        rows = found.all()
        # the outlines parsed in one call, not one per space
        outlines = shapely.from_wkb([row[-1] for row in rows]).tolist()
        result = {}
        for row, outline in zip(rows, outlines, strict=True):
            space = dict(zip(names, row, strict=True))
            space["geom"] = outline
            result[(space["community_id"], space["survey_ref"])] = space
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

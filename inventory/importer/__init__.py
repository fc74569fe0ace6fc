"""Importing surveyors' files into the store: nothing lost, all or nothing, a report out.

Every feature read ends up loaded, updated, unchanged or quarantined in
``rejected_feature`` with its raw attributes, raw geometry and reasons, so that
``read == loaded + updated + unchanged + rejected`` always (the database checks it too).
A batch is one transaction holding the store's write lock: it commits whole or not at
all, and re-running an interrupted or repeated import is safe. Spaces are matched to
what the store holds by (community, survey reference); changed tenure and status
fields are written to ``space_history``.

The job is split by step: :mod:`.sources` reads files, :mod:`.fields` maps columns and
parses values, :mod:`.base` holds what every import shares, :mod:`.spaces` and
:mod:`.communities` import each kind of layer, :mod:`.report` describes the outcome.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import JSON, Column, Engine, Integer, MetaData, String, Table, select, update

from inventory._gc import gc_paused, next_burst
from inventory.backends import backend, write_transaction
from inventory.errors import InputError, InventoryError
from inventory.importer._apart import Worker
from inventory.importer.base import (
    _SPACE_PARSERS,
    CHUNK_FEATURES,
    COMMUNITY_LAYER_NAMES,
    DUPLICATE_IOU,
    FILE_NOTES,
    ImportOptions,
    Progress,
    _checksum,
    _duplicates,
    _overlap_flags,
    _overlap_messages,
    _overlaps,
    _touching,
    _who,
)
from inventory.importer.communities import _CommunityImport
from inventory.importer.fields import (
    SPACE_FIELDS,
    FieldMapping,
    check_value_aliases,
    load_profile,
    map_columns,
    parse_constants,
    parse_overrides,
    parse_text,
    save_profile,
)
from inventory.importer.report import FeatureIssue, ImportReport, write_reports
from inventory.importer.sources import (
    Source,
    can_read_in_parts,
    count_features,
    list_layers,
    read,
    read_column,
)
from inventory.importer.spaces import _SpaceImport
from inventory.models import Community, Space
from inventory.store import require_schema

__all__ = [
    "DUPLICATE_IOU",
    "FeatureIssue",
    "ImportReport",
    "ImportRun",
    "import_file",
    "import_files",
    "write_reports",
]


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
    constants: dict[str, str] | list[str] | None = None,
    value_aliases: dict[str, dict[str, str]] | None = None,
    match_geometry: bool = False,
    header_row: int | None = None,
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
        constants: a value for a field on every feature, ``{"kind": "门房"}`` or
            ``["kind=门房"]`` (``--set``), parsed and checked as if the file held it.
        value_aliases: the surveyor's words for code values, ``{"kind": {"仓库":
            "service_room"}}`` (also a profile's ``values``; these win).
        match_geometry: a space whose reference the store does not know but whose outline
            matches a stored space's (see :data:`DUPLICATE_IOU`) updates that space, keeping
            its reference: a re-survey without stable references. Without it such a
            space is loaded and flagged as a probable duplicate.
        header_row: the row (1-based, as Excel numbers it) of a table's column names;
            without it a title row above them is recognised.
        progress: callback(stage, done, total).

    Raises:
        InputError: the file cannot be read or used (see the message for the fix).
        SchemaError: the store has no schema yet.

    """
    require_schema(engine)
    settings = load_profile(profile) if profile else {}
    constants = constants if isinstance(constants, dict) else parse_constants(constants)
    aliases = settings.get("values", {})
    for name, table in check_value_aliases(value_aliases or {}, "`value_aliases`").items():
        aliases[name] = {**aliases.get(name, {}), **table}
    overrides = dict(settings.get("fields", {}))
    overrides.update(field_map if isinstance(field_map, dict) else parse_overrides(field_map))
    crs = crs or settings.get("crs")
    encoding = encoding or settings.get("encoding")
    community = community or settings.get("community")
    _check_community_name(community)
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
        source = read(
            path, layer=name, encoding=encoding, crs=crs, limit=limit, header_row=header_row
        )
        if len(source) == 0:
            raise InputError(
                f"{path.name}{f' (layer {name})' if name else ''} holds no features: nothing "
                "to import. Check that the right file or layer was exported."
            )
        options = ImportOptions(
            overrides, community, dry_run, imported_by, constants, aliases, match_geometry, progress
        )
        total = count_features(path, source.layer) if len(source) == limit else len(source)
        if is_community:
            report = _CommunityImport(engine, source, options).run()
        elif total > len(source):
            report = _import_in_parts(engine, source, total, crs, options)
        else:
            with gc_paused():
                report = _SpaceImport(engine, source, options).run()
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


def _check_community_name(name: str | None) -> None:
    """Refuse a community name the store cannot hold, before anything is read."""
    if name is None:
        return
    _, error = parse_text(pd.Series([name]), "community", Community.name.type.length)
    if error[0]:
        raise InputError(f"`community={name[:20]}…`: {error[0]}.")


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

    Memory holds two parts of the file, not all of it: while one part is written, the
    next is read and checked in a thread (the server inserts as Python checks; reading
    and checking touch no database). What depends on the whole file is
    found in a first pass that validates every part and keeps only the survey
    references and the polygons that take part in the overlap test; the second pass
    validates each part again and writes it with the whole file's duplicates and
    overlaps, so the store and the report are the same as from reading it all at once.
    Into a store with no spaces yet, one pass does it (:func:`_refs_ahead`): the
    references are read ahead alone, and the overlaps flagged once every part is written
    (:func:`_flag_overlaps_after`).
    """
    report_progress = options.progress or (lambda stage, done, count: None)

    def job(start: int, part: Source, stage: str) -> _SpaceImport:
        j = _SpaceImport(engine, part, options)
        j.offset = start
        return shown(j, stage)

    def shown(j: _SpaceImport, stage: str) -> _SpaceImport:
        # one bar per pass over the whole file, not one per part; pass 2 moves as the
        # parts are written (each is checked beside the write of the one before)
        step_shown = "write" if stage.startswith("import") else "validate"
        start, size = j.offset, len(j.source)

        def progress(step: str, done: int, count: int) -> None:
            if step == step_shown and count:
                report_progress(stage, start + int(size * done / count), total)

        j.engine, j.progress = engine, progress
        return j

    # who imports, asked once (a worker process has no store to ask)
    options = replace(options, imported_by=options.imported_by or _who(engine))
    # the file's checksum is hashed from the start, beside the reading: hashing runs
    # without Python's lock, but each chunk's return waits for it, and asked for when the
    # first part was written, beside the next part's reading, it took ~1 s for 64 MB
    starts = [0, *range(len(first), total, CHUNK_FEATURES)]
    with (
        # the process that checks half the parts for the write loads the importer
        # while this one reads the references ahead (or runs the first pass)
        _second_process(total, starts) or nullcontext() as spare,
        ThreadPoolExecutor(1, thread_name_prefix="checksum") as hashing,
        write_transaction(engine) as conn,
    ):
        checksum = hashing.submit(_checksum, first.path)
        ahead = _refs_ahead(conn, first, total, options)
        if ahead is not None:
            # one pass: the duplicates from the references read ahead, the overlaps
            # found as the parts are written and flagged after
            duplicates, overlaps = _duplicates(ahead), None
            del ahead
        else:
            duplicates, overlaps = _whole_file_checks(first, total, crs, options, conn, job)
        stage = "import (pass 2 of 2)" if overlaps is not None else "import"
        # the communities of the store: those this import creates have no boundary, so
        # a part's spaces are placed the same by these and told the new ids before the write
        communities = _SpaceImport.community_rows(conn)

        # from CHECK_IN_PARALLEL_FROM features a second process checks every other part
        worker = _give(
            spare,
            first,
            crs,
            options,
            starts,
            _check_for_write_apart,
            (duplicates, overlaps, communities),
            keep=1,  # a checked part is large: one waits here, the next in the worker
        )

        def checked(k: int) -> _Checked | None:
            """Read and check part ``k``; no database, so beside a write."""
            if worker is not None and k in worker.keys:
                found = worker.result(k, missing=_STOPPED)
                if isinstance(found, InventoryError):
                    raise found
                if found is not _STOPPED:  # else the worker stopped: check it here
                    if found is not None:
                        shown(found.job, stage)
                    return found
            part = first
            if k:  # a second pass reads text the first found well decoded
                part = _read_part(first, crs, starts[k], checked=overlaps is not None)
                if not len(part):
                    return None
            return _check_for_write(job(starts[k], part, stage), duplicates, overlaps, communities)

        report, batch_id = None, None
        kept = _Kept()
        known: dict[str, int] = {}
        # Python checks a part while the server inserts the one before: two cores busy
        with (
            _SpaceImport.bulk_load(conn, total),
            gc_paused(),
            ThreadPoolExecutor(1, thread_name_prefix="check") as pool,
        ):
            coming = pool.submit(checked, 0)
            for k in range(len(starts)):
                done = coming.result()
                if k + 1 < len(starts):
                    coming = pool.submit(checked, k + 1)
                if done is None:
                    continue
                j = done.job
                j.community_ids.update(known)  # those earlier parts created
                if batch_id is None:
                    batch_id = j.new_batch(conn, checksum.result())
                j.store(conn, batch_id, done.geoms, done.names, done.refs)
                known = j.community_ids
                if overlaps is None:
                    kept.add(done)
                report = j.report if report is None else report.add_part(j.report)
                del done
                next_burst()
            if overlaps is None:
                _flag_overlaps_after(conn, report, first, kept)
        report.communities_created = sorted(report.communities_created)
        j.report = report  # the whole file's report closes the batch
        j.close(conn, batch_id)
    return report


def _check_for_write(j: _SpaceImport, duplicates, overlaps, communities) -> _Checked:
    """Check one part for its write, beside the write of the one before or in a worker.

    With the whole file's ``duplicates`` and, in two passes, its ``overlaps``; in one
    pass the overlaps within the part are flagged now, those across parts after.
    """
    geoms, refs = j.validate(duplicates=duplicates)
    names = j.assign(None, geoms, communities)
    if overlaps is not None:
        j.flag_overlaps(geoms, overlaps)
        return _Checked(j, j.offset, geoms, refs, names)
    good = j.overlap_candidates(geoms)
    within = j.flag_overlaps_within(geoms, good)
    return _Checked(j, j.offset, geoms, refs, names, good, within)


def _check_for_write_apart(
    path, layer, crs, decided, options, duplicates, overlaps, communities, start, limit
) -> _Checked | None:
    """:func:`_check_for_write` in a worker process, which reads its part itself.

    The collector is paused from the reading on: the part's million values would set off
    collections that walk them all (0.2 s a part).
    """
    with gc_paused():
        part = read(
            path,
            layer=layer,
            crs=crs,
            skip=start,
            limit=limit,
            decided=decided,
            checked=overlaps is not None,
        )
        if not len(part):
            return None
        j = _SpaceImport(None, part, options)
        j.offset = start
        return _check_for_write(j, duplicates, overlaps, communities)


#: What :meth:`Worker.result` gives for a part the worker never answered for.
_STOPPED = object()


@dataclass
class _Checked:
    """One part of a layer checked for the write (``good`` and ``within``: in one pass)."""

    job: _SpaceImport
    start: int
    geoms: np.ndarray
    refs: list
    names: list
    good: list[int] | None = None
    within: tuple | None = None

    def __getstate__(self) -> dict:
        return {
            **vars(self),
            "geoms": shapely.to_wkb(self.geoms, include_srid=True),
        }  # see Source.__getstate__

    def __setstate__(self, state: dict) -> None:
        vars(self).update(state, geoms=shapely.from_wkb(state["geoms"]))


def _whole_file_checks(first: Source, total: int, crs, options, conn, job):
    """Pass 1: return the whole file's duplicate references and overlap flags (by file row)."""
    refs: list = []
    good_rows, good_geoms = [], []
    checked = _first_pass(first, total, crs, options, _SpaceImport.community_rows(conn), job)
    for start, (part_refs, good, geoms) in checked:
        good_rows += [start + i for i in good]
        good_geoms.append(geoms)
        refs += part_refs
    duplicates = _duplicates(refs)
    # duplicates are rejected, so they take no part in the overlap test
    keep = [k for k, r in enumerate(good_rows) if refs[r] not in duplicates]
    rows = [good_rows[k] for k in keep]
    polygons = np.concatenate(good_geoms)[keep] if good_geoms else np.array([])
    found = _overlap_flags(polygons, [refs[r] for r in rows])
    return duplicates, {rows[k]: messages for k, messages in found.items()}


def _refs_ahead(conn, first: Source, total: int, options: ImportOptions) -> list | None:
    """Return the whole layer's survey references, read alone, when one pass will do.

    That is when the store holds no space yet (none can be updated, kept unchanged or
    matched, whose comparison needs every flag before the write) and the references
    come from a column of the file as it stands (not derived from outlines, not set
    with ``--set``, not renamed by value aliases). They are parsed as the import parses
    them, so the duplicates are the same.
    """
    if conn.execute(select(Space.id).limit(1)).first() is not None:
        return None
    if "survey_ref" in (options.constants or {}) or "survey_ref" in (options.aliases or {}):
        return None
    columns = [c for c in first.attributes.columns if c not in FILE_NOTES]
    column = map_columns(columns, SPACE_FIELDS, options.overrides).fields.get("survey_ref")
    raw = None if column is None else read_column(first, column)
    if raw is None or len(raw) != total:
        return None
    refs, _ = _SPACE_PARSERS["survey_ref"](raw)
    return refs


@dataclass
class _Kept:
    """What the overlap test needs of the spaces written in one pass, part by part."""

    rows: list[int] = field(default_factory=list)  # in the file
    geoms: list[np.ndarray] = field(default_factory=list)
    refs: list[str] = field(default_factory=list)
    community_ids: list[int] = field(default_factory=list)
    flags: dict[int, list[str]] = field(default_factory=dict)  # as written, where any
    within: list[tuple] = field(default_factory=list)  # each part's overlapping pairs

    def add(self, part: _Checked) -> None:
        """Keep a written part's spaces that take part in the overlap test."""
        j, start, good = part.job, part.start, part.good
        left, right, shared = part.within
        base = len(self.rows)
        self.within.append((left + base, right + base, shared))
        self.rows += [start + i for i in good]
        self.geoms.append(part.geoms[good])
        self.refs += [part.refs[i] for i in good]
        self.community_ids += [j.community_ids[part.names[i]] for i in good]
        self.flags.update({start + i: list(j.flags[i]) for i in good if j.flags[i]})


def _flag_overlaps_after(conn, report, first: Source, kept: _Kept) -> None:
    """Flag the overlaps between parts, once all are written.

    Each part's spaces were written flagged with the overlaps within the part; a space
    that also overlaps one of another part gets all its overlap flags again, in the
    order reading the file whole gives them, after its other flags, in the store and in
    the report's issues. Those spaces are updated by one statement joined to a
    temporary table of their flags.
    """
    if not kept.geoms:
        return
    geoms = np.concatenate(kept.geoms)
    part = np.repeat(np.arange(len(kept.geoms)), [len(g) for g in kept.geoms])
    left, right = _touching(geoms)
    cross = part[left] != part[right]
    across = _overlaps(geoms, left[cross], right[cross])
    if not len(across[0]):
        return  # every overlap was within a part, flagged as it was written
    changed = np.union1d(across[0], across[1])
    wl, wr, ws = (np.concatenate(column) for column in zip(*kept.within, strict=True))
    near = np.isin(wl, changed) | np.isin(wr, changed)
    written = _overlap_messages(wl[near], wr[near], ws[near], kept.refs)
    named = _overlap_messages(*across, kept.refs)
    found = {}  # kept index: (overlap flags written, all of them)
    for k in changed.tolist():
        mine = written.get(k, [])
        found[k] = (len(mine), [m for _, m in sorted(mine + named[k])])
    flagged = MetaData()
    table = Table(
        "overlap_flags",
        flagged,
        Column("community_id", Integer),
        Column("survey_ref", String),
        Column("quality_flags", JSON),
        prefixes=["TEMPORARY"],
    )
    table.create(conn)
    rows = []
    for k, (n, messages) in found.items():
        flags = kept.flags.get(kept.rows[k], [])
        rows.append((kept.community_ids[k], kept.refs[k], flags[: len(flags) - n] + messages))
    backend(conn).bulk_insert(
        conn, table, pd.DataFrame(rows, columns=[c.name for c in table.columns], dtype=object)
    )
    space = Space.__table__
    conn.execute(
        update(space)
        .where(
            space.c.community_id == table.c.community_id,
            space.c.survey_ref == table.c.survey_ref,
        )
        .values(quality_flags=table.c.quality_flags)
    )
    table.drop(conn)
    by_row = {issue.row: issue for issue in report.issues}
    for k, (n, messages) in found.items():
        row = first.first_row + kept.rows[k]
        if row in by_row:
            reasons = by_row[row].reasons
            by_row[row].reasons = reasons[: len(reasons) - n] + messages
        else:
            report.issues.append(FeatureIssue(row, kept.refs[k], "flagged", list(messages)))
    report.issues.sort(key=lambda issue: issue.row)


#: From how many features a layer's parts are checked by two processes, each every other
#: part (two cores read and check at once; below it, starting the process costs more):
#: the first of two passes, and the parts checked for the write.
CHECK_IN_PARALLEL_FROM = 300_000


def _first_pass(first: Source, total: int, crs, options: ImportOptions, communities, job):
    """Return, part by part in file order, (start, (refs, overlap rows, their outlines)).

    The first pass of :func:`_import_in_parts`: each part is read and checked as pass 2
    will, keeping only what the whole-file checks need. From
    :data:`CHECK_IN_PARALLEL_FROM` features every other part is checked by a second
    process (:mod:`._apart`) while this one checks the rest; an error comes from the
    first failing part in file order, as when one process reads them all, and a part
    the second process did not answer for is checked here.
    """
    starts = [0, *range(len(first), total, CHUNK_FEATURES)]
    stage = "check (pass 1 of 2)"
    report_progress = options.progress or (lambda stage, done, count: None)
    done = 0
    worker = _give(
        _second_process(total, starts),
        first,
        crs,
        options,
        starts,
        _check_part_apart,
        (communities,),
    )
    try:
        mine: dict[int, tuple | InventoryError] = {}
        for k, start in enumerate(starts):
            if worker is not None and k in worker.keys:
                continue
            try:
                mine[k] = _check_here(first, crs, start, job, stage, communities)
            except InventoryError as exc:
                mine[k] = exc
                break
            done += len(mine[k][0])
            report_progress(stage, done, total)
        out = []
        for k, start in enumerate(starts):
            found = mine.get(k)
            if found is None and worker is not None and k in worker.keys:
                found = worker.result(k)
                if isinstance(found, tuple):
                    found = (found[0], found[1], shapely.from_wkb(found[2]))
                elif found is None:  # the worker stopped: check it here
                    found = _check_here(first, crs, start, job, stage, communities)
                if isinstance(found, tuple):
                    done += len(found[0])
                    report_progress(stage, done, total)
            if found is None:
                break  # after the failing part
            if isinstance(found, InventoryError):
                raise found
            out.append((start, found))
        return out
    finally:
        if worker is not None:
            worker.stop()


def _second_process(total: int, starts: list[int]) -> Worker | None:
    """Start the process that will check every other part, for a layer large enough.

    None below :data:`CHECK_IN_PARALLEL_FROM` features, or when no process can start
    (an embedded interpreter): the caller checks every part then.
    """
    if total < CHECK_IN_PARALLEL_FROM or len(starts) < 3:
        return None
    try:
        return Worker()
    except OSError:
        return None


def _give(
    worker: Worker | None,
    first: Source,
    crs,
    options: ImportOptions,
    starts: list[int],
    task,
    shared: tuple,
    keep: int | None = None,
) -> Worker | None:
    """Give ``worker`` (if any) every other part of the layer to run ``task`` on.

    ``task`` is called with the file, its layer and CRS, the first part's decisions
    (encoding), the options, ``shared``, then a part's start and length.
    """
    if worker is None:
        return None
    # the worker needs the encoding decided, not the first part's rows
    decided = replace(
        first,
        attributes=first.attributes.iloc[:0],
        geometries=first.geometries[:0],
        raw_geometry=[],
        geometry_problems=None,
        row_numbers=None,
    )
    common = (first.path, first.layer, crs, decided, replace(options, progress=None), *shared)
    apart = [(k, (starts[k], CHUNK_FEATURES)) for k in range(1, len(starts), 2)]
    return worker.give(task, common, apart, keep=keep)


def _check_here(first: Source, crs, start: int, job, stage: str, communities) -> tuple:
    part = first if start == 0 else _read_part(first, crs, start)
    j = job(start, part, stage)
    j.progress = lambda step, n, count: None  # the bar moves part by part
    return _check_part(j, communities)


def _read_part(first: Source, crs, start: int, checked: bool = False) -> Source:
    """Read the part of ``first``'s layer from feature ``start`` (see :func:`read`)."""
    return read(
        first.path,
        layer=first.layer,
        crs=crs,
        skip=start,
        limit=CHUNK_FEATURES,
        decided=first,
        checked=checked,
    )


def _check_part(j: _SpaceImport, communities) -> tuple[list, list[int], np.ndarray]:
    """Check one part as pass 2 will; return its references, overlap rows and their outlines."""
    with gc_paused():
        geoms, refs = j.validate(duplicates={})
        j.assign(None, geoms, communities)
        good = j.overlap_candidates(geoms)
    return refs, good, geoms[good]


def _check_part_apart(path, layer, crs, decided, options, communities, start, limit):
    """:func:`_check_part` in a worker process, which reads its part itself (outlines as WKB)."""
    with gc_paused():  # from the reading on, as in _check_for_write_apart
        part = read(path, layer=layer, crs=crs, skip=start, limit=limit, decided=decided)
        if not len(part):
            return [], [], np.array([], dtype=object)
        j = _SpaceImport(None, part, options)
        j.offset = start
        refs, good, geoms = _check_part(j, communities)
    return refs, good, shapely.to_wkb(geoms)

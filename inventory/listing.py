"""Looking at what the store holds: spaces with their tenure, and the quarantine."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import (
    ColumnElement,
    Connection,
    CursorResult,
    Engine,
    Text,
    cast,
    func,
    or_,
    select,
)
from sqlalchemy.engine.cursor import CursorFetchStrategy

from inventory.backends import backend
from inventory.codes import KIND
from inventory.errors import InputError
from inventory.models import Community, ImportBatch, RejectedFeature, Space
from inventory.store import require_batch, require_community, require_district, require_schema

SPACE_COLUMNS = (
    "space_id",
    "survey_ref",
    "community",
    "district",
    "street_office",
    "kind",
    "kind_zh",
    "name",
    "footprint_area_m2",
    "floor_area_m2",
    "floors",
    "usable_area_m2",
    "parking_spaces",
    "units",
    "vacancy",
    "condition",
    "current_use",
    "owner_name",
    "owner_type",
    "land_type",
    "certificate_status",
    "disputed",
    "dispute_note",
    "operating_right_holder",
    "operating_right_start",
    "operating_right_end",
    "tenure_source_ref",
    "permit_end",
    "permit_uses",
    "surveyed_at",
    "notes",
    "quality_flags",
    "batch_id",
)


def spaces(
    engine: Engine,
    *,
    community: str | None = None,
    kinds: str | list[str] | None = None,
    batch: int | None = None,
    bounds: tuple[float, float, float, float] | None = None,
    limit: int | None = None,
    where: ColumnElement | Callable[..., ColumnElement] | None = None,
    extras: bool = False,
    district: str | None = None,
    connection: Connection | None = None,
    communities: list[str] | None = None,
    columns: Sequence[str] | None = None,
) -> gpd.GeoDataFrame:
    """Return the spaces (EPSG:4326) with their areas, tenure and community, filtered.

    ``district`` keeps the spaces of the communities in that district; ``communities``
    those of the communities named (a package of them: one read, not one per community).

    ``kinds``: one kind or several, each a code or any alias (锅炉房). ``bounds`` (minx, miny, maxx, maxy in
    degrees) keeps the spaces whose bounding box meets it, through the spatial index.
    ``limit`` keeps the first spaces in (community, survey reference) order; ``where`` is
    a further SQL condition on the ``space`` table, or a function of the permits this
    listing joins (:func:`inventory.gaps.permits_to_join`; None: none) that returns one,
    for a condition on the title rules. ``extras`` adds ``extra_attributes``:
    the source file's columns that map to no field, as delivered (a dict per space).
    ``connection``: read in its transaction (one snapshot with what else it reads)
    rather than on a connection of the listing's own. ``columns``: only these of
    :data:`SPACE_COLUMNS` (and the geometry), for a caller that needs few of them: the
    rest is neither read nor made.
    Raises InputError for an unknown kind, community, batch or column.
    """
    from inventory.gaps import permit_end_sql, permits_to_join, with_permits  # they list

    require_schema(engine)
    wanted = _wanted(columns)
    # what the wanted columns are made from
    read = {*wanted, *(["kind"] if "kind_zh" in wanted else [])}
    read |= {"space_id"} if "permit_uses" in wanted else set()
    named = communities is not None
    whole = not (community or district or named or bounds or batch is not None or limit)
    permits = permits_to_join(whole)
    permit_end = permit_end_sql(Space.id) if permits is None else permits.c.permit_end
    derived = {
        "space_id": Space.id.label("space_id"),
        "community": Community.name.label("community"),
        "district": Community.district,
        "street_office": Community.street_office,
        "permit_end": permit_end.label("permit_end"),
    }
    stmt = select(
        *[_selected(c) for c in SPACE_COLUMNS if c in Space.__table__.c and c in read],
        *[column for name, column in derived.items() if name in read],
        func.ST_AsBinary(Space.geom).label("wkb"),
        *([_selected("extra_attributes")] if extras else []),
    )
    stmt = _filtered(stmt, engine, community, kinds, batch, bounds, district)
    if named:
        _require_communities(engine, communities)
        stmt = stmt.where(Community.name.in_(list(communities)))
    stmt = with_permits(stmt, Space.id, permits)
    if where is not None:
        stmt = stmt.where(where(permits) if callable(where) else where)
    stmt = stmt.order_by(Community.name, Space.survey_ref).limit(limit)
    with _connection(engine, connection) as conn:
        frame = frame_of(conn.execute(stmt))
        uses = None
        if len(frame) and "permit_uses" in wanted:
            uses = permit_uses(engine, frame["space_id"], connection=conn)
    columns = [*wanted, *(["extra_attributes"] if extras else [])]
    if frame.empty:
        return gpd.GeoDataFrame(columns=[*columns, "geometry"], geometry="geometry", crs=4326)
    for c in set(_JSON_AS_TEXT) & set(frame.columns):
        frame[c] = _decoded(frame[c])
    if "kind_zh" in wanted:
        kinds_zh = {k: KIND.label(k, "zh") for k in frame["kind"].unique()}
        frame["kind_zh"] = frame["kind"].map(kinds_zh)
    if "permit_uses" in wanted:
        frame["permit_uses"] = uses
    wkb = frame.pop("wkb").to_numpy(dtype=object)
    if not all(type(w) is bytes for w in wkb):  # a driver's memoryview, say
        wkb = np.array([bytes(w) for w in wkb], dtype=object)
    geometry = shapely.from_wkb(wkb)
    # the frame is this call's own: no copy (geopandas copies a DataFrame by default,
    # 1.3 s for 600,000 spaces)
    return gpd.GeoDataFrame(frame[columns], geometry=geometry, crs=4326, copy=False)


def _wanted(columns: Sequence[str] | None) -> list[str]:
    """Return the columns of :data:`SPACE_COLUMNS` asked for, in its order (None: all)."""
    if columns is None:
        return list(SPACE_COLUMNS)
    unknown = [c for c in columns if c not in SPACE_COLUMNS]
    if unknown:
        raise InputError(
            f"Unknown column {unknown[0]!r} of the spaces; use any of {', '.join(SPACE_COLUMNS)}."
        )
    return [c for c in SPACE_COLUMNS if c in set(columns)]


def frame_of(result: CursorResult) -> pd.DataFrame:
    """Return a result's rows as a DataFrame, its columns named as the result's.

    Where SQLAlchemy has nothing to convert in any column (no result processor: on
    PostGIS, every column the listings read), the rows are the driver's own tuples,
    read from its cursor: making a ``Row`` of each and a tuple of each ``Row`` again
    cost 1.1–1.8 s for the 625,000 spaces with a title gap of a million. Otherwise
    (SpatiaLite's dates, for one) the rows go through SQLAlchemy as tuples (pandas
    probes a ``Row`` with ``hasattr()``, two exceptions each).
    """
    columns = list(result.keys())
    processors = getattr(getattr(result, "_metadata", None), "_processors", None)
    # only a plain cursor, nothing buffered ahead: its rows are all still in the cursor
    unbuffered = type(getattr(result, "cursor_strategy", None)) is CursorFetchStrategy
    if processors is not None and unbuffered and not any(processors):
        rows = result.cursor.fetchall()
        result.close()
    else:
        rows = list(map(tuple, result.fetchall()))
    return pd.DataFrame(rows, columns=columns)


#: JSON columns read as their text and decoded in one parse (:func:`_decoded`): a driver
#: decodes each value alone, which cost 0.7 s for a city's flagged spaces.
_JSON_AS_TEXT = ("quality_flags", "extra_attributes")


def _selected(column: str):
    """Return the ``space`` column to select: a JSON one as its text (:data:`_JSON_AS_TEXT`)."""
    if column in _JSON_AS_TEXT:
        return cast(getattr(Space, column), Text).label(column)
    return getattr(Space, column)


def _decoded(texts: pd.Series) -> pd.Series:
    """Return a column of JSON texts decoded (a missing value stays None)."""
    values = texts.to_numpy(dtype=object)
    where = [i for i, t in enumerate(values) if isinstance(t, str)]
    out = np.full(len(values), None, dtype=object)
    for i, value in zip(where, json.loads("[" + ",".join(values[where]) + "]"), strict=True):
        out[i] = value
    return pd.Series(out, index=texts.index, dtype=object)


@contextmanager
def _connection(engine: Engine, connection: Connection | None) -> Iterator[Connection]:
    """Yield ``connection`` as it is, or a connection of ``engine`` for the block."""
    if connection is not None:
        yield connection
    else:
        with engine.connect() as conn:
            yield conn


def permit_uses(
    engine: Engine,
    space_ids: pd.Series,
    today: date | None = None,
    *,
    connection: Connection | None = None,
) -> pd.Series:
    """Return, per space id, the uses its transitional permits valid ``today`` allow (or None).

    Permits are few (a handful per community), so they are read once and matched here
    (on ``connection`` when given).
    """
    from inventory.models import TenureRight

    today = today or date.today()
    r = TenureRight
    stmt = select(r.space_id, r.allowed_uses).where(
        r.kind == "transitional_permit",
        r.status == "active",
        or_(r.start_date.is_(None), r.start_date <= today),
        or_(r.end_date.is_(None), r.end_date >= today),
    )
    if len(space_ids) <= 1000:  # a community: ask for its spaces only
        stmt = stmt.where(r.space_id.in_([int(i) for i in space_ids]))
    uses: dict[int, list[str]] = {}
    with _connection(engine, connection) as conn:
        for space_id, allowed in conn.execute(stmt.order_by(r.id)):
            seen = uses.setdefault(space_id, [])
            seen += [u for u in allowed or [] if u not in seen]
    return pd.Series([uses.get(i) for i in space_ids], index=space_ids.index, dtype=object)


def count_spaces(
    engine: Engine,
    *,
    community: str | None = None,
    kinds: str | list[str] | None = None,
    batch: int | None = None,
) -> int:
    """Return how many spaces :func:`spaces` would list with these filters."""
    require_schema(engine)
    stmt = _filtered(select(func.count()), engine, community, kinds, batch, None)
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def _require_communities(engine: Engine, names: list[str]) -> None:
    """Raise InputError (as :func:`require_community` does) for the first name not stored."""
    with engine.connect() as conn:
        held = set(conn.scalars(select(Community.name).where(Community.name.in_(list(names)))))
    for name in names:
        if name not in held:
            require_community(engine, name)


def _filtered(stmt, engine: Engine, community, kinds, batch, bounds, district=None):
    require_community(engine, community)
    require_district(engine, district)
    require_batch(engine, batch)
    stmt = stmt.select_from(Space).join(Community, Space.community_id == Community.id)
    stmt = stmt.where(Space.retired_at.is_(None))  # retired spaces leave every analysis
    if community:
        stmt = stmt.where(Community.name == community)
    if district:
        stmt = stmt.where(Community.district == district)
    codes = KIND.match_all(kinds, "kinds")
    if codes:
        stmt = stmt.where(Space.kind.in_(codes))
    if batch is not None:
        stmt = stmt.where(Space.batch_id == batch)
    if bounds is not None:
        stmt = stmt.where(
            backend(engine).bbox_filter(Space.__table__, Space.__table__.c.geom, bounds)
        )
    return stmt


def rejects(
    engine: Engine,
    *,
    batch: int | None = None,
    limit: int | None = None,
    resolved: bool = False,
) -> pd.DataFrame:
    """Return the quarantined features with their batch, file, row, reasons and raw data.

    Only the open ones, unless ``resolved`` (then the resolved ones too, with the batch
    that resolved each: ``resolved_batch_id``). ``limit`` keeps the first features in
    (batch, row) order.
    """
    require_schema(engine)
    require_batch(engine, batch)
    stmt = _rejects_where(
        select(
            RejectedFeature.batch_id,
            ImportBatch.source_file,
            ImportBatch.layer,
            ImportBatch.source_crs,
            RejectedFeature.source_row,
            RejectedFeature.survey_ref,
            RejectedFeature.reasons,
            RejectedFeature.raw_attributes,
            RejectedFeature.raw_geometry_wkt,
            RejectedFeature.resolved_batch_id,
        )
        .join(ImportBatch, RejectedFeature.batch_id == ImportBatch.id)
        .order_by(RejectedFeature.batch_id, RejectedFeature.source_row),
        batch,
        resolved,
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt.limit(limit)).mappings().all()
    columns = [
        "batch_id",
        "source_file",
        "layer",
        "source_crs",
        "source_row",
        "survey_ref",
        "reasons",
        "raw_attributes",
        "raw_geometry_wkt",
        "resolved_batch_id",
    ]
    return pd.DataFrame(rows, columns=columns)


def _rejects_where(stmt, batch: int | None, resolved: bool):
    if batch is not None:
        stmt = stmt.where(RejectedFeature.batch_id == batch)
    if not resolved:
        stmt = stmt.where(RejectedFeature.resolved_batch_id.is_(None))
    return stmt


def count_rejects(engine: Engine, *, batch: int | None = None, resolved: bool = False) -> int:
    """Return how many quarantined features :func:`rejects` would list."""
    require_schema(engine)
    require_batch(engine, batch)
    stmt = _rejects_where(select(func.count()).select_from(RejectedFeature), batch, resolved)
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


#: The column of :func:`rejects_to_fix` saying why (the importer leaves it out, see
#: :data:`inventory.importer.base.FILE_NOTES`).
REJECT_REASON_COLUMN = "rejected_because"


def rejects_to_fix(engine: Engine, *, batch: int | None = None) -> tuple[gpd.GeoDataFrame, str]:
    """Return the open rejects of one batch as the surveyor delivered them, to fix and re-import.

    The file's own columns (in its order) and the geometry in the file's CRS, plus
    :data:`REJECT_REASON_COLUMN`; and how to import it back (the ``--crs`` to give when the
    output keeps no CRS, as CSV and XLSX do). Geometry that could not be read stays as the
    text delivered, in ``raw_geometry``.

    Raises:
        InputError: no open rejects, or open rejects of several batches and no ``batch``.

    """
    frame = rejects(engine, batch=batch)
    if frame.empty:
        where = f" in batch {batch}" if batch is not None else ""
        raise InputError(f"No open rejects{where}: nothing to fix (inventory rejects --resolved).")
    batches = sorted(frame["batch_id"].unique())
    if len(batches) > 1:
        raise InputError(
            f"The open rejects come from batches {', '.join(map(str, batches))}: choose one "
            "with --batch (each delivery is fixed and imported back on its own)."
        )
    label = frame["source_crs"].iloc[0] or ""
    code = re.search(r"EPSG:\d+", label)
    shifted = next((s for s in ("gcj02", "bd09") if s in label.lower().replace("-", "")), None)
    crs = code.group(0) if code else "EPSG:4326"
    texts = frame["raw_geometry_wkt"].to_numpy(dtype=object)
    geoms = shapely.from_wkt(texts, on_invalid="ignore")
    raw = [t if g is None and t is not None else None for g, t in zip(geoms, texts, strict=True)]
    columns: list[str] = []
    for attrs in frame["raw_attributes"]:
        columns += [c for c in attrs or {} if c not in columns]
    table = pd.DataFrame(
        [[(attrs or {}).get(c) for c in columns] for attrs in frame["raw_attributes"]],
        columns=columns,
    )
    table[REJECT_REASON_COLUMN] = ["; ".join(r) for r in frame["reasons"]]
    if any(raw):
        table["raw_geometry"] = raw
    hint = f"--crs {shifted or crs}" if shifted or code else ""
    return gpd.GeoDataFrame(table, geometry=geoms, crs=crs), hint


def spaces_and_count(
    engine: Engine,
    *,
    community: str | None = None,
    kinds: str | list[str] | None = None,
    batch: int | None = None,
    limit: int | None = None,
) -> tuple[gpd.GeoDataFrame, int]:
    """Return the first ``limit`` spaces (all with None) and how many there are in all."""
    frame = spaces(engine, community=community, kinds=kinds, batch=batch, limit=limit)
    return _with_total(
        frame, limit, lambda: count_spaces(engine, community=community, kinds=kinds, batch=batch)
    )


def rejects_and_count(
    engine: Engine, *, batch: int | None = None, limit: int | None = None, resolved: bool = False
) -> tuple[pd.DataFrame, int]:
    """Return the first ``limit`` quarantined features (all with None) and how many in all."""
    frame = rejects(engine, batch=batch, limit=limit, resolved=resolved)
    return _with_total(frame, limit, lambda: count_rejects(engine, batch=batch, resolved=resolved))


def _with_total(frame, limit: int | None, count) -> tuple:
    """Pair a page of rows with how many there are: counted only when the page is full."""
    return frame, len(frame) if limit is None or len(frame) < limit else count()


def communities(
    engine: Engine, names: list[str] | None = None, *, district: str | None = None
) -> gpd.GeoDataFrame:
    """Return the communities with a boundary (EPSG:4326) and their attributes.

    Those named, or of ``district``, or all. Columns: those of :func:`community_table`,
    then the boundary.
    """
    stmt = select(
        *[getattr(Community, c) for c in COMMUNITY_COLUMNS], func.ST_AsBinary(Community.boundary)
    ).where(Community.boundary.isnot(None))
    if names:
        stmt = stmt.where(Community.name.in_(names))
    if district:
        stmt = stmt.where(Community.district == district)
    with engine.connect() as conn:
        rows = conn.execute(stmt.order_by(backend(engine).codepoint_order(Community.name))).all()
    return gpd.GeoDataFrame(
        pd.DataFrame([r[:-1] for r in rows], columns=list(COMMUNITY_COLUMNS)),
        geometry=[shapely.from_wkb(bytes(r[-1])) for r in rows],
        crs=4326,
    )


#: The attributes of a community, as :func:`community_table` and :func:`communities` give them.
COMMUNITY_COLUMNS = (
    "name",
    "district",
    "street_office",
    "built_year",
    "households",
    "residents",
    "floor_area_m2",
    "site_area_m2",
)


def community_table(engine: Engine) -> pd.DataFrame:
    """Return every community's attributes, without its boundary.

    Columns: name, district, street office, built year, households, residents, floor area
    and site area.
    """
    require_schema(engine)
    columns = list(COMMUNITY_COLUMNS)
    stmt = select(*[getattr(Community, c) for c in columns]).order_by(
        backend(engine).codepoint_order(Community.name)
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return pd.DataFrame(rows, columns=columns)

"""Looking at what the store holds: spaces with their tenure, and the quarantine."""

from __future__ import annotations

from datetime import date

import geopandas as gpd
import pandas as pd
import shapely
from sqlalchemy import ColumnElement, Engine, func, or_, select

from inventory.backends import backend
from inventory.codes import KIND
from inventory.models import Community, ImportBatch, RejectedFeature, Space
from inventory.store import require_batch, require_community, require_schema

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
    where: ColumnElement | None = None,
) -> gpd.GeoDataFrame:
    """Return the spaces (EPSG:4326) with their areas, tenure and community, filtered.

    ``kinds``: one kind or several, each a code or any alias (锅炉房). ``bounds`` (minx, miny, maxx, maxy in
    degrees) keeps the spaces whose bounding box meets it, through the spatial index.
    ``limit`` keeps the first spaces in (community, survey reference) order; ``where`` is
    a further SQL condition on the ``space`` table.
    Raises InputError for an unknown kind, community or batch.
    """
    from inventory.gaps import permit_end_sql  # gaps reads listings: imported when used

    require_schema(engine)
    stmt = select(
        *[getattr(Space, c) for c in SPACE_COLUMNS if hasattr(Space, c)],
        Space.id.label("space_id"),
        Community.name.label("community"),
        Community.district,
        Community.street_office,
        permit_end_sql(Space.id).label("permit_end"),
        func.ST_AsBinary(Space.geom).label("wkb"),
    )
    stmt = _filtered(stmt, engine, community, kinds, batch, bounds)
    if where is not None:
        stmt = stmt.where(where)
    stmt = stmt.order_by(Community.name, Space.survey_ref).limit(limit)
    with engine.connect() as conn:
        result = conn.execute(stmt)
        # plain tuples: pandas probes each Row with hasattr(), which costs two exceptions
        frame = pd.DataFrame(list(map(tuple, result.fetchall())), columns=list(result.keys()))
    if frame.empty:
        return gpd.GeoDataFrame(columns=[*SPACE_COLUMNS, "geometry"], geometry="geometry", crs=4326)
    frame["kind_zh"] = frame["kind"].map(lambda k: KIND.label(k, "zh"))
    frame["permit_uses"] = permit_uses(engine, frame["space_id"])
    geometry = shapely.from_wkb(frame.pop("wkb").map(bytes).to_numpy())
    return gpd.GeoDataFrame(frame[list(SPACE_COLUMNS)], geometry=geometry, crs=4326)


def permit_uses(engine: Engine, space_ids: pd.Series, today: date | None = None) -> pd.Series:
    """Return, per space id, the uses its transitional permits valid ``today`` allow (or None).

    Permits are few (a handful per community), so they are read once and matched here.
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
    with engine.connect() as conn:
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


def _filtered(stmt, engine: Engine, community, kinds, batch, bounds):
    require_community(engine, community)
    require_batch(engine, batch)
    stmt = stmt.select_from(Space).join(Community, Space.community_id == Community.id)
    if community:
        stmt = stmt.where(Community.name == community)
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


def rejects(engine: Engine, *, batch: int | None = None, limit: int | None = None) -> pd.DataFrame:
    """Return the quarantined features with their batch, file, row, reasons and raw data.

    ``limit`` keeps the first features in (batch, row) order.
    """
    require_schema(engine)
    require_batch(engine, batch)
    stmt = (
        select(
            RejectedFeature.batch_id,
            ImportBatch.source_file,
            ImportBatch.layer,
            RejectedFeature.source_row,
            RejectedFeature.survey_ref,
            RejectedFeature.reasons,
            RejectedFeature.raw_attributes,
            RejectedFeature.raw_geometry_wkt,
        )
        .join(ImportBatch, RejectedFeature.batch_id == ImportBatch.id)
        .order_by(RejectedFeature.batch_id, RejectedFeature.source_row)
    )
    if batch is not None:
        stmt = stmt.where(RejectedFeature.batch_id == batch)
    with engine.connect() as conn:
        rows = conn.execute(stmt.limit(limit)).mappings().all()
    columns = [
        "batch_id",
        "source_file",
        "layer",
        "source_row",
        "survey_ref",
        "reasons",
        "raw_attributes",
        "raw_geometry_wkt",
    ]
    return pd.DataFrame(rows, columns=columns)


def count_rejects(engine: Engine, *, batch: int | None = None) -> int:
    """Return how many quarantined features :func:`rejects` would list."""
    require_schema(engine)
    require_batch(engine, batch)
    stmt = select(func.count()).select_from(RejectedFeature)
    if batch is not None:
        stmt = stmt.where(RejectedFeature.batch_id == batch)
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


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
    engine: Engine, *, batch: int | None = None, limit: int | None = None
) -> tuple[pd.DataFrame, int]:
    """Return the first ``limit`` quarantined features (all with None) and how many in all."""
    frame = rejects(engine, batch=batch, limit=limit)
    return _with_total(frame, limit, lambda: count_rejects(engine, batch=batch))


def _with_total(frame, limit: int | None, count) -> tuple:
    """Pair a page of rows with how many there are: counted only when the page is full."""
    return frame, len(frame) if limit is None or len(frame) < limit else count()


def communities(engine: Engine, names: list[str] | None = None) -> gpd.GeoDataFrame:
    """Return community boundaries from the store (EPSG:4326)."""
    stmt = select(Community.name, func.ST_AsBinary(Community.boundary)).where(
        Community.boundary.isnot(None)
    )
    if names:
        stmt = stmt.where(Community.name.in_(names))
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return gpd.GeoDataFrame(
        {"name": [r[0] for r in rows]},
        geometry=[shapely.from_wkb(bytes(r[1])) for r in rows],
        crs=4326,
    )


def community_table(engine: Engine) -> pd.DataFrame:
    """Return every community's attributes, without its boundary.

    Columns: name, district, street office, built year, households, residents, floor area
    and site area.
    """
    require_schema(engine)
    columns = [
        "name",
        "district",
        "street_office",
        "built_year",
        "households",
        "residents",
        "floor_area_m2",
        "site_area_m2",
    ]
    stmt = select(*[getattr(Community, c) for c in columns]).order_by(
        backend(engine).codepoint_order(Community.name)
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return pd.DataFrame(rows, columns=columns)

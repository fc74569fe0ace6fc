"""Everything that differs between PostGIS and SpatiaLite, and nothing else.

The rest of the package writes SQLAlchemy / GeoAlchemy2 expressions and asks this
module for the few pieces each database spells its own way: how to open it, how to
check its spatial extension, and how to measure geodesic areas and distances.
"""

from __future__ import annotations

import importlib
import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import shapely
from geoalchemy2 import Geography, alembic_helpers
from geoalchemy2.admin.dialects.sqlite import init_spatialite
from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    Connection,
    Double,
    Engine,
    Table,
    and_,
    bindparam,
    case,
    create_engine,
    event,
    false,
    func,
    insert,
    literal,
    select,
    text,
    true,
)
from sqlalchemy.engine import URL
from sqlalchemy.sql.expression import cast

from inventory.errors import BackendUnavailableError
from inventory.geodesy import metres_per_degree, near_bounds

#: How long a SpatiaLite writer waits for another writer before giving up (ms).
SQLITE_BUSY_TIMEOUT_MS = 30_000

SPATIALITE_INSTALL_HINT = (
    "Install the SpatiaLite extension: on Debian/Ubuntu `apt-get install "
    "libsqlite3-mod-spatialite`, on macOS `brew install libspatialite`; or set "
    "SPATIALITE_LIBRARY_PATH to the full path of mod_spatialite."
)
POSTGIS_INSTALL_HINT = (
    "Install PostGIS on the database server (Debian/Ubuntu: `apt-get install "
    "postgresql-15-postgis-3`, matching the server's major version) and run "
    "`CREATE EXTENSION postgis;` as a superuser, or give the inventory's role the right "
    "to create it."
)


def sqlite_dbapi() -> ModuleType:
    """Return a sqlite3 DB-API module that can load extensions.

    Many Python builds (pyenv, python.org installers) compile the stdlib ``sqlite3``
    without extension loading; ``pysqlite3`` (from ``pysqlite3-binary``) always has it.

    Raises:
        BackendUnavailableError: no module with extension loading is installed.

    """
    if hasattr(sqlite3.Connection, "enable_load_extension"):
        return sqlite3
    try:
        return importlib.import_module("pysqlite3.dbapi2")
    except ImportError:
        raise BackendUnavailableError(
            "This Python's sqlite3 module cannot load extensions, so SpatiaLite cannot be "
            "used. Install `pysqlite3-binary` (pip install pysqlite3-binary), or point the "
            "inventory at PostGIS with INVENTORY_DATABASE_URL=postgresql+psycopg://..."
        ) from None


def _load_spatialite(dbapi_conn: Any, _record: Any) -> None:
    # SQLite dlopens extensions with RTLD_GLOBAL, which puts the OS's libsqlite3, PROJ and
    # GEOS (mod_spatialite's dependencies) in the global symbol scope. GDAL (pyogrio) or
    # PROJ (pyproj) wheels loaded after that bind to those other versions and crash, so
    # load them first.
    import pyogrio._io  # noqa: F401
    import pyproj._transformer  # noqa: F401

    dbapi_conn.enable_load_extension(True)
    try:
        dbapi_conn.load_extension(os.environ.get("SPATIALITE_LIBRARY_PATH", "mod_spatialite"))
    except Exception as exc:  # the driver raises its own OperationalError class
        raise BackendUnavailableError(
            f"Could not load the SpatiaLite extension ({exc}). {SPATIALITE_INSTALL_HINT}"
        ) from None
    finally:
        dbapi_conn.enable_load_extension(False)
    # We open transactions ourselves (see _begin_sqlite) so that DDL and SAVEPOINTs are
    # transactional too; the driver's implicit BEGIN only covers DML.
    dbapi_conn.isolation_level = None
    dbapi_conn.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    dbapi_conn.execute("PRAGMA foreign_keys = ON")
    # Only the WGS84 family of SRIDs: the store keeps EPSG:4326 and reprojects with pyproj.
    init_spatialite(dbapi_conn, transaction=True, init_mode="WGS84")


def _begin_sqlite(conn: Any) -> None:
    # IMMEDIATE takes the write lock at once, so two writers queue (busy_timeout)
    # instead of one failing when it upgrades a read lock half-way through.
    conn.exec_driver_sql(
        "BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN"
    )


def create_store_engine(url: URL, **kwargs: Any) -> Engine:
    """Create an engine for ``url`` with the spatial extension ready on every connection."""
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url, module=sqlite_dbapi(), **kwargs)
        event.listen(engine, "connect", _load_spatialite)
        event.listen(engine, "begin", _begin_sqlite)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def ensure_spatial_extension(conn: Any) -> None:
    """Make sure the spatial extension is installed in the database (for migrations).

    Raises:
        BackendUnavailableError: PostGIS is not installed on the server or may not be created.

    """
    if conn.dialect.name != "postgresql":
        return  # SpatiaLite's metadata tables are made when each connection opens
    if conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'postgis'")).first():
        return
    available = conn.execute(
        text("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'")
    ).first()
    if not available:
        raise BackendUnavailableError(
            "The PostgreSQL server has no PostGIS extension available. " + POSTGIS_INSTALL_HINT
        )
    try:
        with conn.begin_nested():
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
    except Exception as exc:
        raise BackendUnavailableError(
            f"PostGIS is installed on the server but could not be enabled in this database "
            f"({str(exc).splitlines()[0]}). {POSTGIS_INSTALL_HINT}"
        ) from None


def spatial_version(conn: Any) -> str:
    """Return the version of the spatial extension (PostGIS or SpatiaLite)."""
    if conn.dialect.name == "postgresql":
        return "PostGIS " + str(conn.execute(text("SELECT postgis_lib_version()")).scalar())
    return "SpatiaLite " + str(conn.execute(text("SELECT spatialite_version()")).scalar())


def geodesic_area(dialect_name: str, geom: ColumnElement) -> ColumnElement:
    """Return an expression for the area of ``geom`` (EPSG:4326) on the ellipsoid, in m²."""
    if dialect_name == "postgresql":
        return func.ST_Area(cast(geom, Geography(srid=4326)))
    return func.ST_Area(geom, 1)


def geodesic_distance(dialect_name: str, a: ColumnElement, b: ColumnElement) -> ColumnElement:
    """Return an expression for the distance between two EPSG:4326 geometries, in metres."""
    if dialect_name == "postgresql":
        return func.ST_Distance(cast(a, Geography(srid=4326)), cast(b, Geography(srid=4326)))
    return func.ST_Distance(a, b, 1)


#: Key of the PostgreSQL advisory lock that serialises writers (imports) to the store.
WRITE_LOCK_KEY = 0x1A7E_5707


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """Yield a connection in a transaction that holds the store's write lock.

    Two imports at the same time therefore run one after the other, and the second sees
    the first's rows; the transaction commits on success and rolls back on any error,
    Ctrl-C included.
    """
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.execution_options(write=True)
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(select(func.pg_advisory_xact_lock(WRITE_LOCK_KEY)))
            yield conn


#: Rows per COPY chunk: bounds the memory of the text stream for million-row loads.
COPY_CHUNK_ROWS = 10_000


def bulk_insert(
    conn: Connection, table: Table, frame: pd.DataFrame, geoms: np.ndarray, geom_column: str
) -> None:
    """Insert the rows of ``frame`` with ``geoms`` (shapely, EPSG:4326) into ``table``.

    On PostGIS through ``COPY ... FROM STDIN`` in CSV form (geometry as hex EWKB, JSON as
    text), the fastest path into PostgreSQL, written in chunks; on SpatiaLite through one
    prepared ``executemany``. ``frame`` should hold Python objects (dtype object) so that
    integers stay integers and None stays NULL.
    """
    if len(frame) == 0:
        return
    geoms = np.asarray(geoms, dtype=object)
    columns = list(frame.columns)
    json_columns = [c.name for c in table.columns if isinstance(c.type, JSON) and c.name in columns]
    if conn.dialect.name == "postgresql":
        prep = conn.dialect.identifier_preparer
        names = ", ".join(prep.quote(c) for c in [*columns, geom_column])
        sql = f"COPY {prep.format_table(table)} ({names}) FROM STDIN WITH (FORMAT csv)"
        from psycopg.copy import QueuedLibpqWriter

        cursor = conn.connection.driver_connection.cursor()
        # a thread sends the text while the next chunk is prepared: the server inserts one
        # chunk as Python writes the next
        with cursor.copy(sql, writer=QueuedLibpqWriter(cursor)) as copy:
            # one chunk's text at a time: the whole layer as CSV and hex EWKB would hold
            # several copies of a million-feature file in memory
            for start in range(0, len(frame), COPY_CHUNK_ROWS):
                part = frame.iloc[start : start + COPY_CHUNK_ROWS].copy()
                for col in json_columns:
                    part[col] = [
                        None if v is None else json.dumps(v, ensure_ascii=False) for v in part[col]
                    ]
                chunk = shapely.force_2d(geoms[start : start + COPY_CHUNK_ROWS])
                part[geom_column] = shapely.to_wkb(
                    shapely.set_srid(chunk, 4326), hex=True, include_srid=True
                )
                # pandas writes None as an unquoted empty field, which CSV COPY reads as NULL
                copy.write(part.to_csv(header=False, index=False))
        return
    geoms = shapely.set_srid(shapely.force_2d(geoms), 4326)
    wkb_param = f"{geom_column}__wkb"
    stmt = insert(table).values(
        {c: bindparam(c) for c in columns}
        | {geom_column: func.GeomFromWKB(bindparam(wkb_param), 4326)}
    )
    params = frame.to_dict("records")
    for row, wkb in zip(params, shapely.to_wkb(geoms), strict=True):
        row[wkb_param] = wkb
    conn.execute(stmt, params)


def bbox_filter(dialect_name: str, table: Table, column: ColumnElement, bounds) -> ColumnElement:
    """Return a condition keeping rows whose geometry's box meets ``bounds`` (EPSG:4326).

    Uses the spatial index: GiST ``&&`` on PostGIS, the R*Tree through SpatiaLite's
    ``SpatialIndex`` virtual table on SpatiaLite.
    """
    minx, miny, maxx, maxy = (float(b) for b in bounds)
    if dialect_name == "postgresql":
        return column.op("&&")(func.ST_MakeEnvelope(minx, miny, maxx, maxy, 4326))
    rowids = text(
        "SELECT rowid FROM SpatialIndex WHERE f_table_name = :t AND f_geometry_column = :c "
        "AND search_frame = BuildMbr(:minx, :miny, :maxx, :maxy, 4326)"
    ).bindparams(t=table.name, c=column.name, minx=minx, miny=miny, maxx=maxx, maxy=maxy)
    return table.c.id.in_(rowids)


def within_metres(
    dialect_name: str, table: Table, column: ColumnElement, lon: float, lat: float, radius_m: float
) -> ColumnElement | None:
    """Return a condition keeping rows within ``radius_m`` metres (geodesic) of (lon, lat).

    PostGIS only (None elsewhere: SpatiaLite's ellipsoidal ``ST_Distance`` measures a
    point to a polygon up to half a metre off, so the caller measures in Python there).
    Filter and refine: the spatial index narrows the rows to the box around the circle
    (:func:`bbox_filter`); a planar distance in a local equirectangular frame (metres
    per degree at the point's latitude, off by under 1 cm at 500 m and 4 m at 10 km)
    decides every row clearly inside or outside; only rows within a thin band of the
    radius get the exact and slower ``ST_DWithin`` on geography.
    """
    if dialect_name != "postgresql":
        return None
    box = bbox_filter(dialect_name, table, column, near_bounds(lon, lat, radius_m))
    per_x, per_y = (float(v) for v in metres_per_degree(lat))
    band = 1.0 + 1e-7 * float(radius_m) ** 2  # well above the frame's error at any radius
    point = func.ST_SetSRID(func.ST_MakePoint(float(lon), float(lat)), 4326)
    centre = func.ST_SetSRID(func.ST_MakePoint(float(lon) * per_x, float(lat) * per_y), 4326)
    planar = func.ST_Distance(func.ST_Scale(column, per_x, per_y), centre)
    exact = func.ST_DWithin(
        cast(column, Geography(srid=4326)), cast(point, Geography(srid=4326)), float(radius_m)
    )
    return and_(
        box,
        case(
            (planar < float(radius_m) - band, true()),
            (planar > float(radius_m) + band, false()),
            else_=exact,
        ),
    )


def codepoint_order(dialect_name: str, column: ColumnElement) -> ColumnElement:
    """Return ``column`` to order by as Python sorts text (by code point), gaps last.

    PostgreSQL sorts by the database's locale unless told ``COLLATE "C"`` (byte order,
    which for UTF-8 is code-point order); SQLite's default BINARY collation already is.
    """
    ordered = column.collate("C") if dialect_name == "postgresql" else column
    return ordered.asc().nulls_last()


#: Separator of the member lists :func:`cluster_bundles` returns (ASCII RS).
SEPARATOR = "\x1e"


def cluster_bundles(
    conn: Connection, chosen, gap_m: float, across: bool, min_members: int, kind_codes: list[str]
):
    """Return one row per bundle of the ``chosen`` spaces from PostGIS, or None elsewhere.

    ``chosen`` is a subquery with ``community_id``, ``community``, ``survey_ref``,
    ``kind``, ``footprint_area_m2``, ``floor_area_m2``, ``area_m2``, ``severity`` and
    ``geom``. Links come from ``ST_ClusterDBSCAN(..., minpoints := 1)`` over each
    community scaled to metres around its mean latitude with the radii of curvature of
    :func:`inventory.geodesy.metres_per_degree`, or with ``across`` over all the spaces
    in the UTM zone of their centre (:func:`inventory.geodesy.utm_epsg`), as the
    in-memory path does, so both backends give the same bundles. Only the bundles (``min_members`` or more) come back:
    ``members`` and ``member_communities`` as texts joined by :data:`SEPARATOR` (in the
    same order, not sorted), ``member_count``, the kinds as bits
    (bit i: ``kind_codes[i - 1]``), area sums in hundredths of m² (integers), the
    smallest and largest area, the count
    per severity and the convex hull as WKB.
    """
    if conn.dialect.name != "postgresql":
        return None
    from sqlalchemy.dialects.postgresql import array

    from inventory.geodesy import WGS84_A, WGS84_E2, utm_epsg

    g = chosen.c.geom
    if across:
        # one frame for all, the UTM zone of their centre: no partition edge
        x, y = (func.ST_XMin(g) + func.ST_XMax(g)) / 2.0, (func.ST_YMin(g) + func.ST_YMax(g)) / 2.0
        lon, lat = conn.execute(select(func.avg(x), func.avg(y))).one()
        if lon is None:
            return []
        framed = select(
            chosen,
            literal(0).label("part"),
            func.ST_Transform(g, utm_epsg(lon, lat)).label("metric"),
        ).subquery("framed")
    else:
        # each community scaled at its mean latitude, a window over the same partition
        # as the clustering: one sort serves both
        cy = (func.ST_YMin(g) + func.ST_YMax(g)) / 2.0
        mean = func.avg(cy).over(partition_by=chosen.c.community_id)
        parted = select(
            chosen,
            chosen.c.community_id.label("part"),
            func.radians(mean, type_=Double).label("lat"),
        ).subquery("parted")
        sin, cos = func.sin(parted.c.lat, type_=Double), func.cos(parted.c.lat, type_=Double)
        w = func.sqrt(1 - WGS84_E2 * sin * sin, type_=Double)  # typed: no numeric arithmetic
        per_radian = float(np.pi / 180 * WGS84_A)
        metric = func.ST_Scale(
            parted.c.geom, per_radian / w * cos, per_radian * (1 - WGS84_E2) / (w * w * w)
        )
        framed = select(parted, metric.label("metric")).subquery("framed")
    labelled = select(
        *(col for col in framed.c if col.name not in ("metric", "lat")),
        func.ST_ClusterDBSCAN(framed.c.metric, float(gap_m), 1)
        .over(partition_by=framed.c.part)
        .label("label"),
    ).subquery("labelled")
    c = labelled.c
    count = func.count()
    # the distinct kinds of a bundle as bits of their place in the code list
    kind_bit = literal(1).op("<<")(func.array_position(array(kind_codes), c.kind))
    stmt = (
        select(
            # texts split in Python: far faster than a text[] for the driver to parse
            # in no order: an ORDER BY in the aggregates sorts each bundle twice on the
            # server (~1 s at 1M spaces); the caller orders the few that need it
            *(
                func.string_agg(column, literal(SEPARATOR)).label(name)
                for name, column in (("members", c.survey_ref), ("member_communities", c.community))
            ),
            count.label("member_count"),
            func.bit_or(kind_bit).label("kinds"),
            # in hundredths of m², as integers: the same totals in any order of summation
            *(
                func.sum(cast(func.floor(func.coalesce(col, 0.0) * 100 + 0.5), BigInteger)).label(
                    name
                )
                for name, col in (
                    ("footprint_area_m2", c.footprint_area_m2),
                    ("floor_area_m2", c.floor_area_m2),
                    ("usable_area_m2", c.area_m2),
                )
            ),
            func.min(c.area_m2).label("smallest_m2"),
            func.max(c.area_m2).label("largest_m2"),
            count.filter(c.severity.is_(None)).label("clean"),
            *(
                count.filter(c.severity == s).label(s)
                for s in ("transitional", "minor", "blocking")
            ),
            func.ST_AsBinary(func.ST_ConvexHull(func.ST_Collect(c.geom))).label("wkb"),
        )
        .group_by(c.part, c.label)
        .having(count >= int(min_members))
    )
    # JIT compiling this query costs more (~1 s) than it saves
    conn.execute(text("SET LOCAL jit = off"))
    return conn.execute(stmt).all()


def include_in_migrations(obj, name, obj_type, reflected, compare_to) -> bool:
    """Alembic filter: leave out the spatial extensions' own tables and indexes."""
    # SpatiaLite's and PostGIS's own bookkeeping tables are not ours to migrate.
    if obj_type == "table" and reflected and compare_to is None:
        if name.startswith(("spatial_ref_sys", "geometry_columns", "idx_", "virts_", "views_")):
            return False
        if name in {
            "spatialite_history",
            "sql_statements_log",
            "SpatialIndex",
            "ElementaryGeometries",
            "KNN",
            "KNN2",
            "data_licenses",
            "spatial_ref_sys_aux",
            "vector_layers",
            "vector_layers_auth",
            "vector_layers_field_infos",
            "vector_layers_statistics",
            "geometry_columns_auth",
            "geometry_columns_field_infos",
            "geometry_columns_statistics",
            "geometry_columns_time",
            "views_geometry_columns",
            "virts_geometry_columns",
            "sqlite_sequence",
            "topology",
            "layer",
        }:
            return False
    return alembic_helpers.include_object(obj, name, obj_type, reflected, compare_to)

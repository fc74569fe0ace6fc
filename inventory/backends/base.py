"""The interface every backend implements, and what the two share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Table,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import URL


class Backend(ABC):
    """What PostGIS and SpatiaLite each spell their own way; nothing else.

    One instance per database kind, chosen once per engine by
    :func:`inventory.backends.backend`. Everything else in the package is written as
    SQLAlchemy / GeoAlchemy2 expressions that both databases understand.
    """

    #: Name shown to users ("PostGIS", "SpatiaLite").
    label: str
    #: Alembic must rebuild tables to alter them (SQLite's ALTER TABLE is limited).
    render_as_batch: bool = False
    #: What to check when the store cannot be opened.
    connect_hint: str = ""
    #: The database has users, so group roles and row-level security can share it.
    has_roles: bool = False
    #: The database clusters spaces itself (``ST_ClusterDBSCAN``); else bundles are found
    #: in memory.
    clusters_in_sql: bool = False

    @abstractmethod
    def normalise_url(self, url: URL) -> URL:
        """Return ``url`` with the driver the inventory uses, or raise ConfigurationError."""

    @abstractmethod
    def create_engine(self, url: URL, **kwargs: Any) -> Engine:
        """Create an engine for ``url`` with the spatial extension ready on every connection."""

    def ensure_spatial_extension(self, conn: Connection) -> None:  # noqa: B027 - optional
        """Make sure the spatial extension is installed in the database (for migrations)."""

    def prepare_location(self, url: URL, *, create: bool) -> None:  # noqa: B027 - optional
        """Check, before connecting, that the store named by ``url`` can be opened."""

    @abstractmethod
    def spatial_version(self, conn: Connection) -> str:
        """Return the spatial extension and its version, or say that it is missing."""

    @abstractmethod
    def geodesic_area(self, geom: ColumnElement) -> ColumnElement:
        """Return an expression for the area of ``geom`` (EPSG:4326) on the ellipsoid, in m²."""

    @abstractmethod
    def geodesic_distance(self, a: ColumnElement, b: ColumnElement) -> ColumnElement:
        """Return an expression for the distance between two EPSG:4326 geometries, in metres."""

    @abstractmethod
    def replace_check(self, conn: Connection, table: str, name: str, condition: str) -> None:
        """Replace the CHECK constraint ``name`` of ``table`` by one testing ``condition``.

        For migrations that widen a code list: the rows already stored satisfy the new
        condition, so no data moves.
        """

    @abstractmethod
    def lock_for_writing(self, conn: Connection) -> None:
        """Prepare ``conn``, before its transaction begins, to hold the store's write lock."""

    def locked(self, conn: Connection) -> None:  # noqa: B027 - optional hook
        """Take the store's write lock inside the transaction just begun on ``conn``."""

    @abstractmethod
    def bulk_insert(
        self,
        conn: Connection,
        table: Table,
        frame: Rows,
        geoms: np.ndarray | None = None,
        geom_column: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Insert the rows of ``frame`` with ``geoms`` (shapely, EPSG:4326) into ``table``.

        ``frame``: a DataFrame, which should hold Python objects (dtype object) so that
        integers stay integers and None stays NULL, or the columns themselves, a mapping
        of column name to equal-length lists of Python values (see :func:`columns_of`).
        A table without geometry takes no ``geoms``. ``progress(rows)`` is told the rows
        sent so far, a chunk at a time.
        """

    @abstractmethod
    def bulk_update(
        self,
        conn: Connection,
        table: Table,
        frame: pd.DataFrame,
        geoms: np.ndarray | None = None,
        geom_column: str | None = None,
        stamped: Sequence[str] = (),
    ) -> None:
        """Set each row of ``table`` whose ``id`` is in ``frame`` to that row's values.

        ``frame`` holds ``id`` and the columns to set (dtype object, as for
        :meth:`bulk_insert`); with ``geom_column``, ``geoms`` (shapely, EPSG:4326, one per
        row, None for none) are set too. The columns ``stamped`` are set to the
        transaction's time (``now()``). Rows the role may not change (row-level security)
        are left as they are, as an UPDATE of each would leave them.
        """

    def reserve_ids(self, conn: Connection, table: Table, n: int) -> list[int]:
        """Return ``n`` new ids, increasing, for rows about to go into ``table`` (write lock held).

        The rows then go in with their ids, and what rests on them (rights, the round) is
        written from the ids in hand rather than read back. The default follows the
        table's largest id, as SQLite's own row ids do.
        """
        if n <= 0:
            return []
        top = conn.scalar(select(func.coalesce(func.max(table.c.id), 0)))
        return list(range(int(top) + 1, int(top) + 1 + n))

    def refresh_statistics(self, conn: Connection, table: Table) -> None:  # noqa: B027
        """Let the planner know what ``table`` holds now (rows written in this transaction).

        Without it a server may plan a look-up of thousands of values on a table it still
        thinks empty as a scan of the whole table per value. The default does nothing.
        """

    @contextmanager
    def snapshot_connections(self, engine: Engine, n: int) -> Iterator[list[Connection]]:
        """Yield up to ``n`` connections that all read one snapshot of the store.

        For a query split in parts run at once (one per core): each part sees the same
        rows, whatever commits meanwhile. The default is one connection.
        """
        with engine.connect() as conn:
            yield [conn]

    @contextmanager
    def bulk_load(
        self, conn: Connection, tables: list[Table], rows: int, analyse: Sequence[Table] = ()
    ) -> Iterator[bool]:
        """Within the block, ``rows`` rows go into ``tables`` (the first is the largest).

        A backend may load them faster than row by row through the indexes and
        constraints (yielding True when it does); the tables end the block as they were,
        with every row checked, and their statistics (and those of ``analyse``) fresh
        when it did. The default loads as usual.
        """
        yield False

    @abstractmethod
    def bbox_filter(self, table: Table, column: ColumnElement, bounds) -> ColumnElement:
        """Return a condition keeping rows whose box meets ``bounds``, via the spatial index."""

    def within_metres(
        self, table: Table, column: ColumnElement, lon: float, lat: float, radius_m: float
    ) -> ColumnElement | None:
        """Return a condition keeping rows within ``radius_m`` metres of (lon, lat).

        None when the database cannot measure it exactly enough: the caller measures in
        Python then.
        """
        return None

    def codepoint_order(self, column: ColumnElement) -> ColumnElement:
        """Return ``column`` to order by as Python sorts text (by code point), gaps last."""
        return column.asc().nulls_last()

    def session_user(self, conn: Connection) -> str | None:
        """Return who the database says is connected, or None where it has no users."""
        return None

    @abstractmethod
    def months_after(self, day: ColumnElement, months: int) -> ColumnElement:
        """Return the SQL date ``months`` months after the SQL date ``day``."""

    def create_view(
        self, conn: Connection, name: str, query: str, comment: str | None = None
    ) -> None:
        """Create (or replace) the view ``name`` of ``query``, for GIS clients to list.

        ``comment`` is kept with the view (:meth:`view_comment` reads it back).

        Raises:
            ConfigurationError: the database keeps no views of this kind (the base's).

        """
        from inventory.errors import ConfigurationError

        raise ConfigurationError(
            f"The {self.label} store keeps no views for QGIS: write the layers to a file "
            "instead (inventory export inventory.gpkg), or use a PostGIS store."
        )

    def drop_view(self, conn: Connection, name: str) -> None:  # noqa: B027 - optional
        """Drop the view ``name`` if it exists."""

    def view_comment(self, conn: Connection, name: str) -> str | None:
        """Return the comment kept with view ``name`` (None: no such view, or none kept)."""
        return None


#: The fewest rows a batch brings for a backend's ``bulk_load`` to build the indexes after.
BULK_LOAD_MIN_ROWS = 50_000

#: Rows per chunk of an insert (one COPY write, one executemany).
INSERT_CHUNK_ROWS = 10_000


def flat_in_4326(geoms) -> np.ndarray:
    """Return ``geoms`` in two dimensions with SRID 4326, as the store keeps them.

    Only an array holding Z or M coordinates is flattened: for 2D outlines (what the
    importer delivers) that would be a copy of every geometry for nothing (0.9 s for a
    million).
    """
    geoms = np.asarray(geoms, dtype=object)
    if (shapely.has_z(geoms) | shapely.has_m(geoms)).any():
        geoms = shapely.force_2d(geoms)
    return shapely.set_srid(geoms, 4326)


#: Rows to insert: a DataFrame, or its columns as lists (see :func:`columns_of`).
Rows = pd.DataFrame | Mapping[str, Sequence]


def columns_of(rows: Rows) -> dict[str, list]:
    """Return ``rows`` as columns: each column's name and its values as Python objects.

    A DataFrame's columns are converted (see :func:`native`); a mapping of columns is
    taken as it is, its lists not copied (an array's values become a list). Rows built
    as lists go in without a frame made for them and taken apart again (at 100,000
    spaces a part, ~0.3 s of each write).
    """
    if isinstance(rows, pd.DataFrame):
        return {str(c): native(rows[c]) for c in rows.columns}
    columns = {c: v if isinstance(v, list) else np.asarray(v).tolist() for c, v in rows.items()}
    sizes = {len(v) for v in columns.values()}
    if len(sizes) > 1:
        raise ValueError(f"columns of different lengths: {sorted(sizes)}")
    return columns


def row_count(columns: dict[str, list]) -> int:
    """Return the number of rows of ``columns`` (as :func:`columns_of` gives them)."""
    return len(next(iter(columns.values()))) if columns else 0


def insert_rows(
    conn,
    table: Table,
    frame: Rows,
    geoms,
    geom_column: str | None,
    from_wkb,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Insert ``frame`` with ``geoms`` into ``table`` through prepared ``executemany`` calls.

    ``from_wkb`` is the database's WKB constructor (``ST_GeomFromWKB``, ``GeomFromWKB``);
    rows go :data:`INSERT_CHUNK_ROWS` at a time, each chunk told to ``progress``.
    """
    columns = columns_of(frame)
    n = row_count(columns)
    values: dict[str, Any] = {c: bindparam(c) for c in columns}
    if geom_column is not None:
        wkb_param = f"{geom_column}__wkb"
        values[geom_column] = from_wkb(bindparam(wkb_param), 4326)
    stmt = insert(table).values(values)
    for start in range(0, n, INSERT_CHUNK_ROWS):
        stop = start + INSERT_CHUNK_ROWS
        chunk = {c: v[start:stop] for c, v in columns.items()} if n > INSERT_CHUNK_ROWS else columns
        if geom_column is not None:
            part = flat_in_4326(geoms[start:stop])
            chunk[f"{geom_column}__wkb"] = shapely.to_wkb(part).tolist()
        execute_many(conn, stmt, chunk)
        if progress is not None and n > INSERT_CHUNK_ROWS:
            progress(min(stop, n))


def native(column: pd.Series) -> list:
    """Return ``column``'s values as Python objects (NumPy scalars in an object column too)."""
    values = column.tolist()
    if column.dtype == object and any(isinstance(v, np.generic) for v in values):
        values = [v.item() if isinstance(v, np.generic) else v for v in values]
    return values


def execute_many(conn, stmt, columns: dict[str, list]) -> None:
    """Execute ``stmt`` once for each row of ``columns`` (parameter name -> its values).

    As ``conn.execute(stmt, rows)`` does, through the driver's ``executemany``, but each
    parameter's values go through its type's bind processor a column at a time and the
    rows to the driver as tuples: SQLAlchemy makes and processes a dict per row (at
    100,000 spaces of 25 columns, ~40% of an embedded store's import). The values the
    driver gets are the same.
    """
    dialect = conn.dialect
    compiled = stmt.compile(dialect=dialect)
    size = len(next(iter(columns.values())))
    names = compiled.positiontup or list(dict.fromkeys(compiled.bind_names.values()))
    processed = []
    for name in names:
        # a parameter of no column is the statement's own constant (an SRID)
        values = columns[name] if name in columns else [compiled.params[name]] * size
        process = compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
        processed.append(values if process is None else [process(v) for v in values])
    rows = zip(*processed, strict=True)
    if compiled.positiontup is None:
        rows = (dict(zip(names, row, strict=True)) for row in rows)
    conn.exec_driver_sql(str(compiled), list(rows))


def update_rows(
    conn,
    table: Table,
    frame: pd.DataFrame,
    geoms,
    geom_column: str | None,
    from_wkb,
    stamped: Sequence[str] = (),
) -> None:
    """Update ``table`` from ``frame`` (by ``id``) through prepared ``executemany`` calls.

    The counterpart of :func:`insert_rows` for :meth:`Backend.bulk_update`, chunk by
    chunk; parameters are prefixed so that none takes a column's own name.
    """
    columns = [c for c in frame.columns if c != "id"]
    values: dict[str, Any] = {c: bindparam(f"v_{c}") for c in columns}
    values |= {c: func.now() for c in stamped}
    if geom_column is not None:
        values[geom_column] = from_wkb(bindparam("v__wkb"), 4326)
    stmt = update(table).where(table.c.id == bindparam("v__id")).values(values)
    for start in range(0, len(frame), INSERT_CHUNK_ROWS):
        part = frame.iloc[start : start + INSERT_CHUNK_ROWS]
        params = {"v__id": native(part["id"])} | {f"v_{c}": native(part[c]) for c in columns}
        if geom_column is not None:
            chunk = flat_in_4326(geoms[start : start + INSERT_CHUNK_ROWS])
            params["v__wkb"] = shapely.to_wkb(chunk).tolist()
        execute_many(conn, stmt, params)


#: SpatiaLite's and PostGIS's own bookkeeping tables: not ours to migrate.
EXTENSION_TABLES = frozenset(
    {
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
    }
)


#: The table of role scopes ``inventory roles`` makes (PostGIS): no migration manages it.
ROLE_SCOPE_TABLE = "role_scope"
#: Tables of ours that no migration manages.
UNMANAGED_TABLES = frozenset({ROLE_SCOPE_TABLE})


def include_in_migrations(obj, name, obj_type, reflected, compare_to) -> bool:
    """Alembic filter: leave out the spatial extensions' own tables and indexes."""
    if obj_type == "table" and reflected and compare_to is None and name in UNMANAGED_TABLES:
        return False
    if obj_type == "table" and reflected and compare_to is None:
        if name.startswith(("spatial_ref_sys", "geometry_columns", "idx_", "virts_", "views_")):
            return False
        if name in EXTENSION_TABLES:
            return False
    from geoalchemy2 import alembic_helpers  # loads Alembic: only when migrating

    return alembic_helpers.include_object(obj, name, obj_type, reflected, compare_to)

"""SpatiaLite: the embedded store, one file, no server."""

from __future__ import annotations

import importlib
import logging
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from geoalchemy2.admin.dialects.sqlite import init_spatialite
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Table,
    bindparam,
    create_engine,
    event,
    func,
    select,
    text,
)
from sqlalchemy.engine import URL

from inventory.backends.base import BULK_LOAD_MIN_ROWS, Backend, insert_rows, update_rows
from inventory.config import render
from inventory.errors import BackendUnavailableError, ConfigurationError

#: How long a reader (or a writer, before it says it is waiting) waits for a lock (ms).
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: A writer that has waited this long for another writer says so, then waits on (ms).
WRITE_WAIT_NOTICE_MS = 2_000
#: How long each further wait for the write lock lasts before it is tried again (ms).
WRITE_WAIT_STEP_MS = 3_600_000

log = logging.getLogger("inventory")

SPATIALITE_INSTALL_HINT = (
    "Install the SpatiaLite extension: on Debian/Ubuntu `apt-get install "
    "libsqlite3-mod-spatialite`, on macOS `brew install libspatialite`; or set "
    "SPATIALITE_LIBRARY_PATH to the full path of mod_spatialite."
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
    # We open transactions ourselves (see _begin) so that DDL and SAVEPOINTs are
    # transactional too; the driver's implicit BEGIN only covers DML.
    dbapi_conn.isolation_level = None
    # write-ahead logging: readers never wait for a writer, nor a writer for readers
    dbapi_conn.execute("PRAGMA journal_mode = WAL")
    dbapi_conn.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    dbapi_conn.execute("PRAGMA foreign_keys = ON")
    # Only the WGS84 family of SRIDs: the store keeps EPSG:4326 and reprojects with pyproj.
    init_spatialite(dbapi_conn, transaction=True, init_mode="WGS84")


def _begin(conn: Any) -> None:
    if not conn.get_execution_options().get("write"):
        conn.exec_driver_sql("BEGIN")
        return
    # IMMEDIATE takes the write lock at once, so two writers queue instead of one failing
    # when it upgrades a read lock half-way through. A writer queues for as long as the
    # other takes (an import of a city can take minutes), saying once that it waits.
    raw = conn.connection.dbapi_connection
    raw.execute(f"PRAGMA busy_timeout = {WRITE_WAIT_NOTICE_MS}")
    told = False
    try:
        while True:
            try:
                raw.execute("BEGIN IMMEDIATE")
                return
            except Exception as exc:  # the driver's own OperationalError class
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if not told:
                    log.warning(
                        "Another import is writing to %s; waiting for it to finish…",
                        conn.engine.url.database,
                    )
                    raw.execute(f"PRAGMA busy_timeout = {WRITE_WAIT_STEP_MS}")
                    told = True
    finally:
        raw.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")


class SpatiaLite(Backend):
    """SQLite with the SpatiaLite extension, through an extension-loading sqlite3."""

    label = "SpatiaLite"
    connect_hint = (
        "Give the path of an inventory store (a SpatiaLite file made by `inventory init`), "
        "or make a new one with `inventory init --db NEW.sqlite`."
    )
    render_as_batch = True

    def normalise_url(self, url: URL) -> URL:
        """Refuse an in-memory database: the store would be lost when the command ends.

        Raises:
            ConfigurationError: the URL names no file.

        """
        if not url.database or url.database == ":memory:":
            raise ConfigurationError(
                f"The database URL {render(url)!r} names no file; an in-memory store would "
                "be lost when the command ends. Give a path, e.g. sqlite:///inventory.sqlite."
            )
        return url.set(drivername="sqlite")

    def create_engine(self, url: URL, **kwargs: Any) -> Engine:
        """Create an engine that loads SpatiaLite on each connection.

        It begins its own transactions: IMMEDIATE for writers.
        """
        engine = create_engine(url, module=sqlite_dbapi(), **kwargs)
        event.listen(engine, "connect", _load_spatialite)
        event.listen(engine, "begin", _begin)
        return engine

    def prepare_location(self, url: URL, *, create: bool) -> None:
        """Refuse a file that does not exist unless ``create``; make its folder if it may.

        Raises:
            BackendUnavailableError: the file does not exist and ``create`` is false.

        """
        path = Path(url.database or "")
        if not create and not path.exists():
            raise BackendUnavailableError(
                f"No inventory store at {str(path)!r}. Create it with `inventory init` "
                f"(add `--db {path}` if that is where it should be), or set "
                "INVENTORY_DATABASE_URL to a PostGIS database."
            )
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)

    def spatial_version(self, conn: Connection) -> str:
        """Return "SpatiaLite x.y"."""
        return "SpatiaLite " + str(conn.execute(text("SELECT spatialite_version()")).scalar())

    def geodesic_area(self, geom: ColumnElement) -> ColumnElement:
        """``ST_Area(geom, 1)``: on the ellipsoid."""
        return func.ST_Area(geom, 1)

    def geodesic_distance(self, a: ColumnElement, b: ColumnElement) -> ColumnElement:
        """``ST_Distance(a, b, 1)``: on the ellipsoid."""
        return func.ST_Distance(a, b, 1)

    def replace_check(self, conn: Connection, table: str, name: str, condition: str) -> None:
        """Rewrite the constraint in the table's schema text (see the comment)."""
        # SQLite cannot alter a constraint, and rebuilding a table with a SpatiaLite
        # geometry column would have to re-register it; a CHECK constraint touches no
        # stored data, so the schema text is rewritten in place, the procedure SQLite's
        # ALTER TABLE documentation gives for changing CHECK constraints.
        sql = conn.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).scalar_one()
        start = sql.index(f"CONSTRAINT {name} CHECK (")
        depth, end = 0, sql.index("(", start)
        while True:  # to the bracket that closes the CHECK's own
            depth += {"(": 1, ")": -1}.get(sql[end], 0)
            if depth == 0:
                break
            end += 1
        new_sql = f"{sql[:start]}CONSTRAINT {name} CHECK ({condition}){sql[end + 1 :]}"
        version = conn.exec_driver_sql("PRAGMA schema_version").scalar_one()
        conn.exec_driver_sql("PRAGMA writable_schema = ON")
        try:
            conn.exec_driver_sql(
                "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?",
                (new_sql, table),
            )
            conn.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
        finally:
            conn.exec_driver_sql("PRAGMA writable_schema = OFF")

    def lock_for_writing(self, conn: Connection) -> None:
        """Begin with ``BEGIN IMMEDIATE``: the file's write lock at once."""
        conn.execution_options(write=True)

    def bulk_insert(self, conn, table, frame, geoms=None, geom_column=None, progress=None) -> None:
        """Insert through prepared ``executemany`` calls, geometry from WKB (none for no rows)."""
        insert_rows(conn, table, frame, geoms, geom_column, func.GeomFromWKB, progress)

    def bulk_update(self, conn, table, frame, geoms=None, geom_column=None, stamped=()) -> None:
        """Update through prepared ``executemany`` calls (in process: no round trips)."""
        if len(frame) == 0:
            return
        update_rows(conn, table, frame, geoms, geom_column, func.GeomFromWKB, stamped)

    @contextmanager
    def bulk_load(
        self, conn: Connection, tables: list[Table], rows: int, analyse: Sequence[Table] = ()
    ) -> Iterator[bool]:
        """Load a batch large against the store with its indexes built after.

        As on PostGIS (:data:`BULK_LOAD_MIN_ROWS` rows, half as many as ``tables[0]``
        holds), but SQLite's foreign keys cannot be dropped, and each row they delete
        or update looks its children up through an index: the indexes that lead with a
        foreign key's column stay (without them a second round rebuilding 100,000
        rights scanned the table once per right). The other secondary indexes are
        dropped and made again from their own SQL, and the R*Tree of a geometry column
        is filled once from the rows instead of by its triggers row by row. SQLite's
        DDL is transactional: a failure or a dry run rolls the drop back with the rows.
        """
        held = conn.execute(select(func.count()).select_from(tables[0])).scalar() or 0
        if rows < BULK_LOAD_MIN_ROWS or rows * 2 < held:
            yield False
            return
        names = {"t": [t.name for t in tables]}
        listed = bindparam("t", expanding=True)
        quote = conn.dialect.identifier_preparer.quote
        keyed = {
            (table.name, row[3])  # (table, the child's column) of each foreign key
            for table in tables
            for row in conn.exec_driver_sql(f"PRAGMA foreign_key_list({quote(table.name)})")
        }
        indexes = [
            (name, sql)
            for name, table, sql in conn.execute(
                text(
                    "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index' "
                    "AND sql IS NOT NULL AND sql NOT LIKE 'CREATE UNIQUE%' AND tbl_name IN :t "
                    "ORDER BY name"
                ).bindparams(listed),
                names,
            )
            if (table, conn.exec_driver_sql(f"PRAGMA index_info({quote(name)})").first()[2])
            not in keyed
        ]
        spatial = conn.execute(
            text(
                "SELECT f_table_name, f_geometry_column FROM geometry_columns "
                "WHERE spatial_index_enabled = 1 AND f_table_name IN :t"
            ).bindparams(listed),
            names,
        ).all()
        for name, _ in indexes:
            conn.exec_driver_sql(f"DROP INDEX {quote(name)}")
        for table, column in spatial:
            conn.execute(select(func.DisableSpatialIndex(table, column)))
            conn.exec_driver_sql(f"DROP TABLE {quote(f'idx_{table}_{column}')}")
        yield True
        for table, column in spatial:
            conn.execute(select(func.CreateSpatialIndex(table, column)))
        for _, sql in indexes:
            conn.exec_driver_sql(sql)

    def bbox_filter(self, table: Table, column: ColumnElement, bounds) -> ColumnElement:
        """Use the R*Tree through SpatiaLite's ``SpatialIndex`` virtual table."""
        minx, miny, maxx, maxy = (float(b) for b in bounds)
        rowids = text(
            "SELECT rowid FROM SpatialIndex WHERE f_table_name = :t AND f_geometry_column = :c "
            "AND search_frame = BuildMbr(:minx, :miny, :maxx, :maxy, 4326)"
        ).bindparams(t=table.name, c=column.name, minx=minx, miny=miny, maxx=maxx, maxy=maxy)
        return table.c.id.in_(rowids)

    # within_metres: None (the base's). SpatiaLite's ellipsoidal ST_Distance measures a
    # point to a polygon up to half a metre off, so the caller measures in Python.
    # codepoint_order: the base's; SQLite's default BINARY collation is code-point order.

    def months_after(self, day: ColumnElement, months: int) -> ColumnElement:
        """``date(day, '+n months')`` (SQLite carries a 31st over into the next month)."""
        return func.date(day, f"+{int(months)} months")

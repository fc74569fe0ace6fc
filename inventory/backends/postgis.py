"""PostGIS: the shared production store."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import numpy as np
import shapely
from geoalchemy2 import Geography
from sqlalchemy import JSON as JSONType
from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Date,
    Engine,
    MetaData,
    Table,
    and_,
    case,
    create_engine,
    false,
    func,
    select,
    text,
    true,
)
from sqlalchemy.engine import URL
from sqlalchemy.sql.expression import cast

from inventory.backends.base import (
    BULK_LOAD_MIN_ROWS,
    Backend,
    columns_of,
    flat_in_4326,
    insert_rows,
    row_count,
)
from inventory.config import render
from inventory.errors import BackendUnavailableError, ConfigurationError
from inventory.geodesy import metres_per_degree, near_bounds

POSTGIS_INSTALL_HINT = (
    "Install PostGIS on the database server (Debian/Ubuntu: `apt-get install "
    "postgresql-15-postgis-3`, matching the server's major version) and run "
    "`CREATE EXTENSION postgis;` as a superuser, or give the inventory's role the right "
    "to create it."
)
#: Key of the PostgreSQL advisory lock that serialises writers (imports) to the store.
WRITE_LOCK_KEY = 0x1A7E_5707
#: Rows per COPY chunk: bounds the memory of the text stream for million-row loads.
COPY_CHUNK_ROWS = 10_000


def _geography(expr: ColumnElement) -> ColumnElement:
    return cast(expr, Geography(srid=4326))


#: JSON text as ``json.dumps(v, ensure_ascii=False)`` writes it, from one encoder: dumps
#: builds a new encoder per call when given options (0.3 s for 330,000 values).
_to_json = json.JSONEncoder(ensure_ascii=False).encode


class PostGIS(Backend):
    """PostgreSQL with PostGIS, through psycopg 3."""

    label = "PostGIS"
    has_roles = True
    connect_hint = (
        "Check that the server is running and the URL's host, port, user, password and "
        "database name are right."
    )
    clusters_in_sql = True

    def normalise_url(self, url: URL) -> URL:
        """Use psycopg 3: one driver keeps behaviour identical between developers and servers.

        Raises:
            ConfigurationError: the URL names another driver.

        """
        if url.get_driver_name() not in ("psycopg", ""):
            raise ConfigurationError(
                f"The database URL {render(url)!r} uses the driver "
                f"{url.get_driver_name()!r}; use postgresql+psycopg://..."
            )
        return url.set(drivername="postgresql+psycopg")

    def create_engine(self, url: URL, **kwargs: Any) -> Engine:
        """Create a pooled engine that checks connections before use."""
        return create_engine(url, pool_pre_ping=True, **kwargs)

    def ensure_spatial_extension(self, conn: Connection) -> None:
        """Create the PostGIS extension if the server has it and the role may.

        Raises:
            BackendUnavailableError: PostGIS is not installed on the server or may not be
                created by this role.

        """
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
        except Exception as exc:  # the role may not create extensions
            raise BackendUnavailableError(
                f"PostGIS is installed on the server but could not be enabled in this database "
                f"({str(exc).splitlines()[0]}). {POSTGIS_INSTALL_HINT}"
            ) from None

    def spatial_version(self, conn: Connection) -> str:
        """Return "PostGIS x.y", or say that the database has no PostGIS yet."""
        if not conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'postgis'")).first():
            return "PostGIS not enabled in this database: run `inventory init`"
        return "PostGIS " + str(conn.execute(text("SELECT postgis_lib_version()")).scalar())

    def geodesic_area(self, geom: ColumnElement) -> ColumnElement:
        """``ST_Area`` on geography: the ellipsoid."""
        return func.ST_Area(_geography(geom))

    def geodesic_distance(self, a: ColumnElement, b: ColumnElement) -> ColumnElement:
        """``ST_Distance`` on geography: the ellipsoid."""
        return func.ST_Distance(_geography(a), _geography(b))

    def replace_check(self, conn: Connection, table: str, name: str, condition: str) -> None:
        """Drop and add the constraint in one ALTER TABLE (the rows are checked once)."""
        preparer = conn.dialect.identifier_preparer
        t, n = preparer.quote(table), preparer.quote(name)
        conn.exec_driver_sql(
            f"ALTER TABLE {t} DROP CONSTRAINT {n}, ADD CONSTRAINT {n} CHECK ({condition})"
        )

    def lock_for_writing(self, conn: Connection) -> None:
        """Nothing before the transaction: the lock is an advisory lock inside it."""

    def locked(self, conn: Connection) -> None:
        """Take the transaction-scoped advisory lock that serialises the store's writers.

        Two imports at the same time therefore run one after the other, and the second
        sees the first's rows.
        """
        conn.execute(select(func.pg_advisory_xact_lock(WRITE_LOCK_KEY)))

    def bulk_insert(self, conn, table, frame, geoms=None, geom_column=None, progress=None) -> None:
        """Insert through a binary ``COPY … FROM STDIN``, sent in chunks of 10,000 rows.

        Each value goes in the column's own binary form (geometry as EWKB, JSON as its
        text), so the server parses no text: five times faster than CSV with hex EWKB. A
        thread sends one chunk while the next is prepared, so the server inserts as
        Python writes.
        """
        given = columns_of(frame)
        n = row_count(given)
        if n == 0:
            return
        if not self._may_copy(conn, table):
            # PostgreSQL refuses COPY FROM into a table whose row-level security applies to
            # this role (a surveyor limited to an area): the policies check each INSERT
            insert_rows(conn, table, given, geoms, geom_column, func.ST_GeomFromWKB, progress)
            return
        from psycopg.copy import QueuedLibpqWriter

        columns = list(given)
        json_columns = {
            c.name for c in table.columns if isinstance(c.type, JSONType) and c.name in columns
        }
        wanted = [*columns, *([geom_column] if geom_column else [])]
        oids = {  # bytea for geometry and text for JSON: their binary forms are the same bytes
            name: 17 if is_geom else 25 if is_json else oid
            for name, oid, is_json, is_geom in conn.execute(
                text(
                    "SELECT attname, atttypid::int, atttypid = 'json'::regtype, "
                    "atttypid = 'geometry'::regtype FROM pg_attribute "
                    "WHERE attrelid = CAST(:t AS regclass) AND attnum > 0 AND NOT attisdropped"
                ),
                {"t": table.name},
            )
        }
        prep = conn.dialect.identifier_preparer
        names = ", ".join(prep.quote(c) for c in wanted)
        sql = f"COPY {prep.format_table(table)} ({names}) FROM STDIN WITH (FORMAT binary)"
        cursor = conn.connection.driver_connection.cursor()
        with cursor.copy(sql, writer=QueuedLibpqWriter(cursor)) as copy:
            copy.set_types([oids[c] for c in wanted])
            # one chunk's values at a time: the whole layer as EWKB would hold another copy
            # of a million-feature file in memory
            for start in range(0, n, COPY_CHUNK_ROWS):
                stop = min(start + COPY_CHUNK_ROWS, n)
                values = [
                    [None if v is None else _to_json(v) for v in given[c][start:stop]]
                    if c in json_columns
                    else given[c][start:stop]
                    for c in columns
                ]
                if geom_column:
                    chunk = np.asarray(geoms[start:stop], dtype=object)
                    values.append(shapely.to_wkb(flat_in_4326(chunk), include_srid=True).tolist())
                for row in zip(*values, strict=True):
                    copy.write_row(row)
                if progress is not None:
                    progress(stop)

    def bulk_update(self, conn, table, frame, geoms=None, geom_column=None, stamped=()) -> None:
        """Load the rows into a temporary table by binary COPY, then one joined UPDATE.

        One UPDATE per row is a round trip each: a second survey round changing 100,000
        spaces spent two minutes on them. The temporary table takes the columns' own
        types from ``table`` and is dropped after (and at commit in any case). The UPDATE
        is one statement, so row-level security applies to it as to any.
        """
        if len(frame) == 0:
            return
        prep = conn.dialect.identifier_preparer
        columns = [c for c in frame.columns if c != "id"]
        wanted = ["id", *columns, *([geom_column] if geom_column else [])]
        scratch = Table(
            f"changed_{table.name}", MetaData(), *(Column(c, table.c[c].type) for c in wanted)
        )
        name, target = prep.format_table(scratch), prep.format_table(table)
        listed = ", ".join(prep.quote(c) for c in wanted)
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS pg_temp.{name}")
        conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE {name} ON COMMIT DROP AS "
            f"SELECT {listed} FROM {target} WITH NO DATA"
        )
        self.bulk_insert(conn, scratch, frame[["id", *columns]], geoms, geom_column)
        sets = [f"{prep.quote(c)} = u.{prep.quote(c)}" for c in wanted[1:]]
        sets += [f"{prep.quote(c)} = now()" for c in stamped]
        conn.exec_driver_sql(
            f"UPDATE {target} AS t SET {', '.join(sets)} FROM {name} AS u WHERE t.id = u.id"
        )
        conn.exec_driver_sql(f"DROP TABLE pg_temp.{name}")

    def reserve_ids(self, conn: Connection, table: Table, n: int) -> list[int]:
        """Draw ``n`` ids from the sequence of ``table``'s ``id`` (``nextval``), increasing.

        Only the first and last come back when they are one run (reading 100,000 ids as
        rows takes 0.3 s); when they are not (another session drew ids meanwhile, or the
        sequence steps by more than one) a second draw lists each id.
        """
        if n <= 0:
            return []
        # the sequence looked up once (an initplan), not once per id
        drawn = (
            "SELECT nextval((SELECT pg_get_serial_sequence(:t, 'id'))) AS v "
            "FROM generate_series(1, :n)"
        )
        params = {"t": table.name, "n": int(n)}
        lo, hi = conn.execute(text(f"SELECT min(v), max(v) FROM ({drawn}) AS drawn"), params).one()
        if hi - lo + 1 == n:
            return list(range(lo, hi + 1))
        return list(conn.scalars(text(f"{drawn} ORDER BY v"), params))

    def refresh_statistics(self, conn: Connection, table: Table) -> None:
        """``ANALYZE`` the table (a sample; a role that does not own it is skipped, not refused)."""
        conn.exec_driver_sql(f"ANALYZE {conn.dialect.identifier_preparer.format_table(table)}")

    @contextmanager
    def snapshot_connections(self, engine: Engine, n: int) -> Iterator[list[Connection]]:
        """Yield ``n`` connections in REPEATABLE READ transactions sharing one snapshot.

        The first exports its snapshot (``pg_export_snapshot``) and the others adopt it,
        as ``pg_dump --jobs`` does: the parts of a split query read the same rows.
        """
        with ExitStack() as stack:
            conns = [
                stack.enter_context(
                    engine.connect().execution_options(isolation_level="REPEATABLE READ")
                )
                for _ in range(max(1, n))
            ]
            snapshot = str(conns[0].scalar(text("SELECT pg_export_snapshot()")))
            if not re.fullmatch(r"[0-9A-Fa-f-]+", snapshot):  # the server's own token
                raise BackendUnavailableError(
                    f"Unexpected snapshot id from the server: {snapshot!r}."
                )
            for conn in conns[1:]:
                conn.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            yield conns

    @contextmanager
    def bulk_load(
        self, conn: Connection, tables: list[Table], rows: int, analyse: Sequence[Table] = ()
    ) -> Iterator[bool]:
        """Load a batch large against the store with its indexes and foreign keys built after.

        PostgreSQL's advice for populating a database: a B-tree or GiST index built
        once over all rows, and a foreign key checked by one join, cost a fraction of
        keeping them up row by row (at 200,000 spaces, 5.3 s of COPY become 1.9 s).
        Done when the batch brings at least :data:`BULK_LOAD_MIN_ROWS` rows and half as
        many as ``tables[0]`` holds, and this role owns the tables; otherwise rows go in
        as usual. Primary keys and unique constraints stay (other tables refer to them,
        and the import reads through them). The secondary indexes and the tables'
        foreign keys are dropped and built again from their own definitions in the
        same transaction, which then holds the tables exclusively: readers wait for the
        commit, and a failure or a dry run rolls the drop back with the rows.
        """
        if rows < BULK_LOAD_MIN_ROWS:
            yield False
            return
        names = [t.name for t in tables]
        owned = conn.execute(
            text(
                "SELECT bool_and(pg_has_role(current_user, relowner, 'USAGE')) FROM pg_class "
                "WHERE oid = ANY(CAST(:t AS regclass[]))"
            ),
            {"t": names},
        ).scalar()
        held = conn.execute(select(func.count()).select_from(tables[0])).scalar() or 0
        if rows * 2 < held or not owned:
            yield False
            return
        ids = {"t": names}
        foreign = conn.execute(
            text(
                "SELECT format('ALTER TABLE %s DROP CONSTRAINT %I', conrelid::regclass, conname), "
                "format('ALTER TABLE %s ADD CONSTRAINT %I ', conrelid::regclass, conname) "
                "|| pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE contype = 'f' AND conrelid = ANY(CAST(:t AS regclass[])) ORDER BY oid"
            ),
            ids,
        ).all()
        indexes = conn.execute(
            text(
                "SELECT format('DROP INDEX %s', indexrelid::regclass), "
                "pg_get_indexdef(indexrelid) FROM pg_index "
                "WHERE indrelid = ANY(CAST(:t AS regclass[])) AND NOT indisunique "
                "AND NOT indisprimary ORDER BY indexrelid"
            ),
            ids,
        ).all()
        for drop, _ in [*foreign, *indexes]:
            conn.exec_driver_sql(drop)
        yield True
        # one sort in memory per index rather than spilling to disk (for this transaction)
        conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '256MB'")
        for _, create in [*indexes, *foreign]:
            conn.exec_driver_sql(create)
        for table in [*tables, *analyse]:  # the planner's statistics for the analyses after
            self.refresh_statistics(conn, table)

    @staticmethod
    def _may_copy(conn: Connection, table: Table) -> bool:
        """Whether COPY FROM may write ``table``: no row-level security applies to this role."""
        return bool(
            conn.scalar(
                text(
                    "SELECT NOT c.relrowsecurity OR r.rolsuper OR r.rolbypassrls "
                    "OR pg_has_role(current_user, c.relowner, 'USAGE') "
                    "FROM pg_class c, pg_roles r "
                    "WHERE c.oid = CAST(:t AS regclass) AND r.rolname = current_user"
                ),
                {"t": table.name},
            )
        )

    def bbox_filter(self, table: Table, column: ColumnElement, bounds) -> ColumnElement:
        """GiST ``&&`` against the envelope."""
        minx, miny, maxx, maxy = (float(b) for b in bounds)
        return column.op("&&")(func.ST_MakeEnvelope(minx, miny, maxx, maxy, 4326))

    def within_metres(self, table, column, lon, lat, radius_m) -> ColumnElement:
        """Filter and refine, exact on the ellipsoid near the radius.

        The spatial index narrows the rows to the box around the circle; a planar
        distance in a local equirectangular frame (metres per degree at the point's
        latitude, off by under 1 cm at 500 m and 4 m at 10 km) decides every row clearly
        inside or outside; only rows within a thin band of the radius get the exact and
        slower ``ST_DWithin`` on geography.
        """
        box = self.bbox_filter(table, column, near_bounds(lon, lat, radius_m))
        per_x, per_y = (float(v) for v in metres_per_degree(lat))
        band = 1.0 + 1e-7 * float(radius_m) ** 2  # well above the frame's error at any radius
        point = func.ST_SetSRID(func.ST_MakePoint(float(lon), float(lat)), 4326)
        centre = func.ST_SetSRID(func.ST_MakePoint(float(lon) * per_x, float(lat) * per_y), 4326)
        planar = func.ST_Distance(func.ST_Scale(column, per_x, per_y), centre)
        exact = func.ST_DWithin(_geography(column), _geography(point), float(radius_m))
        return and_(
            box,
            case(
                (planar < float(radius_m) - band, true()),
                (planar > float(radius_m) + band, false()),
                else_=exact,
            ),
        )

    def session_user(self, conn: Connection) -> str | None:
        """``session_user``: the login, whatever role it has SET."""
        return conn.scalar(text("SELECT session_user"))

    def codepoint_order(self, column: ColumnElement) -> ColumnElement:
        """``COLLATE "C"``: byte order, which for UTF-8 is code-point order (not the locale's)."""
        return column.collate("C").asc().nulls_last()

    def months_after(self, day: ColumnElement, months: int) -> ColumnElement:
        """``day + make_interval(months => n)`` as a date (the 31st ends a shorter month)."""
        return cast(day + func.make_interval(0, int(months)), Date)

    def create_view(
        self, conn: Connection, name: str, query: str, comment: str | None = None
    ) -> None:
        """Make a ``security_invoker`` view: a limited role sees only its area through it (RLS).

        Its geometry column has a type and SRID (the query casts it), so PostGIS lists it
        in ``geometry_columns`` and QGIS offers it as a layer.
        """
        conn.execute(text(f"DROP VIEW IF EXISTS {_identifier(name)}"))
        conn.execute(
            text(f"CREATE VIEW {_identifier(name)} WITH (security_invoker = true) AS {query}")
        )
        if comment is not None:
            conn.execute(
                text("SELECT set_config('inventory.view_comment', :c, true)"), {"c": comment}
            )
            conn.execute(
                text(
                    "DO $$ BEGIN EXECUTE format('COMMENT ON VIEW %I IS %L', "
                    f"'{name}', current_setting('inventory.view_comment')); END $$"
                )
            )

    def view_comment(self, conn: Connection, name: str) -> str | None:
        """Return the comment of view ``name`` (None: no such view, or no comment)."""
        return conn.scalar(text("SELECT obj_description(to_regclass(:v), 'pg_class')"), {"v": name})

    def drop_view(self, conn: Connection, name: str) -> None:
        """``DROP VIEW IF EXISTS``."""
        conn.execute(text(f"DROP VIEW IF EXISTS {_identifier(name)}"))


def _identifier(name: str) -> str:
    """Return ``name`` as an SQL identifier; only the inventory's own names are accepted."""
    if not name.replace("_", "").isalnum() or not name.isascii():
        raise ValueError(f"not a view name: {name!r}")
    return f'"{name}"'

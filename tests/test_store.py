import re
import shutil
import subprocess
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, insert, select, text

from inventory import store
from inventory.backends import include_in_migrations
from inventory.db import connect
from inventory.errors import BackendUnavailableError, SchemaError
from inventory.models import Base, Community
from tests.util import store_at_revision


def test_the_head_every_command_checks_is_alembics_newest_revision(empty_db_url):
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(store.alembic_config())
    assert store.head_revision() == script.get_current_head() in store.known_revisions()
    engine = connect(empty_db_url, create=True)
    store.init(engine)
    assert store.current_revision(engine) == store.head_revision()
    engine.dispose()


def test_init_creates_then_is_a_no_op(empty_db_url):
    engine = connect(empty_db_url, create=True)
    assert store.current_revision(engine) is None
    with pytest.raises(SchemaError, match="Run `inventory init` first"):
        store.require_schema(engine)
    assert store.init(engine) == store.head_revision()
    with engine.begin() as conn:
        conn.execute(insert(Community).values(name="劲松北社区"))
    assert store.init(engine) == store.head_revision()  # again: data kept
    assert store.info(engine).communities == 1
    store.require_schema(engine)
    engine.dispose()


def test_models_and_migrations_do_not_drift(engine):
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn,
            opts={
                "include_object": include_in_migrations,
                "compare_type": True,
            },
        )
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


def test_spatial_indexes_exist(engine):
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            rows = conn.execute(
                text("SELECT tablename, indexdef FROM pg_indexes WHERE indexdef LIKE '%gist%'")
            ).all()
            indexed = {r[0] for r in rows}
        else:
            rows = conn.execute(
                text("SELECT f_table_name FROM geometry_columns WHERE spatial_index_enabled = 1")
            ).all()
            indexed = {r[0] for r in rows}
    assert {"space", "community"} <= indexed


def test_geometry_columns_registered_with_srid(engine):
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            sql = "SELECT f_table_name, f_geometry_column, srid FROM geometry_columns"
        else:
            sql = "SELECT f_table_name, f_geometry_column, srid FROM geometry_columns"
        rows = {(r[0], r[1], r[2]) for r in conn.execute(text(sql))}
    assert ("space", "geom", 4326) in rows
    assert ("community", "boundary", 4326) in rows


def _ogr_source(db_url: str) -> str:
    if "://" not in db_url:
        return db_url
    from sqlalchemy.engine import make_url

    u = make_url(db_url)
    return (
        f"PG:host={u.host} port={u.port or 5432} user={u.username} "
        f"password={u.password} dbname={u.database}"
    )


def test_gdal_sees_the_layers_with_their_srid(db_url):
    ogrinfo = shutil.which("ogrinfo")
    assert ogrinfo, "ogrinfo (Debian gdal-bin) is installed by the test command"
    for layer, column in (("space", "geom"), ("community", "boundary")):
        out = subprocess.run(
            [ogrinfo, "-ro", "-so", _ogr_source(db_url), layer],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert re.search(rf"Geometry Column( NOT NULL)? = {column}\b", out), out
        assert 'ID["EPSG",4326]' in out


def test_missing_spatialite_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("SPATIALITE_LIBRARY_PATH", str(tmp_path / "no_such_mod_spatialite"))
    with pytest.raises(BackendUnavailableError, match="apt-get install libsqlite3-mod-spatialite"):
        connect(str(tmp_path / "x.sqlite"), create=True)


def test_missing_store_file_says_run_init(tmp_path):
    with pytest.raises(BackendUnavailableError, match="inventory init"):
        connect(str(tmp_path / "nothing.sqlite"))


def test_unreachable_server_hides_password():
    with pytest.raises(BackendUnavailableError) as err:
        connect("postgresql+psycopg://me:s3cret@127.0.0.1:1/nodb")
    assert "s3cret" not in str(err.value)
    assert "me:***@127.0.0.1:1/nodb" in str(err.value)


def test_postgis_that_may_not_be_enabled_says_what_to_do(request):
    """A role that may not create the extension gets told how to get PostGIS enabled."""
    admin, url = request.getfixturevalue("postgis_admin")
    suffix = uuid.uuid4().hex[:10]
    role, database = f"inventory_noext_{suffix}", f"inventory_noext_{suffix}"
    with admin.connect() as conn:
        conn.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD 'pw' NOSUPERUSER"))
        conn.execute(text(f"CREATE DATABASE {database} OWNER {role}"))
    try:
        engine = connect(
            url.set(username=role, password="pw", database=database).render_as_string(
                hide_password=False
            ),
            create=True,
        )
        with pytest.raises(BackendUnavailableError) as err:
            store.init(engine)
        engine.dispose()
        message = str(err.value)
        assert "could not be enabled" in message
        assert "permission denied" in message
        assert "apt-get install postgresql-15-postgis-3" in message
        assert "CREATE EXTENSION postgis;" in message
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
            conn.execute(text(f"DROP ROLE IF EXISTS {role}"))


def test_a_store_of_a_newer_version_is_named_not_initialised(engine):
    from sqlalchemy import text

    from inventory.errors import SchemaError

    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    store._UP_TO_DATE.discard(engine)
    for call in (store.init, store.require_schema):
        with pytest.raises(SchemaError, match="9999_future, which this version") as err:
            call(engine)
        assert "Upgrade the inventory" in str(err.value)


def test_tables_without_a_revision_are_explained(engine):
    from sqlalchemy import text

    from inventory.errors import SchemaError

    with engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))
    with pytest.raises(SchemaError, match="no schema revision .*alembic stamp head"):
        store.init(engine)


def test_a_spatialite_writer_waits_for_another_and_says_so(tmp_path, spatialite_template, caplog):
    """No 'database is locked' after 30 s: the second writer queues (#17 item 6)."""
    import shutil
    import threading
    import time

    from sqlalchemy import text

    from inventory.backends import spatialite as sl
    from inventory.backends import write_transaction

    path = tmp_path / "busy.sqlite"
    shutil.copyfile(spatialite_template, path)
    first, second = connect(str(path)), connect(str(path))
    held = threading.Event()

    def hold():
        with write_transaction(first) as conn:
            conn.execute(text("INSERT INTO community (name) VALUES ('A')"))
            held.set()
            time.sleep((sl.WRITE_WAIT_NOTICE_MS + 1500) / 1000)

    worker = threading.Thread(target=hold)
    worker.start()
    held.wait(10)
    started = time.monotonic()
    with caplog.at_level("WARNING", logger="inventory"):
        with write_transaction(second) as conn:
            conn.execute(text("INSERT INTO community (name) VALUES ('B')"))
    worker.join()
    assert time.monotonic() - started > sl.WRITE_WAIT_NOTICE_MS / 1000
    assert "waiting for it to finish" in caplog.text
    # readers were never blocked, and both writes are there
    with first.connect() as conn:
        assert sorted(conn.scalars(text("SELECT name FROM community"))) == ["A", "B"]
    first.dispose()
    second.dispose()


def test_upgrading_a_populated_store_keeps_every_space(empty_db_url):
    """Revision 0002 (model resources) on a store filled under 0001: nothing lost, new kinds in."""
    from geoalchemy2 import WKTElement
    from sqlalchemy import select
    from sqlalchemy.exc import IntegrityError

    from inventory.models import Space

    engine = store_at_revision(empty_db_url, "0001")
    columns = ("survey_ref", "kind", "floor_area_m2", "owner_name", "certificate_status")
    rows = [
        ("JS-013", "boiler_room", 3000.0, "北京市热力集团", "complete"),
        ("JS-011", "basement", 230.0, "劲松一建公司/劲松房管所", "partial"),
        ("JS-P01", "parking", None, "劲松街道办事处", None),
    ]
    with engine.begin() as conn:
        cid = conn.execute(insert(Community).values(name="劲松北社区").returning(Community.id))
        cid = cid.scalar_one()
        for i, row in enumerate(rows):
            geom = WKTElement(f"POINT(116.46{i} 39.88)", srid=4326)
            conn.execute(
                insert(Space.__table__).values(
                    community_id=cid, geom=geom, **dict(zip(columns, row, strict=True))
                )
            )
    assert store.init(engine) == store.head_revision()
    with engine.connect() as conn:
        kept = conn.execute(select(*[Space.__table__.c[c] for c in columns]).order_by(Space.id))
        assert [tuple(r) for r in kept] == rows
    point = WKTElement("POINT(116.47 39.88)", srid=4326)
    with engine.begin() as conn:
        conn.execute(
            insert(Space.__table__).values(
                community_id=cid, survey_ref="GM-D01", kind="public_housing", units=29, geom=point
            )
        )
    for bad in ({"kind": "castle"}, {"kind": "lift", "units": -1}):
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(
                insert(Space.__table__).values(community_id=cid, survey_ref="X", geom=point, **bad)
            )
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Space.__table__)) == 4
    engine.dispose()


def test_the_parts_of_a_split_query_read_one_snapshot(engine):
    from inventory.backends import backend

    with engine.begin() as conn:
        conn.execute(insert(Community), [{"name": "甲"}])
    with backend(engine).snapshot_connections(engine, 3) as conns:
        seen = [c.scalar(select(func.count()).select_from(Community)) for c in conns[:1]]
        # a community committed after the snapshot was taken, by another writer
        with engine.begin() as conn:
            conn.execute(insert(Community), [{"name": "乙"}])
        seen += [c.scalar(select(func.count()).select_from(Community)) for c in conns[1:]]
    assert seen == [1] * len(conns)
    assert len(conns) == (3 if engine.dialect.name == "postgresql" else 1)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Community)) == 2


def test_bulk_insert_keeps_outlines_in_two_dimensions(engine):
    import numpy as np
    import pandas as pd
    import shapely

    from inventory.backends import backend

    square = [(116.0, 39.0), (116.001, 39.0), (116.001, 39.001), (116.0, 39.001)]
    geoms = np.array(
        [
            shapely.MultiPolygon([shapely.Polygon([(x, y, 12.5) for x, y in square])]),  # CAD
            shapely.MultiPolygon([shapely.Polygon(square)]),
            None,
        ],
        dtype=object,
    )
    frame = pd.DataFrame({"name": ["Z", "flat", "none"]}, dtype=object)
    with engine.begin() as conn:
        backend(conn).bulk_insert(conn, Community.__table__, frame, geoms, "boundary")
        rows = conn.execute(
            select(
                Community.name,
                func.ST_AsBinary(Community.boundary),
                func.ST_SRID(Community.boundary),
            )
        ).all()
    back = {
        name: (None if wkb is None else shapely.from_wkb(bytes(wkb)), srid)
        for name, wkb, srid in rows
    }
    flat = shapely.MultiPolygon([shapely.Polygon(square)])
    assert not back["Z"][0].has_z and back["Z"][0].equals(flat)
    assert back["flat"][0].equals(flat)
    assert {back["Z"][1], back["flat"][1]} == {4326}
    assert back["none"][0] is None


def test_rows_inserted_column_by_column_are_what_sqlalchemy_would_store(engine, sample):
    # insert_rows hands the driver each column through its type's processor, not a dict
    # per row: the stored rows must be those of SQLAlchemy's own executemany
    import datetime as dt

    import numpy as np
    import pandas as pd
    import shapely
    from sqlalchemy import bindparam, delete, insert

    from inventory.backends import backend
    from inventory.backends.base import insert_rows
    from inventory.models import Space

    def native_value(v):
        return v.item() if isinstance(v, np.generic) else v

    with engine.connect() as conn:
        community_id = conn.scalar(select(Community.id).limit(1))
    frame = pd.DataFrame(
        {
            "survey_ref": ["R-1", "R-2", "R-3"],
            "kind": ["boiler_room", "bike_shed", "idle_land"],
            "community_id": [community_id, np.int64(community_id), community_id],
            "floor_area_m2": [12.5, None, np.float64(3.25)],
            "floors": [np.int64(2), None, 1],
            "operating_right_end": [dt.date(2031, 12, 31), None, None],
            "quality_flags": [['含"引号"的标记', "x"], None, []],
            "extra_attributes": [{"备注": "二轮", "n": 2}, None, {}],
            "disputed": [True, False, np.bool_(True)],
            "owner_name": ["'; DROP TABLE space; --", "区房管局", None],
        },
        dtype=object,
    )
    geoms = np.array(
        [
            shapely.MultiPolygon([shapely.box(116.1234567890123, 39.9, 116.1235, 39.9001)]),
            shapely.MultiPolygon([shapely.box(116.2, 39.9, 116.2001, 39.9001)]),
            shapely.MultiPolygon([shapely.box(116.3, 39.9, 116.3001, 39.9001)]),
        ],
        dtype=object,
    )
    table = Space.__table__
    columns = [c for c in table.c.keys() if c not in ("id", "created_at", "updated_at")]

    def stored(conn) -> list:
        return [
            tuple(row)
            for row in conn.execute(
                select(*(table.c[c] for c in columns), func.ST_AsBinary(table.c.geom))
                .where(table.c.survey_ref.in_(frame["survey_ref"].tolist()))
                .order_by(table.c.survey_ref)
            )
        ]

    wkb = func.ST_GeomFromWKB(bindparam("w"), 4326)
    with engine.begin() as conn:
        records = [
            {k: v.item() if isinstance(v, np.generic) else v for k, v in row.items()} | {"w": w}
            for row, w in zip(frame.to_dict("records"), shapely.to_wkb(geoms), strict=True)
        ]
        conn.execute(insert(table).values(geom=wkb), records)
        expected = stored(conn)
        conn.execute(delete(table).where(table.c.survey_ref.in_(frame["survey_ref"].tolist())))
        insert_rows(conn, table, frame, geoms, "geom", func.ST_GeomFromWKB)
        got = stored(conn)
        # the same rows given as columns of Python values, without a frame, both ways
        as_columns = {c: [native_value(v) for v in frame[c]] for c in frame.columns}
        from_columns = []
        for insert_them in (
            lambda: insert_rows(conn, table, as_columns, geoms, "geom", func.ST_GeomFromWKB),
            lambda: backend(conn).bulk_insert(conn, table, as_columns, geoms, "geom"),
        ):
            conn.execute(delete(table).where(table.c.survey_ref.in_(as_columns["survey_ref"])))
            insert_them()
            from_columns.append(stored(conn))
    assert len(got) == 3 and got == expected
    assert from_columns == [expected, expected]
    flags, extras = columns.index("quality_flags"), columns.index("extra_attributes")
    assert got[0][flags] == ['含"引号"的标记', "x"] and got[0][extras] == {"备注": "二轮", "n": 2}
    assert shapely.from_wkb(bytes(got[0][-1])).equals_exact(geoms[0], 0)


def test_bulk_update_sets_each_row_its_own_values(engine, sample):
    import datetime as dt

    import numpy as np
    import pandas as pd
    import shapely
    from sqlalchemy import update

    from inventory.backends import backend
    from inventory.models import Space

    long_ago = dt.datetime(2001, 1, 1, tzinfo=dt.UTC)
    with engine.begin() as conn:
        conn.execute(update(Space).values(updated_at=long_ago))
    with engine.connect() as conn:
        ids = sorted(conn.scalars(select(Space.id)))
        moved_id, kept_id, cleared_id, untouched_id = ids[:4]
        before = {
            sid: (bytes(wkb), stamp)
            for sid, wkb, stamp in conn.execute(
                select(Space.id, func.ST_AsBinary(Space.geom), Space.updated_at)
            )
        }
        columns = [c for c in Space.__table__.c.keys() if c not in ("geom", "updated_at")]
        untouched_before = conn.execute(
            select(*(Space.__table__.c[c] for c in columns)).where(Space.id == untouched_id)
        ).one()
    moved = shapely.MultiPolygon([shapely.box(116.123456789012, 39.9, 116.123556789012, 39.9001)])
    frame = pd.DataFrame(
        {
            "id": [moved_id, kept_id, cleared_id, 10**9],  # the last is in no row
            "floor_area_m2": [12.5, 99.25, None, 1.0],
            "floors": [None, 3, None, 1],
            "operating_right_end": [dt.date(2031, 12, 31), None, None, None],
            "quality_flags": [['含"引号"的标记', "x"], None, [], None],
            "extra_attributes": [{"备注": "二轮", "n": 2}, None, {}, None],
            "disputed": [True, False, False, False],
            "owner_name": ["'; DROP TABLE space; --", "区房管局", None, "x"],
        },
        dtype=object,
    )
    geoms = np.array([moved, None, None, None], dtype=object)
    with engine.begin() as conn:
        backend(conn).bulk_update(
            conn, Space.__table__, frame.iloc[[1, 2]], stamped=("updated_at",)
        )
        backend(conn).bulk_update(conn, Space.__table__, frame.iloc[[0, 3]], geoms[[0, 3]], "geom")
    with engine.connect() as conn:
        got = {
            row.id: row
            for row in conn.execute(
                select(
                    *(Space.__table__.c[c] for c in columns),
                    func.ST_AsBinary(Space.geom).label("wkb"),
                    Space.updated_at,
                )
            )
        }
        untouched_after = conn.execute(
            select(*(Space.__table__.c[c] for c in columns)).where(Space.id == untouched_id)
        ).one()
    assert len(got) == len(before)  # nothing added
    m, k, c = got[moved_id], got[kept_id], got[cleared_id]
    assert (m.floor_area_m2, m.floors, m.operating_right_end) == (12.5, None, dt.date(2031, 12, 31))
    assert m.quality_flags == ['含"引号"的标记', "x"] and m.extra_attributes == {
        "备注": "二轮",
        "n": 2,
    }
    assert m.disputed is True and m.owner_name == "'; DROP TABLE space; --"
    assert shapely.from_wkb(bytes(m.wkb)).equals_exact(moved, 0)  # every digit kept
    assert m.updated_at == before[moved_id][1]  # not stamped in that call
    assert (k.floor_area_m2, k.floors, k.owner_name) == (99.25, 3, "区房管局")
    assert bytes(k.wkb) == before[kept_id][0]  # the stored outline, byte for byte
    assert (c.floor_area_m2, c.quality_flags, c.extra_attributes) == (None, [], {})
    stamps = {k.updated_at, c.updated_at}
    assert len(stamps) == 1 and None not in stamps  # the transaction's one time
    assert min(stamps).year > 2001
    assert untouched_after == untouched_before
    assert bytes(got[untouched_id].wkb) == before[untouched_id][0]


def test_columns_of_different_lengths_are_refused():
    from inventory.backends.base import columns_of

    assert columns_of({"a": [1, 2], "b": (3, 4)}) == {"a": [1, 2], "b": [3, 4]}
    with pytest.raises(ValueError, match=r"different lengths: \[1, 2\]"):
        columns_of({"a": [1, 2], "b": [3]})


def test_a_result_read_as_the_drivers_rows_is_the_frame_of_sqlalchemys_rows(engine, sample):
    import pandas as pd
    from sqlalchemy import String, TypeDecorator, type_coerce

    from inventory.listing import frame_of
    from inventory.models import Space

    class Shouted(TypeDecorator):  # a result processor: SQLAlchemy's rows must be read
        impl = String
        cache_ok = True

        def process_result_value(self, value, dialect):
            return None if value is None else value.upper()

    columns = (
        Space.id,
        Space.survey_ref,
        Space.usable_area_m2,
        Space.floors,
        Space.disputed,
        Space.operating_right_end,
        Space.surveyed_at,
        func.ST_AsBinary(Space.geom).label("wkb"),
    )
    for stmt in (
        select(*columns).order_by(Space.id),
        select(*columns, type_coerce(Space.kind, Shouted).label("shouted")).order_by(Space.id),
    ):
        with engine.connect() as conn:
            rows = conn.execute(stmt).all()
            result = conn.execute(stmt)
            if "shouted" not in result.keys() and engine.dialect.name == "postgresql":
                # nothing to convert on PostGIS: the driver's tuples, no Row made
                result.fetchall = None
            got = frame_of(result)
        expected = pd.DataFrame(
            [tuple(r) for r in rows], columns=list(stmt.selected_columns.keys())
        )
        assert len(got) == len(sample) > 0
        pd.testing.assert_frame_equal(got, expected)
    assert set(got["shouted"]) == {k.upper() for k in sample["kind"]}

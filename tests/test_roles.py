"""Roles on a shared PostGIS store: each group role can do what it is for, and no more (#17)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError
from typer.testing import CliRunner

from inventory import roles
from inventory.cli import app
from inventory.db import connect
from inventory.errors import ConfigurationError
from inventory.importer import import_file
from tests.util import frame, room, write

runner = CliRunner()


@pytest.fixture
def logins(backend, engine, db_url):
    """Three logins of this test, one per group role, dropped afterwards."""
    if backend != "postgis":
        pytest.skip("roles need PostGIS")
    roles.create_roles(engine)
    suffix = uuid.uuid4().hex[:8]
    made = {}
    with engine.begin() as conn:
        for group in ("surveyor", "analyst", "planner"):
            name = f"t_{group}_{suffix}"
            conn.execute(text(f"CREATE ROLE {name} LOGIN PASSWORD 'pw'"))
            conn.execute(text(f"GRANT inventory_{group} TO {name}"))
            made[group] = name
    url = make_url(db_url)
    engines = {
        group: connect(url.set(username=name, password="pw").render_as_string(hide_password=False))
        for group, name in made.items()
    }
    yield made, engines
    for e in engines.values():
        e.dispose()
    with engine.begin() as conn:
        for name in made.values():
            conn.execute(text(f"DROP OWNED BY {name}"))
            conn.execute(text(f"DROP ROLE {name}"))


def _rooms(tmp_path, name, dx=0):
    rows = [
        {"编号": f"{name}-{i}", "类型": "门房", "geometry": room(dx + i * 20, 0)} for i in range(3)
    ]
    return write(frame(rows), tmp_path / f"{name}.gpkg")


def test_each_role_does_what_it_is_for(sample, engine, logins, tmp_path):
    made, as_role = logins
    # the surveyor imports, and the batch says who did
    (report,) = import_file(as_role["surveyor"], _rooms(tmp_path, "S"), community="劲松北社区")
    assert report.loaded == 3
    with engine.connect() as conn:
        who = conn.scalar(text("SELECT imported_by FROM import_batch ORDER BY id DESC LIMIT 1"))
    assert who == made["surveyor"]
    # and delivers a second round of the same rooms, moved and renamed
    rows = [
        {"编号": f"S-{i}", "类型": "门房", "名称": "二轮", "geometry": room(i * 20 + 1, 0)}
        for i in range(3)
    ]
    (again,) = import_file(
        as_role["surveyor"], write(frame(rows), tmp_path / "S2.gpkg"), community="劲松北社区"
    )
    assert (again.loaded, again.updated) == (0, 3)
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM space WHERE name = '二轮'")) == 3
    # analysts and planners read everything and write nothing
    for group in ("analyst", "planner"):
        with as_role[group].connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM space")) == 25
        with pytest.raises(ProgrammingError, match="permission denied"):
            with as_role[group].begin() as conn:
                conn.execute(text("UPDATE space SET notes = 'x'"))
        with pytest.raises(Exception, match="permission denied"):
            import_file(as_role[group], _rooms(tmp_path, f"X{group}"), community="劲松北社区")
    # nobody but the tables' owner may change the schema
    with pytest.raises(ProgrammingError, match="must be owner|permission denied"):
        with as_role["surveyor"].begin() as conn:
            conn.execute(text("ALTER TABLE space ADD COLUMN x int"))


def test_a_limited_role_sees_only_its_area(sample, engine, logins, tmp_path):
    made, as_role = logins
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO community (name, district, street_office) VALUES ('远方社区', '海淀区', '远街道')"
            )
        )
    import_file(engine, _rooms(tmp_path, "F", dx=5000), community="远方社区")
    roles.limit_role(engine, made["analyst"], street_office="劲松街道")
    with as_role["analyst"].connect() as conn:
        assert conn.scalars(text("SELECT name FROM community")).all() == ["劲松北社区"]
        assert conn.scalar(text("SELECT count(*) FROM space")) == 22
    with as_role["planner"].connect() as conn:  # not limited: everything
        assert conn.scalar(text("SELECT count(*) FROM space")) == 25
    roles.limit_role(engine, made["analyst"])  # lifted
    with as_role["analyst"].connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM space")) == 25


def test_roles_command(engine, db_url, backend):
    result = runner.invoke(app, ["roles", "--db", db_url])
    if backend == "spatialite":
        assert result.exit_code == 1 and "Roles need PostGIS" in result.output
        return
    assert result.exit_code == 0, result.output
    for name in roles.ROLES:
        assert name in result.output
    result = runner.invoke(
        app, ["roles", "--limit", "nobody_here", "--district", "朝阳区", "--db", db_url]
    )
    assert result.exit_code == 1 and "--limit 'nobody_here' is not a role" in result.output


def test_roles_need_postgis(backend, engine):
    if backend != "spatialite":
        pytest.skip("the SpatiaLite message")
    with pytest.raises(ConfigurationError, match="Roles need PostGIS"):
        roles.create_roles(engine)

"""Fixtures: every store test runs on a real SpatiaLite file and a real PostGIS database.

The PostGIS server comes from ``--postgis-url`` or ``$INVENTORY_TEST_POSTGIS_URL`` (a URL
whose role may create databases, e.g. postgresql+psycopg://inventory:inventory@localhost/postgres).
Each test gets its own database cloned from a migrated template and dropped afterwards,
so tests may commit, fail half-way and run imports exactly as users do.

When PostGIS cannot be reached the PostGIS tests are skipped locally, but FAIL when
``CI`` or ``INVENTORY_TEST_REQUIRE_POSTGIS`` is set: no green run with PostGIS silently
skipped.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from inventory import store
from inventory.db import connect

# The tests read workbooks with pandas as a user's notebook would; python-calamine (the
# inventory's reader of .xls) makes pandas announce a change of its default .xlsx engine
pd.set_option("io.excel.xlsx.reader", "openpyxl")

BACKENDS = ("spatialite", "postgis")
TEMPLATE_DB = "inventory_test_template"


def pytest_addoption(parser):
    parser.addoption(
        "--postgis-url",
        default=os.environ.get("INVENTORY_TEST_POSTGIS_URL"),
        help="Admin URL of a PostGIS server the tests may create databases on.",
    )


def _postgis_required() -> bool:
    return bool(os.environ.get("CI") or os.environ.get("INVENTORY_TEST_REQUIRE_POSTGIS"))


def _unavailable(reason: str):
    if _postgis_required():
        pytest.fail(f"PostGIS is required here (CI) but unavailable: {reason}", pytrace=False)
    pytest.skip(f"PostGIS unavailable: {reason}")


@pytest.fixture(scope="session")
def postgis_admin(pytestconfig):
    """An autocommit engine on the PostGIS server, with a migrated template database."""
    raw = pytestconfig.getoption("--postgis-url")
    if not raw:
        _unavailable("no --postgis-url or INVENTORY_TEST_POSTGIS_URL given")
    url = make_url(raw).set(drivername="postgresql+psycopg")
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any reason counts: refused, auth, DNS
        _unavailable(str(exc).splitlines()[0])
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{TEMPLATE_DB}"'))
    template = connect(url.set(database=TEMPLATE_DB).render_as_string(hide_password=False))
    store.init(template)
    template.dispose()
    yield admin, url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def spatialite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.sqlite"
    engine = connect(str(path), create=True)
    store.init(engine)
    engine.dispose()
    return path


def _postgis_database(postgis_admin, template: str | None):
    admin, url = postgis_admin
    name = f"inventory_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        suffix = f' TEMPLATE "{template}"' if template else ""
        conn.execute(text(f'CREATE DATABASE "{name}"{suffix}'))
    return name, url.set(database=name).render_as_string(hide_password=False)


def _drop(postgis_admin, name: str) -> None:
    admin, _ = postgis_admin
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def db_url(request, backend, tmp_path, spatialite_template):
    """URL (or path) of a migrated, empty store on each backend."""
    if backend == "spatialite":
        path = tmp_path / "store.sqlite"
        shutil.copyfile(spatialite_template, path)
        yield str(path)
        return
    admin = request.getfixturevalue("postgis_admin")
    name, url = _postgis_database(admin, TEMPLATE_DB)
    yield url
    _drop(admin, name)


@pytest.fixture
def empty_db_url(request, backend, tmp_path):
    """URL (or path) of a store with no schema yet, on each backend."""
    if backend == "spatialite":
        yield str(tmp_path / "new.sqlite")
        return
    admin = request.getfixturevalue("postgis_admin")
    name, url = _postgis_database(admin, None)
    yield url
    _drop(admin, name)


@pytest.fixture
def engine(db_url):
    eng = connect(db_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    """A fresh copy of the committed sample data (tests may not touch the originals)."""
    src = Path(__file__).resolve().parent.parent / "sample_data"
    dst = tmp_path_factory.mktemp("sample_data")
    for f in src.iterdir():
        if f.is_file():
            shutil.copy2(f, dst / f.name)
    return dst


@pytest.fixture
def sample(engine, sample_dir):
    """The Jinsong North sample survey imported into ``engine``; returns its spaces."""
    from inventory import listing
    from inventory.importer import import_file

    import_file(engine, sample_dir / "jinsong_north_community.shp", communities=True)
    import_file(engine, sample_dir / "jinsong_north_spaces.shp")
    import_file(engine, sample_dir / "jinsong_north_parking_points.shp")
    return listing.spaces(engine)

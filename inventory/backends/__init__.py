"""The two backends behind one interface, one file each: ``postgis.py`` and ``spatialite.py``.

:func:`backend` picks the right one for an engine or connection, once per database kind;
the rest of the package asks it for the few things each database spells its own way and
writes everything else as SQLAlchemy / GeoAlchemy2 expressions.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from sqlalchemy import Connection, Engine
from sqlalchemy.engine import URL

from inventory.backends.base import Backend, include_in_migrations

__all__ = [
    "Backend",
    "backend",
    "include_in_migrations",
    "write_transaction",
]


#: The SQLAlchemy backend names the inventory runs on.
BACKEND_NAMES = ("postgresql", "sqlite")


@cache
def _for(backend_name: str) -> Backend:
    if backend_name == "postgresql":
        from inventory.backends.postgis import PostGIS

        return PostGIS()
    from inventory.backends.spatialite import SpatiaLite

    return SpatiaLite()


def backend(bind: Engine | Connection | URL) -> Backend:
    """Return the backend of an engine, a connection or a URL."""
    name = bind.get_backend_name() if isinstance(bind, URL) else bind.dialect.name
    return _for(name)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """Yield a connection in a transaction that holds the store's write lock.

    Two imports at the same time therefore run one after the other, and the second sees
    the first's rows; the transaction commits on success and rolls back on any error,
    Ctrl-C included.
    """
    db = backend(engine)
    with engine.connect() as conn:
        db.lock_for_writing(conn)
        with conn.begin():
            db.locked(conn)
            yield conn

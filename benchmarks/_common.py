"""Set-up shared by the benchmarks: the PostGIS server to measure on, and fresh databases."""

from __future__ import annotations

import os

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url


def admin_engine(raw: str | None) -> tuple[Engine, URL]:
    """Return an autocommit engine on the server of ``raw`` (or $INVENTORY_TEST_POSTGIS_URL)."""
    raw = raw or os.environ.get("INVENTORY_TEST_POSTGIS_URL")
    if not raw:
        raise SystemExit(
            "Give --url or INVENTORY_TEST_POSTGIS_URL (an admin URL on a PostGIS server)."
        )
    url = make_url(raw).set(drivername="postgresql+psycopg")
    return create_engine(url, isolation_level="AUTOCOMMIT"), url


def fresh_database(admin: Engine, name: str) -> None:
    """Drop database ``name`` if it exists, create it empty, and let the server settle.

    The checkpoint flushes what the dropped database (a smaller size's run) left dirty,
    so its writes do not land in the middle of the next measurement.
    """
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            conn.execute(text("CHECKPOINT"))
        except Exception:  # the role may not checkpoint: the runs then share the noise
            pass

"""The engine factory: one function opens the store, PostGIS or SpatiaLite."""

from __future__ import annotations

import os

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from inventory.backends import backend
from inventory.config import hide_secrets, render, resolve_url
from inventory.errors import BackendUnavailableError


def connect(db: str | os.PathLike[str] | None = None, *, create: bool = False) -> Engine:
    """Return an engine for the store named by ``db`` (see :func:`inventory.config.resolve_url`).

    The connection is tried at once so that a wrong URL or a missing extension is
    reported here, not in the middle of a job.

    Args:
        db: a database URL or SpatiaLite file path; None for the configured default.
        create: allow a SpatiaLite file that does not exist yet to be created.

    Raises:
        ConfigurationError: the URL is malformed.
        BackendUnavailableError: the server is unreachable, or the file does not exist and
            ``create`` is false, or the spatial extension cannot be loaded.

    """
    url = resolve_url(db)
    backend(url).prepare_location(url, create=create)
    engine = backend(url).create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except DBAPIError as exc:
        engine.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        reason = hide_secrets(reason, url)
        raise BackendUnavailableError(
            f"Cannot open the store {render(url)} ({reason}). {backend(url).connect_hint}"
        ) from None
    return engine

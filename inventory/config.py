"""Where the store is: the database URL from an option, the environment, or the default file."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import quote, unquote

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from inventory.errors import ConfigurationError

#: Environment variable naming the store, e.g. ``postgresql+psycopg://user:pw@host/db``.
DATABASE_URL_ENV = "INVENTORY_DATABASE_URL"
#: The embedded store used when nothing is configured.
DEFAULT_SQLITE_PATH = Path("inventory.sqlite")


def resolve_url(db: str | os.PathLike[str] | None = None) -> URL:
    """Return the store's URL.

    ``db`` wins when given: a SQLAlchemy URL (``postgresql+psycopg://...``) or the path
    of a SpatiaLite file. Otherwise ``$INVENTORY_DATABASE_URL``; otherwise the file
    ``./inventory.sqlite``.

    Raises:
        ConfigurationError: the URL is malformed or names a database we do not support.

    """
    raw = os.fspath(db) if db is not None else os.environ.get(DATABASE_URL_ENV) or None
    if raw is None:
        return URL.create("sqlite", database=str(DEFAULT_SQLITE_PATH))
    if "://" not in raw:
        return URL.create("sqlite", database=raw)
    try:
        url = make_url(_encode_userinfo(raw))
    except ArgumentError as exc:
        raise ConfigurationError(
            f"Cannot parse the database URL {_safe(raw)!r}: {exc}. Use the form "
            "postgresql+psycopg://USER:PASSWORD@HOST:5432/DBNAME or a SpatiaLite file path."
        ) from None
    from inventory.backends import BACKEND_NAMES, backend

    if url.get_backend_name() not in BACKEND_NAMES:
        raise ConfigurationError(
            f"The database URL {render(url)!r} is for {url.get_backend_name()!r}; the "
            "inventory runs on PostGIS (postgresql+psycopg://...) or a SpatiaLite file."
        )
    return backend(url).normalise_url(url)


def render(url: URL) -> str:
    """Return the URL as text with its password hidden, wherever the URL carries it."""
    return _mask_query(url.render_as_string(hide_password=True))


def _mask_query(text: str) -> str:
    """Mask the values of the secret query parameters (``?password=…``) of a URL's text."""
    return re.sub(r"(?i)([?&](?:ssl)?password=)[^&]*", r"\1***", text)


def hide_secrets(text: str, url: URL) -> str:
    """Return ``text`` (a driver's message, say) with every secret of ``url`` masked."""
    secrets = [url.password] if url.password else []
    for key, value in url.query.items():
        if key.lower() in _SECRET_QUERY_KEYS:
            secrets += [value] if isinstance(value, str) else list(value)
    for secret in sorted(filter(None, map(str, secrets)), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


#: Query parameters of a database URL that carry secrets (libpq's names).
_SECRET_QUERY_KEYS = {"password", "sslpassword"}


def _encode_userinfo(raw: str) -> str:
    """Percent-encode the user and password of a URL whose password has a bare ``@``.

    ``postgresql://me:p@ss@host/db`` would otherwise parse as host ``ss@host``, and the
    part of the password after ``@`` would be printed as the host. Host names never hold
    ``@``, so the last one before the path ends the user information.
    """
    head, sep, tail = raw.partition("://")
    netloc, slash, rest = tail.partition("/")
    if netloc.count("@") < 2:
        return raw
    userinfo, host = netloc.rsplit("@", 1)
    user, colon, password = userinfo.partition(":")
    encoded = quote(unquote(user), safe="") + colon + quote(unquote(password), safe="")
    return f"{head}{sep}{encoded}@{host}{slash}{rest}"


def _safe(raw: str) -> str:
    """Hide a password in a URL we could not parse (``user:secret@`` → ``user:***@``)."""
    head, sep, tail = raw.partition("://")
    netloc, slash, rest = tail.partition("/")
    if "@" in netloc:
        user = netloc.rsplit("@", 1)[0].split(":", 1)[0]
        netloc = f"{user}:***@{netloc.rsplit('@', 1)[1]}"
    return _mask_query(head + sep + netloc + slash + rest)

"""Creating, upgrading and describing the store (``inventory init`` and ``inventory info``)."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, func, inspect, select, text

from inventory.backends import backend
from inventory.config import render
from inventory.errors import InputError, SchemaError
from inventory.models import Base, Community, ImportBatch, RejectedFeature, Space

if TYPE_CHECKING:
    from alembic.config import Config

#: The Alembic migrations travel inside the package, so an installed wheel can ``init``.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


#: The newest revision in ``migrations/versions`` (a test holds it to Alembic's head):
#: every command checks the store against it, so Alembic is loaded only to change the
#: schema, not on each start-up.
HEAD_REVISION = "0005"


def alembic_config() -> Config:
    """Return an Alembic config pointing at the package's migrations."""
    from alembic.config import Config

    if not (MIGRATIONS_DIR / "env.py").exists():
        raise SchemaError(
            f"The migrations folder {MIGRATIONS_DIR} is missing from this installation; "
            "reinstall the inventory (pip install --force-reinstall stock-space-inventory)."
        )
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    """Return the newest schema revision this version of the inventory knows."""
    return HEAD_REVISION


def current_revision(engine: Engine) -> str | None:
    """Return the store's schema revision, or None if it has no schema yet."""
    with engine.connect() as conn:
        return _revision(conn)


def _revision(conn) -> str | None:
    """Return the revision in Alembic's version table (one row, as Alembic keeps it)."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def init(engine: Engine) -> str:
    """Create the schema in the store, or upgrade it to the newest revision.

    Safe to run again: an up-to-date store is left as it is. Returns the revision.

    Raises:
        BackendUnavailableError: the spatial extension is missing from the server.

    """
    from inventory import views

    _check_upgradable(engine)
    cfg = alembic_config()
    with engine.begin() as conn:
        backend(conn).ensure_spatial_extension(conn)
        made = views.made_with(conn)  # views hold columns an upgrade may change
        upgrading = made is not None and _revision(conn) != head_revision()
        if upgrading:
            for name in reversed(views.VIEWS):
                backend(conn).drop_view(conn, name)
        cfg.attributes["connection"] = conn
        from alembic import command

        command.upgrade(cfg, "head")
    if upgrading:
        views.create_views(engine, **made)
    return head_revision()


def known_revisions() -> set[str]:
    """Return every schema revision this version of the inventory knows."""
    from alembic.script import ScriptDirectory

    return {s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def _newer_message(where: str, current: str) -> str:
    return (
        f"The store {where} is at schema revision {current}, which this version of the "
        f"inventory ({head_revision()}) does not know: it was written by a newer version. "
        "Upgrade the inventory (pip install --upgrade stock-space-inventory) and run the "
        "command again; do not run `inventory init` with this version."
    )


def _check_upgradable(engine: Engine) -> None:
    """Refuse, before Alembic does with its own words, a store init cannot upgrade.

    Raises:
        SchemaError: the store is at a revision this version does not know, or holds the
            inventory's tables without a schema revision (made by hand, or by another tool).

    """
    current = current_revision(engine)
    where = render(engine.url)
    if current is not None and current not in known_revisions():
        raise SchemaError(_newer_message(where, current))
    if current is None:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names()) & set(Base.metadata.tables)
        if tables:
            raise SchemaError(
                f"The store {where} holds inventory tables ({', '.join(sorted(tables))}) but "
                "no schema revision (no alembic_version table), so it cannot be upgraded "
                "safely. Export what it holds, then start from a new store (inventory init "
                "--db NEW), or, if it is exactly this version's schema, record that with "
                "`alembic stamp head`."
            )


def init_and_describe(engine: Engine) -> StoreInfo:
    """Create or upgrade the schema (:func:`init`), then describe the store (:func:`info`)."""
    init(engine)
    return info(engine)


_UP_TO_DATE: weakref.WeakSet[Engine] = weakref.WeakSet()


def require_schema(engine: Engine) -> None:
    """Raise SchemaError unless the store is at the newest schema revision.

    A store found up to date is remembered for the life of its engine, so that quick
    queries (a capacity question near a point) do not pay for the check each time.
    """
    if engine in _UP_TO_DATE:
        return
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        _UP_TO_DATE.add(engine)
        return
    where = render(engine.url)
    if current is None:
        raise SchemaError(
            f"The store {where} has no inventory schema yet. Run `inventory init` first."
        )
    if current not in known_revisions():
        raise SchemaError(_newer_message(where, current))
    raise SchemaError(
        f"The store {where} is at schema revision {current}, this version needs {head}. "
        "Run `inventory init` to upgrade it."
    )


@dataclass
class StoreInfo:
    """What ``inventory info`` reports about a store."""

    backend: str
    location: str
    spatial_version: str
    schema_revision: str | None
    head_revision: str
    communities: int = 0
    spaces: int = 0
    batches: int = 0
    rejected: int = 0  # open: not yet resolved by a later batch
    rejects_resolved: int = 0
    retired: int = 0  # kept with their history, out of every analysis (not in ``spaces``)
    spaces_by_community_kind: list[tuple[str, str, int, float, int]] = field(default_factory=list)


def info(engine: Engine) -> StoreInfo:
    """Describe the store: backend, location (no password), schema and counts."""
    with engine.connect() as conn:
        result = StoreInfo(
            backend=backend(engine).label,
            location=render(engine.url),
            spatial_version=backend(conn).spatial_version(conn),
            schema_revision=_revision(conn),
            head_revision=head_revision(),
        )
        if result.schema_revision is None or not inspect(conn).has_table("space"):
            return result
        count = func.count()
        result.communities = conn.scalar(select(count).select_from(Community)) or 0
        live = Space.retired_at.is_(None)
        result.spaces = conn.scalar(select(count).select_from(Space).where(live)) or 0
        result.retired = conn.scalar(select(count).select_from(Space).where(~live)) or 0
        result.batches = conn.scalar(select(count).select_from(ImportBatch)) or 0
        open_ = RejectedFeature.resolved_batch_id.is_(None)
        result.rejected = conn.scalar(select(count).select_from(RejectedFeature).where(open_)) or 0
        result.rejects_resolved = (
            conn.scalar(select(count).select_from(RejectedFeature).where(~open_)) or 0
        )
        rows = conn.execute(
            select(
                Community.name,
                Space.kind,
                count,
                func.coalesce(func.sum(Space.usable_area_m2), 0.0),
                func.coalesce(func.sum(Space.parking_spaces), 0),
            )
            .join(Community, Space.community_id == Community.id)
            .where(live)
            .group_by(Community.name, Space.kind)
            .order_by(Community.name, Space.kind)
        )
        result.spaces_by_community_kind = [
            (r[0], r[1], int(r[2]), float(r[3]), int(r[4])) for r in rows
        ]
    return result


def community_floor_area(engine: Engine, name: str | None) -> float | None:
    """Return the recorded floor area (m²) of community ``name``, or None."""
    if not name:
        return None
    with engine.connect() as conn:
        return conn.scalar(select(Community.floor_area_m2).where(Community.name == name))


#: How many names an error lists before it says how many more there are.
_NAMES_SHOWN = 10


def require_community(engine: Engine, name: str | None) -> None:
    """Make sure the store holds community ``name`` (None: no filter, nothing to check).

    Raises:
        InputError: no community has that name; the message lists the names it has.

    """
    if not name:
        return
    with engine.connect() as conn:
        if conn.scalar(select(Community.id).where(Community.name == name)) is not None:
            return
        names = conn.scalars(select(Community.name).order_by(Community.name)).all()
    known = _listed(
        names, "Communities", "The store holds no communities yet: import a survey first."
    )
    raise InputError(f"`community={name!r}` is not in the store. {known}")


def _listed(names: list[str], what: str, none: str) -> str:
    """Return "<what> in the store: a, b and N more." for an error message, or ``none``."""
    if not names:
        return none
    more = f" and {len(names) - _NAMES_SHOWN:,} more" if len(names) > _NAMES_SHOWN else ""
    return f"{what} in the store: {', '.join(names[:_NAMES_SHOWN])}{more}."


def require_district(engine: Engine, district: str | None) -> None:
    """Make sure some community of the store is in ``district`` (None: nothing to check).

    Raises:
        InputError: no community is in that district; the message lists those there are.

    """
    if not district:
        return
    with engine.connect() as conn:
        found = conn.scalar(select(Community.id).where(Community.district == district).limit(1))
        if found is not None:
            return
        names = conn.scalars(
            select(Community.district)
            .where(Community.district.is_not(None))
            .distinct()
            .order_by(Community.district)
        ).all()
    known = _listed(
        names, "Districts", "No community of the store has a district: import communities with one."
    )
    raise InputError(f"`district={district!r}`: no community of the store is in it. {known}")


def require_batch(engine: Engine, batch: int | None) -> None:
    """Make sure import batch ``batch`` exists (None: no filter, nothing to check).

    Raises:
        InputError: there is no such batch; the message gives the range there is.

    """
    if batch is None:
        return
    with engine.connect() as conn:
        if conn.scalar(select(ImportBatch.id).where(ImportBatch.id == batch)) is not None:
            return
        first, last = conn.execute(select(func.min(ImportBatch.id), func.max(ImportBatch.id))).one()
    known = "no import has been made yet" if first is None else f"batches are {first} to {last}"
    raise InputError(f"`batch={batch}` is not an import batch: {known} (inventory info).")


def who(conn) -> str | None:
    """Who writes: the database's session user on a shared store, else the login name."""
    import getpass

    user = backend(conn).session_user(conn)
    if user:
        return user
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return None


def space_id(conn, ref: str, community: str | None = None) -> int:
    """Return the id of the space of survey reference ``ref`` (in ``community``).

    Raises:
        InputError: no space has that reference, or spaces of several communities do.

    """
    stmt = select(Space.id, Community.name).join(Community).where(Space.survey_ref == ref)
    if community:
        stmt = stmt.where(Community.name == community)
    rows = conn.execute(stmt).all()
    if not rows:
        where = f" in {community}" if community else ""
        raise InputError(
            f"`ref={ref!r}`: no space{where} has this survey reference; check it with "
            "`inventory spaces`."
        )
    if len(rows) > 1:
        raise InputError(
            f"`ref={ref!r}` is a survey reference in {len(rows)} communities "
            f"({', '.join(r[1] for r in rows)}); say which with `community`."
        )
    return rows[0][0]

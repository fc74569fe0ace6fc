"""Who may do what in a shared PostGIS store: group roles, grants, and scopes by area.

``inventory roles`` creates four group roles (NOLOGIN; give them to people with
``GRANT inventory_surveyor TO alice``):

- ``inventory_surveyor``: reads everything, imports and edits spaces and communities;
- ``inventory_analyst``: reads everything, writes nothing;
- ``inventory_planner``: reads everything (maps and exports read), writes nothing;
- ``inventory_admin``: every right on the inventory's tables (schema upgrades run as the
  tables' owner).

Row-level security can then limit a login to a district or a street office
(:func:`limit_role`): it sees, and as a surveyor writes, only the communities of its
area and their spaces. A role without a scope sees everything. The SpatiaLite file has
no roles: whoever can open the file can do everything, so this job needs PostGIS.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, text

from inventory.backends import backend
from inventory.backends.base import ROLE_SCOPE_TABLE
from inventory.errors import ConfigurationError, InputError
from inventory.models import Base
from inventory.store import require_schema

#: The group roles, what each is for, and the table rights it gets.
ROLES = {
    "inventory_surveyor": ("import and edit tenure", "SELECT, INSERT, UPDATE"),
    "inventory_analyst": ("read everything, write nothing", "SELECT"),
    "inventory_planner": ("read and export", "SELECT"),
    "inventory_admin": ("the schema and every right on the data", "ALL PRIVILEGES"),
}
#: Tables a surveyor may also delete from: a re-survey replaces the rights its columns gave.
SURVEYOR_DELETES = ("tenure_right", "right_source")
#: Tables whose rows a scope limits (the others hold no place).
SCOPED_TABLES = ("community", "space")
_SCOPE_TABLE = ROLE_SCOPE_TABLE


@dataclass
class RoleSummary:
    """A group role as the store now has it."""

    name: str
    purpose: str
    rights: str
    members: list[str]


def _require_postgis(engine: Engine) -> None:
    if not backend(engine).has_roles:
        raise ConfigurationError(
            "Roles need PostGIS: a SpatiaLite file has no users, so whoever can open the "
            "file can do everything. Point the inventory at a PostGIS store "
            "(INVENTORY_DATABASE_URL=postgresql+psycopg://...) to share it with roles."
        )


def create_roles(engine: Engine) -> list[RoleSummary]:
    """Create (or bring up to date) the group roles, their grants and the scope policies.

    Safe to run again. Needs a role that may create roles (CREATEROLE) and owns the
    inventory's tables.

    Raises:
        ConfigurationError: the store is not PostGIS.
        SchemaError: the store has no schema yet.

    """
    _require_postgis(engine)
    require_schema(engine)
    prep = engine.dialect.identifier_preparer
    tables = list(Base.metadata.tables)
    with engine.begin() as conn:
        for role in ROLES:
            exists = conn.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
            if not exists:
                conn.execute(text(f"CREATE ROLE {prep.quote(role)} NOLOGIN"))
        schema = prep.quote(conn.scalar(text("SELECT current_schema()")))
        for role, (_, rights) in ROLES.items():
            who = prep.quote(role)
            conn.execute(text(f"GRANT USAGE ON SCHEMA {schema} TO {who}"))
            for table in tables:
                conn.execute(text(f"GRANT {rights} ON {prep.quote(table)} TO {who}"))
            for table in ("alembic_version", "spatial_ref_sys", "geometry_columns"):
                conn.execute(text(f"GRANT SELECT ON {prep.quote(table)} TO {who}"))
            if rights != "SELECT":
                conn.execute(text(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO {who}"))
            if role == "inventory_surveyor":
                for table in SURVEYOR_DELETES:
                    conn.execute(text(f"GRANT DELETE ON {prep.quote(table)} TO {who}"))
        conn.execute(
            text(
                f"CREATE TABLE IF NOT EXISTS {_SCOPE_TABLE} ("
                "role_name text PRIMARY KEY, district text, street_office text)"
            )
        )
        conn.execute(text(f"GRANT SELECT ON {_SCOPE_TABLE} TO {', '.join(map(prep.quote, ROLES))}"))
        for table in SCOPED_TABLES:
            conn.execute(text(f"ALTER TABLE {prep.quote(table)} ENABLE ROW LEVEL SECURITY"))
            conn.execute(text(f"DROP POLICY IF EXISTS inventory_scope ON {prep.quote(table)}"))
            conn.execute(
                text(
                    f"CREATE POLICY inventory_scope ON {prep.quote(table)} USING ({_visible(table)})"
                )
            )
        from inventory.views import VIEWS  # made before the roles: readable by them too

        made = [v for v in VIEWS if conn.scalar(text("SELECT to_regclass(:v)"), {"v": v})]
        grant_read(conn, made)
    return list_roles(engine)


def grant_read(conn, relations: list[str]) -> None:
    """Let every group role that exists read ``relations`` (the inventory's views)."""
    prep = conn.dialect.identifier_preparer
    for role in ROLES:
        if conn.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}):
            for name in relations:
                conn.execute(text(f"GRANT SELECT ON {prep.quote(name)} TO {prep.quote(role)}"))


def _visible(table: str) -> str:
    """Return the condition a row of ``table`` must meet for the current user (fixed SQL)."""
    scoped = (
        f"SELECT 1 FROM {_SCOPE_TABLE} s JOIN pg_roles r ON r.rolname = s.role_name "
        "WHERE pg_has_role(current_user, r.oid, 'MEMBER')"
    )
    if table == "community":
        within = (
            f"EXISTS ({scoped} AND (s.district IS NULL OR s.district = community.district) "
            "AND (s.street_office IS NULL OR s.street_office = community.street_office))"
        )
    else:  # a space is seen where its community is (RLS filters the subquery too)
        within = "space.community_id IN (SELECT id FROM community)"
    return f"NOT EXISTS ({scoped}) OR {within}"


def limit_role(
    engine: Engine, role: str, *, district: str | None = None, street_office: str | None = None
) -> None:
    """Limit ``role`` (a login or a group) to the communities of a district or street office.

    Without ``district`` and ``street_office`` the limit is lifted.

    Raises:
        ConfigurationError: the store is not PostGIS.
        InputError: the role does not exist, or :func:`create_roles` has not run.

    """
    _require_postgis(engine)
    with engine.begin() as conn:
        if not conn.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}):
            raise InputError(
                f"`role={role!r}` is not a role of this server: create it first "
                "(CREATE ROLE … LOGIN) and grant it one of the inventory's group roles."
            )
        if not conn.scalar(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": _SCOPE_TABLE}):
            raise InputError("The store has no roles yet: run `inventory roles` first.")
        conn.execute(text(f"DELETE FROM {_SCOPE_TABLE} WHERE role_name = :r"), {"r": role})
        if district or street_office:
            conn.execute(
                text(f"INSERT INTO {_SCOPE_TABLE} VALUES (:r, :d, :s)"),
                {"r": role, "d": district, "s": street_office},
            )


def list_roles(engine: Engine) -> list[RoleSummary]:
    """Return the inventory's group roles with their members.

    Raises:
        ConfigurationError: the store is not PostGIS.

    """
    _require_postgis(engine)
    out = []
    with engine.connect() as conn:
        for role, (purpose, rights) in ROLES.items():
            members = conn.scalars(
                text(
                    "SELECT m.rolname FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid "
                    "JOIN pg_roles m ON m.oid = a.member WHERE r.rolname = :r ORDER BY 1"
                ),
                {"r": role},
            ).all()
            out.append(RoleSummary(role, purpose, rights, list(members)))
    return out

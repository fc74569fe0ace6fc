"""Resources of the renewal models: kinds for dwellings, public-housing flats, shops, land
parcels and counted facilities, and a ``units`` count on every space.

The kind code list grows (its CHECK constraint is replaced; no stored row changes) and
``space.units`` is added (flats of a dwelling, shops, charging posts, lifts, advertising
spots). Every existing space is kept as it is.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 13:05:00

"""

from collections.abc import Sequence

from alembic import op

from inventory.backends import backend
from inventory.codes import KIND

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The kinds of revision 0001, for the downgrade.
KINDS_0001 = (
    "boiler_room",
    "coal_yard",
    "bike_shed",
    "gatehouse",
    "basement",
    "idle_land",
    "parking",
    "service_room",
    "other",
)


def _kind_check(kinds) -> str:
    return "kind IN ({})".format(", ".join(f"'{k}'" for k in kinds))


def upgrade() -> None:
    conn = op.get_bind()
    # one statement both databases read: a column with its own CHECK constraint
    conn.exec_driver_sql(
        "ALTER TABLE space ADD COLUMN units INTEGER "
        "CONSTRAINT ck_space_units CHECK (units IS NULL OR units >= 0)"
    )
    backend(conn).replace_check(conn, "space", "ck_space_kind_code", _kind_check(KIND.codes))


def downgrade() -> None:
    conn = op.get_bind()
    newer = conn.exec_driver_sql(
        "SELECT count(*) FROM space WHERE kind NOT IN ({})".format(
            ", ".join(f"'{k}'" for k in KINDS_0001)
        )
    ).scalar_one()
    if newer:
        raise RuntimeError(
            f"{newer} spaces are of kinds revision 0001 does not know (dwellings, shops, "
            "land parcels, facilities); export and delete them before downgrading."
        )
    backend(conn).replace_check(conn, "space", "ck_space_kind_code", _kind_check(KINDS_0001))
    conn.exec_driver_sql("ALTER TABLE space DROP COLUMN units")  # SQLite 3.35+, PostgreSQL

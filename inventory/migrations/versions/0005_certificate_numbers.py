"""Certificate numbers indexed: a survey's certificates are found by their number.

An import links each surveyed owner to the certificate (``tenure_source``) its space
names, looking the numbers up in batches; without an index each batch read the whole
table (7 s a batch of 5,000 for 66,000 certificates, 456 s for 200,000 spaces). No row
changes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 17:40:00

"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_tenure_source_number", "tenure_source", ["number"])


def downgrade() -> None:
    op.drop_index("ix_tenure_source_number", table_name="tenure_source")

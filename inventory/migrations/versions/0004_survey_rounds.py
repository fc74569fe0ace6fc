"""Survey rounds: what each batch delivered, retired spaces and resolved rejects.

``batch_space``: the spaces each import batch delivered and what it did with each
(loaded, updated, unchanged), so two rounds can be compared; the batches before this
revision get the spaces they last wrote.
``space.retired_at`` / ``retired_reason``: a space demolished, merged or surveyed in
error is retired — kept with its history and tenure, left out of every analysis.
``rejected_feature.resolved_batch_id`` / ``resolved_at``: a quarantined feature whose
survey reference a later batch loaded (the surveyor's fix) is resolved, so the
quarantine counts only the open ones. Every existing row is kept; none is retired or
resolved by the upgrade.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 17:10:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    conn = op.get_bind()
    op.add_column("space", sa.Column("retired_at", sa.DateTime(timezone=True)))
    op.add_column("space", sa.Column("retired_reason", sa.Text()))
    # one statement both databases read: a column with its own foreign key
    conn.exec_driver_sql(
        "ALTER TABLE rejected_feature ADD COLUMN resolved_batch_id INTEGER "
        "CONSTRAINT fk_rejected_feature_resolved_batch_id_import_batch "
        "REFERENCES import_batch (id)"
    )
    op.add_column("rejected_feature", sa.Column("resolved_at", sa.DateTime(timezone=True)))
    op.create_table(
        "batch_space",
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("space_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=10), nullable=False),
        sa.CheckConstraint(
            "action IN ('loaded', 'updated', 'unchanged')", name="ck_batch_space_action_code"
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["import_batch.id"], name="fk_batch_space_batch_id_import_batch"
        ),
        sa.ForeignKeyConstraint(
            ["space_id"],
            ["space.id"],
            name="fk_batch_space_space_id_space",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("batch_id", "space_id", name="pk_batch_space"),
    )
    op.create_index("ix_batch_space_space_id", "batch_space", ["space_id"])
    conn.exec_driver_sql(
        "INSERT INTO batch_space (batch_id, space_id, action) "
        "SELECT batch_id, id, 'loaded' FROM space WHERE batch_id IS NOT NULL"
    )


def downgrade() -> None:
    conn = op.get_bind()
    op.drop_index("ix_batch_space_space_id", table_name="batch_space")
    op.drop_table("batch_space")
    # SQLite drops no column a foreign key names: batch mode rebuilds that table there
    # (and alters it in place on PostgreSQL); space, with its geometry, is never rebuilt
    with op.batch_alter_table("rejected_feature") as batch:
        batch.drop_column("resolved_at")
        batch.drop_column("resolved_batch_id")
    for column in ("retired_reason", "retired_at"):
        conn.exec_driver_sql(f"ALTER TABLE space DROP COLUMN {column}")  # SQLite 3.35+

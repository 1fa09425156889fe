"""stored_batch: releases a poll stored and matching has not taken yet (durable hand-off)

Revision ID: p2b8d4f6a1c3
Revises: g1a7c3e9d2f4
Create Date: 2026-12-03 17:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "p2b8d4f6a1c3"
down_revision: str | None = "g1a7c3e9d2f4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stored_batch",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("feed_id", sa.Integer(), nullable=True),
        sa.Column("new_ids", sa.JSON(), nullable=False),
        sa.Column("updated_ids", sa.JSON(), nullable=False),
        sa.Column("corrected_ids", sa.JSON(), nullable=False),
        sa.Column("announce", sa.Boolean(), nullable=False),
        sa.Column("stored_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stored_batch")),
    )


def downgrade() -> None:
    op.drop_table("stored_batch")

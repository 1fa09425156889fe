"""subscription.last_digest_at: a forum topic's own digest window (/digest in that topic)

Revision ID: k2e4c6a8b0d1
Revises: p2b8d4f6a1c3
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "k2e4c6a8b0d1"
down_revision: str | None = "p2b8d4f6a1c3"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("subscription") as batch_op:
        batch_op.add_column(sa.Column("last_digest_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("subscription") as batch_op:
        batch_op.drop_column("last_digest_at")

"""outbox.reply_markup: a message's buttons (a digest's Manage) travel through the outbox

Revision ID: h1c4d7e9a2b3
Revises: w1a2c3d4e5f6
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "h1c4d7e9a2b3"
down_revision: str | None = "w1a2c3d4e5f6"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.add_column(sa.Column("reply_markup", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.drop_column("reply_markup")

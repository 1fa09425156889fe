"""send_rate: the deployment's sending rates, shared by every sender process

Revision ID: g1a7c3e9d2f4
Revises: h1c4d7e9a2b3
Create Date: 2026-12-03 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "g1a7c3e9d2f4"
down_revision: str | None = "h1c4d7e9a2b3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "send_rate",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("next_slot_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_send_rate")),
    )


def downgrade() -> None:
    op.drop_table("send_rate")

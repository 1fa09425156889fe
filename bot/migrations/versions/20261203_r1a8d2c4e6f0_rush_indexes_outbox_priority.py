"""the 08:00 rush: outbox.priority and the indexes the hot queries need

- outbox.priority (notice 0, instant 1, digest 2, broadcast 3) and the claim's index on
  (state, priority, not_before, id) instead of (state, not_before);
- chat (next_digest_at, id): the schedule tick's keyset cursor, first due first;
- match (matched_at): the digest window and the pruning of old matches.

Revision ID: r1a8d2c4e6f0
Revises: g1a7c3e9d2f4
Create Date: 2026-12-03 17:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "r1a8d2c4e6f0"
down_revision: str | None = "g1a7c3e9d2f4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# bot.models.PRIORITY at the time of this migration (a migration never imports the models)
_PRIORITY = {"notice": 0, "instant": 1, "digest": 2, "broadcast": 3}


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.add_column(
            sa.Column("priority", sa.Integer(), nullable=False, server_default="2")
        )
    outbox = sa.table("outbox", sa.column("kind", sa.String), sa.column("priority", sa.Integer))
    for kind, priority in _PRIORITY.items():
        if priority != 2:
            op.execute(outbox.update().where(outbox.c.kind == kind).values(priority=priority))
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.alter_column("priority", server_default=None)
        batch_op.drop_index("ix_outbox_state_not_before")
        batch_op.create_index(
            "ix_outbox_state_priority_not_before",
            ["state", "priority", "not_before", "id"],
            unique=False,
        )
    with op.batch_alter_table("chat") as batch_op:
        batch_op.drop_index("ix_chat_next_digest_at")
        batch_op.create_index("ix_chat_next_digest_at_id", ["next_digest_at", "id"], unique=False)
    with op.batch_alter_table("match") as batch_op:
        batch_op.create_index("ix_match_matched_at", ["matched_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("match") as batch_op:
        batch_op.drop_index("ix_match_matched_at")
    with op.batch_alter_table("chat") as batch_op:
        batch_op.drop_index("ix_chat_next_digest_at_id")
        batch_op.create_index("ix_chat_next_digest_at", ["next_digest_at"], unique=False)
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.drop_index("ix_outbox_state_priority_not_before")
        batch_op.create_index("ix_outbox_state_not_before", ["state", "not_before"], unique=False)
        batch_op.drop_column("priority")

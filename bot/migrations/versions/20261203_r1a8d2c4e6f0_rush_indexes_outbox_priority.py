"""the 08:00 rush: outbox.priority and the indexes the hot queries need

- outbox.priority (notice 0, instant 1, digest 2, broadcast 3) and the claim's index on
  (state, priority, not_before, id) instead of (state, not_before);
- chat (next_digest_at, id): the schedule tick's keyset cursor, first due first;
- match (matched_at): the digest window and the pruning of old matches.

Revision ID: r1a8d2c4e6f0
Revises: k2e4c6a8b0d1
Create Date: 2026-12-03 17:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "r1a8d2c4e6f0"
down_revision: str | None = "k2e4c6a8b0d1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# bot.models.PRIORITY at the time of this migration (a migration never imports the models)
_PRIORITY = {"notice": 0, "instant": 1, "digest": 2, "broadcast": 3}


def upgrade() -> None:
    # plain ALTER TABLE ADD COLUMN and CREATE/DROP INDEX: SQLite needs no table copy for these
    # (the server default stays: every insert sets priority; old rows get theirs below)
    op.add_column(
        "outbox", sa.Column("priority", sa.Integer(), nullable=False, server_default="2")
    )
    outbox = sa.table("outbox", sa.column("kind", sa.String), sa.column("priority", sa.Integer))
    for kind, priority in _PRIORITY.items():
        if priority != 2:
            op.execute(outbox.update().where(outbox.c.kind == kind).values(priority=priority))
    op.drop_index("ix_outbox_state_not_before", table_name="outbox")
    op.create_index(
        "ix_outbox_state_priority_not_before",
        "outbox",
        ["state", "priority", "not_before", "id"],
        unique=False,
    )
    op.drop_index("ix_chat_next_digest_at", table_name="chat")
    op.create_index("ix_chat_next_digest_at_id", "chat", ["next_digest_at", "id"], unique=False)
    op.create_index("ix_match_matched_at", "match", ["matched_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_match_matched_at", table_name="match")
    op.drop_index("ix_chat_next_digest_at_id", table_name="chat")
    op.create_index("ix_chat_next_digest_at", "chat", ["next_digest_at"], unique=False)
    op.drop_index("ix_outbox_state_priority_not_before", table_name="outbox")
    op.create_index("ix_outbox_state_not_before", "outbox", ["state", "not_before"], unique=False)
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.drop_column("priority")

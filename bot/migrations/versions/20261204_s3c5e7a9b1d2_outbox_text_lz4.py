"""outbox.text compressed with lz4 on PostgreSQL

A digest is 2-6 kB of HTML, over PostgreSQL's 2 kB TOAST threshold, so every outbox row is
compressed on insert; pglz (the default) costs about three times lz4's CPU, and the 08:00 rush
inserts one row per digest part. Only on a server built with lz4; SQLite has nothing to do.
Rows already stored keep their compression (PostgreSQL reads both).

Revision ID: s3c5e7a9b1d2
Revises: r1a8d2c4e6f0
Create Date: 2026-12-04 03:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "s3c5e7a9b1d2"
down_revision: str | None = "r1a8d2c4e6f0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# bot.models.LZ4_AVAILABLE at the time of this migration (a migration never imports models)
_LZ4_AVAILABLE = (
    "SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' "
    "AND 'lz4' = ANY(enumvals)"
)


def _set(method: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    if method == "lz4" and bind.execute(sa.text(_LZ4_AVAILABLE)).first() is None:
        return
    op.execute(f"ALTER TABLE outbox ALTER COLUMN text SET COMPRESSION {method}")


def upgrade() -> None:
    _set("lz4")


def downgrade() -> None:
    _set("default")

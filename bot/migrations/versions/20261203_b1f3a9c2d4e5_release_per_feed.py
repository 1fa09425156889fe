"""each feed owns its release rows; duplicates, fingerprints, corrections; configured feed URL

Revision ID: b1f3a9c2d4e5
Revises: c28f0ea2bf6c
Create Date: 2026-12-03 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "b1f3a9c2d4e5"
down_revision: str | None = "c28f0ea2bf6c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("feed", schema=None) as batch_op:
        batch_op.add_column(sa.Column("configured_url", sa.Text(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_feed_configured_url"), ["configured_url"], unique=False
        )
    op.execute("UPDATE feed SET configured_url = url")

    with op.batch_alter_table("release", schema=None) as batch_op:
        batch_op.add_column(sa.Column("feed_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("canonical_link", sa.Text(), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column(
                "fingerprint",
                sqlmodel.sql.sqltypes.AutoString(length=64),
                nullable=False,
                server_default="",
            )
        )
        batch_op.add_column(sa.Column("duplicate_of", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("revision", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column("corrected_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.drop_constraint("uq_release_link", type_="unique")
        batch_op.create_foreign_key(
            batch_op.f("fk_release_feed_id_feed"), "feed", ["feed_id"], ["id"], ondelete="SET NULL"
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_release_duplicate_of_release"),
            "release",
            ["duplicate_of"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_index(batch_op.f("ix_release_feed_id"), ["feed_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_release_canonical_link"), ["canonical_link"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_release_fingerprint"), ["fingerprint"], unique=False)
        batch_op.create_index(batch_op.f("ix_release_duplicate_of"), ["duplicate_of"], unique=False)
        batch_op.create_index(batch_op.f("ix_release_corrected_at"), ["corrected_at"], unique=False)
    # a release shared by several feeds before is owned by the first feed that had it
    op.execute(
        "UPDATE release SET canonical_link = link, feed_id = "
        "(SELECT MIN(feed_entry.feed_id) FROM feed_entry WHERE feed_entry.release_id = release.id)"
    )


def downgrade() -> None:
    # one row per link again: entries move to the first release with their link
    op.execute(
        "UPDATE feed_entry SET release_id = (SELECT MIN(r2.id) FROM release r1 JOIN release r2 "
        "ON r2.link = r1.link WHERE r1.id = feed_entry.release_id)"
    )
    op.execute("DELETE FROM release WHERE id NOT IN (SELECT MIN(id) FROM release GROUP BY link)")
    with op.batch_alter_table("release", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_release_corrected_at"))
        batch_op.drop_index(batch_op.f("ix_release_duplicate_of"))
        batch_op.drop_index(batch_op.f("ix_release_fingerprint"))
        batch_op.drop_index(batch_op.f("ix_release_canonical_link"))
        batch_op.drop_index(batch_op.f("ix_release_feed_id"))
        batch_op.drop_constraint(batch_op.f("fk_release_duplicate_of_release"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_release_feed_id_feed"), type_="foreignkey")
        batch_op.create_unique_constraint(batch_op.f("uq_release_link"), ["link"])
        batch_op.drop_column("corrected_at")
        batch_op.drop_column("revision")
        batch_op.drop_column("duplicate_of")
        batch_op.drop_column("fingerprint")
        batch_op.drop_column("canonical_link")
        batch_op.drop_column("feed_id")

    with op.batch_alter_table("feed", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feed_configured_url"))
        batch_op.drop_column("configured_url")

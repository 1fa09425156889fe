"""Pruning: the outbox and the matches do not grow for ever.

- outbox rows sent, failed or dropped more than OUTBOX_RETENTION_DAYS ago (queued and
  in-flight rows are never touched);
- matches made more than MATCH_RETENTION_DAYS ago, unless their release was corrected within
  that time (a correction is sent again to the chats that had the release). The retention is
  longer than the longest digest window (a weekly digest's 7 days, see bot.config), so no
  digest ever misses a match it should hold.

Releases stay (search and previews read them). Deletes go in batches, each its own short
transaction, so a big first prune never holds a lock for long; several schedulers pruning at
once only share the work.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Table, delete, or_, select, tuple_

from bot.config import Settings
from bot.db import SessionFactory
from bot.models import MessageState, metadata, utcnow

log = logging.getLogger(__name__)

PRUNE_BATCH = 5000
OUTBOX: Table = metadata.tables["outbox"]
MATCH: Table = metadata.tables["match"]
RELEASE: Table = metadata.tables["release"]
_FINISHED = (MessageState.sent.value, MessageState.failed.value, MessageState.dropped.value)


@dataclass
class PruneReport:
    outbox: int  # outbox rows deleted
    matches: int  # match rows deleted


async def prune_outbox(sessions: SessionFactory, before: datetime) -> int:
    """Deletes the finished outbox rows queued and (if sent) sent before `before`."""
    deleted = 0
    old = select(OUTBOX.c.id).where(
        OUTBOX.c.state.in_(_FINISHED),
        OUTBOX.c.created_at < before,
        or_(OUTBOX.c.sent_at.is_(None), OUTBOX.c.sent_at < before),
    )
    while True:
        async with sessions() as session:
            connection = await session.connection()
            ids = list((await connection.execute(old.limit(PRUNE_BATCH))).scalars())
            if ids:
                await connection.execute(delete(OUTBOX).where(OUTBOX.c.id.in_(ids)))
            await session.commit()
        deleted += len(ids)
        if len(ids) < PRUNE_BATCH:
            return deleted


async def prune_matches(sessions: SessionFactory, before: datetime) -> int:
    """Deletes the matches made before `before` whose release was not corrected since."""
    deleted = 0
    old = (
        select(MATCH.c.release_id, MATCH.c.topic_id)
        .join(RELEASE, RELEASE.c.id == MATCH.c.release_id)
        .where(
            MATCH.c.matched_at < before,
            or_(RELEASE.c.corrected_at.is_(None), RELEASE.c.corrected_at < before),
        )
    )
    while True:
        async with sessions() as session:
            connection = await session.connection()
            keys = [tuple(row) for row in await connection.execute(old.limit(PRUNE_BATCH))]
            if keys:
                await connection.execute(
                    delete(MATCH).where(
                        tuple_(MATCH.c.release_id, MATCH.c.topic_id).in_(keys),
                        MATCH.c.matched_at < before,
                    )
                )
            await session.commit()
        deleted += len(keys)
        if len(keys) < PRUNE_BATCH:
            return deleted


async def prune(
    sessions: SessionFactory, settings: Settings, now: datetime | None = None
) -> PruneReport:
    """Deletes what is past its retention (OUTBOX_RETENTION_DAYS, MATCH_RETENTION_DAYS)."""
    now = now or utcnow()
    report = PruneReport(
        outbox=await prune_outbox(sessions, now - timedelta(days=settings.outbox_retention_days)),
        matches=await prune_matches(sessions, now - timedelta(days=settings.match_retention_days)),
    )
    if report.outbox or report.matches:
        log.info(
            "pruned %d outbox rows and %d matches past their retention",
            report.outbox,
            report.matches,
        )
    return report

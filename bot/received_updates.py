"""Webhook updates handled once: Telegram redelivers an update whose answer it did not get, and
several `updates` processes behind a load balancer share one database."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete
from sqlmodel import col

from bot.db import SessionFactory, dialect_of, insert_ignoring_conflicts
from bot.models import ReceivedUpdate, utcnow

KEEP = timedelta(days=1)  # Telegram keeps an unanswered update for at most 24 hours
_PRUNE_EVERY = 500  # update ids; ids only grow, so this prunes now and then, in every process


async def first_delivery(sessions: SessionFactory, update_id: int) -> bool:
    """True the first time any process sees `update_id`, False for every later delivery."""
    async with sessions() as session:
        dialect = dialect_of(session)
        insert = insert_ignoring_conflicts(
            dialect,
            ReceivedUpdate.__table__,  # type: ignore[attr-defined]
            ["update_id"],
        ).values(update_id=update_id, received_at=utcnow())
        result = await session.exec(insert)
        first = bool(result.rowcount)
        if first and update_id % _PRUNE_EVERY == 0:
            await session.exec(
                delete(ReceivedUpdate).where(col(ReceivedUpdate.received_at) < utcnow() - KEEP)
            )
        await session.commit()
        return first

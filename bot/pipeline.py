"""What happens after a poll stores releases: match them once, then alert instant subscribers.

The hand-off is durable: a poll writes a `stored_batch` row in its own transaction (the
feeds package knows nothing of matching), and `process_stored` takes the batches in order,
matches and alerts, and deletes each batch only then. A failure (a database hiccup, a bug,
SIGKILL) leaves the batch for the next pass; nothing that was stored is ever undone. The
same batch done twice writes nothing twice: matches are keyed by (release, topic) and an
alert's dedup key is made from the batch's releases.

Callers (the composition roots): the poller role's tick (bot.runtime), `press-digest poll`
(bot.cli) and /addfeed, each right after polling, through `poll_all` / `poll_due` /
`add_feed` here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, update
from sqlmodel import col, select

from bot.config import Settings
from bot.db import SessionFactory, dialect_of
from bot.feeds import poller
from bot.feeds.normalise import one_line
from bot.models import StoredBatch

log = logging.getLogger(__name__)

_BATCH_LOCK = 0x70645F6D6174  # "pd_mat": one pass at a time across PostgreSQL processes
_PASS_LIMIT = 200  # batches per pass; the next tick takes the rest


async def on_releases_stored(
    sessions: SessionFactory,
    new_ids: list[int],
    updated_ids: list[int],
    *,
    announce: bool,
    corrected_ids: Sequence[int] = (),
    mini_app_url: str | None = None,
) -> None:
    """One stored batch: matches new and changed releases, queues the instant alerts.

    New and changed releases are matched against every topic (copies of a release another
    feed carried first are not: that one is shown). New ones that are news (`announce`: some
    are not history) go out at once to chats on `instant`, and so do corrections
    (`corrected_ids`) to the instant chats that had them; `mini_app_url` for their Manage
    button.
    """
    from bot.digest.service import queue_instant_alerts
    from bot.matching.service import match_releases

    ids = [*new_ids, *updated_ids]
    if not ids:
        return
    await match_releases(sessions, ids)
    if announce and new_ids:
        await queue_instant_alerts(sessions, new_ids, mini_app_url=mini_app_url)
    if corrected_ids:
        await queue_instant_alerts(
            sessions, list(corrected_ids), corrections=True, mini_app_url=mini_app_url
        )


async def process_stored(sessions: SessionFactory, *, mini_app_url: str | None = None) -> int:
    """Matches and alerts every batch the polls stored, oldest first; the batches done.

    A batch that fails stays (its attempts and error recorded) and the pass stops there:
    later batches wait, so alerts keep the order the releases came in. On PostgreSQL one
    process at a time does a pass (an advisory lock); the others return at once.
    """
    async with sessions() as lock_session:
        if dialect_of(lock_session) == "postgresql":
            got = (await lock_session.exec(select(func.pg_try_advisory_lock(_BATCH_LOCK)))).one()
            if not got:
                return 0
        try:
            return await _process(sessions, mini_app_url)
        finally:
            if dialect_of(lock_session) == "postgresql":
                await lock_session.exec(select(func.pg_advisory_unlock(_BATCH_LOCK)))
                await lock_session.commit()


async def _process(sessions: SessionFactory, mini_app_url: str | None) -> int:
    async with sessions() as session:
        query = select(StoredBatch).order_by(col(StoredBatch.id)).limit(_PASS_LIMIT)
        batches = list((await session.exec(query)).all())
    done = 0
    for batch in batches:
        try:
            await on_releases_stored(
                sessions,
                list(batch.new_ids),
                list(batch.updated_ids),
                announce=batch.announce,
                corrected_ids=list(batch.corrected_ids),
                mini_app_url=mini_app_url,
            )
        except Exception as exc:
            log.exception("matching the releases of stored batch %s failed", batch.id)
            async with sessions() as session:
                await session.exec(
                    update(StoredBatch)
                    .where(col(StoredBatch.id) == batch.id)
                    .values(
                        attempts=col(StoredBatch.attempts) + 1,
                        last_error=f"{type(exc).__name__}: {one_line(str(exc))[:300]}",
                    )
                )
                await session.commit()
            return done
        async with sessions() as session:
            await session.exec(delete(StoredBatch).where(col(StoredBatch.id) == batch.id))
            await session.commit()
        done += 1
    return done


async def poll_all(sessions: SessionFactory, settings: Settings) -> list[poller.PollReport]:
    """Every feed now (`press-digest poll`), then what they stored matched and alerted."""
    reports = await poller.poll_all_feeds(sessions, settings)
    await _process_after_poll(sessions, settings)
    return reports


async def poll_due(
    sessions: SessionFactory,
    settings: Settings,
    now: datetime | None = None,
    *,
    limit: int | None = None,
) -> list[poller.PollReport]:
    """The due feeds (the poller role's tick), then every stored batch still waiting."""
    reports = await poller.poll_due_feeds(sessions, settings, now, limit=limit)
    await _process_after_poll(sessions, settings)
    return reports


async def add_feed(
    sessions: SessionFactory, settings: Settings, url: str, *, added_by: int | None = None
) -> poller.PollReport:
    """/addfeed: stores the feed, polls it, matches what it stored."""
    report = await poller.add_feed(sessions, settings, url, added_by=added_by)
    await _process_after_poll(sessions, settings)
    return report


async def _process_after_poll(sessions: SessionFactory, settings: Settings) -> None:
    try:
        await process_stored(sessions, mini_app_url=settings.mini_app_url)
    except Exception:  # the batches stay; the next tick tries again
        log.exception("matching stored releases failed; trying again at the next poll")


__all__ = [
    "add_feed",
    "on_releases_stored",
    "poll_all",
    "poll_due",
    "process_stored",
]

"""Polling feeds: which feeds are due, one poll per feed (fetch → parse → store), health, backoff.

`poll_due_feeds` is what `run` calls on its periodic tick; `poll_all_feeds` is
`press-digest poll`. Both end in `_poll_one`, which never raises: every failure becomes a
PollReport with status "error" and a one-line reason, also stored on the Feed row.
Several worker processes can share the feeds on PostgreSQL: due feeds are claimed with
`FOR UPDATE SKIP LOCKED` and their `next_poll_at` is pushed forward as a lease.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import httpx
from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import metrics
from bot.config import Settings
from bot.db import SessionFactory, dialect_of, insert_ignoring_conflicts, lock_for_claim
from bot.feeds.errors import FeedError, FeedInputError
from bot.feeds.fetch import MAX_HINT_SECONDS, FetchResult, Validators, fetch_feed, make_client
from bot.feeds.normalise import one_line
from bot.feeds.parse import ParsedFeed, parse_feed
from bot.feeds.store import StoreOutcome, store_items
from bot.models import Feed, StoredBatch, utcnow
from bot.urls import HTTP_SCHEMES, http_url_problem

log = logging.getLogger(__name__)

BACKOFF_CAP_SECONDS = 6 * 3600
JITTER = 0.1  # up to +10%, so that feeds failing together do not retry together
MAX_URL_LENGTH = 2000

Status = Literal["ok", "not_modified", "error"]


@dataclass
class PollReport:
    """The outcome of one poll of one feed (a line of `press-digest poll`)."""

    feed_id: int
    url: str
    status: Status
    new: int
    updated: int
    error: str | None

    def as_json(self) -> dict[str, object]:
        return {
            "url": self.url,
            "status": self.status,
            "new": self.new,
            "updated": self.updated,
            "error": self.error,
        }


# Per event loop: asyncio primitives belong to the loop they were first used on.
_feed_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)
_fetch_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)


def _feed_lock(feed_id: int) -> asyncio.Lock:
    locks = _feed_locks.setdefault(asyncio.get_running_loop(), {})
    return locks.setdefault(feed_id, asyncio.Lock())


def _fetch_slot(concurrency: int) -> asyncio.Semaphore:
    slots = _fetch_slots.setdefault(asyncio.get_running_loop(), {})
    return slots.setdefault(concurrency, asyncio.Semaphore(concurrency))


def poll_interval(settings: Settings, feed: Feed) -> int:
    """Seconds from a success to the next poll: POLL_INTERVAL, lengthened by the feed's hints."""
    return max(settings.poll_interval, min(feed.min_interval or 0, MAX_HINT_SECONDS))


def backoff_seconds(settings: Settings, failures: int, retry_after: int | None = None) -> float:
    """POLL_INTERVAL × 2^failures, at most 6 h, plus a little jitter; at least Retry-After."""
    base = min(settings.poll_interval * (1 << min(failures, 20)), BACKOFF_CAP_SECONDS)
    delay = base * (1 + random.uniform(0, JITTER))
    return max(delay, float(min(retry_after or 0, MAX_HINT_SECONDS)))


def _lease_seconds(settings: Settings, feeds: int) -> float:
    """Long enough for `feeds` polls at the configured concurrency, each within its deadline."""
    rounds = math.ceil(max(feeds, 1) / settings.fetch_concurrency)
    return settings.fetch_timeout * (rounds + 1) + 60


def check_feed_url(url: str) -> str:
    """The URL trimmed; FeedInputError (a ValueError naming its reply) unless it is an http(s)
    URL."""
    url = url.strip()
    if http_url_problem(url) is not None:
        if url.split(":", 1)[0].lower() not in HTTP_SCHEMES:
            raise FeedInputError("feed_url_scheme")
        raise FeedInputError("feed_url_invalid", url=url[:100])
    if len(url) > MAX_URL_LENGTH:
        raise FeedInputError("feed_url_too_long", limit=MAX_URL_LENGTH)
    return url


async def sync_configured_feeds(sessions: SessionFactory, urls: list[str]) -> None:
    """Adds the FEEDS that are not in the database yet; never removes feeds admins added.

    A configured URL is known by the feed's URL or by the URL it was configured as: a feed
    that moved permanently is not added again under its old URL.
    """
    wanted = list(dict.fromkeys(url.strip() for url in urls if url.strip()))
    if not wanted:
        return
    async with sessions() as session:
        existing: set[str] = set()
        rows = await session.exec(
            select(Feed.url, Feed.configured_url).where(
                or_(col(Feed.url).in_(wanted), col(Feed.configured_url).in_(wanted))
            )
        )
        for url, configured in rows:
            existing.update(u for u in (url, configured) if u)
        missing = [url for url in wanted if url not in existing]
        if missing:
            dialect = dialect_of(session)
            now = utcnow()
            insert = insert_ignoring_conflicts(dialect, Feed.__table__, ["url"])  # type: ignore[attr-defined]
            await session.exec(
                insert.values(
                    [
                        {"url": url, "configured_url": url, "next_poll_at": now, "created_at": now}
                        for url in missing
                    ]
                )
            )
            await session.commit()
            log.info("added %d configured feed(s)", len(missing))


async def list_feeds(sessions: SessionFactory) -> list[Feed]:
    async with sessions() as session:
        return list((await session.exec(select(Feed).order_by(col(Feed.id)))).all())


async def remove_feed(sessions: SessionFactory, feed_id: int) -> bool:
    """Deletes the feed and its entries; the releases stay (other feeds or digests may use them)."""
    async with sessions() as session:
        feed = await session.get(Feed, feed_id)
        if feed is None:
            return False
        await session.delete(feed)
        await session.commit()
        return True


async def add_feed(
    sessions: SessionFactory, settings: Settings, url: str, added_by: int | None
) -> PollReport:
    """/addfeed: stores the feed and polls it at once (what it published before is history)."""
    url = check_feed_url(url)
    async with sessions() as session:
        existing = (
            await session.exec(
                select(Feed).where(or_(col(Feed.url) == url, col(Feed.configured_url) == url))
            )
        ).first()
        if existing is not None:
            raise FeedInputError("feed_already_listed", feed_id=existing.id)
        # leased like a claimed feed: the poll tick must not poll it while we do
        lease_until = utcnow() + timedelta(seconds=_lease_seconds(settings, 1))
        feed = Feed(url=url, configured_url=url, added_by=added_by, next_poll_at=lease_until)
        session.add(feed)
        try:
            await session.commit()
        except IntegrityError:  # another admin added it at the same moment
            raise FeedInputError("feed_already_listed") from None
        assert feed.id is not None
        feed_id = feed.id
    async with make_client(settings) as client:
        return await _poll_one(sessions, settings, client, feed_id, url)


async def poll_all_feeds(sessions: SessionFactory, settings: Settings) -> list[PollReport]:
    """Polls every feed now (`press-digest poll`); one report per feed, in feed id order."""
    now = utcnow()
    async with sessions() as session:
        feeds = list((await session.exec(select(Feed).order_by(col(Feed.id)))).all())
        if feeds:
            # a lease, so that the `run` workers leave these feeds alone meanwhile
            lease_until = now + timedelta(seconds=_lease_seconds(settings, len(feeds)))
            await session.exec(
                update(Feed)
                .where(col(Feed.id).in_([f.id for f in feeds]))
                .values(next_poll_at=lease_until)
            )
            await session.commit()
    return await _poll_many(sessions, settings, [(f.id, f.url) for f in feeds if f.id is not None])


async def poll_due_feeds(
    sessions: SessionFactory,
    settings: Settings,
    now: datetime | None = None,
    *,
    limit: int | None = None,
) -> list[PollReport]:
    """Claims the feeds whose next_poll_at is due (SKIP LOCKED) and polls them.

    The claim pushes next_poll_at forward as a lease, so other workers skip these feeds
    until the poll records the real next time. `now` decides what is due (tests).
    """
    now = now or utcnow()
    limit = limit or settings.fetch_concurrency * 4
    async with sessions() as session:
        await lock_for_claim(session)
        claimed = list(
            (
                await session.exec(
                    select(Feed)
                    .where(Feed.next_poll_at <= now)
                    .order_by(col(Feed.next_poll_at))
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            ).all()
        )
        if not claimed:
            await session.rollback()
            return []
        lease_until = now + timedelta(seconds=_lease_seconds(settings, len(claimed)))
        for feed in claimed:
            feed.next_poll_at = lease_until
            session.add(feed)
        await session.commit()
    return await _poll_many(
        sessions, settings, [(f.id, f.url) for f in claimed if f.id is not None]
    )


async def _poll_many(
    sessions: SessionFactory, settings: Settings, feeds: Sequence[tuple[int, str]]
) -> list[PollReport]:
    if not feeds:
        return []
    async with make_client(settings) as client:
        return list(
            await asyncio.gather(
                *(_poll_one(sessions, settings, client, feed_id, url) for feed_id, url in feeds)
            )
        )


async def _poll_one(
    sessions: SessionFactory, settings: Settings, client: httpx.AsyncClient, feed_id: int, url: str
) -> PollReport:
    """One poll of one feed; never raises (a failure is a report with status "error")."""
    async with _feed_lock(feed_id), _fetch_slot(settings.fetch_concurrency):
        try:
            return await _fetch_parse_store(sessions, settings, client, feed_id)
        except FeedError as exc:
            log.info("feed %s: %s", url, exc)
            return await _record_failure(sessions, settings, feed_id, url, exc)
        except Exception as exc:  # a bug or a database hiccup: reported, never raised
            log.exception("feed %s: unexpected error", url)
            internal = FeedError("internal", f"{type(exc).__name__}: {one_line(str(exc))[:200]}")
            return await _record_failure(sessions, settings, feed_id, url, internal)


async def _fetch_parse_store(
    sessions: SessionFactory, settings: Settings, client: httpx.AsyncClient, feed_id: int
) -> PollReport:
    async with sessions() as session:
        feed = await session.get(Feed, feed_id)
    if feed is None:
        raise FeedError("gone", "the feed was removed")
    started = utcnow()
    fetched = await fetch_feed(
        client,
        feed.url,
        known=Validators(feed.etag, feed.last_modified, feed.body_hash),
        deadline=settings.fetch_timeout,
        max_bytes=settings.max_feed_bytes,
    )
    parsed: ParsedFeed | None = None
    if fetched.status == "ok":
        parsed = await asyncio.to_thread(
            parse_feed,
            fetched.body,
            url=fetched.url,
            content_type=fetched.content_type,
            now=started,
        )
        fetched.body = b""  # the text is in `parsed`; let the bytes go

    async with sessions() as session:
        feed = await session.get(Feed, feed_id)
        if feed is None:
            raise FeedError("gone", "the feed was removed during the poll")
        outcome = StoreOutcome()
        if parsed is not None:
            outcome = await store_items(
                session, feed_id, parsed.items, feed_added_at=feed.created_at, now=started
            )
        await _record_success(session, settings, feed, fetched, parsed, outcome)
        if outcome.new_ids or outcome.updated_ids:
            # handed on to matching in the same transaction (bot.pipeline.process_stored)
            session.add(
                StoredBatch(
                    feed_id=feed_id,
                    new_ids=outcome.new_ids,
                    updated_ids=outcome.updated_ids,
                    corrected_ids=outcome.corrected_ids,
                    announce=bool(outcome.announced_ids),
                    stored_at=started,
                )
            )
        await session.commit()
        url = feed.url
    status: Status = "ok" if parsed is not None else "not_modified"
    log.info(
        "feed %s: %s, %d new, %d updated",
        url,
        status,
        len(outcome.new_ids),
        len(outcome.updated_ids),
    )
    metrics.RELEASES_INGESTED.inc(len(outcome.new_ids))
    return PollReport(feed_id, url, status, len(outcome.new_ids), len(outcome.updated_ids), None)


async def _record_success(
    session: AsyncSession,
    settings: Settings,
    feed: Feed,
    fetched: FetchResult,
    parsed: ParsedFeed | None,
    outcome: StoreOutcome,
) -> None:
    now = utcnow()
    feed.etag = fetched.etag
    feed.last_modified = (fetched.last_modified or "")[:64] or None
    feed.body_hash = fetched.body_hash
    hints = [h for h in (fetched.max_age, parsed.ttl_seconds if parsed else None) if h]
    if hints or parsed is not None:  # a 304 may omit Cache-Control: keep what we had
        feed.min_interval = min(max(hints), MAX_HINT_SECONDS) if hints else None
    if parsed is not None:
        feed.title = parsed.title or feed.title
        feed.language = parsed.language or feed.language
    feed.item_count += outcome.entries_added
    feed.last_polled_at = now
    feed.last_success_at = now
    feed.last_error = None
    feed.consecutive_failures = 0
    feed.next_poll_at = now + timedelta(seconds=poll_interval(settings, feed))
    if fetched.moved_to and fetched.moved_to != feed.url:
        taken = (await session.exec(select(Feed.id).where(Feed.url == fetched.moved_to))).first()
        if taken is None:
            log.info("feed %s moved permanently to %s", feed.url, fetched.moved_to)
            feed.url = fetched.moved_to
    session.add(feed)


async def _record_failure(
    sessions: SessionFactory, settings: Settings, feed_id: int, url: str, error: FeedError
) -> PollReport:
    reason = str(error)
    try:
        async with sessions() as session:
            feed = await session.get(Feed, feed_id)
            if feed is not None:
                now = utcnow()
                feed.consecutive_failures += 1
                feed.last_error = reason
                feed.last_error_at = now
                feed.last_polled_at = now
                delay = backoff_seconds(settings, feed.consecutive_failures, error.retry_after)
                feed.next_poll_at = now + timedelta(
                    seconds=max(delay, poll_interval(settings, feed))
                )
                session.add(feed)
                await session.commit()
                url = feed.url
    except Exception:  # the database itself failing: the report still says what happened
        log.exception("feed %s: could not record the failure", url)
    metrics.FEED_ERRORS.labels(metrics.feed_error_reason(reason)).inc()
    return PollReport(feed_id, url, "error", 0, 0, reason)

"""The figures behind `press-digest stats` and /stats: audience, topics, feeds and delivery."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import func
from sqlmodel import col, select

from bot.db import SessionFactory
from bot.i18n import feed_error, t_plain
from bot.models import Chat, Feed, MessageState, OutboxMessage, Release, Subscription, utcnow


@dataclass
class FeedHealth:
    id: int
    url: str
    title: str | None
    healthy: bool
    last_success_at: datetime | None
    last_error: str | None
    consecutive_failures: int
    items: int
    next_poll_at: datetime | None


@dataclass
class Stats:
    chats: int
    active_chats: int
    paused_chats: int
    subscriptions: int
    topics: int
    feeds: int
    failing_feeds: int
    releases: int
    releases_last_24h: int
    messages_queued: int
    messages_sent: int
    messages_failed: int
    messages_dropped: int
    feed_health: list[FeedHealth] = field(default_factory=list)


async def collect_stats(sessions: SessionFactory) -> Stats:
    now = utcnow()
    async with sessions() as s:

        async def count(stmt: object) -> int:
            return int((await s.exec(stmt)).one() or 0)  # type: ignore[call-overload]

        chats = await count(select(func.count()).select_from(Chat))
        active = await count(select(func.count()).select_from(Chat).where(col(Chat.active)))
        paused = await count(
            select(func.count()).select_from(Chat).where(col(Chat.active), col(Chat.paused))
        )
        subscriptions = await count(select(func.count()).select_from(Subscription))
        topics = await count(select(func.count(func.distinct(Subscription.topic_id))))
        releases = await count(select(func.count()).select_from(Release))
        recent = await count(
            select(func.count())
            .select_from(Release)
            .where(col(Release.first_seen_at) >= now.replace(microsecond=0) - _DAY)
        )
        by_state = dict(
            (
                await s.exec(
                    select(OutboxMessage.state, func.count()).group_by(OutboxMessage.state)
                )
            ).all()
        )
        feeds = list((await s.exec(select(Feed).order_by(col(Feed.id)))).all())

    health = [
        FeedHealth(
            id=f.id or 0,
            url=f.url,
            title=f.title,
            healthy=f.consecutive_failures == 0,
            last_success_at=f.last_success_at,
            last_error=f.last_error,
            consecutive_failures=f.consecutive_failures,
            items=f.item_count,
            next_poll_at=f.next_poll_at,
        )
        for f in feeds
    ]
    return Stats(
        chats=chats,
        active_chats=active,
        paused_chats=paused,
        subscriptions=subscriptions,
        topics=topics,
        feeds=len(feeds),
        failing_feeds=sum(1 for h in health if not h.healthy),
        releases=releases,
        releases_last_24h=recent,
        messages_queued=by_state.get(MessageState.queued, 0)
        + by_state.get(MessageState.sending, 0),
        messages_sent=by_state.get(MessageState.sent, 0),
        messages_failed=by_state.get(MessageState.failed, 0),
        messages_dropped=by_state.get(MessageState.dropped, 0),
        feed_health=health,
    )


def _when(moment: datetime | None, lang: str) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else t_plain(lang, "never")


def render_stats_text(stats: Stats, lang: str = "en") -> str:
    """Plain text, one figure a line, then one line per feed, in `lang` (the CLI's is English)."""
    lines = [
        t_plain(
            lang,
            "stats_chats",
            chats=stats.chats,
            active=stats.active_chats,
            paused=stats.paused_chats,
        ),
        t_plain(
            lang, "stats_subscriptions", subscriptions=stats.subscriptions, topics=stats.topics
        ),
        t_plain(lang, "stats_feeds", feeds=stats.feeds, failing=stats.failing_feeds),
        t_plain(lang, "stats_releases", releases=stats.releases, recent=stats.releases_last_24h),
        t_plain(
            lang,
            "stats_messages",
            queued=stats.messages_queued,
            sent=stats.messages_sent,
            failed=stats.messages_failed,
            dropped=stats.messages_dropped,
        ),
    ]
    for h in stats.feed_health:
        state = (
            t_plain(lang, "stats_feed_ok")
            if h.healthy
            else t_plain(
                lang,
                "stats_feed_failing",
                failures=h.consecutive_failures,
                error=feed_error(lang, h.last_error),
            )
        )
        lines.append(
            t_plain(
                lang,
                "stats_feed",
                id=h.id,
                url=h.url,
                state=state,
                success=_when(h.last_success_at, lang),
                items=h.items,
                next=_when(h.next_poll_at, lang),
            )
        )
    return "\n".join(lines)


_DAY = timedelta(days=1)


@dataclass
class Health:
    """What GET /healthz reports: the database answers, the queue depth, the poller's pulse."""

    outbox_depth: int
    last_poll_age_s: float | None  # seconds since any feed was last polled; None: never


async def collect_health(sessions: SessionFactory) -> Health:
    """Two cheap queries; raises whatever the database raises when it is unreachable."""
    async with sessions() as s:
        depth = (
            await s.exec(
                select(func.count())
                .select_from(OutboxMessage)
                .where(col(OutboxMessage.state).in_([MessageState.queued, MessageState.sending]))
            )
        ).one()
        last_poll = (await s.exec(select(func.max(Feed.last_polled_at)))).one()
    age = None
    if last_poll is not None:
        if last_poll.tzinfo is None:  # SQLite hands back naive UTC from an aggregate
            last_poll = last_poll.replace(tzinfo=UTC)
        age = round(max(0.0, (utcnow() - last_poll).total_seconds()), 1)
    return Health(outbox_depth=int(depth or 0), last_poll_age_s=age)

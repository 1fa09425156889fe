"""Topics and Match rows: match each stored release once against every active topic.

Active topics are the Topic rows with at least one Subscription. Each process keeps a
`TopicIndex` of them per database, built once at its first use and then changed in place:
topics of new subscriptions (by any process) are added at the next use, unfollowed ones
dropped by a periodic comparison (several workers each keep their own; none rebuilds).
A digest is then a join on `match`, never a re-match.

Ordering of /search and preview: newest day first (Hong Kong date); within a day, releases
whose title mentions the query come before body-only matches, then newest first.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, delete, func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.db import SessionFactory, dialect_of, insert_ignoring_conflicts, upsert_insert
from bot.matching.index import QueryMatcher, ReleaseText, TopicIndex
from bot.matching.query import ParsedQuery, QueryTree, compile_tree, query_tree
from bot.models import Match, Release, Subscription, Topic, utcnow

HONG_KONG = ZoneInfo("Asia/Hong_Kong")
BATCH = 200  # releases loaded and matched at a time
SEARCH_SCAN_LIMIT = 20_000  # /search looks at most this many of the newest releases
SAMPLE = 200  # newest releases whose words tell the index which terms are rare

CATCH_UP_WINDOW = 1_000  # newest subscription ids re-read at each use (ids may commit late)
DIFF_SECONDS = 300.0  # how often an index is compared with every followed topic

_version = 0  # bumped by invalidate_topic_index(): every index of this process diffs next time


def invalidate_topic_index() -> None:
    """Makes every index of this process compare itself with the followed topics at its next
    use (e.g. right after an unsubscribe), instead of within DIFF_SECONDS. Never a rebuild."""
    global _version
    _version += 1


@dataclass
class _CachedIndex:
    index: TopicIndex | None = None
    seen_subscription: int = 0  # highest Subscription.id read so far
    diffed_at: float = 0.0  # time.monotonic() of the last comparison with every followed topic
    version: int = 0  # _version at that comparison
    unparsable: set[int] = field(default_factory=set)  # topics whose query no longer parses
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    loop: asyncio.AbstractEventLoop | None = None


_indexes: weakref.WeakKeyDictionary[SessionFactory, _CachedIndex] = weakref.WeakKeyDictionary()


async def active_index(sessions: SessionFactory) -> TopicIndex:
    """The index of every followed topic: built once per process and database, then kept up
    to date in place.

    Each call reads the subscriptions with the newest ids (a topic followed since, by any
    process, is added: so every process sees it within one poll); every DIFF_SECONDS, or
    after invalidate_topic_index(), the followed topics are compared with the index's and
    the ones no one follows any more are removed.
    """
    loop = asyncio.get_running_loop()
    cached = _indexes.get(sessions)
    if cached is None or cached.loop is not loop:
        cached = _indexes[sessions] = _CachedIndex(loop=loop)
    async with cached.lock:
        if cached.index is None:
            await _load(sessions, cached)
        elif cached.version != _version or time.monotonic() - cached.diffed_at >= DIFF_SECONDS:
            await _diff(sessions, cached)
        else:
            await _catch_up(sessions, cached)
        assert cached.index is not None
        return cached.index


async def _newest_subscription(session: AsyncSession) -> int:
    return int((await session.exec(select(func.max(Subscription.id)))).one() or 0)


async def _topic_queries(session: AsyncSession, topic_ids: Sequence[int]) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for start in range(0, len(topic_ids), 5_000):
        chunk = topic_ids[start : start + 5_000]
        rows = await session.exec(select(Topic.id, Topic.query).where(col(Topic.id).in_(chunk)))
        found.extend((int(topic_id), query) for topic_id, query in rows if topic_id is not None)
    return found


async def _load(sessions: SessionFactory, cached: _CachedIndex) -> None:
    """The one full build of a process: every followed topic, anchors from recent releases."""
    async with sessions() as s:
        newest = await _newest_subscription(s)  # before the topics: a later one is caught up
        subscribed = select(Subscription.topic_id).distinct()
        rows = (
            await s.exec(select(Topic.id, Topic.query).where(col(Topic.id).in_(subscribed)))
        ).all()
        topics = [(int(topic_id), query) for topic_id, query in rows if topic_id is not None]
        recent = select(Release.title, Release.body).order_by(col(Release.id).desc())
        sample = [(title, body) for title, body in (await s.exec(recent.limit(SAMPLE))).all()]
    index = await asyncio.to_thread(_build_index, topics, sample)
    cached.unparsable = {topic_id for topic_id, _ in topics if topic_id not in index}
    cached.index, cached.seen_subscription = index, newest
    cached.diffed_at, cached.version = time.monotonic(), _version


def _build_index(topics: list[tuple[int, str]], sample: list[tuple[str, str]]) -> TopicIndex:
    return TopicIndex(topics, sample=[ReleaseText.of(title, body) for title, body in sample])


async def _change(
    cached: _CachedIndex, added: list[tuple[int, str]], removed: Iterable[int] = ()
) -> None:
    """Adds and removes topics in a worker thread (the index's lock may be held by a match)."""
    index = cached.index
    assert index is not None

    def change() -> None:
        for topic_id in removed:
            index.remove(topic_id)
        for topic_id, query in added:
            if not index.add(topic_id, query):
                cached.unparsable.add(topic_id)

    await asyncio.to_thread(change)


async def _catch_up(sessions: SessionFactory, cached: _CachedIndex) -> None:
    """Adds the topics of the newest subscriptions that the index does not hold yet."""
    index = cached.index
    assert index is not None
    async with sessions() as s:
        rows = (
            await s.exec(
                select(Subscription.id, Subscription.topic_id).where(
                    col(Subscription.id) > cached.seen_subscription - CATCH_UP_WINDOW
                )
            )
        ).all()
        new = sorted({t for _, t in rows if t not in index and t not in cached.unparsable})
        topics = await _topic_queries(s, new) if new else []
    cached.seen_subscription = max([cached.seen_subscription, *(int(i or 0) for i, _ in rows)])
    if topics:
        await _change(cached, topics)


async def _diff(sessions: SessionFactory, cached: _CachedIndex) -> None:
    """Compares the index with every followed topic: adds the missing, drops the unfollowed."""
    index = cached.index
    assert index is not None
    version = _version
    async with sessions() as s:
        newest = await _newest_subscription(s)
        followed = set((await s.exec(select(Subscription.topic_id).distinct())).all())
        held = index.topic_ids
        missing = sorted(followed - held - cached.unparsable)
        topics = await _topic_queries(s, missing) if missing else []
    cached.unparsable &= followed
    await _change(cached, topics, held - followed)
    cached.seen_subscription = max(cached.seen_subscription, newest)
    cached.diffed_at, cached.version = time.monotonic(), version


async def get_or_create_topic(session: AsyncSession, parsed: ParsedQuery) -> Topic:
    """The Topic row of a canonical query, created if new; safe when two chats race for it."""
    found = (await session.exec(select(Topic).where(Topic.query == parsed.canonical))).first()
    if found is not None:
        return found
    stmt = insert_ignoring_conflicts(
        dialect_of(session),
        Topic.__table__,  # type: ignore[attr-defined]
        ["query"],
    ).values(query=parsed.canonical, label=parsed.label, created_at=utcnow())
    await session.exec(stmt)
    return (await session.exec(select(Topic).where(Topic.query == parsed.canonical))).one()


async def _store(
    session: AsyncSession,
    results: Sequence[tuple[int, dict[int, bool]]],
    replace_topics: Container[int] | None,
) -> int:
    """Writes (release, topic, in_title) rows; returns how many were added or changed.

    With `replace_topics`, a release's rows for those topics that no longer match are deleted
    (rows of topics outside it, e.g. one subscribed after the index was built, are kept).
    """
    release_ids = [release_id for release_id, _ in results]
    if not release_ids:
        return 0
    existing: dict[tuple[int, int], bool] = {}
    for start in range(0, len(release_ids), 500):
        chunk = release_ids[start : start + 500]
        query = select(Match.release_id, Match.topic_id, Match.in_title).where(
            col(Match.release_id).in_(chunk)
        )
        for release_id, topic_id, in_title in (await session.exec(query)).all():
            existing[(release_id, topic_id)] = in_title
    now = utcnow()
    rows: list[dict[str, object]] = []
    for release_id, matched in results:
        for topic_id, in_title in matched.items():
            if existing.get((release_id, topic_id)) != in_title:
                rows.append(
                    {
                        "release_id": release_id,
                        "topic_id": topic_id,
                        "in_title": in_title,
                        "matched_at": now,
                    }
                )
        if replace_topics is not None:
            stale = [
                topic_id
                for (rid, topic_id) in existing
                if rid == release_id and topic_id in replace_topics and topic_id not in matched
            ]
            if stale:
                await session.exec(
                    delete(Match).where(
                        col(Match.release_id) == release_id, col(Match.topic_id).in_(stale)
                    )
                )
    if rows:
        insert = upsert_insert(dialect_of(session), Match.__table__)  # type: ignore[attr-defined]
        upsert = insert.on_conflict_do_update(
            index_elements=["release_id", "topic_id"], set_={"in_title": insert.excluded.in_title}
        )
        for start in range(0, len(rows), 1000):
            await session.exec(upsert, params=rows[start : start + 1000])
    return len(rows)


def _match_batch(
    index: TopicIndex, rows: Sequence[tuple[int, str, str]]
) -> list[tuple[int, dict[int, bool]]]:
    texts = [ReleaseText.of(title, body) for _, title, body in rows]
    return list(
        zip((release_id for release_id, _, _ in rows), index.match_many(texts), strict=True)
    )


async def match_releases(sessions: SessionFactory, release_ids: list[int]) -> int:
    """Matches stored releases against every active topic; returns Match rows added or changed.

    Idempotent: matching a release again (e.g. after an update) replaces its rows, keeping
    `matched_at` of the pairs that still match, so a digest does not repeat them.
    """
    ids = sorted(set(release_ids))
    if not ids:
        return 0
    index = await active_index(sessions)
    covered = index.covered()  # a topic added meanwhile keeps its rows (match_topic_recent's)
    written = 0
    for start in range(0, len(ids), BATCH):
        async with sessions() as s:
            # a copy of a release another feed carried first is shown as that one: not matched
            query = select(Release.id, Release.title, Release.body).where(
                col(Release.id).in_(ids[start : start + BATCH]),
                col(Release.duplicate_of).is_(None),
            )
            rows = [
                (int(rid), title, body)
                for rid, title, body in (await s.exec(query)).all()
                if rid is not None
            ]
        results = await asyncio.to_thread(_match_batch, index, rows)
        async with sessions() as s:
            written += await _store(s, results, covered)
            await s.commit()
    return written


def _check_batch(matcher: QueryMatcher, releases: Sequence[Release]) -> list[bool | None]:
    return [matcher.matches(ReleaseText.of(r.title, r.body)) for r in releases]


@dataclass(frozen=True)
class Found:
    """A release that matched a query, and whether its title mentions the query."""

    release: Release
    in_title: bool


async def _scan(
    sessions: SessionFactory,
    tree: QueryTree,
    where: Sequence[ColumnElement[bool]],
    enough: Callable[[list[Found], Release], bool] | None = None,
    max_releases: int | None = None,
) -> list[Found]:
    """Releases matching one query, scanned newest first in batches (matching in a thread)."""
    matcher = QueryMatcher(tree)
    found: list[Found] = []
    scanned = 0
    after: tuple[datetime, int] | None = None  # keyset: stable while new releases arrive
    while max_releases is None or scanned < max_releases:
        conditions = [*where, col(Release.duplicate_of).is_(None)]  # each release once
        if after is not None:
            published, release_id = after
            conditions.append(
                or_(
                    col(Release.published_at) < published,
                    and_(col(Release.published_at) == published, col(Release.id) < release_id),
                )
            )
        async with sessions() as s:
            query = (
                select(Release)
                .where(*conditions)
                .order_by(col(Release.published_at).desc(), col(Release.id).desc())
                .limit(BATCH)
            )
            batch = list((await s.exec(query)).all())
        if not batch:
            break
        scanned += len(batch)
        after = (batch[-1].published_at, batch[-1].id or 0)
        flags = await asyncio.to_thread(_check_batch, matcher, batch)
        for release, flag in zip(batch, flags, strict=True):
            if enough is not None and enough(found, release):
                return found
            if flag is not None:
                found.append(Found(release, flag))
    return found


def local_date(moment: datetime) -> str:
    return moment.astimezone(HONG_KONG).date().isoformat()


def rank(found: list[Found]) -> list[Found]:
    """Newest Hong Kong day first; within a day title mentions first; then newest first."""
    by_time = sorted(found, key=lambda f: (f.release.published_at, f.release.id or 0), reverse=True)
    return sorted(
        by_time, key=lambda f: (local_date(f.release.published_at), f.in_title), reverse=True
    )


async def match_topic_recent(
    sessions: SessionFactory, topic_id: int, days: int = 30
) -> list[Release]:
    """Matches a (new) topic against the releases of the last `days` days, stores the Match
    rows and returns the matching releases newest first (the /subscribe reply shows one).

    Call it after the subscription is committed: a release stored meanwhile is then matched
    either here or by `match_releases`, whose index sees the new subscription.
    """
    async with sessions() as s:
        topic = await s.get(Topic, topic_id)
    if topic is None:
        return []
    since = utcnow() - timedelta(days=days)
    found = await _scan(sessions, compile_tree(topic.query), [col(Release.published_at) >= since])
    async with sessions() as s:
        results = [
            (f.release.id, {topic_id: f.in_title}) for f in found if f.release.id is not None
        ]
        await _store(s, results, replace_topics=None)
        await s.commit()
    return [f.release for f in found]


async def search_releases(sessions: SessionFactory, text: str, limit: int = 10) -> list[Release]:
    """/search: the newest stored releases matching QUERY (title mentions first within a day).

    Raises QueryError for a malformed query.
    """
    found = await search(sessions, query_tree(text), limit)
    return [f.release for f in found]


async def search(sessions: SessionFactory, tree: QueryTree, limit: int) -> list[Found]:
    def enough(found: list[Found], release: Release) -> bool:
        # the day of the limit-th match is complete once an older day starts
        return len(found) >= limit and local_date(release.published_at) < local_date(
            found[limit - 1].release.published_at
        )

    if limit <= 0:
        return []
    found = await _scan(sessions, tree, [], enough=enough, max_releases=SEARCH_SCAN_LIMIT)
    return rank(found)[:limit]


async def recent_matches(
    sessions: SessionFactory, tree: QueryTree, since: datetime, until: datetime
) -> list[Found]:
    """Every release published in [since, until] that matches, ranked (for preview)."""
    where = [col(Release.published_at) >= since, col(Release.published_at) <= until]
    return rank(await _scan(sessions, tree, where))


async def any_release_stored(sessions: SessionFactory) -> bool:
    """False on a database that has never been polled (preview then says to run `poll`)."""
    async with sessions() as session:
        return (await session.exec(select(Release.id).limit(1))).first() is not None

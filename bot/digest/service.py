"""Queueing digests and instant alerts into the outbox: the schedule tick, /digest, instant.

A digest holds the releases (announce=True) first seen after the chat's last digest, or for a
subscription newer than that, after the subscription was made (news from now on, no backlog),
that matched a topic the chat follows. Subscriptions in forum thread T get their own digest in
thread T. Due chats are claimed with FOR UPDATE SKIP LOCKED and their schedule advances in the
same transaction as the enqueue; the outbox dedup key (chat, thread, period start) lets only
one of two racing workers, a retry, or /digest against the tick, queue a period.

Best topic for a release that several of a chat's topics matched: a topic whose match is in the
title, then the most specific (the longest canonical query), then the first by label.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import logging
from bisect import bisect_right
from collections import OrderedDict, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Integer,
    Table,
    and_,
    bindparam,
    func,
    true,
    tuple_,
    union_all,
)
from sqlalchemy import select as sa_select
from sqlalchemy import update as sa_update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.db import SessionFactory, chunks, dialect_of, lock_for_claim, one_of, pg_array, utc_read
from bot.digest.compose import (
    MAX_ITEMS_PER_TOPIC,
    DigestItem,
    DigestSection,
    compose_digest,
    compose_instant,
    manage_markup,
)
from bot.digest.schedule import as_utc, chat_zone, next_digest_at, period_start, reschedule
from bot.models import (
    Chat,
    Frequency,
    Match,
    MessageKind,
    OutboxMessage,
    Release,
    Subscription,
    Topic,
    metadata,
    utcnow,
)

__all__ = [
    "DigestOutcome",
    "queue_digest_now",
    "queue_due_digests",
    "queue_instant_alerts",
    "reschedule",
]

log = logging.getLogger(__name__)
ItemT = TypeVar("ItemT", int, str)

CLAIM_BATCH = 1000  # chats claimed per transaction by the tick
TICK_LANES = 2  # tick transactions in flight at once on PostgreSQL (see _Tick.run)
COMPOSED_CACHE = 4096  # distinct digests a tick keeps composed (same topics, window, language)
CHAT: Table = metadata.tables["chat"]
# A scheduled digest covers matches up to this long before the tick. Matching stamps
# matched_at before its transaction commits (on SQLite it may wait up to 30 s for the write
# lock); a window ending at the tick could close over a match not yet visible, and the next
# window would start after it: that release would never be sent. /digest and --now are
# asked for by a person and end at now.
MATCH_SETTLE = timedelta(seconds=60)
_SCHEDULED = (Frequency.daily.value, Frequency.weekly.value)


@dataclass
class DigestOutcome:
    parts_queued: int
    releases: int
    since: datetime | None  # start of the period covered; None if the chat follows nothing


@dataclass
class _MatchedRelease:
    item: DigestItem
    topic_id: int
    first_seen_at: datetime
    # when the release became a match of the topic: the digest window is on this, so a
    # release stored before a digest but matched after it is in the next one, not lost
    matched_at: datetime
    corrected_at: datetime | None = None  # the publisher's last correction of the release
    revision: int = 0


@dataclass(slots=True)
class _Followed:
    """One subscription with its topic: what a thread of a chat follows, and since when."""

    topic_id: int
    label: str
    canonical: str
    query_text: str
    since: datetime  # matches made after this are news to the subscriber
    subscribed_at: datetime  # releases first seen before the subscription are backlog
    thread_digest_at: datetime | None = None  # its thread's last digest of its own


@dataclass
class _Digest:
    sections: list[DigestSection] = field(default_factory=list)
    total: int = 0
    newest_seen: datetime | None = None  # latest matched_at among its releases


@dataclass(slots=True)
class _ChatRow:
    """What queueing reads and writes of a chat: plain data, not an ORM Chat (100,000 of those
    cost seconds to build). bot.digest.schedule reads it like a Chat."""

    id: int
    language: str
    timezone: str
    digest_time: time
    digest_weekday: int
    frequency: str
    next_digest_at: datetime | None
    last_digest_at: datetime | None
    type: str  # private, group, supergroup: the Manage button opens the Mini App in private

    @classmethod
    def of(cls, chat: Chat) -> _ChatRow:
        assert chat.id is not None
        return cls(chat.id, *(getattr(chat, name) for name in _CHAT_FIELDS[1:]))


_CHAT_FIELDS = (
    "id",
    "language",
    "timezone",
    "digest_time",
    "digest_weekday",
    "frequency",
    "next_digest_at",
    "last_digest_at",
    "type",
)
_CHAT_COLUMNS = tuple(
    utc_read(CHAT.c[name]) if name in ("next_digest_at", "last_digest_at") else CHAT.c[name]
    for name in _CHAT_FIELDS
)


async def _load_chats(session: AsyncSession, stmt: Any) -> list[_ChatRow]:
    from bot.delivery.outbox import fetch_rows

    return [_ChatRow(*row) for row in await fetch_rows(session, stmt)]


async def _save_chats(
    session: AsyncSession,
    chats: Sequence[_ChatRow],
    fields: tuple[str, ...] = ("next_digest_at", "last_digest_at"),
) -> None:
    """Writes these `fields` of the chats, in one statement per 5,000 chats.

    PostgreSQL: one UPDATE … FROM unnest(arrays); SQLite: one executemany.
    """
    if not chats:
        return
    connection = await session.connection()
    if dialect_of(session) == "postgresql":
        for start in range(0, len(chats), 5000):
            chunk = chats[start : start + 5000]
            arrays = [pg_array([c.id for c in chunk], Integer)]
            for name in fields:
                arrays.append(pg_array([getattr(c, name) for c in chunk], CHAT.c[name].type))
            source = func.unnest(*arrays).table_valued("id", *fields).render_derived()
            await connection.execute(
                sa_update(CHAT)
                .where(CHAT.c.id == source.c.id)
                .values({name: source.c[name] for name in fields})
            )
        return
    await connection.execute(
        sa_update(CHAT)
        .where(CHAT.c.id == bindparam("b_id"))
        .values({name: bindparam(f"b_{name}") for name in fields}),
        [{"b_id": c.id, **{f"b_{name}": getattr(c, name) for name in fields}} for c in chats],
    )


def thread_window(chat: _ChatRow | Chat, thread_digest_at: datetime | None) -> datetime | None:
    """When a (chat, thread) last had its digest: the chat's last digest, or the thread's own
    (a /digest in that forum topic alone), whichever came later; None if it never had one.

    News for the thread begins there (never before a subscription was made), and the outbox
    dedup key of its next digest is built on it, so a topic-only /digest moves that topic's
    window and no other's.
    """
    chat_last = chat.last_digest_at
    if thread_digest_at is None:
        return None if chat_last is None else as_utc(chat_last)
    if chat_last is None:
        return as_utc(thread_digest_at)
    return max(as_utc(chat_last), as_utc(thread_digest_at))


def _window_start(subscribed_at: datetime, last_digest: datetime | None) -> datetime:
    """News to a subscription begins at its thread's last digest (`thread_window`), never
    before the subscription was made."""
    return subscribed_at if last_digest is None else max(last_digest, subscribed_at)


async def _mark_thread_sent(
    session: AsyncSession, chat_id: int, thread_id: int, end: datetime
) -> None:
    """A digest of this thread alone went out: its window moves on to `end`."""
    await session.exec(
        sa_update(Subscription)
        .where(col(Subscription.chat_id) == chat_id, col(Subscription.thread_id) == thread_id)
        .values(last_digest_at=end)
    )


async def _followed_by_thread(
    session: AsyncSession,
    chats: Sequence[_ChatRow],
    *,
    after_last_digest: bool = True,
    topics: dict[int, tuple[str, str]] | None = None,
) -> dict[int, dict[int, list[_Followed]]]:
    """chat id -> thread id -> what that thread follows, and since when it is news.

    `topics` (topic id -> label, canonical query) is what is known of the topics already; a
    tick shares it between batches and reads only the topics it has not met. Not a join:
    with 50,000 topics (a million chats' free-text queries) PostgreSQL hashed the whole
    topic table for every batch, 13 ms of a 15.5 ms query.
    """
    from bot.delivery.outbox import fetch_rows

    by_id = {chat.id: chat for chat in chats}
    dialect = dialect_of(session)
    known = topics if topics is not None else {}
    result: dict[int, dict[int, list[_Followed]]] = {}
    chat_last: dict[int, datetime | None] = {}  # thread_window(chat, None), once a chat
    for ids in chunks(list(by_id)):
        rows = await fetch_rows(
            session,
            sa_select(
                col(Subscription.chat_id),
                col(Subscription.thread_id),
                col(Subscription.query_text),
                utc_read(col(Subscription.created_at)),
                utc_read(col(Subscription.last_digest_at)),
                col(Subscription.topic_id),
            ).where(one_of(dialect, col(Subscription.chat_id), ids)),
        )
        unknown = sorted({row[5] for row in rows} - known.keys())
        for some in chunks(unknown):
            query = sa_select(col(Topic.id), col(Topic.label), col(Topic.query)).where(
                one_of(dialect, col(Topic.id), some)
            )
            known.update(
                (topic_id, (label, q)) for topic_id, label, q in await fetch_rows(session, query)
            )
        for chat_id, thread_id, query_text, created_at, own, topic_id in rows:
            created_at = as_utc(created_at)
            own = as_utc(own) if own is not None else None
            if not after_last_digest:
                last = None
            elif own is None:  # nearly every row: the chat's window, worked out once a chat
                if chat_id not in chat_last:
                    chat_last[chat_id] = thread_window(by_id[chat_id], None)
                last = chat_last[chat_id]
            else:
                last = thread_window(by_id[chat_id], own)
            since = _window_start(created_at, last)
            label, canonical = known[topic_id]
            threads = result.get(chat_id)
            if threads is None:
                threads = result[chat_id] = {}
            followed = threads.get(thread_id)
            if followed is None:
                followed = threads[thread_id] = []
            followed.append(
                _Followed(topic_id, label, canonical, query_text, since, created_at, own)
            )
    return result


_NewsFound = tuple[list[tuple[_MatchedRelease, str]], int, datetime | None]


class _MatchWindow:
    """The matches of a tick's window (up to `until`), read once per topic for every batch.

    A topic's matches are kept from the earliest start any chat asked for, in matched_at
    order, so that `news` finds a subscription's few news by bisection, not by reading a
    topic's whole history for every chat.
    """

    def __init__(self, until: datetime) -> None:
        self.until = until
        self.matches: dict[int, list[_MatchedRelease]] = {}
        self._after: dict[int, datetime] = {}
        self._times: dict[int, list[datetime]] = {}
        self._corrected: dict[int, list[_MatchedRelease]] = {}
        self._news: dict[int, dict[object, _NewsFound]] = {}  # topic id -> window start -> news
        self._tokens: dict[tuple[tuple[int, str], ...], int] = {}
        self._loading = asyncio.Lock()  # the tick's lanes share the window: one reads at a time
        self._arranged: dict[tuple[int, int], _Arranged] = {}
        self.topics: dict[int, tuple[str, str]] = {}  # see _followed_by_thread
        self._items: dict[tuple[int, bool, int], DigestItem] = {}  # see _matches_by_topic

    async def load(self, session: AsyncSession, since_by_topic: dict[int, datetime]) -> None:
        """Reads the matches of the topics not read yet from early enough."""
        async with self._loading:
            await self._load(session, since_by_topic)

    async def _load(self, session: AsyncSession, since_by_topic: dict[int, datetime]) -> None:
        missing = {
            topic_id: since
            for topic_id, since in since_by_topic.items()
            if topic_id not in self._after or self._after[topic_id] > since
        }
        if not missing:
            return
        for topic_id in missing:
            self._news.pop(topic_id, None)  # read again from further back: worked out again
        after = min(missing.values())
        found = await _matches_by_topic(
            session, sorted(missing), seen_after=after, seen_until=self.until, items=self._items
        )
        for topic_id in missing:
            matches = sorted(found.get(topic_id, ()), key=lambda m: m.matched_at)
            self.matches[topic_id] = matches
            self._times[topic_id] = [m.matched_at for m in matches]
            self._corrected[topic_id] = [m for m in matches if m.corrected_at is not None]
            self._after[topic_id] = after

    def news(self, topic: _Followed) -> tuple[list[tuple[_MatchedRelease, str]], int]:
        """The matches of `topic` that are news to its subscriber, with `_news_to`'s answer,
        and a number naming that list (equal lists, equal numbers: a composed digest's key).

        Worked out once per (topic, window start): a subscription older than every release
        in it (nearly all) gets the shared answer.
        """
        # with no corrected release among its matches, the answer depends on where the window
        # starts among them, not on the moment: first digests since 200 different days of
        # subscription all start before the first match, and share one answer
        start: object = topic.since
        if not self._corrected.get(topic.topic_id):
            start = bisect_right(self._times.get(topic.topic_id, []), topic.since)
        of_topic = self._news.setdefault(topic.topic_id, {})
        shared = of_topic.get(start)
        if shared is None:
            shared = of_topic[start] = self._news_for(replace(topic, subscribed_at=_EPOCH))
        found, token, oldest = shared
        if oldest is None or topic.subscribed_at < oldest:
            return found, token
        return self._news_for(topic)[:2]  # subscribed after some release was first seen

    def arranged(
        self, topic_id: int, token: int, pairs: list[tuple[_MatchedRelease, str]]
    ) -> _Arranged:
        """`pairs` (the news `token` names, of `topic_id`) arranged for `_assemble_digest`."""
        key = (topic_id, token)
        found = self._arranged.get(key)
        if found is None:
            found = self._arranged[key] = _Arranged.of(pairs)
        return found

    def _news_for(
        self, topic: _Followed
    ) -> tuple[list[tuple[_MatchedRelease, str]], int, datetime | None]:
        matches = self.matches.get(topic.topic_id, [])
        first = bisect_right(self._times.get(topic.topic_id, []), topic.since)
        candidates = matches[first:] + [
            m for m in self._corrected.get(topic.topic_id, ()) if m.matched_at <= topic.since
        ]
        found = []
        for matched in candidates:
            news = _news_to(topic, matched, self.until, False)
            if news is not None:
                found.append((matched, news))
        ids = tuple((m.item.release_id, news) for m, news in found)
        token = self._tokens.setdefault(ids, len(self._tokens))
        oldest = min((m.first_seen_at for m, _ in found), default=None)
        return found, token, oldest


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


ComposedKey = tuple[object, ...]


class _Composed:
    """Digests already composed this tick, at most COMPOSED_CACHE (least recently used go).

    Same language, local date (the title's), topics and news: same text, composed once for
    every chat it goes to (in the rush benchmark about one chat in three composes its own).
    """

    def __init__(self, size: int = COMPOSED_CACHE) -> None:
        self.size = size
        self._items: OrderedDict[ComposedKey, tuple[list[str], _Digest]] = OrderedDict()

    def get(self, key: ComposedKey) -> tuple[list[str], _Digest] | None:
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
        return found

    def put(self, key: ComposedKey, value: tuple[list[str], _Digest]) -> None:
        self._items[key] = value
        if len(self._items) > self.size:
            self._items.popitem(last=False)


def matches_query(
    topic_ids: Sequence[int],
    seen_after: datetime | None = None,
    seen_until: datetime | None = None,
    release_ids: Sequence[int] | None = None,
) -> Any:
    """The match-window query: the announced releases matched to these topics in
    (seen_after, seen_until] or corrected in it, or those of `release_ids`."""
    # the columns a digest shows, not the release's body (kilobytes of text each)
    query = (
        sa_select(
            col(Match.topic_id),
            col(Match.in_title),
            utc_read(col(Match.matched_at)),
            col(Release.id),
            col(Release.title),
            col(Release.link),
            col(Release.summary),
            utc_read(col(Release.published_at)),
            utc_read(col(Release.first_seen_at)),
            utc_read(col(Release.corrected_at)),
            col(Release.revision),
        )
        .join(Release, col(Release.id) == col(Match.release_id))
        .where(col(Match.topic_id).in_(topic_ids), col(Release.announce).is_(True))
    )
    if release_ids is not None:
        query = query.where(col(Match.release_id).in_(release_ids))
    if seen_after is None and seen_until is None:
        return query

    def within(moment: Any) -> ColumnElement[bool]:
        return and_(
            true(),
            *(() if seen_after is None else (moment > seen_after,)),
            *(() if seen_until is None else (moment <= seen_until,)),
        )

    # a match made in the window, or a release corrected in it (see _build_digest): two
    # branches, not one OR across the two tables, which keeps PostgreSQL off both indexes
    # (ix_match_matched_at, ix_release_corrected_at) and reading every match of the topics;
    # the second branch leaves out what the first has (matched_at is never NULL)
    matched_in = within(col(Match.matched_at))
    corrected_in = and_(
        col(Release.corrected_at).is_not(None), within(col(Release.corrected_at)), ~matched_in
    )
    return union_all(query.where(matched_in), query.where(corrected_in))


async def _matches_by_topic(
    session: AsyncSession,
    topic_ids: Sequence[int],
    *,
    seen_after: datetime | None = None,
    seen_until: datetime | None = None,
    release_ids: Sequence[int] | None = None,
    items: dict[tuple[int, bool, int], DigestItem] | None = None,
) -> dict[int, list[_MatchedRelease]]:
    """Announced releases matched to these topics, by topic, in a matched-at window or by id.

    `items` holds the DigestItem of each (release, in title, revision) met so far: one object for
    every topic that matched the release, not a copy of its title, link and summary per
    match (in the rush benchmark at a million chats, 49,000 topics' matches of 9,000
    releases took 159 MB as copies, 65 MB shared).
    """
    from bot.delivery.outbox import fetch_rows

    result: dict[int, list[_MatchedRelease]] = defaultdict(list)
    shared = items if items is not None else {}
    id_chunks = list(chunks(release_ids)) if release_ids is not None else [None]
    for topics in chunks(topic_ids):
        for releases in id_chunks:
            query = matches_query(topics, seen_after, seen_until, releases)
            for row in await fetch_rows(session, query):
                topic_id, in_title, matched_at, release_id, title, link, summary = row[:7]
                published_at, first_seen_at, corrected_at, revision = row[7:]
                assert release_id is not None
                item = shared.get((release_id, in_title, revision))
                if item is None:  # a correction is a new revision, read as it is now
                    item = shared[release_id, in_title, revision] = DigestItem(
                        release_id=release_id,
                        title=title,
                        link=link,
                        summary=summary,
                        published_at=as_utc(published_at),
                        in_title=in_title,
                    )
                result[topic_id].append(
                    _MatchedRelease(
                        item,
                        topic_id,
                        as_utc(first_seen_at),
                        as_utc(matched_at),
                        as_utc(corrected_at) if corrected_at is not None else None,
                        int(revision or 0),
                    )
                )
    return result


def _news_to(
    topic: _Followed, matched: _MatchedRelease, until: datetime | None, corrections_only: bool
) -> str | None:
    """ "new" if the match is news to this subscription, "corrected" if the subscriber had the
    release (matched before its window) and the publisher corrected it in the window, else None.

    With `corrections_only` (an instant alert about corrections: no window), the subscriber had
    the release if it matched before the correction.
    """
    if matched.first_seen_at <= topic.subscribed_at:
        return None  # backlog: from before the subscription, never sent
    if corrections_only:
        fixed = matched.corrected_at
        return "corrected" if fixed is not None and matched.matched_at < fixed else None
    if matched.matched_at > topic.since:
        return "new"
    fixed = matched.corrected_at
    if fixed is not None and fixed > topic.since and (until is None or fixed <= until):
        return "corrected"
    return None


News = dict[int, list[tuple[_MatchedRelease, str]]]  # topic id -> its news, "new"/"corrected"


def _news_of(
    followed: list[_Followed],
    matches: dict[int, list[_MatchedRelease]],
    until: datetime | None,
    corrections_only: bool,
) -> News:
    news: News = {}
    for topic in followed:
        found = []
        for matched in matches.get(topic.topic_id, ()):
            kind = _news_to(topic, matched, until, corrections_only)
            if kind is not None:
                found.append((matched, kind))
        news[topic.topic_id] = found
    return news


def _build_digest(
    followed: list[_Followed],
    matches: dict[int, list[_MatchedRelease]],
    *,
    until: datetime | None = None,
    corrections_only: bool = False,
) -> _Digest:
    """Each release once, under its best topic; sections by label, releases newest first.

    A release the chat had already received and that was corrected since comes again,
    marked (`until`: the window's end for corrections). With `corrections_only` (instant
    alerts about corrections) only those. The tick builds the same from lists arranged once
    (`_assemble_digest`); a property test holds the two to one answer.
    """
    news = _news_of(followed, matches, until, corrections_only)
    # topics from most to least specific (longest canonical query), then by label
    by_specificity = sorted(
        followed, key=lambda f: (-len(f.canonical), f.label.casefold(), f.topic_id)
    )
    best: dict[int, tuple[tuple[bool, int], _Followed, DigestItem]] = {}
    corrected: set[int] = set()  # releases the chat had, through any of its topics
    newest_seen: datetime | None = None
    for position, topic in enumerate(by_specificity):
        for matched, kind in news.get(topic.topic_id, ()):
            item = matched.item
            if kind == "corrected":
                corrected.add(item.release_id)
            rank = (not item.in_title, position)  # a title match first
            current = best.get(item.release_id)
            if current is None or rank < current[0]:
                best[item.release_id] = (rank, topic, item)
            seen = matched.corrected_at if kind == "corrected" else matched.matched_at
            if seen is not None and (newest_seen is None or seen > newest_seen):
                newest_seen = seen
    by_topic: dict[int, tuple[_Followed, list[DigestItem]]] = {}
    for _rank, topic, item in best.values():
        if item.release_id in corrected:
            item = replace(item, corrected=True)
        by_topic.setdefault(topic.topic_id, (topic, []))[1].append(item)
    sections = []
    for topic, items in sorted(
        by_topic.values(), key=lambda entry: (entry[0].label.casefold(), entry[0].topic_id)
    ):
        shown = heapq.nlargest(
            MAX_ITEMS_PER_TOPIC, items, key=lambda item: (item.published_at, item.release_id)
        )
        sections.append(
            DigestSection(
                topic_label=topic.label,
                topic_query=topic.query_text,
                items=shown,
                more=max(len(items) - MAX_ITEMS_PER_TOPIC, 0),
            )
        )
    return _Digest(sections, len(best), newest_seen)


@dataclass(slots=True)
class _Arranged:
    """One topic's news to a window, arranged once for every digest that shows it: a rush
    composes tens of thousands of digests from the same few hundred lists."""

    ordered: list[DigestItem]  # newest first, (published_at, release_id); corrected ones marked
    ids: frozenset[int]
    corrected: frozenset[int]
    in_title: dict[int, bool]
    newest_seen: datetime | None  # the latest matched_at (corrected_at of a correction)

    @classmethod
    def of(cls, pairs: list[tuple[_MatchedRelease, str]]) -> _Arranged:
        items = []
        newest: datetime | None = None
        for matched, kind in pairs:
            corrected = kind == "corrected"
            items.append(replace(matched.item, corrected=True) if corrected else matched.item)
            seen = matched.corrected_at if corrected else matched.matched_at
            if seen is not None and (newest is None or seen > newest):
                newest = seen
        items.sort(key=lambda item: (item.published_at, item.release_id), reverse=True)
        return cls(
            items,
            frozenset(item.release_id for item in items),
            frozenset(item.release_id for item in items if item.corrected),
            {item.release_id: item.in_title for item in items},
            newest,
        )


def _assemble_digest(followed: list[_Followed], arranged: dict[int, _Arranged]) -> _Digest:
    """`_build_digest` from lists arranged beforehand: the same digest, in time that grows with
    the releases two topics share, not with all of them.

    Each release once, under its best topic (a title match, then the most specific topic);
    a release the chat had and that was corrected is marked under whichever topic shows it.
    """
    by_specificity = sorted(
        followed, key=lambda f: (-len(f.canonical), f.label.casefold(), f.topic_id)
    )
    lists = [arranged[f.topic_id] for f in by_specificity]
    shared: frozenset[int] = frozenset()
    for i, first in enumerate(lists):
        for second in lists[i + 1 :]:
            shared |= first.ids & second.ids
    owner: dict[int, int] = {}  # a release in several topics -> the one that shows it
    for release_id in shared:
        best: tuple[bool, int] | None = None
        for position, (topic, found) in enumerate(zip(by_specificity, lists, strict=True)):
            if release_id in found.ids:
                rank = (not found.in_title[release_id], position)
                if best is None or rank < best:
                    best, owner[release_id] = rank, topic.topic_id
    corrected = frozenset().union(*(found.corrected for found in lists))
    seen = [found.newest_seen for found in lists if found.newest_seen is not None]
    sections = []
    for topic in sorted(by_specificity, key=lambda f: (f.label.casefold(), f.topic_id)):
        found = arranged[topic.topic_id]
        items: Iterator[DigestItem] | list[DigestItem] = found.ordered
        count = len(found.ids)
        lost = [r for r in found.ids & shared if owner[r] != topic.topic_id]
        if lost:
            count -= len(lost)
            items = (
                i
                for i in found.ordered
                if owner.get(i.release_id, topic.topic_id) == topic.topic_id
            )
        if count == 0:
            continue
        shown = [
            replace(item, corrected=True)
            if not item.corrected and item.release_id in corrected
            else item
            for item in islice(items, MAX_ITEMS_PER_TOPIC)
        ]
        sections.append(
            DigestSection(
                topic_label=topic.label,
                topic_query=topic.query_text,
                items=shown,
                more=max(count - MAX_ITEMS_PER_TOPIC, 0),
            )
        )
    total = len(frozenset().union(*(found.ids for found in lists)))
    return _Digest(sections, total, max(seen, default=None))


@dataclass
class _Pending:
    """A composed digest or alert for one (chat, thread), waiting to go into the outbox."""

    chat: _ChatRow
    thread_id: int
    parts: list[str]
    key: str  # the period's dedup key; part i is queued as f"{key}:{i}"
    digest: _Digest
    # a scheduled digest waits in line from when it became due: first due, first sent
    not_before: datetime | None = None


async def _enqueue_pending(
    session: AsyncSession,
    pending: list[_Pending],
    *,
    kind: MessageKind,
    mini_app_url: str | None = None,
) -> list[_Pending]:
    """Queues every pending message in a few statements; returns those not queued before.

    A period another worker (or an earlier attempt) already queued is skipped whole; the
    insert itself ignores duplicate keys too, for a worker racing this one right now. The
    last part carries the Manage button (the Mini App itself with `mini_app_url`, in private
    chats).
    """
    from bot.delivery.outbox import OutboxRow, enqueue_many

    first_keys = [f"{p.key}:1" for p in pending]
    queued_before: set[str] = set()
    for keys in chunks(first_keys):
        rows = await session.exec(
            select(OutboxMessage.dedup_key).where(
                one_of(dialect_of(session), col(OutboxMessage.dedup_key), keys)
            )
        )
        queued_before.update(key for key in rows if key is not None)
    candidates = [p for p in pending if f"{p.key}:1" not in queued_before]
    rows_to_queue = []
    markups: dict[tuple[str, bool], str] = {}
    for p in candidates:
        which = (p.chat.language, p.chat.type == "private")
        markup = markups.get(which)
        if markup is None:
            markup = markups[which] = manage_markup(
                which[0], private=which[1], mini_app_url=mini_app_url
            )
        for index, text in enumerate(p.parts, start=1):
            last = index == len(p.parts)  # the Manage button ends the digest
            rows_to_queue.append(
                OutboxRow(
                    p.chat.id,
                    text,
                    kind,
                    p.thread_id,
                    dedup_key=f"{p.key}:{index}",
                    not_before=p.not_before,
                    reply_markup=markup if last else None,
                )
            )
    if not rows_to_queue:
        return []
    # what this transaction really inserted: a racing worker may have won some keys since
    inserted = set(await enqueue_many(session, rows_to_queue))
    return [p for p in candidates if f"{p.key}:1" in inserted]


async def _queue_chat_digests(
    session: AsyncSession,
    chats: Sequence[_ChatRow],
    now: datetime,
    window_end: datetime | None = None,
    thread_id: int | None = None,
    *,
    window: _MatchWindow | None = None,
    composed: _Composed | None = None,
    due_order: bool = False,
    mini_app_url: str | None = None,
) -> dict[int, DigestOutcome]:
    """Composes and queues the digest of every (chat, thread); moves last_digest_at when sent.

    The digest holds the matches made up to `window_end` (default: now), and the chat's
    next digest starts there. With `thread_id`, only that forum topic's digest is queued and
    only that topic's window moves (its subscriptions' last_digest_at; the chat's too if no
    other topic follows anything): the other topics lose nothing, that one gets nothing twice.
    The chats' last_digest_at is changed on `chats`: the caller writes it (`_save_chats`).
    A tick passes its `window` and `composed` so that every batch shares them, and
    `due_order`: each digest takes its place in the outbox's line at its chat's due time.
    """
    end = window_end or now
    window = window if window is not None else _MatchWindow(end)
    assert window.until == end
    followed = await _followed_by_thread(session, chats, topics=window.topics)
    outcomes: dict[int, DigestOutcome] = {}
    since_by_topic: dict[int, datetime] = {}
    for threads in followed.values():
        for subs in threads.values():
            for f in subs:
                known = since_by_topic.get(f.topic_id)
                if known is None or f.since < known:
                    since_by_topic[f.topic_id] = f.since
    if not since_by_topic:
        return outcomes
    await window.load(session, since_by_topic)
    pending: list[_Pending] = []
    days: dict[str, date] = {}
    for chat in chats:
        threads = followed.get(chat.id) or {}
        if not threads:
            continue
        if thread_id is not None:
            threads = {thread_id: threads[thread_id]} if thread_id in threads else {}
            if not threads:
                continue
        since = min(f.since for subs in threads.values() for f in subs)
        outcomes[chat.id] = DigestOutcome(parts_queued=0, releases=0, since=since)
        for thread in sorted(threads):
            subs = threads[thread]
            # the period begins at this thread's last digest (see thread_window)
            own = max((f.thread_digest_at for f in subs if f.thread_digest_at), default=None)
            start = period_start(chat, now, thread_window(chat, own))
            period = start.isoformat() if start is not None else "first"
            news: dict[int, _Arranged] = {}
            tokens = []
            for f in subs:
                pairs, token = window.news(f)
                if pairs:  # a topic without news adds nothing, nor changes the others' ranks
                    news[f.topic_id] = window.arranged(f.topic_id, token, pairs)
                    tokens.append((f.topic_id, f.label, f.query_text, token))
            if not news:
                continue
            subs = [f for f in subs if f.topic_id in news]
            local_day = days.get(chat.timezone)
            if local_day is None:  # the title's date: the timezone matters through it alone
                local_day = days[chat.timezone] = now.astimezone(chat_zone(chat)).date()
            # what the digest is made of: the same for every chat with the same news
            key: ComposedKey = (chat.language, local_day, *sorted(tokens))
            found = composed.get(key) if composed is not None else None
            if found is None:
                digest = _assemble_digest(subs, news)
                parts = (
                    compose_digest(
                        digest.sections,
                        language=chat.language,
                        tz=chat_zone(chat),
                        now=now,
                        total=digest.total,
                    )
                    if digest.total
                    else []
                )
                found = (parts, digest)
                if composed is not None:
                    composed.put(key, found)
            parts, digest = found
            if not parts:
                continue
            key_text = f"digest:{chat.id}:{thread}:{period}"
            due = chat.next_digest_at if due_order else None
            in_line = min(as_utc(due), now) if due is not None else None
            pending.append(_Pending(chat, thread, parts, key_text, digest, in_line))
    queued_now = await _enqueue_pending(
        session, pending, kind=MessageKind.digest, mini_app_url=mini_app_url
    )
    for queued in queued_now:
        outcome = outcomes[queued.chat.id]
        outcome.parts_queued += len(queued.parts)
        outcome.releases += queued.digest.total
        if thread_id is None or set(followed.get(queued.chat.id, {})) == {thread_id}:
            queued.chat.last_digest_at = end
        else:  # this topic alone: its window moves, the chat's other topics keep theirs
            await _mark_thread_sent(session, queued.chat.id, thread_id, end)
    return outcomes


def due_chats_condition(now: datetime) -> ColumnElement[bool]:
    """Chats whose scheduled digest is due at `now`."""
    return and_(
        CHAT.c.active.is_(True),
        CHAT.c.paused.is_(False),
        CHAT.c.frequency.in_(_SCHEDULED),
        CHAT.c.next_digest_at <= now,
    )


def claim_chats_query(
    where: ColumnElement[bool], cursor: tuple[datetime | None, int] | None, *, by_due: bool
) -> Any:
    """The tick's claim: the next CLAIM_BATCH chats `where` says after `cursor`, locked
    (SKIP LOCKED), in (next_digest_at, id) order (`by_due`: ix_chat_next_digest_at_id) or id."""
    claim = sa_select(*_CHAT_COLUMNS).where(where)
    if cursor is not None and by_due:
        after = tuple_(
            bindparam(None, cursor[0], CHAT.c.next_digest_at.type), bindparam(None, cursor[1])
        )
        claim = claim.where(tuple_(CHAT.c.next_digest_at, CHAT.c.id) > after)
    elif cursor is not None:
        claim = claim.where(CHAT.c.id > cursor[1])
    order = (CHAT.c.next_digest_at, CHAT.c.id) if by_due else (CHAT.c.id,)
    return claim.order_by(*order).limit(CLAIM_BATCH).with_for_update(of=CHAT, skip_locked=True)


class _Tick:
    """One run of the schedule tick: claims chats batch by batch, first due first."""

    def __init__(
        self, now: datetime, window_end: datetime, mini_app_url: str | None = None
    ) -> None:
        self.now = now
        self.mini_app_url = mini_app_url
        self.window_end = window_end
        self.window = _MatchWindow(window_end)
        self.composed = _Composed()
        self._next: dict[tuple[str, str, time, int], datetime | None] = {}

    def advance(self, chat: _ChatRow) -> None:
        """The next digest after NOW (not after the missed one): downtime sends one, not many."""
        if chat.next_digest_at is not None and as_utc(chat.next_digest_at) > self.now:
            return
        # the same for every chat of one timezone, time and frequency: computed once a tick
        key = (chat.frequency, chat.timezone, chat.digest_time, chat.digest_weekday)
        if key not in self._next:
            self._next[key] = next_digest_at(chat, self.now)
        chat.next_digest_at = self._next[key]

    async def run(
        self, sessions: SessionFactory, where: ColumnElement[bool], *, by_due: bool, send: bool
    ) -> int:
        """Claims the chats `where` says, CLAIM_BATCH a transaction, in (next_digest_at, id)
        order (`by_due`) or id order; queues their digests (`send`) and advances them.

        On PostgreSQL TICK_LANES transactions take turns: while one batch's outbox rows are
        written and committed (the server's work, on another core), the next batch is
        claimed and composed (this process's). Claims are made one at a time, in order, so
        the batches still go first due first; SQLite has one writer, and one lane.
        """
        lanes = TICK_LANES if send and dialect_of(sessions) == "postgresql" else 1
        claims = _Claims(where, by_due)
        async with asyncio.TaskGroup() as group:
            done = [group.create_task(self._lane(sessions, claims, send)) for _ in range(lanes)]
        return sum(task.result() for task in done)

    async def _lane(self, sessions: SessionFactory, claims: _Claims, send: bool) -> int:
        queued = 0
        while True:
            async with sessions() as session:
                chats = await claims.next(session)
                if not chats:
                    return queued
                if send:
                    outcomes = await _queue_chat_digests(
                        session,
                        chats,
                        self.now,
                        window_end=self.window_end,
                        window=self.window,
                        composed=self.composed,
                        due_order=claims.by_due,
                        mini_app_url=self.mini_app_url,
                    )
                    queued += sum(outcome.parts_queued for outcome in outcomes.values())
                for chat in chats:
                    self.advance(chat)
                await _save_chats(session, chats)
                await session.commit()


class _Claims:
    """The tick's batches of chats, claimed one after another from a shared keyset cursor."""

    def __init__(self, where: ColumnElement[bool], by_due: bool) -> None:
        self.where = where
        self.by_due = by_due
        self._cursor: tuple[datetime | None, int] | None = None
        self._turn = asyncio.Lock()
        self._exhausted = False

    async def next(self, session: AsyncSession) -> list[_ChatRow]:
        """The next batch, locked in `session`'s transaction; [] when none is left."""
        async with self._turn:
            if self._exhausted:
                return []
            await lock_for_claim(session)
            chats = await _load_chats(
                session, claim_chats_query(self.where, self._cursor, by_due=self.by_due)
            )
            if not chats:
                self._exhausted = True
                return []
            self._cursor = (chats[-1].next_digest_at, chats[-1].id)
            return chats


def _advance_schedule(chat: Chat, now: datetime) -> None:
    """The next digest after NOW (not after the missed one): downtime sends one digest, not many."""
    if chat.next_digest_at is None or as_utc(chat.next_digest_at) <= now:
        reschedule(chat, now)


async def queue_due_digests(
    sessions: SessionFactory,
    now: datetime | None = None,
    *,
    force: bool = False,
    mini_app_url: str | None = None,
) -> int:
    """Queues the due digests (with `force`: every active unpaused chat's); messages queued.
    `mini_app_url` (Settings.mini_app_url) makes the Manage button open the Mini App.

    The chats that became due first go first. Safe to run in several processes at once:
    each batch of chats is claimed with FOR UPDATE SKIP LOCKED and committed with its
    outbox rows and its new next_digest_at.
    """
    now = as_utc(now or utcnow())
    tick = _Tick(now, now if force else now - MATCH_SETTLE, mini_app_url)
    ready = and_(CHAT.c.active.is_(True), CHAT.c.paused.is_(False))
    if force:
        return await tick.run(sessions, ready, by_due=False, send=True)
    # a chat never scheduled (next_digest_at NULL) is scheduled now, not sent a digest
    never = and_(ready, CHAT.c.frequency.in_(_SCHEDULED), CHAT.c.next_digest_at.is_(None))
    await tick.run(sessions, never, by_due=False, send=False)
    return await tick.run(sessions, due_chats_condition(now), by_due=True, send=True)


async def queue_digest_now(
    sessions: SessionFactory,
    chat_id: int,
    now: datetime | None = None,
    *,
    thread_id: int | None = None,
    mini_app_url: str | None = None,
) -> DigestOutcome:
    """/digest: queues everything matched since the chat's last digest and moves last_digest_at.

    With `thread_id` (a forum topic; 0 the chat itself), only that topic's digest.
    parts_queued is 0 when there is nothing new; `since` is where "new" began.
    """
    now = as_utc(now or utcnow())
    async with sessions() as session:
        chat = (
            await session.exec(select(Chat).where(Chat.id == chat_id).with_for_update())
        ).first()
        if chat is None or not chat.active:
            return DigestOutcome(parts_queued=0, releases=0, since=None)
        row = _ChatRow.of(chat)
        outcomes = await _queue_chat_digests(
            session, [row], now, thread_id=thread_id, mini_app_url=mini_app_url
        )
        outcome = outcomes.get(chat_id)
        if outcome is None:
            return DigestOutcome(parts_queued=0, releases=0, since=None)
        if row.last_digest_at != chat.last_digest_at:
            chat.last_digest_at = row.last_digest_at
            session.add(chat)
        if chat.frequency in _SCHEDULED and not chat.paused:
            _advance_schedule(chat, now)
            session.add(chat)
        await session.commit()
        return outcome


async def queue_instant_alerts(
    sessions: SessionFactory,
    release_ids: list[int],
    *,
    corrections: bool = False,
    mini_app_url: str | None = None,
) -> int:
    """Alerts chats on `instant` about these newly stored releases: one message per (chat, thread)
    for all of them (split only if too long). Returns messages queued.

    With `corrections`, the releases were corrected: only the chats that had them are told,
    each release marked, once per revision.
    """
    ids = sorted(set(release_ids))
    if not ids:
        return 0
    queued = 0
    async with sessions() as session:
        topic_rows = await session.exec(
            select(Match.topic_id).where(col(Match.release_id).in_(ids)).distinct()
        )
        topic_ids = sorted(topic_rows.all())
        if not topic_ids:
            return 0
        chats: dict[int, _ChatRow] = {}
        for topics in chunks(topic_ids):
            followers = (
                sa_select(col(Subscription.chat_id))
                .where(col(Subscription.topic_id).in_(topics))
                .distinct()
            )
            rows = await _load_chats(
                session,
                sa_select(*_CHAT_COLUMNS).where(
                    CHAT.c.id.in_(followers),
                    CHAT.c.frequency == Frequency.instant.value,
                    CHAT.c.active.is_(True),
                    CHAT.c.paused.is_(False),
                ),
            )
            chats.update((chat.id, chat) for chat in rows)
        if not chats:
            return 0
        # an alert is about this poll's releases, whatever the chat's last digest: a poll
        # stored earlier but alerted later must not be lost behind a newer alert
        followed = await _followed_by_thread(session, list(chats.values()), after_last_digest=False)
        matches = await _matches_by_topic(session, topic_ids, release_ids=ids)
        revisions = sorted(
            {(m.item.release_id, m.revision) for found in matches.values() for m in found}
        )
        batch_of = revisions if corrections else ids
        batch = hashlib.sha256(repr(batch_of).encode()).hexdigest()[:24]
        prefix = "instant-fix" if corrections else "instant"
        pending: list[_Pending] = []
        for chat_id, threads in followed.items():
            chat = chats[chat_id]
            for thread_id in sorted(threads):
                digest = _build_digest(threads[thread_id], matches, corrections_only=corrections)
                if not digest.total:
                    continue
                parts = compose_instant(digest.sections, language=chat.language, total=digest.total)
                key = f"{prefix}:{chat_id}:{thread_id}:{batch}"
                pending.append(_Pending(chat, thread_id, parts, key, digest))
        moved: dict[int, _ChatRow] = {}
        alerts = await _enqueue_pending(
            session, pending, kind=MessageKind.instant, mini_app_url=mini_app_url
        )
        for alert in alerts:
            queued += len(alert.parts)
            seen = alert.digest.newest_seen
            last = alert.chat.last_digest_at
            if seen is not None and (last is None or seen > as_utc(last)):
                # /digest (or send-digests --now) on an instant chat starts after what was alerted
                alert.chat.last_digest_at = seen
                moved[alert.chat.id] = alert.chat
        await _save_chats(session, list(moved.values()), ("last_digest_at",))
        await session.commit()
    return queued

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

import hashlib
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import and_, or_, true
from sqlalchemy import select as sa_select
from sqlalchemy import update as sa_update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.db import SessionFactory, lock_for_claim
from bot.digest.compose import (
    MAX_ITEMS_PER_TOPIC,
    DigestItem,
    DigestSection,
    compose_digest,
    compose_instant,
    manage_markup,
)
from bot.digest.schedule import as_utc, chat_zone, period_start, reschedule
from bot.models import (
    Chat,
    Frequency,
    Match,
    MessageKind,
    OutboxMessage,
    Release,
    Subscription,
    Topic,
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

CLAIM_BATCH = 200  # chats claimed per transaction by the tick
# A scheduled digest covers matches up to this long before the tick. Matching stamps
# matched_at before its transaction commits (on SQLite it may wait up to 30 s for the write
# lock); a window ending at the tick could close over a match not yet visible, and the next
# window would start after it: that release would never be sent. /digest and --now are
# asked for by a person and end at now.
MATCH_SETTLE = timedelta(seconds=60)
_IN_CHUNK = 2000  # ids per IN (...) list: far below SQLite's and asyncpg's parameter limits
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


@dataclass
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


def _chunks(ids: Sequence[ItemT]) -> Iterable[Sequence[ItemT]]:
    for start in range(0, len(ids), _IN_CHUNK):
        yield ids[start : start + _IN_CHUNK]


def thread_window(chat: Chat, thread_digest_at: datetime | None) -> datetime | None:
    """When a (chat, thread) last had its digest: the chat's last digest, or the thread's own
    (a /digest in that forum topic alone), whichever came later; None if it never had one.

    News for the thread begins there (never before a subscription was made), and the outbox
    dedup key of its next digest is built on it, so a topic-only /digest moves that topic's
    window and no other's.
    """
    moments = [as_utc(m) for m in (chat.last_digest_at, thread_digest_at) if m is not None]
    return max(moments, default=None)


def _window_start(
    chat: Chat,
    subscribed_at: datetime,
    *,
    after_last_digest: bool,
    thread_digest_at: datetime | None = None,
) -> datetime:
    subscribed_at = as_utc(subscribed_at)
    last = thread_window(chat, thread_digest_at) if after_last_digest else None
    return subscribed_at if last is None else max(last, subscribed_at)


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
    session: AsyncSession, chats: Sequence[Chat], *, after_last_digest: bool = True
) -> dict[int, dict[int, list[_Followed]]]:
    """chat id -> thread id -> what that thread follows, and since when it is news."""
    by_id = {chat.id: chat for chat in chats}
    result: dict[int, dict[int, list[_Followed]]] = defaultdict(lambda: defaultdict(list))
    for ids in _chunks([chat_id for chat_id in by_id if chat_id is not None]):
        rows = await session.exec(
            select(Subscription, Topic)
            .join(Topic, col(Topic.id) == col(Subscription.topic_id))
            .where(col(Subscription.chat_id).in_(ids))
        )
        for sub, topic in rows:
            assert topic.id is not None
            chat = by_id[sub.chat_id]
            since = _window_start(
                chat,
                sub.created_at,
                after_last_digest=after_last_digest,
                thread_digest_at=sub.last_digest_at,
            )
            result[sub.chat_id][sub.thread_id].append(
                _Followed(
                    topic.id,
                    topic.label,
                    topic.query,
                    sub.query_text,
                    since,
                    as_utc(sub.created_at),
                    as_utc(sub.last_digest_at) if sub.last_digest_at is not None else None,
                )
            )
    return result


async def _matches_by_topic(
    session: AsyncSession,
    topic_ids: Sequence[int],
    *,
    seen_after: datetime | None = None,
    seen_until: datetime | None = None,
    release_ids: Sequence[int] | None = None,
) -> dict[int, list[_MatchedRelease]]:
    """Announced releases matched to these topics, by topic, in a matched-at window or by id."""
    from bot.delivery.outbox import fetch_rows

    result: dict[int, list[_MatchedRelease]] = defaultdict(list)
    id_chunks = list(_chunks(release_ids)) if release_ids is not None else [None]
    for topics in _chunks(topic_ids):
        for releases in id_chunks:
            # the columns a digest shows, not the release's body (kilobytes of text each)
            query = (
                sa_select(
                    col(Match.topic_id),
                    col(Match.in_title),
                    col(Match.matched_at),
                    col(Release.id),
                    col(Release.title),
                    col(Release.link),
                    col(Release.summary),
                    col(Release.published_at),
                    col(Release.first_seen_at),
                    col(Release.corrected_at),
                    col(Release.revision),
                )
                .join(Release, col(Release.id) == col(Match.release_id))
                .where(col(Match.topic_id).in_(topics), col(Release.announce).is_(True))
            )
            # a match made in the window, or a release corrected in it (see _build_digest)
            matched_in = and_(
                true(),
                *(() if seen_after is None else (col(Match.matched_at) > seen_after,)),
                *(() if seen_until is None else (col(Match.matched_at) <= seen_until,)),
            )
            if seen_after is not None or seen_until is not None:
                corrected_in = and_(
                    col(Release.corrected_at).is_not(None),
                    *(() if seen_after is None else (col(Release.corrected_at) > seen_after,)),
                    *(() if seen_until is None else (col(Release.corrected_at) <= seen_until,)),
                )
                query = query.where(or_(matched_in, corrected_in))
            if releases is not None:
                query = query.where(col(Match.release_id).in_(releases))
            for row in await fetch_rows(session, query):
                topic_id, in_title, matched_at, release_id, title, link, summary = row[:7]
                published_at, first_seen_at, corrected_at, revision = row[7:]
                assert release_id is not None
                item = DigestItem(
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
    alerts about corrections) only those.
    """
    # topics from most to least specific (longest canonical query), then by label
    by_specificity = sorted(
        followed, key=lambda f: (-len(f.canonical), f.label.casefold(), f.topic_id)
    )
    best: dict[int, tuple[tuple[bool, int], _Followed, DigestItem]] = {}
    corrected: set[int] = set()  # releases the chat had, through any of its topics
    newest_seen: datetime | None = None
    for position, topic in enumerate(by_specificity):
        for matched in matches.get(topic.topic_id, ()):
            news = _news_to(topic, matched, until, corrections_only)
            if news is None:
                continue
            if news == "corrected":
                corrected.add(matched.item.release_id)
            rank = (not matched.item.in_title, position)  # a title match first
            current = best.get(matched.item.release_id)
            if current is None or rank < current[0]:
                best[matched.item.release_id] = (rank, topic, matched.item)
            seen = matched.corrected_at if news == "corrected" else matched.matched_at
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
        items.sort(key=lambda item: (item.published_at, item.release_id), reverse=True)
        sections.append(
            DigestSection(
                topic_label=topic.label,
                topic_query=topic.query_text,
                items=items[:MAX_ITEMS_PER_TOPIC],
                more=max(len(items) - MAX_ITEMS_PER_TOPIC, 0),
            )
        )
    return _Digest(sections, len(best), newest_seen)


@dataclass
class _Pending:
    """A composed digest or alert for one (chat, thread), waiting to go into the outbox."""

    chat: Chat
    thread_id: int
    parts: list[str]
    key: str  # the period's dedup key; part i is queued as f"{key}:{i}"
    digest: _Digest


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
    for keys in _chunks(first_keys):
        rows = await session.exec(
            select(OutboxMessage.dedup_key).where(col(OutboxMessage.dedup_key).in_(keys))
        )
        queued_before.update(key for key in rows if key is not None)
    candidates = [p for p in pending if f"{p.key}:1" not in queued_before]
    rows_to_queue = []
    for p in candidates:
        assert p.chat.id is not None
        for index, text in enumerate(p.parts, start=1):
            last = index == len(p.parts)  # the Manage button ends the digest
            rows_to_queue.append(
                OutboxRow(
                    p.chat.id,
                    text,
                    kind,
                    p.thread_id,
                    dedup_key=f"{p.key}:{index}",
                    reply_markup=_manage(p.chat, mini_app_url) if last else None,
                )
            )
    if not rows_to_queue:
        return []
    # what this transaction really inserted: a racing worker may have won some keys since
    inserted = set(await enqueue_many(session, rows_to_queue))
    return [p for p in candidates if f"{p.key}:1" in inserted]


def _manage(chat: Chat, mini_app_url: str | None) -> str:
    return manage_markup(chat.language, private=chat.type == "private", mini_app_url=mini_app_url)


async def _queue_chat_digests(
    session: AsyncSession,
    chats: Sequence[Chat],
    now: datetime,
    window_end: datetime | None = None,
    thread_id: int | None = None,
    mini_app_url: str | None = None,
) -> dict[int, DigestOutcome]:
    """Composes and queues the digest of every (chat, thread); moves last_digest_at when sent.

    The digest holds the matches made up to `window_end` (default: now), and the chat's
    next digest starts there. With `thread_id`, only that forum topic's digest is queued and
    only that topic's window moves (its subscriptions' last_digest_at; the chat's too if no
    other topic follows anything): the other topics lose nothing, that one gets nothing twice.
    """
    end = window_end or now
    followed = await _followed_by_thread(session, chats)
    everything = [f for threads in followed.values() for subs in threads.values() for f in subs]
    outcomes: dict[int, DigestOutcome] = {}
    if not everything:
        return outcomes
    topic_ids = sorted({f.topic_id for f in everything})
    earliest = min(f.since for f in everything)
    matches = await _matches_by_topic(session, topic_ids, seen_after=earliest, seen_until=end)
    pending: list[_Pending] = []
    for chat in chats:
        assert chat.id is not None
        threads = followed.get(chat.id)
        if not threads:
            continue
        if thread_id is not None:
            threads = {thread_id: threads[thread_id]} if thread_id in threads else {}
            if not threads:
                continue
        since = min(f.since for subs in threads.values() for f in subs)
        outcomes[chat.id] = DigestOutcome(parts_queued=0, releases=0, since=since)
        for thread in sorted(threads):
            # the period begins at this thread's last digest (see thread_window)
            last = max(
                (f.thread_digest_at for f in threads[thread] if f.thread_digest_at), default=None
            )
            start = period_start(chat, now, thread_window(chat, last))
            period = start.isoformat() if start is not None else "first"
            digest = _build_digest(threads[thread], matches, until=end)
            if not digest.total:
                continue
            parts = compose_digest(
                digest.sections,
                language=chat.language,
                tz=chat_zone(chat),
                now=now,
                total=digest.total,
            )
            key = f"digest:{chat.id}:{thread}:{period}"
            pending.append(_Pending(chat, thread, parts, key, digest))
    queued_now = await _enqueue_pending(
        session, pending, kind=MessageKind.digest, mini_app_url=mini_app_url
    )
    for queued in queued_now:
        assert queued.chat.id is not None
        outcome = outcomes[queued.chat.id]
        outcome.parts_queued += len(queued.parts)
        outcome.releases += queued.digest.total
        if thread_id is None or set(followed.get(queued.chat.id, {})) == {thread_id}:
            queued.chat.last_digest_at = end
            session.add(queued.chat)
        else:  # this topic alone: its window moves, the chat's other topics keep theirs
            await _mark_thread_sent(session, queued.chat.id, thread_id, end)
    return outcomes


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

    Safe to run in several processes at once: each batch of chats is claimed with
    FOR UPDATE SKIP LOCKED and committed with its outbox rows and its new next_digest_at.
    """
    now = as_utc(now or utcnow())
    queued = 0
    cursor = 0
    while True:
        async with sessions() as session:
            claim = select(Chat).where(
                col(Chat.id) > cursor, col(Chat.active).is_(True), col(Chat.paused).is_(False)
            )
            if not force:
                claim = claim.where(
                    col(Chat.frequency).in_(_SCHEDULED),
                    or_(col(Chat.next_digest_at) <= now, col(Chat.next_digest_at).is_(None)),
                )
            claim = (
                claim.order_by(col(Chat.id)).limit(CLAIM_BATCH).with_for_update(skip_locked=True)
            )
            await lock_for_claim(session)
            chats = list((await session.exec(claim)).all())
            if not chats:
                return queued
            # a chat never scheduled (next_digest_at NULL) is scheduled now, not sent a digest
            to_send = (
                chats if force else [chat for chat in chats if chat.next_digest_at is not None]
            )
            outcomes = await _queue_chat_digests(
                session,
                to_send,
                now,
                window_end=now if force else now - MATCH_SETTLE,
                mini_app_url=mini_app_url,
            )
            queued += sum(outcome.parts_queued for outcome in outcomes.values())
            for chat in chats:
                _advance_schedule(chat, now)
                session.add(chat)
            await session.commit()
            last_id = chats[-1].id
            assert last_id is not None
            cursor = last_id


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
        outcomes = await _queue_chat_digests(
            session, [chat], now, thread_id=thread_id, mini_app_url=mini_app_url
        )
        outcome = outcomes.get(chat_id)
        if outcome is None:
            return DigestOutcome(parts_queued=0, releases=0, since=None)
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
        chats: dict[int, Chat] = {}
        for topics in _chunks(topic_ids):
            rows = await session.exec(
                select(Chat)
                .join(Subscription, col(Subscription.chat_id) == col(Chat.id))
                .where(
                    col(Subscription.topic_id).in_(topics),
                    col(Chat.frequency) == Frequency.instant.value,
                    col(Chat.active).is_(True),
                    col(Chat.paused).is_(False),
                )
                .distinct()
            )
            for chat in rows:
                assert chat.id is not None
                chats[chat.id] = chat
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
                session.add(alert.chat)
        await session.commit()
    return queued

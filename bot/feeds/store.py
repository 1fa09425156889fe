"""Storing a feed's entries: dedup per (feed, guid), one release row per feed, updates in place.

Each feed's entries own their own release rows: an entry changes only what its own feed
published. The same release carried by another feed (or by this one under a renewed guid)
is found by its fingerprint (bot.feeds.identity decides); another feed's copy is a row of
its own marked `duplicate_of` the first one, so that it is matched and shown once.

One call stores one poll's entries inside the caller's transaction, with a handful of bulk
statements whatever the number of entries: existing (feed, guid) rows and candidate
releases are looked up with IN queries, new rows go in with multi-row INSERTs (entries with
ON CONFLICT DO NOTHING), changes with one executemany.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Table, bindparam, delete, func, insert, update
from sqlalchemy import select as sa_select
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.db import chunks, dialect_of, insert_ignoring_conflicts, lock_for_claim
from bot.feeds.identity import (
    ReleaseKey,
    canonical_link,
    fingerprint,
    is_correction,
    is_history,
    is_same_release,
)
from bot.feeds.normalise import NormalisedItem
from bot.models import FeedEntry, Release

RELEASE: Table = Release.__table__  # type: ignore[attr-defined]
FEED_ENTRY: Table = FeedEntry.__table__  # type: ignore[attr-defined]
# Both SQLite (32766) and asyncpg (32767) cap bound parameters per statement.

T = TypeVar("T")


@dataclass
class StoreOutcome:
    new_ids: list[int] = field(default_factory=list)  # releases stored for the first time
    updated_ids: list[int] = field(default_factory=list)  # releases whose content changed
    entries_added: int = 0  # new (feed, guid) rows, new releases or not
    # new releases that are news: not history, not a copy of a release shown already
    announced_ids: list[int] = field(default_factory=list)
    corrected_ids: list[int] = field(default_factory=list)  # updates that are corrections


def _unique_by_guid(items: Iterable[NormalisedItem]) -> list[NormalisedItem]:
    """The first of each guid: a feed that repeats an entry stores it once."""
    seen: set[str] = set()
    unique = []
    for item in items:
        if item.guid not in seen:
            seen.add(item.guid)
            unique.append(item)
    return unique


def _identify(item: NormalisedItem) -> None:
    """Fills the item's canonical link and fingerprint when the parser did not."""
    if not item.canonical_link:
        item.canonical_link = canonical_link(item.link)
    if not item.fingerprint:
        item.fingerprint = fingerprint(item.title, item.body, item.canonical_link)


def _key(feed_id: int, item: NormalisedItem) -> ReleaseKey:
    return ReleaseKey(feed_id, item.canonical_link, item.fingerprint, item.published_at)


@dataclass(frozen=True)
class _Candidate:
    """A stored release that a new entry may be the same as."""

    release_id: int
    canonical_id: int  # the row shown for it: itself, or the one it duplicates
    key: ReleaseKey


async def _candidates(
    session: AsyncSession, fingerprints: Iterable[str]
) -> dict[str, list[_Candidate]]:
    """Stored releases by fingerprint, oldest first (the first is the canonical one)."""
    found: dict[str, list[_Candidate]] = {}
    connection = await session.connection()  # a Core SELECT of six columns
    for chunk in chunks(sorted(set(fingerprints))):
        rows = await connection.execute(
            sa_select(
                RELEASE.c.id,
                RELEASE.c.duplicate_of,
                RELEASE.c.feed_id,
                RELEASE.c.canonical_link,
                RELEASE.c.fingerprint,
                RELEASE.c.published_at,
            )
            .where(RELEASE.c.fingerprint.in_(chunk))
            .order_by(RELEASE.c.id)
        )
        for release_id, duplicate_of, feed_id, link, print_, published_at in rows:
            key = ReleaseKey(feed_id, link, print_, published_at)
            found.setdefault(print_, []).append(
                _Candidate(release_id, duplicate_of or release_id, key)
            )
    return found


# Any constant: the key of the one advisory lock that new releases are stored under.
_IDENTITY_LOCK = 0x70645F72656C  # "pd_rel"


async def _lock_release_identities(session: AsyncSession) -> None:
    """Lets one transaction at a time decide which new releases are copies, until it commits:
    two feeds carrying one release, polled at the same moment, would each see no first copy."""
    if dialect_of(session) == "postgresql":
        await session.exec(select(func.pg_advisory_xact_lock(_IDENTITY_LOCK)))
    else:
        await lock_for_claim(session)  # SQLite: its write lock, taken now (BEGIN IMMEDIATE)


async def _feed_has_entries(session: AsyncSession, feed_id: int) -> bool:
    query = select(FEED_ENTRY.c.id).where(FEED_ENTRY.c.feed_id == feed_id).limit(1)
    return (await session.exec(query)).first() is not None


async def store_items(
    session: AsyncSession,
    feed_id: int,
    items: Sequence[NormalisedItem],
    *,
    feed_added_at: datetime,
    now: datetime,
) -> StoreOutcome:
    """Stores one poll's entries of feed `feed_id`; the caller commits.

    A new release is history (stored, never announced) when it was published before the
    feed was added (`feed_added_at`), see bot.feeds.identity.is_history.
    """
    outcome = StoreOutcome()
    items = _unique_by_guid(items)
    if not items:
        return outcome
    for item in items:
        _identify(item)
    dialect = dialect_of(session)

    # Entries this feed already had: unchanged ones are skipped, changed ones update the release.
    known: dict[str, tuple[int, int, str]] = {}  # guid -> (feed_entry id, release id, content hash)
    for chunk in chunks([item.guid for item in items]):
        rows = await session.exec(
            select(
                FEED_ENTRY.c.guid,
                FEED_ENTRY.c.id,
                FEED_ENTRY.c.release_id,
                FEED_ENTRY.c.content_hash,
            ).where(FEED_ENTRY.c.feed_id == feed_id, FEED_ENTRY.c.guid.in_(chunk))
        )
        known.update(
            (guid, (entry_id, release_id, content_hash))
            for guid, entry_id, release_id, content_hash in rows
        )

    fresh = [item for item in items if item.guid not in known]
    changed = [
        item for item in items if item.guid in known and known[item.guid][2] != item.content_hash
    ]

    if changed:
        await _update_changed(session, feed_id, changed, known, now, outcome)
    if fresh:
        await _store_fresh(session, dialect, feed_id, fresh, feed_added_at, now, outcome)
    outcome.new_ids.sort()
    outcome.announced_ids.sort()
    return outcome


async def _store_fresh(
    session: AsyncSession,
    dialect: str,
    feed_id: int,
    fresh: list[NormalisedItem],
    feed_added_at: datetime,
    now: datetime,
    outcome: StoreOutcome,
) -> None:
    """New entries: each is a release of this feed it already has, or a new row of its own."""
    await _lock_release_identities(session)
    first_fetch_with_items = not await _feed_has_entries(session, feed_id)
    candidates = await _candidates(session, (item.fingerprint for item in fresh))
    entry_release: dict[str, int] = {}  # guid -> existing release id
    entry_new_row: dict[str, int] = {}  # guid -> index in new_rows
    new_rows: list[dict[str, object]] = []
    new_keys: list[ReleaseKey] = []
    for item in fresh:
        key = _key(feed_id, item)
        same = [c for c in candidates.get(item.fingerprint, ()) if is_same_release(c.key, key)]
        own = next((c for c in same if c.key.feed_id == feed_id), None)
        if own is not None:  # this feed's release under a renewed guid
            entry_release[item.guid] = own.release_id
            continue
        in_this_poll = next((i for i, k in enumerate(new_keys) if is_same_release(k, key)), None)
        if in_this_poll is not None:
            entry_new_row[item.guid] = in_this_poll
            continue
        history = is_history(
            item.published_at if item.dated else None,
            feed_added_at=feed_added_at,
            first_fetch_with_items=first_fetch_with_items,
        )
        entry_new_row[item.guid] = len(new_rows)
        new_keys.append(key)
        new_rows.append(
            {
                "link": item.link,
                "feed_id": feed_id,
                "canonical_link": item.canonical_link,
                "fingerprint": item.fingerprint,
                # another feed's copy: the first one stays what subscribers see
                "duplicate_of": min((c.canonical_id for c in same), default=None),
                "guid": item.guid,
                "title": item.title,
                "summary": item.summary,
                "body": item.body,
                "language": item.language,
                "published_at": item.published_at,
                "content_hash": item.content_hash,
                "first_seen_at": now,
                "updated_at": now,
                "announce": not history,
                "revision": 0,
            }
        )
    new_ids: list[int] = []
    if new_rows:
        # executemany ("insertmanyvalues"): compiled once, sent in pages, RETURNING in order
        insert_release = insert(RELEASE).returning(RELEASE.c.id, sort_by_parameter_order=True)
        result = await session.exec(insert_release, params=new_rows)
        new_ids = [release_id for (release_id,) in result]
    for guid, index in entry_new_row.items():
        entry_release[guid] = new_ids[index]

    entry_rows = [
        {
            "feed_id": feed_id,
            "guid": item.guid,
            "release_id": entry_release[item.guid],
            "content_hash": item.content_hash,
            "first_seen_at": now,
        }
        for item in fresh
    ]
    insert_entry = insert_ignoring_conflicts(dialect, FEED_ENTRY, ["feed_id", "guid"]).returning(
        FEED_ENTRY.c.guid, FEED_ENTRY.c.release_id
    )
    inserted = (await session.exec(insert_entry, params=entry_rows)).all()
    outcome.entries_added += len(inserted)
    linked = {release_id for _guid, release_id in inserted}
    orphans = [release_id for release_id in new_ids if release_id not in linked]
    if orphans:  # another poll stored these entries meanwhile: its releases stand
        await session.exec(delete(RELEASE).where(RELEASE.c.id.in_(orphans)))
    for release_id, row in zip(new_ids, new_rows, strict=True):
        if release_id in linked:
            outcome.new_ids.append(release_id)
            if row["announce"] and row["duplicate_of"] is None:
                outcome.announced_ids.append(release_id)


async def _update_changed(
    session: AsyncSession,
    feed_id: int,
    changed: list[NormalisedItem],
    known: dict[str, tuple[int, int, str]],
    now: datetime,
    outcome: StoreOutcome,
) -> None:
    """Rewrites the releases whose entry changed under the same guid, only this feed's own."""
    release_ids = sorted({known[item.guid][1] for item in changed})
    current: dict[int, tuple[str, str, int]] = {}  # release id -> (title, body, revision)
    for chunk in chunks(release_ids):
        rows = await session.exec(
            select(RELEASE.c.id, RELEASE.c.title, RELEASE.c.body, RELEASE.c.revision).where(
                RELEASE.c.id.in_(chunk), RELEASE.c.feed_id == feed_id
            )
        )
        current.update((rid, (title, body, revision)) for rid, title, body, revision in rows)
    release_rows = []
    entry_rows = []
    updated: set[int] = set()
    corrected: set[int] = set()
    for item in changed:
        entry_id, release_id, _old_hash = known[item.guid]
        entry_rows.append({"entry_id": entry_id, "new_hash": item.content_hash})
        if release_id in updated or release_id not in current:
            continue  # a release another feed owns (stored before each feed had its own rows)
        updated.add(release_id)
        old_title, old_body, revision = current[release_id]
        correction = is_correction(old_title, old_body, item.title, item.body)
        if correction:
            corrected.add(release_id)
        release_rows.append(
            {
                "release_id": release_id,
                "new_title": item.title,
                "new_summary": item.summary,
                "new_body": item.body,
                "new_language": item.language,
                "new_hash": item.content_hash,
                "new_updated_at": now,
                "new_link": item.link,
                "new_canonical_link": item.canonical_link,
                "new_fingerprint": item.fingerprint,
                "new_revision": revision + 1 if correction else revision,
                "new_corrected_at": now if correction else None,
            }
        )
    if release_rows:
        await session.exec(
            update(RELEASE)
            .where(RELEASE.c.id == bindparam("release_id"))
            .values(
                title=bindparam("new_title"),
                summary=bindparam("new_summary"),
                body=bindparam("new_body"),
                language=bindparam("new_language"),
                content_hash=bindparam("new_hash"),
                updated_at=bindparam("new_updated_at", type_=RELEASE.c.updated_at.type),
                link=bindparam("new_link"),
                canonical_link=bindparam("new_canonical_link"),
                fingerprint=bindparam("new_fingerprint"),
                revision=bindparam("new_revision"),
                corrected_at=func.coalesce(
                    bindparam("new_corrected_at", type_=RELEASE.c.corrected_at.type),
                    RELEASE.c.corrected_at,
                ),
            ),
            params=release_rows,
        )
    await session.exec(
        update(FEED_ENTRY)
        .where(FEED_ENTRY.c.id == bindparam("entry_id"))
        .values(content_hash=bindparam("new_hash")),
        params=entry_rows,
    )
    outcome.updated_ids.extend(sorted(updated))
    outcome.corrected_ids.extend(sorted(corrected))

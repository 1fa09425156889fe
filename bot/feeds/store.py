"""Storing a feed's entries: dedup per (feed, guid) and per link, updates in place.

One call stores one poll's entries inside the caller's transaction, with a handful of bulk
statements whatever the number of entries: existing (feed, guid) rows and existing links are
looked up with IN queries, new rows go in with multi-row INSERT … ON CONFLICT DO NOTHING
(another worker may store the same link at the same moment), changes with one executemany.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Table, bindparam, func, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.feeds.normalise import NormalisedItem, sha256_hex
from bot.models import FeedEntry, Release

RELEASE: Table = Release.__table__  # type: ignore[attr-defined]
FEED_ENTRY: Table = FeedEntry.__table__  # type: ignore[attr-defined]
# Both SQLite (32766) and asyncpg (32767) cap bound parameters per statement.
IN_CHUNK = 1000

T = TypeVar("T")


@dataclass
class StoreOutcome:
    new_ids: list[int] = field(default_factory=list)  # releases stored for the first time
    updated_ids: list[int] = field(default_factory=list)  # releases whose content changed
    entries_added: int = 0  # new (feed, guid) rows, new releases or not


def _chunks(values: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def insert_ignoring_conflicts(dialect: str, table: Table, conflict_columns: list[str]) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=conflict_columns)
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=conflict_columns)
    raise RuntimeError(f"unsupported database {dialect!r}: use SQLite or PostgreSQL")


async def _release_ids_by_link(session: AsyncSession, links: Iterable[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for chunk in _chunks(sorted(set(links))):
        rows = await session.exec(
            select(RELEASE.c.link, RELEASE.c.id).where(RELEASE.c.link.in_(chunk))
        )
        found.update((link, release_id) for link, release_id in rows)
    return found


def _unique_by_guid(items: Iterable[NormalisedItem]) -> list[NormalisedItem]:
    """The first of each guid: a feed that repeats an entry stores it once."""
    seen: set[str] = set()
    unique = []
    for item in items:
        if item.guid not in seen:
            seen.add(item.guid)
            unique.append(item)
    return unique


async def store_items(
    session: AsyncSession,
    feed_id: int,
    items: Sequence[NormalisedItem],
    *,
    announce: bool,
    now: datetime,
) -> StoreOutcome:
    """Stores one poll's entries of feed `feed_id`; the caller commits."""
    outcome = StoreOutcome()
    items = _unique_by_guid(items)
    if not items:
        return outcome
    dialect = (await session.connection()).dialect.name

    # Entries this feed already had: unchanged ones are skipped, changed ones update the release.
    known: dict[str, tuple[int, int, str]] = {}  # guid -> (feed_entry id, release id, content hash)
    for chunk in _chunks([item.guid for item in items]):
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
        await _update_changed(session, changed, known, now, outcome)

    if fresh:
        release_ids = await _release_ids_by_link(session, (item.link for item in fresh))
        await _separate_shared_links(session, feed_id, fresh, release_ids)
        to_insert: dict[str, NormalisedItem] = {}
        for item in fresh:
            if item.link not in release_ids:
                to_insert.setdefault(item.link, item)
        if to_insert:
            insert_release = insert_ignoring_conflicts(dialect, RELEASE, ["link"]).returning(
                RELEASE.c.id, RELEASE.c.link
            )
            rows_to_insert = [
                {
                    "link": item.link,
                    "guid": item.guid,
                    "title": item.title,
                    "summary": item.summary,
                    "body": item.body,
                    "language": item.language,
                    "published_at": item.published_at,
                    "content_hash": item.content_hash,
                    "first_seen_at": now,
                    "updated_at": now,
                    "announce": announce,
                }
                for item in to_insert.values()
            ]
            # executemany ("insertmanyvalues"): compiled once, sent in pages, RETURNING kept
            result = await session.exec(insert_release, params=rows_to_insert)
            for release_id, link in result:
                release_ids[link] = release_id
                outcome.new_ids.append(release_id)
            missing = [link for link in to_insert if link not in release_ids]
            if missing:  # stored meanwhile by another worker: link to its row
                release_ids.update(await _release_ids_by_link(session, missing))

        entry_rows = [
            {
                "feed_id": feed_id,
                "guid": item.guid,
                "release_id": release_ids[item.link],
                "content_hash": item.content_hash,
                "first_seen_at": now,
            }
            for item in fresh
            if item.link in release_ids
        ]
        if entry_rows:
            insert_entry = insert_ignoring_conflicts(
                dialect, FEED_ENTRY, ["feed_id", "guid"]
            ).returning(FEED_ENTRY.c.id)
            outcome.entries_added += len(
                (await session.exec(insert_entry, params=entry_rows)).all()
            )
    outcome.new_ids.sort()
    return outcome


def _distinct_link(link: str, guid: str) -> str:
    return f"{link.split('#', 1)[0]}#entry-{sha256_hex(guid)[:16]}"


async def _separate_shared_links(
    session: AsyncSession,
    feed_id: int,
    fresh: list[NormalisedItem],
    release_ids: dict[str, int],
) -> None:
    """Gives a new entry its own release when its link is not its identity.

    A link is the dedup key across feeds, but some feeds put every entry under one page
    (the Hong Kong Observatory's bulletins: a new guid each hour, always current.htm). A new
    guid whose link this feed already uses, or another new entry of this poll uses, with
    other content, is a new release: its link gets a fragment of its own. The same content
    under a renewed guid stays one release. `release_ids` gains the new links' releases.
    """
    reused = sorted({release_ids[item.link] for item in fresh if item.link in release_ids})
    own: dict[int, str] = {}  # release id -> content hash, for releases this feed already has
    for chunk in _chunks(reused):
        rows = await session.exec(
            select(RELEASE.c.id, RELEASE.c.content_hash)
            .where(RELEASE.c.id.in_(chunk))
            .where(
                RELEASE.c.id.in_(
                    select(FEED_ENTRY.c.release_id).where(FEED_ENTRY.c.feed_id == feed_id)
                )
            )
        )
        own.update((release_id, content_hash) for release_id, content_hash in rows)
    first_hash: dict[str, str] = {}  # link -> content hash of the first new entry using it
    moved = []
    for item in fresh:
        release_id = release_ids.get(item.link)
        if release_id is not None:
            other = own.get(release_id)
        else:
            other = first_hash.setdefault(item.link, item.content_hash)
        if other is not None and other != item.content_hash:
            item.link = _distinct_link(item.link, item.guid)
            moved.append(item.link)
    if moved:
        release_ids.update(await _release_ids_by_link(session, moved))


async def _update_changed(
    session: AsyncSession,
    changed: list[NormalisedItem],
    known: dict[str, tuple[int, int, str]],
    now: datetime,
    outcome: StoreOutcome,
) -> None:
    """Rewrites the releases whose entry changed under the same guid (never a second row)."""
    # A new link is taken only when no other release has it already (link is unique).
    taken = await _release_ids_by_link(session, (item.link for item in changed))
    release_rows = []
    entry_rows = []
    updated: set[int] = set()
    for item in changed:
        entry_id, release_id, _old_hash = known[item.guid]
        entry_rows.append({"entry_id": entry_id, "new_hash": item.content_hash})
        if release_id in updated:
            continue
        updated.add(release_id)
        link_free = taken.get(item.link, release_id) == release_id
        release_rows.append(
            {
                "release_id": release_id,
                "new_title": item.title,
                "new_summary": item.summary,
                "new_body": item.body,
                "new_language": item.language,
                "new_hash": item.content_hash,
                "new_updated_at": now,
                "new_link": item.link if link_free else None,
            }
        )
        taken[item.link] = release_id if link_free else taken[item.link]
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
            link=func.coalesce(bindparam("new_link", type_=RELEASE.c.link.type), RELEASE.c.link),
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

"""Tables for the whole product: feeds, releases, chats, topics, subscriptions, matches, outbox.

All datetimes are timezone-aware UTC (sqlmodel rejects naive ones). Rows that several worker
processes share (feeds to poll, chats due a digest, outbox messages) carry their own
"when next" column so that a worker can claim them with `FOR UPDATE SKIP LOCKED`.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from enum import StrEnum

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Text,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.engine import Connection
from sqlmodel import Field, SQLModel

SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata


def utcnow() -> datetime:
    return datetime.now(UTC)


class Frequency(StrEnum):
    daily = "daily"
    weekly = "weekly"
    instant = "instant"


class MessageKind(StrEnum):
    digest = "digest"
    instant = "instant"
    broadcast = "broadcast"
    notice = "notice"


# the order the outbox sends in, lower first: a notice answers something the chat just did,
# an instant alert is news now, a digest was due at its time, a broadcast can wait
PRIORITY: dict[str, int] = {
    MessageKind.notice: 0,
    MessageKind.instant: 1,
    MessageKind.digest: 2,
    MessageKind.broadcast: 3,
}


class MessageState(StrEnum):
    queued = "queued"  # waiting for its turn (not_before)
    sending = "sending"  # claimed by a sender until claimed_until
    sent = "sent"
    failed = "failed"  # gave up after retries; last_error says why
    dropped = "dropped"  # the chat blocked the bot or is gone


class BroadcastState(StrEnum):
    draft = "draft"  # preview shown, waiting for Confirm
    cancelled = "cancelled"
    queued = "queued"  # confirmed; messages are in the outbox
    done = "done"


class Feed(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    url: str = Field(sa_column=Column(Text, nullable=False, unique=True))
    # the URL as first given (FEEDS or /addfeed): `url` follows permanent redirects, this stays
    configured_url: str | None = Field(default=None, sa_column=Column(Text, index=True))
    title: str | None = Field(default=None, sa_column=Column(Text))
    language: str | None = Field(default=None, max_length=16)
    etag: str | None = Field(default=None, sa_column=Column(Text))
    last_modified: str | None = Field(default=None, max_length=64)
    # sha256 of the last body: a 200 with an unchanged body counts as not modified
    body_hash: str | None = Field(default=None, max_length=64)
    # seconds the feed asks us to wait (ttl, Cache-Control max-age); lengthens POLL_INTERVAL
    min_interval: int | None = None
    next_poll_at: datetime = Field(default_factory=utcnow, index=True)
    last_polled_at: datetime | None = None
    last_success_at: datetime | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    last_error_at: datetime | None = None
    consecutive_failures: int = 0
    item_count: int = 0
    added_by: int | None = Field(default=None, sa_column=Column(BigInteger))
    created_at: datetime = Field(default_factory=utcnow)


class Release(SQLModel, table=True):
    """One feed's press release: its text is only ever changed by that feed's entries.

    The same release carried by another feed (or under another link) is another row with
    `duplicate_of` pointing to the first one, the canonical row: matching, /search and digests
    use canonical rows only, so it is shown once, and no feed can rewrite another's text.
    """

    id: int | None = Field(default=None, primary_key=True)
    link: str = Field(sa_column=Column(Text, nullable=False))
    # the feed whose entries own this row (NULL once that feed is removed)
    feed_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("feed.id", ondelete="SET NULL"), index=True),
    )
    # bot.feeds.identity: the link as compared (tracking parameters gone) and what the text says
    canonical_link: str = Field(default="", sa_column=Column(Text, nullable=False, index=True))
    fingerprint: str = Field(default="", max_length=64, index=True)
    duplicate_of: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("release.id", ondelete="SET NULL"), index=True),
    )
    guid: str = Field(sa_column=Column(Text, nullable=False))
    title: str = Field(sa_column=Column(Text, nullable=False))
    summary: str = Field(default="", sa_column=Column(Text, nullable=False))
    body: str = Field(default="", sa_column=Column(Text, nullable=False))
    language: str | None = Field(default=None, max_length=16)
    published_at: datetime = Field(index=True)
    content_hash: str = Field(max_length=64)
    first_seen_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow)
    # False for history (published before its feed was added): stored, searchable, never announced
    announce: bool = True
    # bumped by each correction (bot.feeds.identity.is_correction): chats that got it get it again
    revision: int = 0
    corrected_at: datetime | None = Field(default=None, index=True)


class FeedEntry(SQLModel, table=True):
    """A feed's entry (feed, guid) and the release it is."""

    __tablename__ = "feed_entry"
    __table_args__ = (UniqueConstraint("feed_id", "guid"),)

    id: int | None = Field(default=None, primary_key=True)
    feed_id: int = Field(
        sa_column=Column(Integer, ForeignKey("feed.id", ondelete="CASCADE"), nullable=False)
    )
    guid: str = Field(sa_column=Column(Text, nullable=False))
    release_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("release.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    content_hash: str = Field(max_length=64)
    first_seen_at: datetime = Field(default_factory=utcnow)


class Chat(SQLModel, table=True):
    # the schedule tick claims due chats in (next_digest_at, id) order: the first due go first
    __table_args__ = (Index("ix_chat_next_digest_at_id", "next_digest_at", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    # Telegram's chat id; it changes when a group migrates to a supergroup
    telegram_id: int = Field(sa_column=Column(BigInteger, nullable=False, unique=True))
    type: str = Field(default="private", max_length=16)
    title: str | None = Field(default=None, sa_column=Column(Text))
    language: str = Field(default="en", max_length=8)
    timezone: str = Field(default="Asia/Hong_Kong", max_length=64)
    digest_time: time = Field(default=time(8, 0))
    digest_weekday: int = 0  # for weekly digests: 0 = Monday
    frequency: str = Field(default=Frequency.daily, max_length=16)
    paused: bool = False
    active: bool = True  # False once Telegram says the bot was blocked or the chat is gone
    next_digest_at: datetime | None = None
    last_digest_at: datetime | None = None
    # earliest time the sender may send to this chat again (per-chat pacing shared by workers)
    next_send_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Topic(SQLModel, table=True):
    """One distinct normalised query, matched once for every chat that follows it."""

    id: int | None = Field(default=None, primary_key=True)
    query: str = Field(sa_column=Column(Text, nullable=False, unique=True))  # canonical form
    label: str = Field(sa_column=Column(Text, nullable=False))  # how we show it
    created_at: datetime = Field(default_factory=utcnow)


class Subscription(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("chat_id", "thread_id", "topic_id"),)

    id: int | None = Field(default=None, primary_key=True)
    chat_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("chat.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    # forum topic (message_thread_id); 0 = the chat itself
    thread_id: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    topic_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("topic.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    query_text: str = Field(sa_column=Column(Text, nullable=False))  # as the user typed it
    created_at: datetime = Field(default_factory=utcnow)
    # the end of the last digest sent to this thread alone (/digest in a forum topic): with
    # Chat.last_digest_at, where news begins for the thread (bot.digest.service.thread_window)
    last_digest_at: datetime | None = None


class Match(SQLModel, table=True):
    """A release matched a topic; digests are a join on this table, never a re-match."""

    __table_args__ = (
        Index("ix_match_topic_release", "topic_id", "release_id"),
        # the digest window (matched_at) and the pruning of old matches
        Index("ix_match_matched_at", "matched_at"),
    )

    release_id: int = Field(
        sa_column=Column(Integer, ForeignKey("release.id", ondelete="CASCADE"), primary_key=True)
    )
    topic_id: int = Field(
        sa_column=Column(Integer, ForeignKey("topic.id", ondelete="CASCADE"), primary_key=True)
    )
    in_title: bool = False  # ranks above a body-only match
    matched_at: datetime = Field(default_factory=utcnow)


class Broadcast(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    text: str = Field(sa_column=Column(Text, nullable=False))
    state: str = Field(default=BroadcastState.draft, max_length=16)
    created_by: int | None = Field(default=None, sa_column=Column(BigInteger))
    total: int = 0
    # where the admin watches progress (edited every few seconds)
    progress_chat_id: int | None = Field(default=None, sa_column=Column(BigInteger))
    progress_message_id: int | None = Field(default=None, sa_column=Column(BigInteger))
    created_at: datetime = Field(default_factory=utcnow)
    confirmed_at: datetime | None = None
    finished_at: datetime | None = None


class OutboxMessage(SQLModel, table=True):
    """Every outgoing digest, alert and broadcast: one durable queue."""

    __tablename__ = "outbox"
    # senders claim in (priority, not_before, id) order among the queued rows
    __table_args__ = (
        Index("ix_outbox_state_priority_not_before", "state", "priority", "not_before", "id"),
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
    )
    chat_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("chat.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    thread_id: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    kind: str = Field(default=MessageKind.digest, max_length=16)
    # lower goes first: notices, then instant alerts, digests, broadcasts (PRIORITY by kind)
    priority: int = 2
    text: str = Field(sa_column=Column(Text, nullable=False))  # Telegram HTML
    # the message's buttons as Bot API JSON (an InlineKeyboardMarkup), e.g. a digest's Manage
    reply_markup: str | None = Field(default=None, sa_column=Column(Text))
    state: str = Field(default=MessageState.queued, max_length=16)
    attempts: int = 0
    not_before: datetime = Field(default_factory=utcnow)
    claimed_until: datetime | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    broadcast_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("broadcast.id", ondelete="SET NULL"), index=True),
    )
    # makes queueing idempotent across workers, e.g. "digest:<chat>:<thread>:<period start>"
    dedup_key: str | None = Field(default=None, sa_column=Column(Text, unique=True))
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None
    telegram_message_id: int | None = Field(default=None, sa_column=Column(BigInteger))


class ReceivedUpdate(SQLModel, table=True):
    """Webhook updates already handled: Telegram retries a delivery whose answer it missed, and
    several `updates` processes behind a load balancer may each get one copy."""

    __tablename__ = "received_update"

    update_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    received_at: datetime = Field(default_factory=utcnow, index=True)


class SendRate(SQLModel, table=True):
    """A sending rate every sender process shares (SEND_RATE, PAID_SEND_RATE): who is next.

    Slots are 1/rate apart; a sender takes a few at once by moving `next_slot_at` forward in
    one UPDATE, so the deployment as a whole stays under the rate however many senders run.
    """

    __tablename__ = "send_rate"

    name: str = Field(primary_key=True, max_length=16)
    next_slot_at: float = 0.0  # Unix time of the first slot no sender has taken yet


class StoredBatch(SQLModel, table=True):
    """What one poll stored and has not been matched yet: the hand-off from ingest to matching.

    Written in the poll's own transaction, deleted once its releases are matched and their
    instant alerts queued (bot.pipeline.process_stored). A failure or a crash in between
    leaves the row, and the next pass does the same batch again: matching is idempotent and
    alerts keep their dedup keys, so nothing is undone and nothing is sent twice.
    """

    __tablename__ = "stored_batch"

    id: int | None = Field(default=None, primary_key=True)
    feed_id: int | None = None
    new_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    updated_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    corrected_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    announce: bool = False  # some of new_ids are news (not history)
    stored_at: datetime = Field(default_factory=utcnow)
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_column=Column(Text))


# PostgreSQL compresses a value over about 2 kB (a digest is 2-6 kB of HTML) with pglz by
# default; lz4 costs a third of its CPU, and the 08:00 rush writes a million of them. Only
# where the server was built with lz4 (pg_settings lists it); migration s3c5e7a9b1d2 does the
# same for a database made by migrations.
LZ4_AVAILABLE = (
    "SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)"
)
OUTBOX_TEXT_LZ4 = "ALTER TABLE outbox ALTER COLUMN text SET COMPRESSION lz4"


@event.listens_for(OutboxMessage.__table__, "after_create")  # type: ignore[attr-defined]
def _outbox_text_lz4(target: object, connection: Connection, **kw: object) -> None:
    if connection.dialect.name == "postgresql" and connection.execute(text(LZ4_AVAILABLE)).first():
        connection.execute(text(OUTBOX_TEXT_LZ4))

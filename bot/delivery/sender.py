"""The sender: empties the outbox as fast as Telegram allows, and no faster.

Limits: at most `send_rate` messages a second from this process (with N sender processes set
SEND_RATE to Telegram's limit / N), at least `private_interval` between two messages to one
chat and at most `group_per_minute` to one group (as one message every 60/N s). Per-chat
pacing is kept in the database, so processes share it: `chat.next_send_at` holds the chat
while a message to it is in flight (until the claim's lease ends) and is then set to the
time Telegram answered plus the chat's interval.

Errors:
- RetryAfter: the message goes back to the queue for exactly `retry_after`, its attempts
  untouched. For a private chat the 429 is taken as the global flood limit (we already keep
  every private chat under 1/s), so this process also pauses all sending for `retry_after`;
  for a group it is taken as the group's 20-a-minute limit and only that group waits.
- Forbidden, BadRequest "chat not found": the chat becomes inactive, its queue is dropped.
- ChatMigrated: the chat moves to the new id (bot.subscriptions.migrate_chat, the one rule
  for migrations), the message is sent again there.
- TimedOut, or a NetworkError after the request was written (connection reset, closed
  without an answer): Telegram may have delivered it. It is never sent again: it is stored as
  `sent` without a message id, `last_error` saying "maybe delivered, not resent". A digest
  twice is worse than one missing (and a 25 s read timeout, `send_timeout`, means Telegram
  had the request: in the incident behind this rule every timed-out send had arrived).
- NetworkError before the request left (connect, pool), 5xx: retried with exponential backoff
  and jitter, then `failed`.
- BadRequest "message thread not found" / TOPIC_CLOSED for a forum topic: the topic's
  subscriptions and messages move to the group's main thread, with a note the first time.
- Any other BadRequest (e.g. can't parse entities): `failed` at once; retrying cannot help.

Pipeline in one process: a claimer takes batches of due messages from the database, a
dispatcher releases them at the global rate into concurrent requests (bounded), and a writer
stores the outcomes in batches (one short transaction per batch).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import math
import random
import re
import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

import httpx
from sqlalchemy import and_, bindparam, update
from sqlmodel.ext.asyncio.session import AsyncSession
from telegram import Bot, InlineKeyboardMarkup, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import HTTPXRequest

from bot import metrics
from bot.db import SessionFactory
from bot.delivery.budget import SendBudget
from bot.delivery.outbox import (
    CHAT,
    OUTBOX,
    ClaimedMessage,
    claim_due_messages,
    count_unfinished,
    next_due_at,
)
from bot.models import MessageState, utcnow
from bot.subscriptions import mark_chat_gone, migrate_chat, move_thread_to_main

log = logging.getLogger(__name__)


MAX_ERROR_LENGTH = 500
_TOKEN_RE = re.compile(r"\d{5,}:[A-Za-z0-9_-]{30,}")


class SenderSettings(Protocol):
    """What the sender reads from bot.config.Settings."""

    send_rate: float


@dataclass(frozen=True)
class DeliveryLimits:
    """The sender's limits and timings; defaults are Telegram's, tests shrink them."""

    send_rate: float = 25.0  # messages per second from this process, all chats together
    private_interval: float = 1.0  # seconds between two messages to one chat
    group_per_minute: int = 20  # messages a minute to one group, supergroup or channel
    lease: float = 120.0  # seconds a claim is held before another sender may take it
    backoff_base: float = 2.0  # first retry after a transient error, doubled each time
    backoff_cap: float = 600.0
    max_attempts: int = 8  # transient failures before the message is marked failed
    concurrency: int = 0  # parallel requests; 0: from send_rate (half a second's worth)
    batch_size: int = 0  # messages per claim; 0: from send_rate (half a second's worth)
    lanes: int = -1  # connection pools of our own; -1: one per 2 workers, at most 8; 0: none
    flush_interval: float = 0.05  # seconds the writer gathers outcomes before writing them
    idle_poll: float = 2.0  # seconds between looks at the queue when nothing is due
    # seconds to wait for Telegram's answer to a send (PTB's 5 s is too short under load: a
    # late answer to a delivered message looked like a failure, and the retry was a duplicate)
    send_timeout: float = 25.0

    @classmethod
    def from_settings(cls, settings: SenderSettings, **overrides: Any) -> DeliveryLimits:
        return cls(send_rate=float(settings.send_rate), **overrides)

    @property
    def group_interval(self) -> float:
        return max(self.private_interval, 60.0 / self.group_per_minute)

    @property
    def workers(self) -> int:
        return self.concurrency or max(4, min(64, math.ceil(self.send_rate * 0.25)))

    @property
    def lane_count(self) -> int:
        return min(8, math.ceil(self.workers / 2)) if self.lanes < 0 else self.lanes

    @property
    def claim_size(self) -> int:
        return self.batch_size or max(1, min(500, math.ceil(self.send_rate * 0.5)))

    def backoff(self, attempts: int) -> float:
        """Seconds before retry number `attempts` (1-based): base·2^(n-1), capped, jittered."""
        delay = min(self.backoff_cap, self.backoff_base * 2 ** (attempts - 1))
        return float(delay * random.uniform(0.5, 1.0))


@dataclass
class DeliveryStats:
    """What one sender did: messages sent, dropped (chat blocked or gone), failed, retried."""

    sent: int = 0
    blocked: int = 0
    failed: int = 0
    retried: int = 0
    rate_limited: int = 0  # 429 answers
    migrated: int = 0
    elapsed: float = 0.0

    def add(self, other: DeliveryStats) -> None:
        for name in ("sent", "blocked", "failed", "retried", "rate_limited", "migrated"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(frozen=True)
class DeliveryProgress:
    """Passed to `on_progress` after each batch of outcomes is stored."""

    stats: DeliveryStats  # totals of this sender so far
    broadcast_ids: frozenset[int]  # broadcasts that had messages in this batch
    finished_broadcast_ids: frozenset[int]  # broadcasts that have no message left to send


ProgressCallback = Callable[[DeliveryProgress], Awaitable[None] | None]


# Outcomes of one send, stored by the writer.
@dataclass(frozen=True)
class _Sent:
    msg: ClaimedMessage
    telegram_message_id: int
    at: datetime


@dataclass(frozen=True)
class _Unconfirmed:
    """No answer, but Telegram may have delivered it: stored as sent, never sent again."""

    msg: ClaimedMessage
    at: datetime
    reason: str


@dataclass(frozen=True)
class _Retry:
    """Back to the queue until `at`; `count_attempt` for transient errors, not for 429."""

    msg: ClaimedMessage
    at: datetime
    reason: str
    count_attempt: bool


@dataclass(frozen=True)
class _Failed:
    msg: ClaimedMessage
    reason: str


@dataclass(frozen=True)
class _ChatGone:
    msg: ClaimedMessage
    reason: str


@dataclass(frozen=True)
class _Migrated:
    msg: ClaimedMessage
    new_telegram_id: int


@dataclass(frozen=True)
class _TopicGone:
    """The forum topic is closed or deleted: the message goes to the main thread instead."""

    msg: ClaimedMessage


@dataclass(frozen=True)
class _Released:
    """Claimed but not sent (lease half over, or the sender is stopping): back to the queue."""

    msg: ClaimedMessage


_Outcome = _Sent | _Unconfirmed | _Retry | _Failed | _ChatGone | _Migrated | _TopicGone | _Released


def observe(outcome: _Outcome, seconds: float) -> None:
    """The metrics of one send (GET /metrics)."""
    metrics.SEND_SECONDS.observe(seconds)
    if isinstance(outcome, _Sent):
        metrics.MESSAGES_SENT.inc()
    elif isinstance(outcome, _Unconfirmed):
        metrics.MESSAGES_FAILED.labels("maybe_delivered").inc()
    elif isinstance(outcome, _Failed):
        metrics.MESSAGES_FAILED.labels("failed").inc()
    elif isinstance(outcome, _ChatGone):
        metrics.MESSAGES_FAILED.labels("chat_gone").inc()
    elif isinstance(outcome, _Retry) and not outcome.count_attempt:
        metrics.RETRY_AFTER.inc()


@dataclass
class _Job:
    msg: ClaimedMessage


async def _open_lanes(
    bot: Bot, count: int, workers: int, stack: contextlib.AsyncExitStack
) -> list[Bot]:
    """Bots like `bot` (same token and server), each with a small pool of connections.

    httpcore's pool costs grow with the requests it juggles: 16 requests over 8 small pools
    go about 2.5x faster than over one pool of 16. Without lanes, `bot` itself sends.
    """
    if count <= 0 or not isinstance(bot.request, HTTPXRequest):
        return [bot]
    base_url = bot.base_url.replace(bot.token, "{token}")
    # one TLS context for all lanes: building one costs ~50 ms (it loads the CA bundle)
    shared = {"verify": ssl.create_default_context()}
    lanes = []
    for _ in range(count):
        request = HTTPXRequest(
            connection_pool_size=math.ceil(workers / count) + 1,
            pool_timeout=10.0,
            httpx_kwargs=shared,
        )
        await request.initialize()
        stack.push_async_callback(request.shutdown)
        # only sendMessage goes through a lane: no getMe needed (Bot.initialize would call it)
        lanes.append(Bot(token=bot.token, base_url=base_url, request=request))
    return lanes


def _is_sqlite(sessions: SessionFactory) -> bool:
    bind = sessions.kw.get("bind")
    return bind is not None and bind.dialect.name == "sqlite"


def _one_line(text: str) -> str:
    """An error for `last_error`: one line, bounded, and never a bot token (URLs carry it)."""
    return _TOKEN_RE.sub("[token]", " ".join(text.split()))[:MAX_ERROR_LENGTH]


def _retry_after_seconds(exc: RetryAfter) -> float:
    # PTB 22 keeps a timedelta; the public property may warn about its future type
    value = getattr(exc, "_retry_after", None)
    if isinstance(value, timedelta):
        return value.total_seconds()
    public = exc.retry_after
    return public.total_seconds() if isinstance(public, timedelta) else float(public)


# the request never reached Telegram: sending it again cannot make a duplicate
_NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.WriteError,
    httpx.WriteTimeout,
    httpx.LocalProtocolError,
    httpx.UnsupportedProtocol,
    httpx.ProxyError,
)
# the request was written and the answer never came: Telegram may have sent the message
_ANSWER_LOST = (httpx.ReadTimeout, httpx.ReadError, httpx.RemoteProtocolError)


def maybe_delivered(exc: BaseException) -> bool:
    """True if Telegram may have delivered the message although we got no answer.

    A timeout counts unless it came before the request left (connect, pool, write); another
    network error counts only when the answer was lost after the request was written.
    """
    if isinstance(exc, BadRequest | Forbidden | RetryAfter | ChatMigrated):
        return False  # Telegram answered
    cause = exc.__cause__
    if isinstance(exc, TimedOut):
        return not isinstance(cause, _NOT_SENT)
    return isinstance(exc, NetworkError) and isinstance(cause, _ANSWER_LOST)


def _is_thread_gone(exc: BadRequest) -> bool:
    """A forum topic that was deleted ("message thread not found") or closed."""
    text = exc.message.lower()
    return "message thread not found" in text or "topic_closed" in text or "topic_deleted" in text


def _is_chat_gone(exc: BadRequest) -> bool:
    text = exc.message.lower()
    return "chat not found" in text or "peer_id_invalid" in text or "user not found" in text


@dataclass
class _Pipeline:
    """State of one run of the sender (run() or drain())."""

    stop: asyncio.Event
    until_idle: bool
    started_at: datetime = field(default_factory=utcnow)
    backlog: deque[_Job] = field(default_factory=deque)
    results: list[_Outcome] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    more_work: asyncio.Event = field(default_factory=asyncio.Event)
    results_ready: asyncio.Event = field(default_factory=asyncio.Event)
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    closing: asyncio.Event = field(default_factory=asyncio.Event)  # writer: store and return


class Sender:
    """Sends the outbox to Telegram within its limits; see the module docstring."""

    def __init__(
        self,
        sessions: SessionFactory,
        bot: Bot,
        settings: SenderSettings,
        *,
        on_progress: ProgressCallback | None = None,
        limits: DeliveryLimits | None = None,
        budget: SendBudget | None = None,
    ) -> None:
        self._sessions = sessions
        self._bot = bot
        self.limits = limits or DeliveryLimits.from_settings(settings)
        # the process's global pacing and flood pauses, shared with the replies to commands
        self.budget = budget or SendBudget.for_limits(self.limits)
        self._on_progress = on_progress
        self.stats = DeliveryStats()
        self._wake = asyncio.Event()
        self._touched_broadcasts: set[int] = set()
        self._done_checked_at: dict[int, float] = {}
        self._lanes: list[Bot] = [bot]
        self._dispatched = 0  # sends started, for the claim size
        self._dispatch_samples: deque[tuple[float, int]] = deque()
        self._link_preview = LinkPreviewOptions(is_disabled=True)
        # SQLite has one writer: claimer and writer taking turns beats them waiting on its lock
        self._db_turn: asyncio.Lock | contextlib.nullcontext[None] = (
            asyncio.Lock() if _is_sqlite(sessions) else contextlib.nullcontext()
        )

    def wake(self) -> None:
        """Something was just enqueued: look at the queue now instead of at the next poll."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Sends until `stop` is set; then finishes the requests in flight and returns."""
        await self._pump(_Pipeline(stop=stop, until_idle=False))

    async def drain(self, timeout: float | None = None) -> DeliveryStats:  # noqa: ASYNC109
        """Sends until nothing is due (or `timeout`); the stats of this drain.

        Waits for every message queued before the drain started, retries (backoff, 429)
        included; messages queued meanwhile may be sent too but are not waited for.
        """
        before = replace(self.stats)
        started = asyncio.get_running_loop().time()
        pipeline = _Pipeline(stop=asyncio.Event(), until_idle=True)
        pump = asyncio.create_task(self._pump(pipeline))
        try:
            await asyncio.wait_for(asyncio.shield(pipeline.idle.wait()), timeout)
        except TimeoutError:
            log.warning("drain stopped after %.1f s with messages still queued", timeout)
        finally:
            pipeline.stop.set()
            await pump
        drained = DeliveryStats(elapsed=asyncio.get_running_loop().time() - started)
        for name in ("sent", "blocked", "failed", "retried", "rate_limited", "migrated"):
            setattr(drained, name, getattr(self.stats, name) - getattr(before, name))
        return drained

    # --- the pipeline -------------------------------------------------------------------

    async def _pump(self, p: _Pipeline) -> None:
        async with contextlib.AsyncExitStack() as stack:
            self._lanes = await _open_lanes(
                self._bot, self.limits.lane_count, self.limits.workers, stack
            )
            await self._pump_with_lanes(p)

    async def _pump_with_lanes(self, p: _Pipeline) -> None:
        semaphore = asyncio.Semaphore(self.limits.workers)
        claimer = asyncio.create_task(self._claim_loop(p))
        writer = asyncio.create_task(self._write_loop(p))
        dispatcher = asyncio.create_task(self._dispatch_forever(p, semaphore))
        await p.stop.wait()
        # The claimer and the writer stop between transactions, never inside one: a task
        # cancelled in the middle of a SQLite transaction leaves its connection holding the
        # write lock, and every later write (the final flush included) fails for minutes.
        self._wake.set()
        p.more_work.set()
        await asyncio.gather(claimer, return_exceptions=True)
        dispatcher.cancel()  # it only waits and starts sends; no database work
        await asyncio.gather(dispatcher, return_exceptions=True)
        if p.tasks:
            await asyncio.gather(*p.tasks, return_exceptions=True)
        p.results.extend(_Released(job.msg) for job in p.backlog)
        p.backlog.clear()
        p.closing.set()
        p.results_ready.set()
        await asyncio.gather(writer, return_exceptions=True)
        await self._flush_until_stored(p)
        touched = set(self._touched_broadcasts)
        if finished := await self._finish_broadcasts(touched, p):
            await self._report_progress(touched, finished)

    async def _claim_loop(self, p: _Pipeline) -> None:
        limits = self.limits
        while not p.stop.is_set():
            try:
                if len(p.backlog) > limits.claim_size // 2:
                    p.more_work.clear()
                    await p.more_work.wait()
                    continue
                self._wake.clear()
                size = self._claim_size(asyncio.get_running_loop().time())
                async with self._db_turn:
                    now = utcnow()
                    lease = timedelta(seconds=limits.lease)
                    claimed = await claim_due_messages(self._sessions, size, now, lease)
                if claimed:
                    p.backlog.extend(_Job(msg) for msg in claimed)
                    p.more_work.set()
                    continue
                await self._wait_for_due(p, now)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("claiming messages failed; trying again shortly")
                await asyncio.sleep(1.0)

    def _claim_size(self, loop_now: float) -> int:
        """Half a second's worth at the rate we actually reach (not more: claims are leases)."""
        samples = self._dispatch_samples
        samples.append((loop_now, self._dispatched))
        while len(samples) > 2 and samples[0][0] < loop_now - 3.0:
            samples.popleft()
        (t0, n0), (t1, n1) = samples[0], samples[-1]
        reached = (n1 - n0) / (t1 - t0) if t1 - t0 > 0.5 else 0.0
        floor = min(self.limits.claim_size, 2 * self.limits.workers)
        return max(floor, min(self.limits.claim_size, math.ceil(reached * 0.5)))

    async def _wait_for_due(self, p: _Pipeline, now: datetime) -> None:
        """Nothing claimable: sleep until the next message is due, a wake() or the poll."""
        timeout = self.limits.idle_poll
        if self._touched_broadcasts and not p.backlog and not p.tasks:
            # the last outcomes of a broadcast may have come between two checks
            touched = set(self._touched_broadcasts)
            if finished := await self._finish_broadcasts_now_and_then(touched, p):
                await self._report_progress(touched, finished)
        quiet = not p.backlog and not p.tasks and not p.results
        if p.until_idle and quiet and await count_unfinished(self._sessions, p.started_at) == 0:
            p.idle.set()
            p.stop.set()
            return
        due = await next_due_at(self._sessions, now)
        if due is not None:
            timeout = min(timeout, max(0.01, (due - utcnow()).total_seconds()))
        if p.tasks or p.results:
            timeout = min(timeout, 0.05)  # an outcome may free a chat or finish the queue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _dispatch_forever(self, p: _Pipeline, semaphore: asyncio.Semaphore) -> None:
        while True:
            try:
                await self._dispatch_loop(p, semaphore)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dispatching messages failed; going on")
                await asyncio.sleep(1.0)

    async def _dispatch_loop(self, p: _Pipeline, semaphore: asyncio.Semaphore) -> None:
        half_lease = timedelta(seconds=self.limits.lease / 2)
        while True:
            if not p.backlog:
                p.more_work.clear()
                await p.more_work.wait()
                continue
            await semaphore.acquire()
            try:
                await self.budget.take()
                job = p.backlog.popleft()
            except BaseException:
                semaphore.release()
                raise
            if len(p.backlog) <= self.limits.claim_size // 2:
                p.more_work.set()
            if utcnow() >= job.msg.claimed_until - half_lease:
                # another sender may take it soon: never start a send that late
                semaphore.release()
                self._add_result(p, _Released(job.msg))
                continue
            self._dispatched += 1
            task = asyncio.create_task(self._send(p, job, semaphore))
            p.tasks.add(task)
            task.add_done_callback(p.tasks.discard)

    async def _send(self, p: _Pipeline, job: _Job, semaphore: asyncio.Semaphore) -> None:
        msg = job.msg
        outcome: _Outcome
        started = asyncio.get_running_loop().time()
        try:
            lane = self._lanes[msg.id % len(self._lanes)]
            # after any reply to this chat that asked first; a fresh slot if it had to wait
            await self.budget.take_for_chat(msg.telegram_chat_id, have_slot=True)
            sent = await lane.send_message(
                chat_id=msg.telegram_chat_id,
                text=msg.text,
                parse_mode=ParseMode.HTML,
                link_preview_options=self._link_preview,
                message_thread_id=msg.thread_id or None,
                reply_markup=InlineKeyboardMarkup.de_json(json.loads(msg.reply_markup))
                if msg.reply_markup
                else None,
                read_timeout=self.limits.send_timeout,
                write_timeout=self.limits.send_timeout,
            )
            at = utcnow()
            outcome = _Sent(msg, sent.message_id, at)
        except RetryAfter as exc:
            wait = _retry_after_seconds(exc)
            if msg.is_group:
                self.budget.hold_chat(msg.telegram_chat_id, wait)
            else:
                self.budget.pause(wait)
            outcome = _Retry(msg, utcnow() + timedelta(seconds=wait), _one_line(str(exc)), False)
        except ChatMigrated as exc:
            outcome = _Migrated(msg, exc.new_chat_id)
        except Forbidden as exc:
            outcome = _ChatGone(msg, _one_line(exc.message))
        except BadRequest as exc:
            if _is_chat_gone(exc):
                outcome = _ChatGone(msg, _one_line(exc.message))
            elif msg.thread_id and _is_thread_gone(exc):
                outcome = _TopicGone(msg)
            else:
                outcome = _Failed(msg, _one_line(exc.message))
        except NetworkError as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if maybe_delivered(exc):
                log.warning("message %s: no answer, maybe delivered; not resent", msg.id)
                outcome = _Unconfirmed(
                    msg, utcnow(), _one_line(f"maybe delivered, not resent: {reason}")
                )
            else:
                outcome = self._transient(msg, reason)
        except (TelegramError, OSError, TimeoutError) as exc:  # 5xx and the like
            outcome = self._transient(msg, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a bug must not stop the sender; the message is retried
            log.exception("unexpected error sending message %s", msg.id)
            outcome = self._transient(msg, f"{type(exc).__name__}: {exc}")
        finally:
            semaphore.release()
        observe(outcome, asyncio.get_running_loop().time() - started)
        self._add_result(p, outcome)

    def _transient(self, msg: ClaimedMessage, reason: str) -> _Outcome:
        attempts = msg.attempts + 1
        if attempts >= self.limits.max_attempts:
            return _Failed(replace(msg, attempts=attempts - 1), _one_line(f"gave up: {reason}"))
        delay = self.limits.backoff(attempts)
        return _Retry(msg, utcnow() + timedelta(seconds=delay), _one_line(reason), True)

    def _add_result(self, p: _Pipeline, outcome: _Outcome) -> None:
        p.results.append(outcome)
        p.results_ready.set()

    # --- storing outcomes ---------------------------------------------------------------

    async def _write_loop(self, p: _Pipeline) -> None:
        while not p.closing.is_set():
            await p.results_ready.wait()
            if p.closing.is_set():
                return
            # gather outcomes for a moment: one transaction for many messages
            await asyncio.sleep(self.limits.flush_interval)
            p.results_ready.clear()
            try:
                await self._flush(p)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("storing send results failed; trying again shortly")
                await asyncio.sleep(1.0)
                p.results_ready.set()

    async def _flush_until_stored(self, p: _Pipeline) -> None:
        for attempt in range(10):
            try:
                await self._flush(p)
                return
            except Exception:
                log.exception("storing send results failed (attempt %d)", attempt + 1)
                await asyncio.sleep(min(5.0, 0.5 * 2**attempt))

    async def _flush(self, p: _Pipeline) -> None:
        if not p.results:
            return
        batch, p.results = p.results, []
        try:
            async with self._db_turn:
                stats = await self._store(batch)
        except BaseException:
            p.results[:0] = batch  # keep them for the next try
            raise
        self.stats.add(stats)
        broadcasts = {o.msg.broadcast_id for o in batch if o.msg.broadcast_id is not None}
        self._touched_broadcasts |= broadcasts
        self._wake.set()  # stored outcomes may free chats for the claimer
        finished = await self._finish_broadcasts_now_and_then(broadcasts, p)
        if broadcasts or stats.sent or stats.failed:
            await self._report_progress(broadcasts, finished)

    async def _finish_broadcasts_now_and_then(self, broadcasts: set[int], p: _Pipeline) -> set[int]:
        """_finish_broadcasts, asking about each broadcast at most once a second (it scans rows)."""
        now = asyncio.get_running_loop().time()
        due = {b for b in broadcasts if now - self._done_checked_at.get(b, 0.0) >= 1.0}
        if not due:
            return set()
        self._done_checked_at.update(dict.fromkeys(due, now))
        return await self._finish_broadcasts(due, p)

    async def _report_progress(self, broadcasts: set[int], finished: set[int]) -> None:
        if self._on_progress is not None:
            progress = DeliveryProgress(
                replace(self.stats), frozenset(broadcasts), frozenset(finished)
            )
            try:
                result = self._on_progress(progress)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("on_progress callback failed")

    async def _finish_broadcasts(self, broadcast_ids: set[int], p: _Pipeline) -> set[int]:
        from bot.delivery.broadcast import finish_broadcast_if_done

        finished = set()
        for broadcast_id in broadcast_ids:
            try:
                if await finish_broadcast_if_done(self._sessions, broadcast_id):
                    finished.add(broadcast_id)
            except Exception:
                log.exception("could not check whether broadcast %s is done", broadcast_id)
        self._touched_broadcasts -= finished
        return finished

    async def _pace_chats(
        self, session: AsyncSession, sends: list[tuple[ClaimedMessage, datetime]]
    ) -> None:
        """Frees each chat for its next message one interval (1 s, 3 s for groups) after `at`."""
        private = timedelta(seconds=self.limits.private_interval)
        group = timedelta(seconds=self.limits.group_interval)
        await _set_next_send(
            session, [(msg.chat_id, at + (group if msg.is_group else private)) for msg, at in sends]
        )

    async def _store(self, batch: list[_Outcome]) -> DeliveryStats:
        """Writes a batch of outcomes in one transaction; returns what they count for."""
        stats = DeliveryStats()
        sent = [o for o in batch if isinstance(o, _Sent)]
        unconfirmed = [o for o in batch if isinstance(o, _Unconfirmed)]
        retries = [o for o in batch if isinstance(o, _Retry)]
        failed = [o for o in batch if isinstance(o, _Failed)]
        released = [o for o in batch if isinstance(o, _Released)]
        gone = [o for o in batch if isinstance(o, _ChatGone)]
        migrated = [o for o in batch if isinstance(o, _Migrated)]
        topics_gone = [o for o in batch if isinstance(o, _TopicGone)]
        mine = and_(
            OUTBOX.c.id == bindparam("b_id"),
            OUTBOX.c.state == MessageState.sending.value,
            OUTBOX.c.claimed_until == bindparam("b_lease"),
        )
        async with self._sessions() as session:
            if sent:
                await session.exec(
                    update(OUTBOX)
                    .where(OUTBOX.c.id == bindparam("b_id"))
                    .values(
                        state=MessageState.sent.value,
                        sent_at=bindparam("b_at"),
                        telegram_message_id=bindparam("b_mid"),
                        claimed_until=None,
                    ),
                    params=[
                        {"b_id": o.msg.id, "b_at": o.at, "b_mid": o.telegram_message_id}
                        for o in sent
                    ],
                )
                # the chat's next message: the chat's interval after this one really went
                await self._pace_chats(session, [(o.msg, o.at) for o in sent])
                stats.sent += len(sent)
            if unconfirmed:
                await session.exec(
                    update(OUTBOX)
                    .where(OUTBOX.c.id == bindparam("b_id"))
                    .values(
                        state=MessageState.sent.value,
                        sent_at=bindparam("b_at"),
                        last_error=bindparam("b_reason"),
                        claimed_until=None,
                    ),
                    params=[
                        {"b_id": o.msg.id, "b_at": o.at, "b_reason": o.reason} for o in unconfirmed
                    ],
                )
                await self._pace_chats(session, [(o.msg, o.at) for o in unconfirmed])
                stats.sent += len(unconfirmed)
            if retries:
                await session.exec(
                    update(OUTBOX)
                    .where(mine)
                    .values(
                        state=MessageState.queued.value,
                        not_before=bindparam("b_at"),
                        attempts=bindparam("b_attempts"),
                        last_error=bindparam("b_reason"),
                        claimed_until=None,
                    ),
                    params=[
                        {
                            "b_id": o.msg.id,
                            "b_lease": o.msg.claimed_until,
                            "b_at": o.at,
                            "b_attempts": o.msg.attempts + (1 if o.count_attempt else 0),
                            "b_reason": o.reason,
                        }
                        for o in retries
                    ],
                )
                # the chat waits too, and its later messages wait behind this one (same
                # not_before, higher id), so a retried message is never overtaken
                retry_params = [{"b_chat": o.msg.chat_id, "b_at": o.at} for o in retries]
                await session.exec(
                    update(CHAT)
                    .where(CHAT.c.id == bindparam("b_chat"))
                    .values(next_send_at=bindparam("b_at")),
                    params=retry_params,
                )
                await session.exec(
                    update(OUTBOX)
                    .where(
                        OUTBOX.c.chat_id == bindparam("b_chat"),
                        OUTBOX.c.state == MessageState.queued.value,
                        OUTBOX.c.not_before < bindparam("b_at"),
                    )
                    .values(not_before=bindparam("b_at")),
                    params=retry_params,
                )
                stats.retried += len(retries)
                stats.rate_limited += sum(1 for o in retries if not o.count_attempt)
            if failed:
                await session.exec(
                    update(OUTBOX)
                    .where(mine)
                    .values(
                        state=MessageState.failed.value,
                        attempts=bindparam("b_attempts"),
                        last_error=bindparam("b_reason"),
                        claimed_until=None,
                    ),
                    params=[
                        {
                            "b_id": o.msg.id,
                            "b_lease": o.msg.claimed_until,
                            "b_attempts": o.msg.attempts + 1,
                            "b_reason": o.reason,
                        }
                        for o in failed
                    ],
                )
                await self._pace_chats(session, [(o.msg, utcnow()) for o in failed])
                stats.failed += len(failed)
            if released:
                await session.exec(
                    update(OUTBOX)
                    .where(mine)
                    .values(state=MessageState.queued.value, claimed_until=None),
                    params=[{"b_id": o.msg.id, "b_lease": o.msg.claimed_until} for o in released],
                )
                await session.exec(
                    update(CHAT).where(CHAT.c.id == bindparam("b_chat")).values(next_send_at=None),
                    params=[{"b_chat": o.msg.chat_id} for o in released],
                )
            for gone_chat in gone:
                stats.blocked += await mark_chat_gone(
                    session, gone_chat.msg.chat_id, gone_chat.reason
                )
            for move in migrated:
                await _migrate_chat(session, move.msg, move.new_telegram_id)
                stats.migrated += 1
            for topic in topics_gone:
                # moves this message too (it is unsent); its not_before keeps its place in line
                await move_thread_to_main(session, topic.msg.chat_id, topic.msg.thread_id)
                await session.exec(
                    update(OUTBOX)
                    .where(mine)
                    .values(state=MessageState.queued.value, claimed_until=None),
                    params=[{"b_id": topic.msg.id, "b_lease": topic.msg.claimed_until}],
                )
            if topics_gone:  # a refused send is no message to pace for, as for a migration
                await session.exec(
                    update(CHAT).where(CHAT.c.id == bindparam("b_chat")).values(next_send_at=None),
                    params=[{"b_chat": o.msg.chat_id} for o in topics_gone],
                )
            await session.commit()
        if gone:
            log.info("%d chats blocked the bot or are gone; their messages were dropped", len(gone))
        return stats


async def _set_next_send(session: AsyncSession, times: list[tuple[int, datetime]]) -> None:
    if times:
        await session.exec(
            update(CHAT)
            .where(CHAT.c.id == bindparam("b_chat"))
            .values(next_send_at=bindparam("b_next")),
            params=[{"b_chat": chat_id, "b_next": at} for chat_id, at in times],
        )


async def _migrate_chat(session: AsyncSession, msg: ClaimedMessage, new_telegram_id: int) -> None:
    """The group became a supergroup (bot.subscriptions.migrate_chat), and the message goes
    back to the queue to be sent there."""
    target = await migrate_chat(session, msg.telegram_chat_id, new_telegram_id) or msg.chat_id
    # its not_before is kept (it was due): a new one would put it behind the chat's later
    # messages, and a digest's "(1/3)" would arrive after "(3/3)"
    await session.exec(
        update(OUTBOX)
        .where(OUTBOX.c.id == msg.id)
        .values(state=MessageState.queued.value, claimed_until=None)
    )
    await session.exec(update(CHAT).where(CHAT.c.id == target).values(next_send_at=None))


__all__ = ["DeliveryLimits", "DeliveryProgress", "DeliveryStats", "Sender"]

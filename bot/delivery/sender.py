"""The sender loop: claims due messages, sends them through a transport, stores the outcomes.

Limits (bot.delivery.limits): at most SEND_RATE messages a second for the whole deployment
(bot.delivery.rate: every sender process draws slots from one row in the database), at least
`private_interval` between two messages to one chat and at most `group_per_minute` to one
group (as one message every 60/N s). Per-chat pacing is kept in the database, so processes
share it: `chat.next_send_at` holds the chat while a message to it is in flight (until the
claim's lease ends) and is then set to the time Telegram answered plus the chat's interval.
With PAID_BROADCAST, broadcasts go out as paid broadcasts at PAID_SEND_RATE instead.

Leases: a claim lasts `lease` seconds and the sender renews every claim it holds each
`lease / 4` (a heartbeat), so a sender killed with SIGKILL gives its claims back within one
lease, and one that merely waits (a 429, a slow Telegram) keeps them.

What each outcome (bot.delivery.outcomes) means for the queue:
- RetryAfter: the message goes back to the queue for exactly `retry_after`, its attempts
  untouched. For a private chat the 429 is taken as the global flood limit (we already keep
  every private chat under 1/s), so this process also pauses all sending for `retry_after`;
  for a group it is taken as the group's 20-a-minute limit and only that group waits.
- ChatGone: the chat becomes inactive, its queue is dropped.
- ChatMoved: the chat moves to the new id (bot.subscriptions.migrate_chat, the one rule
  for migrations), the message is sent again there.
- MaybeDelivered: never sent again: stored as `sent` without a message id, `last_error`
  saying "maybe delivered, not resent". A digest twice is worse than one missing.
- Transient: retried with exponential backoff and jitter, then `failed`.
- TopicGone: the topic's subscriptions and messages move to the group's main thread, with a
  note the first time.
- Failed: `failed` at once; retrying cannot help.

Pipeline in one process: a claimer takes batches of due messages from the database, a
dispatcher releases them at the rate into concurrent requests (bounded), a writer stores the
outcomes in batches (bot.delivery.store, one short transaction per batch) and a heartbeat
renews the claims still held.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from bot import metrics
from bot.db import SessionFactory, dialect_of, finish_transaction
from bot.delivery.broadcast import finish_broadcast_if_done
from bot.delivery.budget import SendBudget
from bot.delivery.limits import DeliveryLimits, SenderSettings
from bot.delivery.outbox import ClaimedMessage, claim_due_messages, count_unfinished, next_due_at
from bot.delivery.outcomes import (
    ChatGone,
    ChatMoved,
    Failed,
    MaybeDelivered,
    RetryAfter,
    SendOutcome,
    Sent,
    TopicGone,
    Transient,
    Transport,
    one_line,
)
from bot.delivery.rate import FREE, PAID, SharedRate
from bot.delivery.store import (
    STAT_NAMES,
    ChatGoneRecord,
    DeliveryStats,
    FailedRecord,
    MigratedRecord,
    Record,
    ReleasedRecord,
    RetryRecord,
    SentRecord,
    TopicGoneRecord,
    UnconfirmedRecord,
    renew_leases,
    store_outcomes,
)
from bot.models import MessageKind, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryProgress:
    """Passed to `on_progress` after each batch of outcomes is stored."""

    stats: DeliveryStats  # totals of this sender so far
    broadcast_ids: frozenset[int]  # broadcasts that had messages in this batch
    finished_broadcast_ids: frozenset[int]  # broadcasts that have no message left to send


ProgressCallback = Callable[[DeliveryProgress], Awaitable[None] | None]


@dataclass
class _Job:
    msg: ClaimedMessage


def record_for(msg: ClaimedMessage, outcome: SendOutcome, limits: DeliveryLimits) -> Record:
    """What the store writes for `outcome` (pure but for the clock and backoff's jitter)."""
    now = utcnow()
    match outcome:
        case Sent(message_id=message_id):
            return SentRecord(msg, message_id, now)
        case RetryAfter(seconds=seconds, reason=reason):
            return RetryRecord(msg, now + timedelta(seconds=seconds), reason, False)
        case ChatMoved(new_chat_id=new_id):
            return MigratedRecord(msg, new_id)
        case ChatGone(reason=reason):
            return ChatGoneRecord(msg, reason)
        case TopicGone():
            return TopicGoneRecord(msg)
        case Failed(reason=reason):
            return FailedRecord(msg, reason)
        case MaybeDelivered(reason=reason):
            return UnconfirmedRecord(msg, now, reason)
        case Transient(reason=reason):
            return transient_record(msg, reason, limits)


def transient_record(msg: ClaimedMessage, reason: str, limits: DeliveryLimits) -> Record:
    """A retry after backoff, or `failed` once the attempts are used up."""
    attempts = msg.attempts + 1
    if attempts >= limits.max_attempts:
        return FailedRecord(replace(msg, attempts=attempts - 1), one_line(f"gave up: {reason}"))
    delay = limits.backoff(attempts)
    return RetryRecord(msg, utcnow() + timedelta(seconds=delay), one_line(reason), True)


@dataclass
class _Pipeline:
    """State of one run of the sender (run() or drain())."""

    stop: asyncio.Event
    until_idle: bool
    started_at: datetime = field(default_factory=utcnow)
    backlog: deque[_Job] = field(default_factory=deque)
    results: list[Record] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    more_work: asyncio.Event = field(default_factory=asyncio.Event)
    results_ready: asyncio.Event = field(default_factory=asyncio.Event)
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    closing: asyncio.Event = field(default_factory=asyncio.Event)  # writer: store and return


def observe(outcome: SendOutcome, seconds: float) -> None:
    """The metrics of one send (GET /metrics)."""
    metrics.SEND_SECONDS.observe(seconds)
    if isinstance(outcome, Sent):
        metrics.MESSAGES_SENT.inc()
    elif isinstance(outcome, MaybeDelivered):
        metrics.MESSAGES_FAILED.labels("maybe_delivered").inc()
    elif isinstance(outcome, Failed):
        metrics.MESSAGES_FAILED.labels("failed").inc()
    elif isinstance(outcome, ChatGone):
        metrics.MESSAGES_FAILED.labels("chat_gone").inc()
    elif isinstance(outcome, RetryAfter):
        metrics.RETRY_AFTER.inc()


class Sender:
    """Sends the outbox to Telegram within its limits; see the module docstring."""

    def __init__(
        self,
        sessions: SessionFactory,
        transport: Transport,
        settings: SenderSettings,
        *,
        on_progress: ProgressCallback | None = None,
        limits: DeliveryLimits | None = None,
        budget: SendBudget | None = None,
        free_rate: SharedRate | None = None,
    ) -> None:
        self._sessions = sessions
        self.transport = transport
        self.limits = limits or DeliveryLimits.from_settings(settings)
        # the process's global pacing and flood pauses, shared with the replies to commands
        self.budget = budget or SendBudget.for_limits(self.limits)
        # the deployment's rates, shared with every other sender process through the database
        # (`free_rate`: SEND_RATE as the process's replies take it too, bot.runtime)
        self.free_rate = free_rate or SharedRate(
            sessions, FREE, self.limits.send_rate, grant=self.limits.rate_grant
        )
        self.paid_rate = SharedRate(
            sessions, PAID, self.limits.paid_send_rate, grant=self.limits.rate_grant
        )
        # the claims this sender holds (queued here or in flight), with their current lease
        self._held: dict[int, ClaimedMessage] = {}
        self._lease_turn = asyncio.Lock()  # the writer and the heartbeat: one lease view
        self._on_progress = on_progress
        self.stats = DeliveryStats()
        self._wake = asyncio.Event()
        self._touched_broadcasts: set[int] = set()
        self._done_checked_at: dict[int, float] = {}
        self._dispatched = 0  # sends started, for the claim size
        self._dispatch_samples: deque[tuple[float, int]] = deque()
        # SQLite has one writer: claimer and writer taking turns beats them waiting on its lock
        self._db_turn: asyncio.Lock | contextlib.nullcontext[None] = (
            asyncio.Lock() if dialect_of(sessions) == "sqlite" else contextlib.nullcontext()
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
        for name in STAT_NAMES:
            setattr(drained, name, getattr(self.stats, name) - getattr(before, name))
        return drained

    # --- the pipeline -------------------------------------------------------------------

    async def _pump(self, p: _Pipeline) -> None:
        async with self.transport.connections(self.limits):
            await self._pump_with_connections(p)

    async def _pump_with_connections(self, p: _Pipeline) -> None:
        semaphore = asyncio.Semaphore(self.limits.workers)
        claimer = asyncio.create_task(self._claim_loop(p))
        writer = asyncio.create_task(self._write_loop(p))
        dispatcher = asyncio.create_task(self._dispatch_forever(p, semaphore))
        heartbeat = asyncio.create_task(self._heartbeat_loop(p))
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
        p.results.extend(ReleasedRecord(job.msg) for job in p.backlog)
        p.backlog.clear()
        p.closing.set()
        p.results_ready.set()
        await asyncio.gather(writer, return_exceptions=True)
        await self._flush_until_stored(p)
        heartbeat.cancel()  # after the last flush: claims stay renewed until they are stored
        await asyncio.gather(heartbeat, return_exceptions=True)
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
                    self._held.update((msg.id, msg) for msg in claimed)
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
                if self._is_paid(p.backlog[0].msg):
                    await self.budget.wait_unpaused()
                    await self.paid_rate.take()
                else:
                    await self.budget.take()
                    await self.free_rate.take()
                job = p.backlog.popleft()
            except BaseException:
                semaphore.release()
                raise
            if len(p.backlog) <= self.limits.claim_size // 2:
                p.more_work.set()
            current = self._held.get(job.msg.id)
            if current is None:  # the heartbeat found it taken by another sender
                semaphore.release()
                continue
            job.msg = current
            if utcnow() >= current.claimed_until - half_lease:
                # the heartbeat has been failing: another sender may take it soon
                semaphore.release()
                self._add_result(p, ReleasedRecord(current))
                continue
            self._dispatched += 1
            task = asyncio.create_task(self._send(p, job, semaphore))
            p.tasks.add(task)
            task.add_done_callback(p.tasks.discard)

    def _is_paid(self, msg: ClaimedMessage) -> bool:
        return self.limits.paid_broadcast and msg.kind == MessageKind.broadcast.value

    async def _send(self, p: _Pipeline, job: _Job, semaphore: asyncio.Semaphore) -> None:
        msg = job.msg
        record: Record
        try:
            # after any reply to this chat that asked first; a fresh slot if it had to wait
            await self.budget.take_for_chat(msg.telegram_chat_id, have_slot=True)
            started = asyncio.get_running_loop().time()
            outcome = await self.transport.send(msg, paid=self._is_paid(msg))
            observe(outcome, asyncio.get_running_loop().time() - started)
            if isinstance(outcome, RetryAfter):
                if msg.is_group:
                    self.budget.hold_chat(msg.telegram_chat_id, outcome.seconds)
                else:
                    self.budget.pause(outcome.seconds)
            elif isinstance(outcome, MaybeDelivered):
                log.warning("message %s: no answer, maybe delivered; not resent", msg.id)
            record = record_for(msg, outcome, self.limits)
        except Exception as exc:  # a bug must not stop the sender; the message is retried
            log.exception("unexpected error sending message %s", msg.id)
            record = transient_record(msg, f"{type(exc).__name__}: {exc}", self.limits)
        finally:
            semaphore.release()
        self._add_result(p, record)

    def _add_result(self, p: _Pipeline, record: Record) -> None:
        p.results.append(record)
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
        async with self._lease_turn:
            # each with the lease it holds now (the heartbeat may have renewed it)
            batch = [replace(r, msg=self._held.get(r.msg.id, r.msg)) for r in p.results]
            p.results = []
            try:
                async with self._db_turn:
                    stats = await store_outcomes(self._sessions, batch, self.limits)
            except BaseException:
                p.results[:0] = batch  # keep them for the next try
                raise
            for record in batch:
                self._held.pop(record.msg.id, None)
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
        finished = set()
        for broadcast_id in broadcast_ids:
            try:
                if await finish_broadcast_if_done(self._sessions, broadcast_id):
                    finished.add(broadcast_id)
            except Exception:
                log.exception("could not check whether broadcast %s is done", broadcast_id)
        self._touched_broadcasts -= finished
        return finished

    # --- the heartbeat ------------------------------------------------------------------

    async def _heartbeat_loop(self, p: _Pipeline) -> None:
        """Renews the claims this sender holds every lease/4, until the pump cancels it."""
        while True:
            await asyncio.sleep(self.limits.heartbeat)
            try:
                await self._renew()
            except asyncio.CancelledError:
                raise
            except Exception:  # the dispatcher stops starting sends once a lease runs low
                log.exception("renewing the claims failed; trying again at the next beat")

    async def _renew(self) -> None:
        async with self._lease_turn:
            held = list(self._held.values())
            if not held:
                return
            until = utcnow() + timedelta(seconds=self.limits.lease)
            async with self._db_turn:
                renewed = set(await finish_transaction(renew_leases(self._sessions, held, until)))
            for msg in held:
                if msg.id in renewed:
                    self._held[msg.id] = replace(msg, claimed_until=until)
                elif msg.id in self._held:
                    log.warning("message %s: claim lost to another sender", msg.id)
                    del self._held[msg.id]


__all__ = ["DeliveryLimits", "DeliveryProgress", "DeliveryStats", "Sender"]

"""Several sender processes on one PostgreSQL: `press-digest run --role sender`, really started.

    .venv/bin/python -m benchmarks.senders [--messages 4000] [--paid 3000] [--recovery 1500]

0. the double's own ceiling: a trivial aiohttp client (64 requests in flight) hammering
   sendMessage, and the double's CPU per message: what one core of it can answer.
1. limits off: N messages to N chats, SEND_RATE unbounded, the double in its own process;
   1, 2 and 4 sender processes; rate from the first to the last `sent_at` (start-up apart).
   CPU seconds of each side over the sending window (/proc/PID/stat): the senders, the
   double, the PostgreSQL backends of the benchmark's database, and the whole machine (other
   work on it included), as messages per CPU-second; the side that uses the most of the two
   cores' time is where the ceiling is.
2. paid broadcasts: the double with Telegram's limits (30/s free, 1000/s paid),
   PAID_BROADCAST=true, two senders; the achieved broadcast rate against PAID_SEND_RATE=1000.
3. recovery: two senders, one killed with SIGKILL mid-way; how long until the last message
   it held had gone out (through the other sender, once its lease ran out).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from benchmarks.sender import PG_URL, _add_chats, _pg_admin, _start_double_process
from bot.db import SessionFactory, create_engine, migrate, session_factory
from bot.delivery.broadcast import queue_broadcast
from bot.delivery.outbox import OUTBOX, OutboxRow, enqueue_many, fetch_rows
from bot.models import MessageKind, MessageState

ROOT = Path(__file__).resolve().parents[1]


@asynccontextmanager
async def _database() -> AsyncIterator[tuple[str, SessionFactory]]:
    name = f"pd_bench_senders_{os.getpid()}"
    await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await _pg_admin(f'CREATE DATABASE "{name}"')
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    engine = create_engine(url)
    try:
        await migrate(engine)
        yield url, session_factory(engine)
    finally:
        await engine.dispose()
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _env(url: str, base_url: str, token: str, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.upper() not in {"FEEDS", "BOT_TOKEN"}}
    env.update(
        PYTHONPATH=str(ROOT),
        DATABASE_URL=url,
        BOT_TOKEN=token,
        TELEGRAM_API_URL=base_url,
        HTTP_PORT="0",
        FEEDS="",
        LOG_LEVEL="WARNING",
        **values,
    )
    return env


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process so far; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far (/proc/stat)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / CLOCK_TICKS, sum(values) / CLOCK_TICKS


async def _backend_pids(sessions: SessionFactory) -> list[int]:
    """PostgreSQL's processes serving the benchmark's database (the senders' pools)."""
    async with sessions() as session:
        rows = await fetch_rows(
            session,
            text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"),
        )
    return [int(row[0]) for row in rows]


class CpuWindow:
    """CPU seconds of senders, double, PostgreSQL and the machine between start() and end()."""

    def __init__(self, senders: list[int], double: int) -> None:
        self.senders, self.double = senders, double
        self.start_cpu: dict[str, float] = {}
        self.used: dict[str, float] = {}
        self.wall = 0.0
        self._pg: list[int] = []

    async def _sample(self, sessions: SessionFactory) -> dict[str, float]:
        self._pg = sorted(set(self._pg) | set(await _backend_pids(sessions)))
        busy, total = _machine_busy()
        return {
            "senders": sum(_cpu_seconds(pid) for pid in self.senders),
            "double": _cpu_seconds(self.double),
            "postgres": sum(_cpu_seconds(pid) for pid in self._pg),
            "machine": busy,
            "machine_total": total,
            "wall": time.monotonic(),
        }

    async def start(self, sessions: SessionFactory) -> None:
        self.start_cpu = await self._sample(sessions)

    async def end(self, sessions: SessionFactory) -> None:
        end = await self._sample(sessions)
        # a backend that appeared in the window counted from 0: its start-up is small
        self.used = {k: end[k] - self.start_cpu.get(k, 0.0) for k in end}
        self.wall = self.used.pop("wall")


async def _sent_count(sessions: SessionFactory) -> int:
    async with sessions() as session:
        stmt = select(func.count()).where(OUTBOX.c.state == MessageState.sent.value)
        return int((await fetch_rows(session, stmt))[0][0])


async def double_ceiling(requests: int, in_flight: int = 64) -> dict[str, Any]:
    """A trivial aiohttp client hammering the double's sendMessage: its own ceiling."""
    import aiohttp

    double, base_url, token = _start_double_process()
    try:
        url = f"{base_url}{token}/sendMessage"
        queue = iter(range(in_flight))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=in_flight)) as client:

            async def worker() -> None:
                for n in queue:
                    data = {
                        "chat_id": str(10_000 + n),
                        "text": "<b>Digest</b>",
                        "parse_mode": "HTML",
                    }
                    async with client.post(url, data=data) as response:
                        await response.read()

            await asyncio.gather(*(worker() for _ in range(4)))  # warm the connections
            queue = iter(range(requests))
            cpu0, own0, t0 = _cpu_seconds(double.pid), time.process_time(), time.monotonic()
            await asyncio.gather(*(worker() for _ in range(in_flight)))
            wall = time.monotonic() - t0
            cpu, own = _cpu_seconds(double.pid) - cpu0, time.process_time() - own0
    finally:
        double.kill()
        double.wait()
    return {"rate": requests / wall, "double_cpu": cpu, "client_cpu": own, "n": requests}


async def _start_senders(count: int, env: dict[str, str]) -> list[asyncio.subprocess.Process]:
    command = [sys.executable, "-m", "bot", "run", "--role", "sender"]
    return [await asyncio.create_subprocess_exec(*command, env=env, cwd=ROOT) for _ in range(count)]


async def _stop(processes: list[asyncio.subprocess.Process]) -> None:
    for process in processes:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
    await asyncio.gather(*(p.wait() for p in processes))


async def _unsent(sessions: SessionFactory) -> int:
    async with sessions() as session:
        stmt = select(func.count()).where(OUTBOX.c.state != MessageState.sent.value)
        return int((await fetch_rows(session, stmt))[0][0])


async def _wait_sent(sessions: SessionFactory, timeout: float) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while await _unsent(sessions) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.2)


async def _sent_span(sessions: SessionFactory) -> tuple[int, float]:
    """Messages sent, and seconds from the first to the last."""
    async with sessions() as session:
        stmt = select(func.count(), func.min(OUTBOX.c.sent_at), func.max(OUTBOX.c.sent_at)).where(
            OUTBOX.c.state == MessageState.sent.value
        )
        count, first, last = (await fetch_rows(session, stmt))[0]
    return int(count), (last - first).total_seconds() if count > 1 else 0.0


async def _queue_digests(sessions: SessionFactory, messages: int) -> None:
    ids = await _add_chats(sessions, messages)
    async with sessions() as session:
        await enqueue_many(
            session, [OutboxRow(i, f"<b>Digest</b> for {i}", MessageKind.digest) for i in ids]
        )
        await session.commit()


async def unlimited(processes: int, messages: int) -> dict[str, Any]:
    async with _database() as (url, sessions):
        await _queue_digests(sessions, messages)
        double, base_url, token = _start_double_process()
        try:
            env = _env(url, base_url, token, SEND_RATE="100000")
            senders = await _start_senders(processes, env)
            window = CpuWindow([p.pid for p in senders], double.pid)
            try:
                while await _sent_count(sessions) == 0:  # noqa: ASYNC110  (start-up apart)
                    await asyncio.sleep(0.02)
                first = await _sent_count(sessions)
                await window.start(sessions)
                await _wait_sent(sessions, 300)
                await window.end(sessions)
            finally:
                await _stop(senders)
        finally:
            double.kill()
            double.wait()
        sent, span = await _sent_span(sessions)
    return {
        "processes": processes,
        "senders": processes,
        "sent": sent,
        "rate": sent / span if span else 0.0,
        "window_sent": sent - first,
        "cpu": window.used,
        "wall": window.wall,
    }


async def paid(messages: int) -> dict[str, Any]:
    async with _database() as (url, sessions):
        await _add_chats(sessions, messages)
        await queue_broadcast(sessions, "<b>Announcement</b>", created_by=None)
        double, base_url, token = _start_double_process("--flood")
        try:
            env = _env(url, base_url, token, PAID_BROADCAST="true", PAID_SEND_RATE="1000")
            senders = await _start_senders(2, env)
            window = CpuWindow([p.pid for p in senders], double.pid)
            try:
                while await _sent_count(sessions) == 0:  # noqa: ASYNC110  (start-up apart)
                    await asyncio.sleep(0.02)
                first = await _sent_count(sessions)
                await window.start(sessions)
                await _wait_sent(sessions, 300)
                await window.end(sessions)
            finally:
                await _stop(senders)
        finally:
            double.kill()
            double.wait()
        sent, span = await _sent_span(sessions)
    return {
        "processes": "2 paid",
        "senders": 2,
        "sent": sent,
        "rate": sent / span if span else 0.0,
        "window_sent": sent - first,
        "cpu": window.used,
        "wall": window.wall,
    }


async def recovery(messages: int) -> dict[str, Any]:
    async with _database() as (url, sessions):
        await _queue_digests(sessions, messages)
        double, base_url, token = _start_double_process()
        try:
            doomed, survivor = await _start_senders(2, _env(url, base_url, token, SEND_RATE="100"))
            try:
                while await _unsent(sessions) > messages * 0.7:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
                async with sessions() as session:
                    rows = await fetch_rows(
                        session,
                        select(OUTBOX.c.id).where(OUTBOX.c.state == MessageState.sending.value),
                    )
                held = [row[0] for row in rows]
                doomed.send_signal(signal.SIGKILL)
                await doomed.wait()
                killed_at = datetime.now().astimezone()
                await _wait_sent(sessions, 120)
            finally:
                await _stop([doomed, survivor])
        finally:
            double.kill()
            double.wait()
        async with sessions() as session:
            last = (
                await fetch_rows(
                    session, select(func.max(OUTBOX.c.sent_at)).where(OUTBOX.c.id.in_(held))
                )
            )[0][0]
    return {"held": len(held), "seconds": (last - killed_at).total_seconds() if last else None}


def _row(label: str, result: str) -> None:
    print(f"{label:<58} {result:>22}", flush=True)


def _cpu_table(results: list[dict[str, Any]]) -> None:
    """Messages per CPU-second of each side, and each side's share of the two cores."""
    cores = os.cpu_count() or 1
    print(
        f"\n{'senders':<8} {'msg/s':>7} {'msg per CPU-s:':>15} {'senders':>8} {'double':>7} "
        f"{'postgres':>9}   {'cores busy: senders':>19} {'double':>7} {'pg':>5} "
        f"{'machine':>8}/{cores}  ceiling"
    )
    for got in results:
        cpu, wall, n = got["cpu"], got["wall"], got["window_sent"]
        sides = {k: cpu[k] for k in ("senders", "double", "postgres")}
        per = {k: (n / v if v > 0 else float("inf")) for k, v in sides.items()}
        busy = {k: v / wall for k, v in sides.items()}
        machine = cpu["machine"] / wall
        top = max(sides, key=lambda k: sides[k])
        # a side is single-threaded per process: the senders' CPU is N processes' (compare
        # each with one core), the double is one, PostgreSQL a backend per connection
        senders = got["senders"]
        each = {"senders": busy["senders"] / senders, "double": busy["double"]}
        full = [k for k, v in each.items() if v >= 0.85]
        if machine >= 0.9 * cores:
            verdict = f"the machine's {cores} cores ({top} uses most)"
        elif full:
            who = "each sender" if full[0] == "senders" and senders > 1 else full[0]
            verdict = f"{who} (one core: it is single-threaded)"
        else:
            verdict = f"none saturated ({top} uses most): latency, not CPU"
        print(
            f"{got['processes']!s:<8} {got['rate']:>7.0f} {'':>15} {per['senders']:>8.0f} "
            f"{per['double']:>7.0f} {per['postgres']:>9.0f}   {busy['senders']:>19.2f} "
            f"{busy['double']:>7.2f} {busy['postgres']:>5.2f} {machine:>8.2f}    {verdict}"
        )
    print()


async def _run(args: argparse.Namespace) -> None:
    _row("scenario", "result")
    ceiling = await double_ceiling(args.ceiling)
    per_cpu = ceiling["n"] / ceiling["double_cpu"] if ceiling["double_cpu"] else float("inf")
    _row(
        f"the double alone: aiohttp client, {ceiling['n']} sendMessage",
        f"{ceiling['rate']:.0f} msg/s",
    )
    _row("  the double's messages per CPU-second (one core's worth)", f"{per_cpu:.0f} msg/s")
    one = None
    results = []
    for count in (1, 2, 4):
        got = await unlimited(count, args.messages)
        results.append(got)
        one = one or got["rate"]
        label = f"{count} sender(s), limits off, {got['sent']} messages"
        _row(label, f"{got['rate']:.0f} msg/s {got['rate'] / one:.2f}x")
    got = await paid(args.paid)
    results.append(got)
    label = f"paid broadcast to {got['sent']} chats, 2 senders (goal 1000/s)"
    _row(label, f"{got['rate']:.0f} msg/s {got['rate'] / 10:.0f}%")
    _cpu_table(results)
    got = await recovery(args.recovery)
    shown = f"{got['seconds']:.1f} s" if got["seconds"] is not None else "n/a"
    _row(f"SIGKILL of 1 of 2 senders: the {got['held']} claims out again in", shown)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--paid", type=int, default=3000)
    parser.add_argument("--recovery", type=int, default=1500)
    parser.add_argument("--ceiling", type=int, default=4000, help="requests to the double alone")
    asyncio.run(_run(parser.parse_args(argv)))


if __name__ == "__main__":
    main(sys.argv[1:])

"""GET /healthz: 200 with the figures while the database answers, 503 once it does not."""

from __future__ import annotations

from datetime import timedelta

import aiohttp
from sqlmodel import SQLModel

from bot.db import create_engine, session_factory
from bot.http import http_server
from bot.models import Chat, Feed, MessageKind, MessageState, OutboxMessage, utcnow
from tests.conftest import _pg_admin_execute


async def _get(port: int) -> tuple[int, dict[str, object]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/healthz") as response,
    ):
        return response.status, await response.json()


async def test_healthz_reports_the_outbox_depth_and_the_age_of_the_last_poll(any_sessions):
    async with any_sessions() as s:
        s.add(Feed(url="http://127.0.0.1:9/a.xml", last_polled_at=utcnow() - timedelta(seconds=90)))
        chat = Chat(telegram_id=42)
        s.add(chat)
        await s.flush()
        assert chat.id is not None
        s.add(OutboxMessage(chat_id=chat.id, text="hi", kind=MessageKind.digest))
        s.add(OutboxMessage(chat_id=chat.id, text="old", state=MessageState.sent))
        await s.commit()
    async with http_server(any_sessions, "127.0.0.1", _any_port(), role="all") as port:
        assert port is not None
        status, body = await _get(port)
    assert status == 200
    assert body["status"] == "ok" and body["database"] == "ok" and body["role"] == "all"
    assert body["outbox_depth"] == 1
    assert isinstance(body["last_poll_age_s"], float) and 85 <= body["last_poll_age_s"] <= 120


async def test_healthz_on_a_database_that_never_polled_says_null(sessions) -> None:
    async with http_server(sessions, "127.0.0.1", _any_port()) as port:
        assert port is not None
        status, body = await _get(port)
    assert status == 200 and body["last_poll_age_s"] is None and body["outbox_depth"] == 0


async def test_healthz_turns_503_when_postgresql_goes_away(pg_url: str) -> None:
    engine = create_engine(pg_url)
    async with engine.begin() as conn:
        await conn.run_sync(SQLModel.metadata.create_all)
    try:
        async with http_server(session_factory(engine), "127.0.0.1", _any_port()) as port:
            assert port is not None
            assert (await _get(port))[0] == 200
            name = pg_url.rsplit("/", 1)[1]
            _pg_admin_execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            status, body = await _get(port)
    finally:
        await engine.dispose()
    assert status == 503
    assert body["status"] == "unhealthy" and body["database"] == "unreachable"
    assert body["reason"]


def test_port_zero_turns_the_server_off() -> None:
    import asyncio

    async def scenario() -> object:
        async with http_server(None, "127.0.0.1", 0) as port:  # type: ignore[arg-type]
            return port

    assert asyncio.run(scenario()) is None


def _any_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])

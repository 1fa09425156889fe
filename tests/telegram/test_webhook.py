"""Webhooks: Telegram POSTs updates to WEBHOOK_URL's path with the secret header.

The right secret is answered, another (or none) gets 403 and changes nothing, and an update
Telegram delivers twice, to one process or to two behind a load balancer, is handled once.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import aiohttp
import pytest
from aiohttp import web
from sqlmodel import SQLModel

from bot.db import SessionFactory, create_engine, session_factory
from bot.delivery.sender import DeliveryLimits
from bot.http import SECRET_HEADER, WebhookInbox, http_server
from bot.models import Chat
from tests.doubles.telegram_api import BotAPIDouble
from tests.telegram.conftest import USER_ID, make_settings, start_bot

SECRET = "s3cret_Webhook-token_0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def webhook_bot(
    api: BotAPIDouble, sessions: SessionFactory, database_url: str, url: str | None = None
) -> AsyncIterator[tuple[str, int]]:
    """A bot receiving by webhook on its own HTTP server; yields (webhook url, port)."""
    port = _free_port()
    url = url or f"http://127.0.0.1:{port}/telegram/hook"
    settings = make_settings(api, database_url, webhook_url=url, webhook_secret=SECRET)
    inbox = WebhookInbox.from_settings(settings)
    assert inbox is not None
    stop = asyncio.Event()
    limits = DeliveryLimits.from_settings(settings, private_interval=0.01, group_per_minute=6000)
    async with http_server(sessions, "127.0.0.1", port, webhook=inbox):
        task = await start_bot(settings, sessions, stop, limits=limits, webhook=inbox)
        try:
            yield url, port
        finally:
            stop.set()
            await asyncio.wait_for(task, 15)


@pytest.fixture
async def api() -> AsyncIterator[BotAPIDouble]:
    async with BotAPIDouble(allow_http_webhooks=True, webhook_retry_delay=0.05) as double:
        yield double


async def test_updates_come_by_webhook_and_are_answered(
    api: BotAPIDouble, sessions: SessionFactory, sqlite_url: str
) -> None:
    async with webhook_bot(api, sessions, sqlite_url) as (url, _port):
        assert api.webhook_url == url and api.webhook_secret == SECRET
        api.push_message(USER_ID, "/help")
        [reply] = await api.wait_for_message(USER_ID, timeout=10)
    assert "/subscribe" in reply.text
    assert api.calls_to("getUpdates") == []  # no long polling beside the webhook
    assert all(status == 200 for _id, status in api.webhook_deliveries)


async def test_a_wrong_or_missing_secret_gets_403_and_changes_nothing(
    api: BotAPIDouble, sessions: SessionFactory, sqlite_url: str
) -> None:
    forged = {
        "update_id": 999,
        "message": {
            "message_id": 1,
            "date": 1764700000,
            "chat": {"id": USER_ID, "type": "private", "first_name": "Eve"},
            "from": {"id": USER_ID, "is_bot": False, "first_name": "Eve"},
            "text": "/subscribe customs",
            "entities": [{"type": "bot_command", "offset": 0, "length": 10}],
        },
    }
    async with webhook_bot(api, sessions, sqlite_url) as (url, _port), aiohttp.ClientSession() as c:
        statuses = []
        for headers in ({}, {SECRET_HEADER: "wrong"}, {SECRET_HEADER: SECRET[:-1]}):
            async with c.post(url, json=forged, headers=headers) as response:
                statuses.append(response.status)
        await asyncio.sleep(0.3)
    assert statuses == [403, 403, 403]
    assert api.messages_to(USER_ID) == []
    async with sessions() as s:
        assert (await s.get(Chat, 1)) is None


async def test_an_update_delivered_twice_is_handled_once(
    api: BotAPIDouble, sessions: SessionFactory, sqlite_url: str
) -> None:
    async with webhook_bot(api, sessions, sqlite_url):
        update = api.push_message(USER_ID, "/subscribe customs")
        await api.wait_for_message(USER_ID, timeout=10)
        api.deliver_again(update)  # Telegram did not get our answer: it delivers again
        await api.wait_for(lambda: len(api.webhook_deliveries) >= 2, timeout=10)
        await asyncio.sleep(0.5)
    assert [d[0] for d in api.webhook_deliveries].count(update["update_id"]) == 2
    assert len(api.messages_to(USER_ID)) == 1


@asynccontextmanager
async def round_robin(ports: list[int]) -> AsyncIterator[int]:
    """A load balancer in front of the `updates` processes: each request to the next one."""
    turn = itertools.cycle(ports)
    port = _free_port()

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        target = f"http://127.0.0.1:{next(turn)}{request.path}"
        async with (
            aiohttp.ClientSession() as c,
            c.post(target, data=body, headers=dict(request.headers)) as answer,
        ):
            return web.Response(status=answer.status, body=await answer.read())

    app = web.Application()
    app.router.add_post("/{tail:.*}", forward)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield port
    finally:
        await runner.cleanup()


async def test_two_updates_processes_behind_a_load_balancer_on_postgresql(
    api: BotAPIDouble, pg_url: str
) -> None:
    engine = create_engine(pg_url)
    async with engine.begin() as conn:
        await conn.run_sync(SQLModel.metadata.create_all)
    try:
        async with AsyncExitStack() as stack:
            ports: list[int] = []
            for _ in range(2):
                sessions = session_factory(engine)  # each process its own pool in real life
                _url, port = await stack.enter_async_context(webhook_bot(api, sessions, pg_url))
                ports.append(port)
            lb = await stack.enter_async_context(round_robin(ports))
            # both processes called setWebhook; Telegram knows one URL: the load balancer's
            api.webhook_url = f"http://127.0.0.1:{lb}/telegram/hook"
            users = [USER_ID + n for n in range(6)]
            updates = [api.push_message(user, "/help") for user in users]
            for user in users:
                await api.wait_for_message(user, timeout=15)
            for update in updates:  # every update again: each goes to the other process now
                api.deliver_again(update)
            await api.wait_for(lambda: len(api.webhook_deliveries) >= 12, timeout=15)
            await asyncio.sleep(0.5)
    finally:
        await engine.dispose()
    assert all(status == 200 for _id, status in api.webhook_deliveries)
    assert [len(api.messages_to(user)) for user in users] == [1] * 6

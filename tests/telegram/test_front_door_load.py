"""The front door keeps answering: chats run side by side, replies survive Telegram's flood control.

Each chat's updates are handled in the order they came, one after another; other chats do
not wait for them. A reply that gets 429 is sent again after `retry_after`, and replies and
the outbox sender draw from one budget, so together they stay under Telegram's limits.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from sqlmodel import SQLModel

from bot.db import SessionFactory, create_engine, session_factory
from bot.delivery.sender import DeliveryLimits
from bot.models import MessageState
from tests.delivery.helpers import FAST, add_chats, outbox, queue_text
from tests.doubles.feed_server import FeedServer, rss
from tests.doubles.telegram_api import BotAPIDouble
from tests.telegram.conftest import ADMIN_ID, USER_ID, Bot, make_settings, start_bot

# PTB's own RetryAfter warns that retry_after will become a timedelta; we read both forms
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


@pytest.fixture
async def feed_server() -> AsyncIterator[FeedServer]:
    async with FeedServer() as server:
        yield server


class StalledFeed:
    """A feed server path that answers only when the test lets it."""

    def __init__(self, server: FeedServer, path: str = "/stalls.xml") -> None:
        self.release = asyncio.Event()
        self.path = path
        self.server = server
        self.url = server.route(path, self._answer)

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        await self.release.wait()
        body = rss([{"title": "Late release", "link": "https://example.org/late"}])
        return web.Response(body=body, content_type="application/rss+xml")

    async def requested(self) -> None:
        for _ in range(500):
            if self.server.requests_for(self.path):
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the bot never fetched the stalled feed")


@pytest.fixture
async def stalled(bot: Bot, feed_server: FeedServer) -> AsyncIterator[StalledFeed]:
    feed = StalledFeed(feed_server)
    yield feed
    feed.release.set()  # before the bot stops: it waits for the command in progress


FloodedBot = Callable[..., Awaitable[Bot]]


@pytest.fixture
async def flooded_bot(sessions: SessionFactory, sqlite_url: str) -> AsyncIterator[FloodedBot]:
    """Starts the bot against a double that enforces flood limits (the options given).

    Our own limits are a little under the double's: 90 % of its rates.
    """
    async with contextlib.AsyncExitStack() as stack:

        async def start(**double_options: Any) -> Bot:
            options: dict[str, Any] = {"global_per_second": 20, **double_options}
            rate = 0.9 * options["global_per_second"]
            private_interval = 1.1 / options.get("chat_per_second", 1)
            double = await stack.enter_async_context(BotAPIDouble(flood_limits=True, **options))
            settings = make_settings(double, sqlite_url, send_rate=rate)
            limits = DeliveryLimits(
                **{**FAST, "send_rate": rate, "private_interval": private_interval}
            )
            stop = asyncio.Event()
            task = await start_bot(settings, sessions, stop, limits=limits)

            async def shut_down() -> None:
                stop.set()
                await asyncio.wait_for(task, 15)
                assert double.spec_violations == []
                assert double.retry_after_violations == []  # each retry waited its retry_after

            stack.push_async_callback(shut_down)
            return Bot(double, sessions, settings)

        yield start


# --- chats side by side, each chat in order --------------------------------------------


async def test_a_slow_command_in_one_chat_does_not_delay_another_chats_reply(
    bot: Bot, stalled: StalledFeed
) -> None:
    bot.api.push_message(ADMIN_ID, f"/addfeed {stalled.url}")
    await stalled.requested()

    bot.api.push_message(USER_ID, "/help")
    # the goal: another chat's reply within 1 s of its command, however slow the first one is
    help_reply = await bot.api.wait_for_message(USER_ID, timeout=1.0)
    assert help_reply[0].text.startswith("Commands")
    assert bot.api.messages_to(ADMIN_ID) == []  # /addfeed is still waiting for the feed

    stalled.release.set()
    added = await bot.api.wait_for_message(ADMIN_ID)
    assert added[0].text.startswith(f"Added {stalled.url}")


async def test_one_chats_updates_are_handled_in_order_the_second_waits_for_the_first(
    bot: Bot, stalled: StalledFeed
) -> None:
    bot.api.push_message(ADMIN_ID, f"/addfeed {stalled.url}")
    bot.api.push_message(ADMIN_ID, "/feeds")
    await stalled.requested()
    await bot.settle(USER_ID)  # other chats are answered meanwhile
    assert bot.api.messages_to(ADMIN_ID) == []  # /feeds waits for /addfeed

    stalled.release.set()
    replies = await bot.api.wait_for_message(ADMIN_ID, count=2)
    assert replies[0].text.startswith(f"Added {stalled.url}")
    assert replies[1].text.startswith("Feeds (1)")  # it saw what /addfeed stored


async def test_commands_sent_at_once_in_one_chat_see_each_others_changes(bot: Bot) -> None:
    for topic in ("customs", "typhoon", "lighthouse"):
        bot.api.push_message(USER_ID, f"/subscribe {topic}")
    bot.api.push_message(USER_ID, "/list")
    replies = await bot.api.wait_for_message(USER_ID, count=4)

    assert all(r.text.startswith("Following ") for r in replies[:3])
    assert replies[3].text.startswith("Topics followed here (3)")


# --- replies under flood control -------------------------------------------------------


async def test_a_reply_refused_with_429_is_sent_again_after_retry_after(bot: Bot) -> None:
    bot.api.fail_next("sendMessage", status=429, retry_after=1)
    bot.api.push_message(USER_ID, "/help")

    replies = await bot.api.wait_for_message(USER_ID, timeout=5)
    assert len(replies) == 1 and replies[0].text.startswith("Commands")
    refused, sent = bot.api.calls_to("sendMessage")
    assert (refused.status, sent.status) == (429, 200)
    assert sent.at - refused.at >= 1.0


async def test_a_button_answer_refused_with_429_is_sent_again(bot: Bot) -> None:
    start = await bot.say(USER_ID, "/start")
    data = start.reply_markup["inline_keyboard"][0][0]["callback_data"]  # type: ignore[index]
    bot.api.fail_next("answerCallbackQuery", status=429, retry_after=1)

    answer = await bot.press(USER_ID, USER_ID, data, start.message_id)
    assert answer.text is not None and answer.text.startswith("Following ")
    assert [c.status for c in bot.api.calls_to("answerCallbackQuery")] == [429, 200]


async def test_sixty_chats_sending_list_at_once_all_get_their_reply(
    flooded_bot: FloodedBot,
) -> None:
    api = (await flooded_bot(global_per_second=20)).api
    chats = [10_000 + n for n in range(60)]
    for chat_id in chats:
        api.push_message(chat_id, "/list")

    await api.wait_for(lambda: all(api.messages_to(c) for c in chats), timeout=20)
    assert all(len(api.messages_to(c)) == 1 for c in chats)
    assert api.flood_429_count == 0  # paced under the limit, not rescued by retries


async def test_one_chat_sending_twenty_subscribes_in_a_row_gets_twenty_replies(
    flooded_bot: FloodedBot,
) -> None:
    bot = await flooded_bot(global_per_second=50, chat_per_second=5, chat_burst=1)
    api = bot.api
    for n in range(20):
        api.push_message(USER_ID, f"/sub topic number {n}")

    replies = await api.wait_for_message(USER_ID, count=20, timeout=20)
    assert [r.text.splitlines()[0] for r in replies] == [
        f"Following topic number {n}." for n in range(20)
    ]
    assert len(await bot.subscriptions(USER_ID)) == 20


async def test_the_sender_and_the_replies_share_one_budget_and_lose_nothing(
    flooded_bot: FloodedBot,
) -> None:
    bot = await flooded_bot(global_per_second=20)
    api, sessions = bot.api, bot.sessions
    subscribers = await add_chats(sessions, [30_000 + n for n in range(40)])
    await queue_text(sessions, subscribers, "Digest for you")
    askers = [40_000 + n for n in range(30)]
    for chat_id in askers:
        api.push_message(chat_id, "/list")

    await api.wait_for(lambda: all(api.messages_to(c) for c in askers), timeout=20)
    for _ in range(200):  # the sender stores what Telegram answered a moment later
        if {m.state for m in await outbox(sessions)} == {MessageState.sent}:
            break
        await asyncio.sleep(0.1)
    assert {m.state for m in await outbox(sessions)} == {MessageState.sent}
    assert all(len(api.messages_to(c.telegram_id)) == 1 for c in subscribers)
    assert all(len(api.messages_to(c)) == 1 for c in askers)
    assert api.flood_429_count == 0  # together under the double's 20/s


async def test_an_updates_process_and_a_sender_process_on_postgresql_share_send_rate(
    pg_url: str,
) -> None:
    # two processes of one deployment: the front door alone, and a sender; each has a
    # budget of its own, so only the database's shared SEND_RATE keeps them together under
    # Telegram's 20/s (each at 18/s alone would make 36/s)
    async with contextlib.AsyncExitStack() as stack:
        double = await stack.enter_async_context(
            BotAPIDouble(flood_limits=True, global_per_second=20)
        )
        settings = make_settings(double, pg_url, send_rate=18)
        limits = DeliveryLimits(**{**FAST, "send_rate": 18, "private_interval": 1.1})
        engines = []
        for _ in range(2):  # one engine per "process"
            engine = create_engine(pg_url)
            stack.push_async_callback(engine.dispose)
            engines.append(engine)
        async with engines[0].begin() as conn:
            await conn.run_sync(SQLModel.metadata.create_all)
        front, back = (session_factory(engine) for engine in engines)
        subscribers = await add_chats(back, [30_000 + n for n in range(40)])
        askers = [40_000 + n for n in range(40)]
        for chat_id in askers:
            double.push_message(chat_id, "/list")
        stop = asyncio.Event()
        updates = await start_bot(settings, front, stop, roles=("updates",), limits=limits)
        sender = await start_bot(settings, back, stop, roles=("sender",), limits=limits)
        await queue_text(back, subscribers, "Digest for you")
        try:
            await double.wait_for(lambda: all(double.messages_to(c) for c in askers), timeout=30)
            for _ in range(300):
                if {m.state for m in await outbox(back)} == {MessageState.sent}:
                    break
                await asyncio.sleep(0.1)
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(updates, sender), 20)
        assert {m.state for m in await outbox(back)} == {MessageState.sent}
        assert all(len(double.messages_to(c.telegram_id)) == 1 for c in subscribers)
        assert all(len(double.messages_to(c)) == 1 for c in askers)
        assert double.flood_429_count == 0  # together under 20/s: one SEND_RATE
        assert double.spec_violations == []

"""The whole bot (long polling, jobs, sender) against the Bot API double, on a fresh database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import select

from bot.config import Settings
from bot.db import SessionFactory
from bot.delivery.sender import DeliveryLimits
from bot.models import Chat, Match, Release, Subscription, Topic, utcnow
from bot.runtime import serve
from tests.doubles.telegram_api import BotAPIDouble, CallbackAnswer, SentMessage

ADMIN_ID = 4242
USER_ID = 5001
OTHER_USER_ID = 5002
GROUP_ID = -100_200_300
FORUM_ID = -100_400_500


@pytest.fixture
async def api() -> AsyncIterator[BotAPIDouble]:
    async with BotAPIDouble() as double:
        yield double


@pytest.fixture(autouse=True)
def _bot_api_used_correctly(request: pytest.FixtureRequest) -> Any:
    """After every test that used the double: nothing outside the spec, no rejected HTML
    (a send to a closed or deleted forum topic is refused for that, not for its HTML)."""
    if "api" not in request.fixturenames:
        yield
        return
    double: BotAPIDouble = request.getfixturevalue("api")
    yield
    assert double.spec_violations == []
    rejected = [
        (c.method, c.params.get("text"))
        for c in double.calls
        if c.method in {"sendMessage", "editMessageText"}
        and c.status == 400
        and not double.topic_is_gone(c.params.get("chat_id"), c.params.get("message_thread_id"))
    ]
    assert rejected == []


def make_settings(api: BotAPIDouble, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "bot_token": api.token,
        "telegram_api_url": api.base_url,
        "database_url": database_url,
        "feeds": [],
        "admin_ids": [ADMIN_ID],
        "default_timezone": "Asia/Hong_Kong",
        "default_digest_time": "08:00",
        **overrides,
    }
    return Settings(_env_file=None, **values)


@dataclass
class Bot:
    """The running bot and helpers to talk to it the way a person would."""

    api: BotAPIDouble
    sessions: SessionFactory
    settings: Settings

    async def say(self, chat_id: int, text: str, **kwargs: Any) -> SentMessage:
        """Sends `text` from a user; the bot's next message to that chat."""
        before = len(self.api.messages_to(chat_id))
        self.api.push_message(chat_id, text, **kwargs)
        return (await self.api.wait_for_message(chat_id, count=before + 1))[before]

    async def press(
        self, chat_id: int, user_id: int, data: str, message_id: int, **kwargs: Any
    ) -> CallbackAnswer:
        """Presses a button; the bot's answer to the callback query."""
        before = len(self.api.callback_answers)
        self.api.push_callback(chat_id, user_id, data, message_id=message_id, **kwargs)
        await self.api.wait_for(lambda: len(self.api.callback_answers) > before)
        return self.api.callback_answers[before]

    async def stop(self, chat_id: int, *, user_id: int | None = None, **kwargs: Any) -> str:
        """/stop, then Confirm: the bot's last word."""
        question = await self.say(chat_id, "/stop", user_id=user_id, **kwargs)
        assert question.reply_markup is not None, question.text
        before = len(self.api.messages_to(chat_id))
        presser = user_id if user_id is not None else chat_id
        answer = await self.press(chat_id, presser, "v1:stop:ok", question.message_id)
        assert answer.text is not None
        return (await self.api.wait_for_message(chat_id, count=before + 1))[before].text

    async def settle(self, chat_id: int) -> None:
        """Waits until every update pushed so far is handled (a /help round trip)."""
        await self.say(chat_id, "/help")

    async def chat(self, telegram_id: int) -> Chat | None:
        async with self.sessions() as s:
            return (await s.exec(select(Chat).where(Chat.telegram_id == telegram_id))).first()

    async def subscriptions(self, telegram_id: int) -> list[Subscription]:
        async with self.sessions() as s:
            return list(
                (
                    await s.exec(
                        select(Subscription)
                        .join(Chat, Chat.id == Subscription.chat_id)  # type: ignore[arg-type]
                        .where(Chat.telegram_id == telegram_id)
                    )
                ).all()
            )

    async def add_release(
        self,
        title: str,
        *,
        link: str | None = None,
        topic_query: str | None = None,
        days_ago: float = 0,
    ) -> Release:
        """A stored release; with topic_query, matched to that (existing) topic."""
        now = utcnow()
        release = Release(
            link=link or f"https://www.info.gov.hk/gia/general/{abs(hash(title))}.htm",
            guid=link or title,
            title=title,
            summary=title,
            body=title,
            language="en",
            published_at=now - timedelta(days=days_ago),
            content_hash=str(abs(hash(title))),
            first_seen_at=now - timedelta(days=days_ago),
        )
        async with self.sessions() as s:
            s.add(release)
            await s.commit()
            if topic_query is not None:
                topic = (await s.exec(select(Topic).where(Topic.query == topic_query))).one()
                s.add(
                    Match(
                        release_id=release.id,  # type: ignore[arg-type]
                        topic_id=topic.id,  # type: ignore[arg-type]
                        in_title=True,
                        matched_at=release.first_seen_at,  # matched as it is stored
                    )
                )
                await s.commit()
        return release


async def start_bot(
    settings: Settings, sessions: SessionFactory, stop: asyncio.Event, **serve_kwargs: Any
) -> asyncio.Task[None]:
    started = asyncio.Event()
    options: dict[str, Any] = {
        "poll_timeout": 1,
        "poll_tick": 3600,
        "digest_tick": 0.2,
        "progress_interval": 0.05,
        **serve_kwargs,
    }
    task = asyncio.create_task(serve(settings, sessions, stop, started=started, **options))
    waiter = asyncio.create_task(started.wait())
    done, _ = await asyncio.wait({task, waiter}, timeout=15, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        waiter.cancel()
        task.result()  # raises what stopped it
    assert waiter in done, "the bot did not start within 15 s"
    return task


@pytest.fixture
async def bot(api: BotAPIDouble, sessions: SessionFactory, sqlite_url: str) -> AsyncIterator[Bot]:
    settings = make_settings(api, sqlite_url)
    stop = asyncio.Event()
    # the double has no flood limits here: a chat's replies need not wait Telegram's second
    limits = DeliveryLimits.from_settings(settings, private_interval=0.01, group_per_minute=6000)
    task = await start_bot(settings, sessions, stop, limits=limits)
    yield Bot(api, sessions, settings)
    stop.set()
    await asyncio.wait_for(task, 15)

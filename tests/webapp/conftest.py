"""The HTTP server with the Mini App, in-process on a free port, on a fresh SQLite database."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from sqlmodel import select

from bot.config import Settings
from bot.db import SessionFactory
from bot.http import http_server
from bot.models import Chat, Release, utcnow
from bot.subscriptions import Followed, get_chat, list_followed
from tests.webapp.signing import BOT_TOKEN, signed_init_data

USER_ID = 5001


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class MiniAppServer:
    base_url: str  # ends with /app
    sessions: SessionFactory
    settings: Settings

    async def call(
        self, method: str, path: str, body: Any = None, *, init_data: str | None = None
    ) -> tuple[int, Any]:
        """One API call as the page makes it; init_data defaults to a valid one for USER_ID."""
        token = signed_init_data(USER_ID) if init_data is None else init_data
        headers = {"Authorization": f"tma {token}"} if token else {}
        async with (
            aiohttp.ClientSession() as http,
            http.request(
                method, f"{self.base_url}/api/{path}", json=body, headers=headers
            ) as response,
        ):
            return response.status, await response.json()

    async def chat(self, telegram_id: int = USER_ID) -> Chat | None:
        return await get_chat(self.sessions, telegram_id)

    async def followed(self, telegram_id: int = USER_ID) -> list[Followed]:
        chat = await self.chat(telegram_id)
        return [] if chat is None else await list_followed(self.sessions, chat)

    async def chat_count(self) -> int:
        async with self.sessions() as s:
            return len((await s.exec(select(Chat))).all())

    async def add_release(self, title: str, *, hours_ago: float = 1) -> Release:
        at = utcnow() - timedelta(hours=hours_ago)
        release = Release(
            link=f"https://www.info.gov.hk/gia/general/{abs(hash(title))}.htm",
            guid=title,
            title=title,
            summary=title,
            body=title,
            language="en",
            published_at=at,
            content_hash=str(abs(hash(title))),
            first_seen_at=at,
        )
        async with self.sessions() as s:
            s.add(release)
            await s.commit()
        return release


def mini_app_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "bot_token": BOT_TOKEN,
        "database_url": database_url,
        "feeds": [],
        "default_timezone": "Asia/Hong_Kong",
        "default_digest_time": "08:00",
        "public_url": "https://digest.example.org",
        **overrides,
    }
    return Settings(_env_file=None, **values)


@pytest.fixture
async def mini_app(sessions: SessionFactory, sqlite_url: str) -> AsyncIterator[MiniAppServer]:
    settings = mini_app_settings(sqlite_url)
    async with http_server(sessions, "127.0.0.1", free_port(), settings=settings) as port:
        yield MiniAppServer(f"http://127.0.0.1:{port}/app", sessions, settings)

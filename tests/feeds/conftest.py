"""Fixtures for the feed-ingest tests: a feed server, settings, a recorder for the pipeline."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest

from bot.config import Settings
from bot.db import SessionFactory
from tests.doubles.feed_server import FeedServer


@dataclass
class StoredCall:
    new_ids: list[int]
    updated_ids: list[int]
    announce: bool
    corrected_ids: list[int] = field(default_factory=list)


def make_settings(**overrides: object) -> Settings:
    """Settings for tests: no .env, short deadlines."""
    values: dict[str, object] = {"fetch_timeout": 5.0, "poll_interval": 300, "feeds": []}
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
async def feed_server() -> AsyncIterator[FeedServer]:
    async with FeedServer() as server:
        yield server


@pytest.fixture
def stored_calls(monkeypatch: pytest.MonkeyPatch) -> list[StoredCall]:
    """Replaces bot.pipeline.on_releases_stored (matching is tested elsewhere) with a recorder."""
    calls: list[StoredCall] = []

    async def record(
        sessions: SessionFactory,
        new_ids: list[int],
        updated_ids: list[int],
        *,
        announce: bool,
        corrected_ids: Sequence[int] = (),
        mini_app_url: str | None = None,
    ) -> None:
        calls.append(StoredCall(list(new_ids), list(updated_ids), announce, list(corrected_ids)))

    monkeypatch.setattr("bot.pipeline.on_releases_stored", record)
    return calls

"""`press-digest run` as a person runs it: a real process, a Bot API double, a local feed."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.db import PROJECT_ROOT
from tests.doubles.feed_server import FeedServer
from tests.doubles.telegram_api import BotAPIDouble
from tests.telegram.conftest import USER_ID


def bot_environment(tmp_path: Path, **values: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k.upper() not in {"BOT_TOKEN", "TELEGRAM_API_URL", "DATABASE_URL", "FEEDS", "ADMIN_IDS"}
    }
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    env["DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    env.update(values)
    return env


@pytest.fixture
async def feed_server(feeds_dir: Path) -> AsyncIterator[FeedServer]:
    async with FeedServer() as server:
        server.add_file("/gia.xml", feeds_dir / "hk-gia-general-en-seed.xml")
        yield server


async def test_run_answers_start_and_stops_cleanly_on_sigterm(
    api: BotAPIDouble, feed_server: FeedServer, tmp_path: Path
) -> None:
    env = bot_environment(
        tmp_path,
        BOT_TOKEN=api.token,
        TELEGRAM_API_URL=api.base_url,
        FEEDS=feed_server.url("/gia.xml"),
        LOG_LEVEL="DEBUG",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", cwd=tmp_path, env=env, stderr=asyncio.subprocess.PIPE
    )
    try:
        api.push_message(USER_ID, "/start")
        reply = (await api.wait_for_message(USER_ID, timeout=60))[0]
        assert reply.text.startswith("Hello!")
        await api.wait_for(lambda: bool(feed_server.requests_for("/gia.xml")), timeout=30)
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    log = stderr.decode()
    assert process.returncode == 0, log[-2000:]
    assert api.token not in log
    assert api.token.split(":", 1)[1] not in log


async def test_run_without_a_token_says_where_to_get_one(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        cwd=tmp_path,
        env=bot_environment(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2
    lines = stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "@BotFather" in lines[0]
    assert stdout == b""


async def test_run_with_a_rejected_token_exits_2_without_showing_it(
    api: BotAPIDouble, tmp_path: Path
) -> None:
    wrong = "999999:wrong-token-wrong-token-wrong-token"
    env = bot_environment(
        tmp_path, BOT_TOKEN=wrong, TELEGRAM_API_URL=api.base_url, FEEDS="http://127.0.0.1:9/x.xml"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", cwd=tmp_path, env=env, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    log = stderr.decode()
    assert process.returncode == 2
    assert "rejected BOT_TOKEN" in log and "@BotFather" in log
    assert "wrong-token" not in log

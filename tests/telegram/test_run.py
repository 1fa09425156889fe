"""`press-digest run` as a person runs it: a real process, a Bot API double, a local feed."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.doubles.feed_server import FeedServer
from tests.doubles.telegram_api import BotAPIDouble
from tests.telegram.conftest import USER_ID

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bot_environment(tmp_path: Path, **values: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k.upper() not in {"BOT_TOKEN", "TELEGRAM_API_URL", "DATABASE_URL", "FEEDS", "ADMIN_IDS"}
    }
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    env["HTTP_PORT"] = "0"  # no HTTP server unless a test asks for one (tests run side by side)
    env["DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    env.update(values)
    return env


async def start_run(env: dict[str, str], tmp_path: Path) -> tuple[asyncio.subprocess.Process, Path]:
    """`python -m bot run` left running, its log in a file: a pipe read only at the end fills
    (64 kB; LOG_LEVEL=DEBUG gets there) and the bot blocks on its next log line."""
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", cwd=tmp_path, env=env, stderr=out
        )
    return process, log


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
        HTTP_PORT=str(port := free_port()),
    )
    process, log_file = await start_run(env, tmp_path)
    try:
        api.push_message(USER_ID, "/start")
        reply = (await api.wait_for_message(USER_ID, timeout=60))[0]
        assert reply.text.startswith("Hello!")
        await api.wait_for(lambda: bool(feed_server.requests_for("/gia.xml")), timeout=30)
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/healthz") as response,
        ):
            assert response.status == 200
            health = await response.json()
        assert health["status"] == "ok" and health["database"] == "ok"
        assert health["role"] == "all" and isinstance(health["outbox_depth"], int)
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    log = log_file.read_text()
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


async def test_run_with_an_unreachable_bot_api_names_telegram_api_url(tmp_path: Path) -> None:
    env = bot_environment(
        tmp_path,
        BOT_TOKEN="123456:TEST-token-abcdefghijklmnopqrstuvwxyz",
        TELEGRAM_API_URL="http://127.0.0.1:9/bot",  # nothing listens on port 9
        FEEDS="http://127.0.0.1:9/x.xml",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", cwd=tmp_path, env=env, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    last = stderr.decode().strip().splitlines()[-1]
    assert process.returncode == 1
    assert "TELEGRAM_API_URL" in last and "127.0.0.1:9" in last
    assert "TEST-token" not in stderr.decode()


async def test_run_with_a_taken_http_port_exits_2_naming_http_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = bot_environment(
            tmp_path,
            BOT_TOKEN="123456:TEST-token-abcdefghijklmnopqrstuvwxyz",
            TELEGRAM_API_URL="http://127.0.0.1:9/bot",
            FEEDS="http://127.0.0.1:9/x.xml",
            HTTP_PORT=str(taken.getsockname()[1]),
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            cwd=tmp_path,
            env=env,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(process.communicate(), 60)
    lines = stderr.decode().strip().splitlines()
    assert process.returncode == 2
    assert "HTTP_PORT" in lines[-1]


async def test_sigterm_stops_within_10_s_while_polling_backs_off(
    api: BotAPIDouble, tmp_path: Path
) -> None:
    """Telegram says 429 retry_after=30 to getUpdates: PTB sleeps 30 s; SIGTERM must not wait."""
    env = bot_environment(
        tmp_path, BOT_TOKEN=api.token, TELEGRAM_API_URL=api.base_url, FEEDS="http://127.0.0.1:9/x"
    )
    process, log_file = await start_run(env, tmp_path)
    try:
        api.push_message(USER_ID, "/help")
        await api.wait_for_message(USER_ID, timeout=60)
        polls = len(api.calls_to("getUpdates"))
        api.fail_next("getUpdates", status=429, retry_after=30)
        await api.wait_for(lambda: len(api.calls_to("getUpdates")) > polls, timeout=60)
        await asyncio.sleep(0.5)  # the updater is now asleep for 30 s
        started = asyncio.get_running_loop().time()
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)
        took = asyncio.get_running_loop().time() - started
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, log_file.read_text()[-2000:]
    assert took < 10, f"stopping took {took:.1f} s"

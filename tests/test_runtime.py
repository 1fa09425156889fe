"""`press-digest run --role`: which roles a process runs, the one-line error, /healthz's role."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from bot.cli import main
from bot.runtime import ROLES, parse_roles, role_label
from tests.telegram.test_run import bot_environment, free_port


def test_roles_are_comma_separated_in_any_order_and_all_is_every_role() -> None:
    assert parse_roles("all") == ROLES == ("updates", "poller", "scheduler", "sender")
    assert parse_roles("sender, poller") == ("poller", "sender")
    assert parse_roles("SENDER") == ("sender",)
    assert role_label(parse_roles("all")) == "all"
    assert role_label(parse_roles("scheduler,updates")) == "updates,scheduler"


@pytest.mark.parametrize("value", ["senders", "sender,mailer", ","])
def test_an_unknown_role_exits_2_with_one_line_naming_role(
    value: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOT_TOKEN", "123456:TEST-token-abcdefghijklmnopqrstuvwxyz")
    assert main(["run", "--role", value]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--role" in err


async def test_healthz_reports_the_roles_of_the_process(tmp_path: Path) -> None:
    port = free_port()
    env = bot_environment(
        tmp_path,
        BOT_TOKEN="123456:TEST-token-abcdefghijklmnopqrstuvwxyz",
        TELEGRAM_API_URL="http://127.0.0.1:9/bot",  # the scheduler and poller never call it
        HTTP_PORT=str(port),
        FEEDS="",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", "--role", "scheduler,poller",
        env=env, cwd=tmp_path, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        body = None
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                        body = await response.json()
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
        assert body is not None and body["status"] == "ok"
        assert body["role"] == "poller,scheduler"
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 15)
    assert process.returncode == 0, err.decode()


def _imports(path: Path) -> set[str]:
    import ast

    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


BOT = Path(__file__).resolve().parents[1] / "bot"


def test_only_the_telegram_transport_imports_telegram_in_delivery() -> None:
    importers = {
        path.name
        for path in (BOT / "delivery").glob("*.py")
        if any(name == "telegram" or name.startswith("telegram.") for name in _imports(path))
    }
    assert importers == {"telegram_transport.py"}


def test_delivery_does_not_import_digest_nor_the_telegram_layer() -> None:
    # digest queues into the outbox; delivery importing digest back would be a cycle
    for path in (BOT / "delivery").glob("*.py"):
        upward = {n for n in _imports(path) if n.startswith(("bot.digest", "bot.telegram"))}
        assert not upward, f"{path.name} imports {upward}"

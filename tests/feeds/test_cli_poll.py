"""`press-digest poll --json` end to end: loopback feed servers, a SQLite file, stdout JSON."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bot.cli import main
from tests.doubles.feed_server import FeedServer
from tests.feeds.conftest import StoredCall


async def test_poll_json_prints_exactly_one_report_per_feed(
    feed_server: FeedServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    stored_calls: list[StoredCall],
    feeds_dir: Path,
) -> None:
    good = feed_server.add_file("/general_en.xml", feeds_dir / "hk-gia-general-en-seed.xml")
    broken = feed_server.add_status("/gone.xml", 404)
    html = feed_server.add_html_page("/home.html")
    monkeypatch.chdir(tmp_path)  # no .env from the checkout
    monkeypatch.setenv("FEEDS", f"{good}, {broken} {html}")
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'poll.db'}")
    monkeypatch.setenv("LOG_LEVEL", "INFO")

    # main() runs its own event loop (asyncio.run): a thread, while the server runs on ours
    first_exit = await asyncio.to_thread(main, ["poll", "--json"])
    first = json.loads(capsys.readouterr().out)
    second_exit = await asyncio.to_thread(main, ["poll", "--json"])
    second = json.loads(capsys.readouterr().out)

    assert first_exit == second_exit == 0
    assert first == [
        {"url": good, "status": "ok", "new": 2, "updated": 0, "error": None},
        {"url": broken, "status": "error", "new": 0, "updated": 0, "error": "http_404: Not Found"},
        {
            "url": html,
            "status": "error",
            "new": 0,
            "updated": 0,
            "error": "not_a_feed: the server sent an HTML page (text/html)",
        },
    ]
    assert [r["status"] for r in second] == ["not_modified", "error", "error"]
    assert [(c.announce, len(c.new_ids)) for c in stored_calls] == [(False, 2)]


async def test_poll_exits_1_when_no_feed_could_be_fetched(
    feed_server: FeedServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    broken = feed_server.add_status("/gone.xml", 404)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FEEDS", f"{broken} http://127.0.0.1:9/refused.xml")
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'poll.db'}")

    exit_code = await asyncio.to_thread(main, ["poll", "--json"])

    captured = capsys.readouterr()
    assert exit_code == 1
    assert [r["status"] for r in json.loads(captured.out)] == ["error", "error"]
    assert "no feed could be fetched" in captured.err


async def test_poll_with_no_feeds_at_all_exits_1_and_names_feeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FEEDS", " ")
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'poll.db'}")

    assert await asyncio.to_thread(main, ["poll"]) == 1
    assert "FEEDS" in capsys.readouterr().err

"""GET /metrics: the names of the contract, and figures that move with what the bot does."""

from __future__ import annotations

import socket

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bot.config import Settings
from bot.feeds.poller import sync_configured_feeds
from bot.http import http_server
from bot.pipeline import poll_all
from tests.delivery.helpers import add_chats, queue_text
from tests.doubles.feed_server import FeedServer, rss
from tests.doubles.telegram_api import BotAPIDouble

CONTRACT = {  # the contract's names, as families (a counter's samples end in _total)
    "press_digest_messages_sent",
    "press_digest_messages_failed",
    "press_digest_outbox_depth",
    "press_digest_telegram_retry_after",
    "press_digest_releases_ingested",
    "press_digest_feed_errors",
    "press_digest_send_seconds",
}


def _port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _families(port: int) -> dict[str, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    return {family.name: family.type for family in text_string_to_metric_families(text)}


async def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(figures, name: str, **labels: str) -> float:
    return figures.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_follow_polls_and_sends(
    sessions, api: BotAPIDouble, make_sender, settings: Settings
) -> None:
    port = _port()
    async with http_server(sessions, "127.0.0.1", port), FeedServer() as feeds:
        before = await _scrape(port)
        families = await _families(port)
        assert families.keys() >= CONTRACT
        assert families["press_digest_send_seconds"] == "histogram"
        assert families["press_digest_messages_sent"] == "counter"

        good = feeds.add_feed("/good.xml", rss([{"title": "A", "link": "https://x.example/a"}]))
        gone = feeds.add_status("/gone.xml", 404)
        await sync_configured_feeds(sessions, [good, gone])
        await poll_all(sessions, settings)
        chats = await add_chats(sessions, [9101, 9102, 9103])
        await queue_text(sessions, chats, "hello")
        queued = await _scrape(port)
        api.fail_next("sendMessage", status=429, retry_after=1)
        await make_sender()(sessions).drain(timeout=20)
        after = await _scrape(port)

    def delta(name: str, figures, **labels: str) -> float:
        return _value(figures, name, **labels) - _value(before, name, **labels)

    assert delta("press_digest_releases_ingested_total", queued) == 1
    assert delta("press_digest_feed_errors_total", queued, reason="http_404") == 1
    assert _value(queued, "press_digest_outbox_depth") == 3
    assert delta("press_digest_messages_sent_total", after) == 3
    assert delta("press_digest_telegram_retry_after_total", after) == 1
    assert delta("press_digest_send_seconds_count", after) == 4  # three sent, one 429
    assert _value(after, "press_digest_outbox_depth") == 0

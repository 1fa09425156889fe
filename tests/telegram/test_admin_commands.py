"""Admin commands: broadcast with Confirm / Cancel and a live tally, stats, feeds; refusals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlmodel import select

from bot.models import Broadcast, BroadcastState, Feed, OutboxMessage
from bot.stats import collect_stats, render_stats_text
from tests.doubles.feed_server import FeedServer
from tests.telegram.conftest import ADMIN_ID, GROUP_ID, USER_ID, Bot

ADMIN_COMMANDS = (
    "/broadcast hi",
    "/stats",
    "/feeds",
    "/addfeed https://example.org/x.xml",
    "/removefeed 1",
)


@pytest.fixture
async def feed_server() -> AsyncIterator[FeedServer]:
    async with FeedServer() as server:
        yield server


async def test_admin_commands_are_refused_to_everyone_else(bot: Bot) -> None:
    for command in ADMIN_COMMANDS:
        reply = await bot.say(USER_ID, command)
        assert reply.text == "This command is for admins.", command
    zh = await bot.say(USER_ID + 1, "/stats", language_code="zh-hant")
    assert zh.text == "此指令只供管理員使用。"
    async with bot.sessions() as s:
        assert (await s.exec(select(Broadcast))).all() == []
        assert (await s.exec(select(Feed))).all() == []


async def test_stats_shows_the_same_figures_as_the_command_line(bot: Bot) -> None:
    await bot.say(USER_ID, "/subscribe customs")
    reply = await bot.say(ADMIN_ID, "/stats")
    expected = render_stats_text(await collect_stats(bot.sessions))
    assert reply.text == "Statistics\n" + expected
    assert "<pre>" in reply.html


async def _active_chats(bot: Bot, count: int) -> list[int]:
    ids = [USER_ID + n for n in range(count)]
    for chat_id in ids:
        await bot.say(chat_id, "/start")
    return ids


async def test_broadcast_preview_confirm_and_final_tally(bot: Bot) -> None:
    readers = await _active_chats(bot, 2)
    bot.api.block_chat(readers[1])
    text = "<b>Maintenance</b> tonight &amp; tomorrow"
    preview = await bot.say(ADMIN_ID, f"/broadcast {text}")
    assert preview.text.endswith("Maintenance tonight & tomorrow")
    assert "Preview of broadcast #1" in preview.text
    assert preview.reply_markup is not None
    confirm, cancel = [b["callback_data"] for b in preview.reply_markup["inline_keyboard"][0]]
    assert (confirm, cancel) == ("v1:bc:ok:1", "v1:bc:no:1")
    async with bot.sessions() as s:
        assert (await s.exec(select(OutboxMessage))).all() == []  # nothing before Confirm

    answer = await bot.press(ADMIN_ID, ADMIN_ID, confirm, preview.message_id)
    assert answer.text == "Queued to 3 chats"  # the two readers and the admin
    await bot.api.wait_for(
        lambda: any(m.text.startswith("Broadcast #1 finished") for m in bot.api.edited)
    )
    final = [m for m in bot.api.edited if m.text.startswith("Broadcast #1 finished")][-1]
    assert final.text == "Broadcast #1 finished: 2 delivered, 1 blocked, 0 failed (of 3)."
    delivered = [m for m in bot.api.messages_to(readers[0]) if m.html == text]
    assert len(delivered) == 1

    again = await bot.press(ADMIN_ID, ADMIN_ID, confirm, preview.message_id)
    assert again.text == "This broadcast was already confirmed or cancelled."
    late_cancel = await bot.press(ADMIN_ID, ADMIN_ID, cancel, preview.message_id)
    assert late_cancel.text == "This broadcast was already confirmed or cancelled."
    async with bot.sessions() as s:
        assert len((await s.exec(select(OutboxMessage))).all()) == 3


async def test_broadcast_cancel_queues_nothing(bot: Bot) -> None:
    await _active_chats(bot, 1)
    preview = await bot.say(ADMIN_ID, "/broadcast Hello all")
    answer = await bot.press(ADMIN_ID, ADMIN_ID, "v1:bc:no:1", preview.message_id)
    assert answer.text == "Cancelled"
    notice = (await bot.api.wait_for_message(ADMIN_ID, count=2))[-1]
    assert notice.text == "Broadcast #1 cancelled; nothing was sent."
    stale = await bot.press(ADMIN_ID, ADMIN_ID, "v1:bc:ok:1", preview.message_id)
    assert stale.text == "This broadcast was already confirmed or cancelled."
    async with bot.sessions() as s:
        assert (await s.exec(select(OutboxMessage))).all() == []
        assert (await s.exec(select(Broadcast))).one().state == BroadcastState.cancelled


async def test_broadcast_buttons_are_for_admins(bot: Bot) -> None:
    bot.api.set_chat_member_status(GROUP_ID, ADMIN_ID, "administrator")
    preview = await bot.say(GROUP_ID, "/broadcast Hello all", user_id=ADMIN_ID, chat_type="group")
    answer = await bot.press(GROUP_ID, USER_ID, "v1:bc:ok:1", preview.message_id)
    assert answer.text == "This button is for admins."
    async with bot.sessions() as s:
        assert (await s.exec(select(Broadcast))).one().state == BroadcastState.draft


async def test_broadcast_with_a_bad_tag_is_reported_in_one_line(bot: Bot) -> None:
    reply = await bot.say(ADMIN_ID, "/broadcast <p>Hello</p>")
    assert reply.text.startswith("Not queued: ")
    assert "\n" not in reply.text
    assert (await bot.say(ADMIN_ID, "/broadcast")).text.startswith("Send the text to broadcast")
    async with bot.sessions() as s:
        assert (await s.exec(select(Broadcast))).all() == []
        assert (await s.exec(select(OutboxMessage))).all() == []


async def test_addfeed_polls_at_once_and_feeds_shows_health(
    bot: Bot, feed_server: FeedServer, feeds_dir: Path
) -> None:
    url = feed_server.add_file("/gia.xml", feeds_dir / "hk-gia-general-en-seed.xml")
    broken = feed_server.add_status("/gone.xml", 404)
    reply = await bot.say(ADMIN_ID, f"/addfeed {url}")
    assert reply.text == f"Added {url}: 2 new releases found."
    failed = await bot.say(ADMIN_ID, f"/addfeed {broken}")
    assert failed.text.startswith(f"Added {broken}, but the first poll failed: ")
    listing = await bot.say(ADMIN_ID, "/feeds")
    assert listing.text.startswith("Feeds (2)")
    assert f"1. {url}" in listing.text and "items: 2" in listing.text
    assert f"2. {broken}" in listing.text and "last success: never" in listing.text
    assert "404" in listing.text


async def test_addfeed_takes_only_http_urls(bot: Bot) -> None:
    for command in ("/addfeed ftp://example.org/feed.xml", "/addfeed file:///etc/passwd"):
        reply = await bot.say(ADMIN_ID, command)
        assert reply.text.startswith("Not added: only http:// and https://"), reply.text
    for command in ("/addfeed https://exa mple.org/feed", "/addfeed https://example.org:port/"):
        reply = await bot.say(ADMIN_ID, command)
        assert reply.text.startswith("Not added: "), reply.text
    assert (await bot.say(ADMIN_ID, "/addfeed")).text.startswith("Send the feed's address")
    assert (await bot.say(ADMIN_ID, "/feeds")).text.startswith("No feeds yet")


async def test_removefeed_by_number(bot: Bot, feed_server: FeedServer, feeds_dir: Path) -> None:
    url = feed_server.add_file("/gia.xml", feeds_dir / "hk-gia-general-en-seed.xml")
    await bot.say(ADMIN_ID, f"/addfeed {url}")
    missing = await bot.say(ADMIN_ID, "/removefeed 9")
    assert missing.text == "There is no feed 9; see /feeds, e.g. /removefeed 2"
    removed = await bot.say(ADMIN_ID, "/removefeed 1")
    assert removed.text == f"Removed {url}."
    async with bot.sessions() as s:
        assert (await s.exec(select(Feed))).all() == []


async def test_two_confirm_taps_at_once_queue_once_and_the_second_is_told_politely(
    bot: Bot,
) -> None:
    readers = await _active_chats(bot, 2)
    preview = await bot.say(ADMIN_ID, "/broadcast Tonight only")
    before = len(bot.api.callback_answers)

    for _ in range(2):  # a double tap: both callback queries arrive before either is answered
        bot.api.push_callback(ADMIN_ID, ADMIN_ID, "v1:bc:ok:1", message_id=preview.message_id)
    await bot.api.wait_for(lambda: len(bot.api.callback_answers) >= before + 2)

    answers = sorted(a.text for a in bot.api.callback_answers[before:])
    assert answers == ["Queued to 3 chats", "This broadcast was already confirmed or cancelled."]
    await bot.api.wait_for(
        lambda: any(m.text.startswith("Broadcast #1 finished") for m in bot.api.edited)
    )
    for chat_id in [*readers, ADMIN_ID]:
        assert [m.text for m in bot.api.messages_to(chat_id)].count("Tonight only") == 1
    queued_notes = [m for m in bot.api.messages_to(ADMIN_ID) if m.text.startswith("Broadcast #1")]
    assert len(queued_notes) == 1  # one progress message, edited to the final tally


async def test_broadcast_with_a_bare_ampersand_is_refused_before_any_draft(bot: Bot) -> None:
    reply = await bot.say(ADMIN_ID, "/broadcast Fish & chips")

    assert reply.text == "Not queued: a bare '&' at character 6: write &amp; for a literal &"
    async with bot.sessions() as s:
        assert (await s.exec(select(Broadcast))).all() == []

"""Broadcasts: checked first, cancel queues nothing, confirm queues once, the tally adds up."""

from __future__ import annotations

import asyncio

import pytest
from sqlmodel import select

from bot.cli import main
from bot.db import create_engine, migrate, session_factory
from bot.delivery.broadcast import (
    broadcast_tally,
    cancel_broadcast,
    confirm_broadcast,
    create_broadcast,
    queue_broadcast,
)
from bot.delivery.html import TelegramHTMLError
from bot.models import Broadcast, BroadcastState, Chat, MessageKind, OutboxMessage
from tests.delivery.helpers import add_chats, outbox


async def _deactivate(sessions, chat: Chat) -> None:
    async with sessions() as s:
        row = await s.get(Chat, chat.id)
        row.active = False
        await s.commit()


async def test_bad_html_is_refused_in_one_line_and_nothing_is_stored(any_sessions):
    with pytest.raises(TelegramHTMLError) as caught:
        await create_broadcast(any_sessions, "<p>Maintenance tonight</p>", created_by=1)
    assert str(caught.value).startswith("unsupported tag <p>")
    async with any_sessions() as s:
        assert (await s.exec(select(Broadcast))).all() == []


async def test_cancel_queues_nothing(any_sessions):
    await add_chats(any_sessions, [1, 2])
    draft = await create_broadcast(any_sessions, "<b>hi</b>", created_by=1)
    assert draft.state == BroadcastState.draft

    cancelled = await cancel_broadcast(any_sessions, draft.id)

    assert cancelled.state == BroadcastState.cancelled
    assert await outbox(any_sessions) == []
    # and a late Confirm on a cancelled preview does nothing either
    late = await confirm_broadcast(any_sessions, draft.id)
    assert late.broadcast.state == BroadcastState.cancelled and not late.queued_now
    assert await outbox(any_sessions) == []
    assert await cancel_broadcast(any_sessions, 999) is None


async def test_confirm_twice_queues_once_to_every_active_chat_paused_included(any_sessions):
    active, paused, blocked = await add_chats(any_sessions, [1, 2, 3])
    async with any_sessions() as s:
        row = await s.get(Chat, paused.id)
        row.paused = True
        await s.commit()
    await _deactivate(any_sessions, blocked)
    draft = await create_broadcast(any_sessions, "<b>Service note</b>", created_by=99)

    first = await confirm_broadcast(any_sessions, draft.id)
    second = await confirm_broadcast(any_sessions, draft.id)

    assert (first.queued_now, second.queued_now) == (True, False)
    assert first.broadcast.state == second.broadcast.state == BroadcastState.queued
    assert first.broadcast.total == second.broadcast.total == 2
    rows = await outbox(any_sessions)
    assert sorted(r.chat_id for r in rows) == [active.id, paused.id]
    assert {(r.kind, r.text, r.broadcast_id) for r in rows} == {
        (MessageKind.broadcast, "<b>Service note</b>", draft.id)
    }


async def test_two_taps_at_once_queue_one_copy_per_chat(any_sessions):
    chats = await add_chats(any_sessions, [11, 12, 13])
    draft = await create_broadcast(any_sessions, "<b>Once</b>", created_by=1)

    taps = await asyncio.gather(*(confirm_broadcast(any_sessions, draft.id) for _ in range(2)))

    assert sorted(tap.queued_now for tap in taps) == [False, True]  # one tap queued it
    assert [tap.broadcast.total for tap in taps] == [3, 3]
    rows = await outbox(any_sessions)
    assert sorted(r.chat_id for r in rows) == sorted(chat.id for chat in chats)


async def test_tally_counts_delivered_blocked_and_failed_after_a_drain(sessions, api, make_sender):
    await add_chats(sessions, [501, 502, 503, 504, 505])
    api.block_chat(505)
    # the first request fails for good (a 400 about the message), whichever chat it is for
    api.fail_next("sendMessage", status=400, description="Bad Request: not enough rights")
    broadcast = await queue_broadcast(sessions, "<i>Hello everyone</i>", created_by=7)
    assert broadcast.total == 5
    progress = []

    sender = make_sender(concurrency=1, lanes=0)(sessions)
    sender._on_progress = progress.append
    await sender.drain(timeout=30)

    tally = await broadcast_tally(sessions, broadcast.id)
    assert (tally.total, tally.delivered, tally.blocked, tally.failed, tally.pending) == (
        5,
        3,
        1,
        1,
        0,
    )
    assert tally.done
    assert len(api.sent) == 3 and 505 not in {m.chat_id for m in api.sent}
    async with sessions() as s:
        assert (await s.get(Broadcast, broadcast.id)).state == BroadcastState.done
    assert broadcast.id in {b for p in progress for b in p.finished_broadcast_ids}


async def test_press_digest_broadcast_queues_to_every_active_chat(tmp_path, monkeypatch, capsys):
    pytest.importorskip("bot.feeds.poller")  # the CLI registers FEEDS through it
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("FEEDS", "https://feeds.example.test/a.xml")
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    engine = create_engine(url)
    await migrate(engine)
    sessions = session_factory(engine)
    await add_chats(sessions, [1, 2, -3])
    async with sessions() as s:
        s.add(Chat(telegram_id=4, active=False))
        await s.commit()
    await engine.dispose()

    code = await asyncio.to_thread(main, ["broadcast", "<b>hi</b>", "all"])

    assert code == 0
    assert "queued to 3 chats" in capsys.readouterr().out
    engine = create_engine(url)
    async with session_factory(engine)() as s:
        rows = (await s.exec(select(OutboxMessage))).all()
    await engine.dispose()
    assert len(rows) == 3 and {r.text for r in rows} == {"<b>hi</b> all"}

    code = await asyncio.to_thread(main, ["broadcast", "<p>oops</p>"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "unsupported tag <p>" in err


async def test_send_digests_drains_the_outbox_and_sums_it_up(sessions, api):
    from bot.config import Settings
    from bot.runtime import send_digests
    from tests.delivery.helpers import queue_text

    ok, blocked = await add_chats(sessions, [801, 802])
    await queue_text(sessions, [ok, blocked], "<b>queued earlier</b>")
    api.block_chat(802)
    settings = Settings(bot_token=api.token, telegram_api_url=api.base_url, send_rate=50)

    summary = await send_digests(sessions, settings, force=False)

    assert summary == "queued 0, sent 1, blocked 1, failed 0"
    assert [m.text for m in api.messages_to(801)] == ["queued earlier"]


async def test_a_bare_ampersand_is_refused_before_any_draft(any_sessions):
    with pytest.raises(TelegramHTMLError) as caught:
        await create_broadcast(any_sessions, "Fish & chips", created_by=1)
    assert str(caught.value) == "a bare '&' at character 6: write &amp; for a literal &"
    async with any_sessions() as s:
        assert (await s.exec(select(Broadcast))).all() == []

"""Forum topics that are closed or deleted: their digests come to the group's main thread."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlmodel import select

from bot.models import Chat, MessageState, Subscription, Topic
from tests.delivery.helpers import add_chats, outbox, queue_text
from tests.doubles.telegram_api import BotAPIDouble, SentMessage

FORUM = -100_777_000
NOTE_EN = "This topic is closed; digests for it now come here."
NOTE_ZH = "此主題已關閉；其摘要現在會發送到這裏。"


def main_thread(api: BotAPIDouble) -> list[str]:
    return [m.text for m in api.messages_to(FORUM) if m.message_thread_id is None]


def in_thread(api: BotAPIDouble, thread_id: int) -> list[SentMessage]:
    return api.messages_to(FORUM, thread_id)


async def forum_following(sessions, topics_by_thread: dict[int, list[str]], language: str = "en"):
    (forum,) = await add_chats(sessions, [FORUM], chat_type="supergroup")
    async with sessions() as s:
        stored = await s.get(Chat, forum.id)
        stored.language = language
        s.add(stored)
        for thread_id, queries in topics_by_thread.items():
            for query in queries:
                topic = (await s.exec(select(Topic).where(Topic.query == query))).first()
                if topic is None:
                    topic = Topic(query=query, label=query)
                    s.add(topic)
                    await s.flush()
                s.add(
                    Subscription(
                        chat_id=forum.id, thread_id=thread_id, topic_id=topic.id, query_text=query
                    )
                )
        await s.commit()
    return forum


async def threads_followed(sessions, forum) -> list[tuple[int, str]]:
    async with sessions() as s:
        subs = (await s.exec(select(Subscription).where(Subscription.chat_id == forum.id))).all()
    return sorted((sub.thread_id, sub.query_text) for sub in subs)


@pytest.mark.parametrize(
    "gone", [BotAPIDouble.close_topic, BotAPIDouble.delete_topic], ids=["closed", "deleted"]
)
async def test_a_gone_topic_gets_its_digest_in_the_main_thread_after_a_note(
    sessions, api, make_sender, gone: Callable[[BotAPIDouble, int, int], None]
):
    forum = await forum_following(sessions, {77: ["customs"], 88: ["typhoon"]})
    await queue_text(sessions, [forum], "customs digest (1/2)", thread_id=77)
    await queue_text(sessions, [forum], "customs digest (2/2)", thread_id=77)
    await queue_text(sessions, [forum], "typhoon digest", thread_id=88)
    gone(api, FORUM, 77)

    await make_sender()(sessions).drain(timeout=30)

    assert main_thread(api) == [NOTE_EN, "customs digest (1/2)", "customs digest (2/2)"]
    assert [m.text for m in in_thread(api, 88)] == ["typhoon digest"]
    assert {r.state for r in await outbox(sessions)} == {MessageState.sent}
    # later digests of that topic are queued for the main thread: it follows customs there
    assert await threads_followed(sessions, forum) == [(0, "customs"), (88, "typhoon")]


async def test_the_note_comes_once_and_in_the_groups_language(sessions, api, make_sender):
    forum = await forum_following(sessions, {77: ["customs"]}, language="zh")
    await queue_text(sessions, [forum], "第一份摘要", thread_id=77)
    api.close_topic(FORUM, 77)
    await make_sender()(sessions).drain(timeout=30)
    # a message queued for the topic before the move (another worker's) needs no second note
    await queue_text(sessions, [forum], "第二份摘要", thread_id=77)

    await make_sender()(sessions).drain(timeout=30)

    assert main_thread(api) == [NOTE_ZH, "第一份摘要", "第二份摘要"]


async def test_a_topic_already_followed_in_the_main_thread_is_followed_there_once(
    sessions, api, make_sender
):
    forum = await forum_following(sessions, {0: ["customs"], 77: ["customs", "excise"]})
    await queue_text(sessions, [forum], "digest", thread_id=77)
    api.delete_topic(FORUM, 77)

    await make_sender()(sessions).drain(timeout=30)

    assert main_thread(api) == [NOTE_EN, "digest"]
    assert await threads_followed(sessions, forum) == [(0, "customs"), (0, "excise")]


async def test_a_closed_main_thread_is_a_failure_not_a_loop(sessions, api, make_sender):
    forum = await forum_following(sessions, {0: ["customs"]})
    await queue_text(sessions, [forum], "digest")
    api.fail_next("sendMessage", status=400, description="Bad Request: TOPIC_CLOSED")

    stats = await make_sender()(sessions).drain(timeout=30)

    assert stats.failed == 1
    assert [r.state for r in await outbox(sessions)] == [MessageState.failed]

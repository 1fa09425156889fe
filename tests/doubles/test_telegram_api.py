"""The Bot API double answers python-telegram-bot the way Telegram does."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from telegram import (
    Bot,
    ChatMemberAdministrator,
    ChatMemberBanned,
    ChatMemberLeft,
    ChatMemberMember,
    ChatMemberOwner,
    ChatMemberRestricted,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    Update,
)
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
)
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
)

from tests.doubles.telegram_api import BotAPIDouble, EntityParseError, parse_html, utf16_len

# PTB 22 warns that RetryAfter.retry_after becomes a timedelta; _seconds reads both forms.
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

PRIVATE = 1001
GROUP = -2002
SUPERGROUP = -1001234567890


def _seconds(retry_after: int | timedelta) -> float:
    return retry_after.total_seconds() if isinstance(retry_after, timedelta) else retry_after


@pytest.fixture
async def api() -> AsyncIterator[BotAPIDouble]:
    async with BotAPIDouble() as double:
        yield double


@pytest.fixture
async def bot(api: BotAPIDouble) -> AsyncIterator[Bot]:
    async with api.ptb_bot() as ptb_bot:
        api.calls.clear()  # initialising the bot called getMe; tests look at their own calls
        yield ptb_bot


async def test_get_me_describes_the_bot(api: BotAPIDouble, bot: Bot) -> None:
    me = await bot.get_me()

    assert me.is_bot and me.username == "press_digest_bot"
    assert me.id == int(api.token.split(":")[0])
    assert [c.method for c in api.calls] == ["getMe"]
    assert api.calls[0].status == 200


async def test_a_wrong_token_is_unauthorized(api: BotAPIDouble) -> None:
    wrong_bot = Bot("999:wrong", base_url=api.base_url, request=api.ptb_request())
    with pytest.raises(InvalidToken):
        await wrong_bot.initialize()
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{api.base_url}999:wrong/getMe")
    assert response.status_code == 401
    assert response.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}


async def test_pushed_start_reaches_a_command_handler_through_long_polling(
    api: BotAPIDouble,
) -> None:
    seen: list[str] = []

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_chat is not None and update.effective_message is not None
        seen.append(update.effective_message.text or "")
        await update.effective_message.reply_text(f"hello {context.args}")

    app = (
        Application.builder()
        .token(api.token)
        .base_url(api.base_url)
        .request(api.ptb_request())
        .get_updates_request(api.ptb_request())
        .build()
    )
    app.add_handler(CommandHandler("start", start))
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=1)
        api.push_message(PRIVATE, "/start now")
        api.push_message(PRIVATE, "/start@press_digest_bot")
        api.push_message(PRIVATE, "/start@some_other_bot")  # addressed to another bot: ignored
        replies = await api.wait_for_message(PRIVATE, count=2)
        await app.updater.stop()
        await app.stop()

    assert seen == ["/start now", "/start@press_digest_bot"]
    assert [r.text for r in replies] == ["hello ['now']", "hello []"]
    assert {"getMe", "deleteWebhook", "getUpdates"} <= {c.method for c in api.calls}
    assert api.spec_violations == []


async def test_valid_html_is_accepted_and_stored_as_plain_text(api: BotAPIDouble, bot: Bot) -> None:
    html = (
        '<b>Customs</b> &amp; <i>Excise</i>: <a href="https://www.info.gov.hk/x.htm">seizure</a> '
        '<span class="tg-spoiler">s</span> <tg-spoiler>t</tg-spoiler> <u>u</u> <s>x</s> &lt;3 '
        '&#169; &#x1F600; <pre><code class="language-python">x = 1</code></pre>'
        "<blockquote expandable>quote</blockquote>"
    )
    message = await bot.send_message(PRIVATE, html, parse_mode="HTML")

    stored = api.sent[-1]
    assert stored.text == "Customs & Excise: seizure s t u x <3 © 😀 x = 1quote"
    assert stored.html == html
    assert message.text == stored.text
    assert message.text_html.startswith("<b>Customs</b> &amp; <i>Excise</i>: <a href=")
    types = [e.type for e in message.entities]
    assert types[:3] == ["bold", "italic", "text_link"]
    assert "pre" in types and "expandable_blockquote" in types
    pre = next(e for e in message.entities if e.type == "pre")
    assert pre.language == "python"
    assert message.chat.type == "private" and message.from_user and message.from_user.is_bot


@pytest.mark.parametrize(
    ("html", "complaint"),
    [
        ("<p>Paragraph</p>", 'unsupported start tag "p" at byte offset 0'),
        ("<b>never closed", 'can\'t find end tag corresponding to start tag "b"'),
        ("<b><i>crossed</b></i>", 'expected "</i>", found "</b>"'),
        ("1 < 2", 'unsupported start tag "" at byte offset 2'),
        ("</b>", "unexpected end tag at byte offset 0"),
        ("<b", "unclosed start tag at byte offset 0"),
        ('<span class="red">x</span>', 'tag "span" must have class "tg-spoiler"'),
        ("<br/>", 'unsupported start tag "br/"'),
        ("é <p>", 'unsupported start tag "p" at byte offset 3'),  # offsets count UTF-8 bytes
    ],
)
async def test_html_violations_are_bad_requests_with_telegrams_text(
    html: str, complaint: str
) -> None:
    async with BotAPIDouble(strict_html=False) as api, api.ptb_bot() as bot:
        with pytest.raises(BadRequest, match="Can't parse entities") as caught:
            await bot.send_message(PRIVATE, html, parse_mode="HTML")

    assert complaint in caught.value.message.lower()


@pytest.mark.parametrize(
    ("html", "complaint"),
    [
        ("<p>Paragraph</p>", "unsupported tag <p> at character 1"),
        ("Wan&nbsp;Chai", "unsupported entity &nbsp; at character 4"),
        ("&copy; 2026", "unsupported entity &copy;"),
        ('<b class="x">bold</b>', "attribute 'class' is not allowed in tag <b>"),
        ('<a href="https://x.org" target="_blank">x</a>', "attribute 'target' is not allowed"),
        ("Fish & chips", "a bare '&' at character 6"),
        ("&#xD83D;", "invalid character reference"),
    ],
)
async def test_strict_html_is_judged_by_the_bots_checker(
    bot: Bot, html: str, complaint: str
) -> None:
    with pytest.raises(BadRequest, match="Can't parse entities") as caught:
        await bot.send_message(PRIVATE, html, parse_mode="HTML")

    assert complaint in caught.value.message


async def test_without_strict_html_unknown_entities_and_attributes_pass_like_on_telegram() -> None:
    async with BotAPIDouble(strict_html=False) as api, api.ptb_bot() as bot:
        await bot.send_message(PRIVATE, 'Wan&nbsp;Chai <b class="x">b</b> AT&T', parse_mode="HTML")

        assert api.sent[-1].text == "Wan&nbsp;Chai b AT&T"
        with pytest.raises(BadRequest, match=r"(?i)unsupported start tag"):
            await bot.send_message(PRIVATE, "<p>x</p>", parse_mode="HTML")


async def test_a_bare_ampersand_is_literal_text_without_strict_html() -> None:
    async with BotAPIDouble(strict_html=False) as api, api.ptb_bot() as bot:
        await bot.send_message(PRIVATE, "Q&A: R & D", parse_mode="HTML")

    assert api.sent[-1].text == "Q&A: R & D"


async def test_text_without_parse_mode_is_sent_verbatim(api: BotAPIDouble, bot: Bot) -> None:
    await bot.send_message(PRIVATE, "<p>not markup</p>")

    assert api.sent[-1].text == "<p>not markup</p>"
    assert api.sent[-1].parse_mode is None


async def test_length_is_counted_in_utf16_units_after_parsing(api: BotAPIDouble, bot: Bot) -> None:
    emoji = "😀"  # two UTF-16 code units
    await bot.send_message(PRIVATE, "<b>" + "a" * 4094 + "</b>" + emoji, parse_mode="HTML")
    assert len(api.sent[-1].text) == 4095

    with pytest.raises(BadRequest, match="Message is too long"):
        await bot.send_message(PRIVATE, "a" * 4095 + emoji)
    with pytest.raises(BadRequest, match="Message is too long"):
        await bot.send_message(PRIVATE, "a" * 4097)
    assert len(api.sent) == 1


async def test_whitespace_is_trimmed_and_empty_text_refused(api: BotAPIDouble, bot: Bot) -> None:
    message = await bot.send_message(PRIVATE, "  \n<b> hi</b>\n ", parse_mode="HTML")

    assert message.text == "hi"
    assert message.entities[0].offset == 0 and message.entities[0].length == 2
    for empty in (" \n ", "<b> </b>"):
        with pytest.raises(BadRequest, match="Message text is empty"):
            await bot.send_message(PRIVATE, empty, parse_mode="HTML")


async def test_markdown_v2_needs_reserved_characters_escaped(api: BotAPIDouble, bot: Bot) -> None:
    with pytest.raises(BadRequest, match="reserved and must be escaped"):
        await bot.send_message(PRIVATE, "Version 1.0!", parse_mode="MarkdownV2")

    await bot.send_message(PRIVATE, r"*Version* 1\.0\!", parse_mode="MarkdownV2")
    assert api.sent[-1].text == "Version 1.0!"
    assert api.sent[-1].entities == [{"type": "bold", "offset": 0, "length": 7}]


async def test_a_blocked_chat_is_forbidden(api: BotAPIDouble, bot: Bot) -> None:
    api.block_chat(PRIVATE)
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_message(PRIVATE, "hi")

    api.push_message(GROUP, "hi", chat_type="group")
    api.block_chat(GROUP)
    with pytest.raises(Forbidden, match="bot was kicked from the group chat"):
        await bot.send_message(GROUP, "hi")
    assert api.sent == []
    assert [c.status for c in api.calls] == [403, 403]


async def test_a_deleted_chat_is_not_found(api: BotAPIDouble, bot: Bot) -> None:
    api.delete_chat(PRIVATE)

    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.send_message(PRIVATE, "hi")
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.send_message("@nobody_here", "hi")


async def test_a_migrated_group_raises_chat_migrated(api: BotAPIDouble, bot: Bot) -> None:
    api.migrate_chat(GROUP, SUPERGROUP)

    with pytest.raises(ChatMigrated) as caught:
        await bot.send_message(GROUP, "hi")

    assert caught.value.new_chat_id == SUPERGROUP
    message = await bot.send_message(caught.value.new_chat_id, "hi again")
    assert message.chat.type == "supergroup"


async def test_forty_quick_messages_to_one_chat_hit_flood_control() -> None:
    async with (
        BotAPIDouble(flood_limits=True) as api,
        api.ptb_bot() as bot,
    ):
        outcomes = await asyncio.gather(
            *(bot.send_message(PRIVATE, f"n{i}") for i in range(40)), return_exceptions=True
        )

        refusals = [o for o in outcomes if isinstance(o, RetryAfter)]
        assert len(api.sent) == 3  # the per-chat burst
        assert len(refusals) == 37 == api.flood_429_count
        assert all(_seconds(r.retry_after) >= 1 for r in refusals)
        # another chat is not affected by the first one's limit
        await bot.send_message(PRIVATE + 1, "other chat")


async def test_a_group_gets_a_limited_number_of_messages_a_minute() -> None:
    async with (
        BotAPIDouble(flood_limits=True, group_per_minute=3, chat_per_second=100) as api,
        api.ptb_bot() as bot,
    ):
        for i in range(3):
            await bot.send_message(GROUP, f"n{i}")
        with pytest.raises(RetryAfter) as caught:
            await bot.send_message(GROUP, "one too many")

        assert 55 <= _seconds(caught.value.retry_after) <= 60
        await bot.send_message(PRIVATE, "private chats have no per-minute limit")
        api.reset_limits()
        await bot.send_message(GROUP, "after reset")
        assert api.flood_429_count == 1


async def test_flood_control_frees_slots_as_time_passes() -> None:
    now = [1000.0]
    async with (
        BotAPIDouble(flood_limits=True, chat_burst=1, clock=lambda: now[0]) as api,
        api.ptb_bot() as bot,
    ):
        await bot.send_message(PRIVATE, "first")
        with pytest.raises(RetryAfter):
            await bot.send_message(PRIVATE, "too soon")
        now[0] += 1.0
        await bot.send_message(PRIVATE, "a second later")
        assert [m.text for m in api.sent] == ["first", "a second later"]


async def test_the_global_limit_spans_all_chats() -> None:
    async with (
        BotAPIDouble(flood_limits=True, global_per_second=5) as api,
        api.ptb_bot() as bot,
    ):
        outcomes = await asyncio.gather(
            *(bot.send_message(PRIVATE + i, "x") for i in range(8)), return_exceptions=True
        )
        assert sum(isinstance(o, RetryAfter) for o in outcomes) == 3
        assert len(api.sent) == 5


async def test_telegram_defaults_one_a_second_per_chat_and_thirty_a_second_in_all() -> None:
    now = [1000.0]
    async with (
        BotAPIDouble(flood_limits=True, chat_burst=1, clock=lambda: now[0]) as api,
        httpx.AsyncClient() as client,
    ):
        url = f"{api.base_url}{api.token}/sendMessage"
        first = await client.post(url, data={"chat_id": PRIVATE, "text": "a"})
        refused = await client.post(url, data={"chat_id": PRIVATE, "text": "b"})
        now[0] += 1.0
        a_second_later = await client.post(url, data={"chat_id": PRIVATE, "text": "c"})
        now[0] += 1.0
        others = [
            await client.post(url, data={"chat_id": PRIVATE + i, "text": "x"}) for i in range(1, 41)
        ]

    assert (first.status_code, a_second_later.status_code) == (200, 200)
    # a 429 is an HTTP status with the wait in parameters, as PTB reads it
    assert refused.status_code == 429
    assert refused.json() == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 1",
        "parameters": {"retry_after": 1},
    }
    assert [r.status_code for r in others].count(200) == 30  # one second of the global limit


async def test_send_latency_slows_sends_but_not_the_other_methods() -> None:
    async with BotAPIDouble(send_latency=0.3) as api, api.ptb_bot() as bot:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await bot.get_me()
        quick = loop.time() - started
        started = loop.time()
        await asyncio.gather(*(bot.send_message(PRIVATE + i, "x") for i in range(3)))
        slow = loop.time() - started

    assert quick < 0.3 <= slow < 1.0  # sends wait side by side


async def test_paid_broadcasts_pass_the_global_limit() -> None:
    async with (
        BotAPIDouble(flood_limits=True, global_per_second=2) as api,
        api.ptb_bot() as bot,
    ):
        for i in range(6):
            await bot.send_message(PRIVATE + i, "x", allow_paid_broadcast=True)
        assert len(api.sent) == 6


async def test_an_unknown_method_is_not_found(api: BotAPIDouble, bot: Bot) -> None:
    with pytest.raises(EndPointNotFound):  # PTB's reading of Telegram's 404
        await bot.do_api_request("sendTelepathy", api_kwargs={"chat_id": PRIVATE})
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{api.base_url}{api.token}/sendTelepathy")

    assert response.status_code == 404
    assert response.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
    assert api.spec_violations == ["unknown method 'sendTelepathy'"] * 2


async def test_an_unknown_parameter_is_refused_and_recorded(api: BotAPIDouble, bot: Bot) -> None:
    with pytest.raises(BadRequest, match="Unknown parameter colour"):
        await bot.send_message(PRIVATE, "hi", api_kwargs={"colour": "red"})

    assert api.spec_violations == ["sendMessage: unknown parameter 'colour'"]
    assert api.sent == []


async def test_missing_required_parameters_are_refused(api: BotAPIDouble) -> None:
    async with httpx.AsyncClient(base_url=f"{api.base_url}{api.token}/") as client:
        no_text = await client.post("sendMessage", data={"chat_id": str(PRIVATE)})
        no_chat = await client.post("sendMessage", data={"text": "hi"})
        no_user = await client.post("getChatMember", data={"chat_id": str(GROUP)})

    assert no_text.status_code == no_chat.status_code == no_user.status_code == 400
    assert no_text.json()["description"] == "Bad Request: message text is empty"
    assert no_chat.json()["description"] == "Bad Request: chat_id is empty"
    assert no_user.json()["description"] == 'Bad Request: parameter "user_id" is required'
    assert api.spec_violations == ["getChatMember: missing required parameter 'user_id'"]


async def test_json_and_form_bodies_are_both_understood(api: BotAPIDouble) -> None:
    async with httpx.AsyncClient(base_url=f"{api.base_url}{api.token}/") as client:
        by_json = await client.post(
            "sendMessage",
            json={"chat_id": PRIVATE, "text": "<b>json</b>", "parse_mode": "HTML"},
        )
        by_form = await client.post(
            "sendMessage",
            data={"chat_id": str(PRIVATE), "text": "123", "disable_notification": "true"},
        )
        by_multipart = await client.post(
            "sendMessage", data={"chat_id": str(PRIVATE), "text": "m"}, files={"x": ("", b"")}
        )
        by_query = await client.get("getMe")

    assert by_json.status_code == 200 and by_json.json()["result"]["text"] == "json"
    assert by_form.status_code == 200 and api.sent[1].text == "123"
    assert api.sent[1].disable_notification is True
    assert by_multipart.status_code == 400  # the stray file field is an unknown parameter
    assert by_query.json()["result"]["username"] == "press_digest_bot"


async def test_a_callback_query_round_trip(api: BotAPIDouble) -> None:
    async def press(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None and query.message is not None
        await query.answer(f"you chose {query.data}", show_alert=True)
        await query.edit_message_text(f"Subscribed to {query.data}")

    app = (
        Application.builder()
        .token(api.token)
        .base_url(api.base_url)
        .request(api.ptb_request())
        .get_updates_request(api.ptb_request())
        .build()
    )
    app.add_handler(CallbackQueryHandler(press))
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=1)
        keyboard = InlineKeyboardMarkup(
            [[InlineKeyboardButton("Customs", callback_data="customs")]]
        )
        sent = await app.bot.send_message(PRIVATE, "Pick a topic", reply_markup=keyboard)
        api.push_callback(PRIVATE, PRIVATE, "customs", message_id=sent.message_id)
        await api.wait_for(lambda: len(api.edited) == 1)
        await app.updater.stop()
        await app.stop()

    assert api.callback_answers[0].text == "you chose customs"
    assert api.callback_answers[0].show_alert is True
    assert api.edited[0].text == "Subscribed to customs"
    assert api.edited[0].reply_markup is None  # an edit without reply_markup drops the keyboard
    assert api.sent[0].reply_markup == keyboard.to_dict()


async def test_an_unknown_callback_query_is_too_old(api: BotAPIDouble, bot: Bot) -> None:
    with pytest.raises(BadRequest, match="Query is too old"):
        await bot.answer_callback_query("12345")


async def test_callback_data_is_limited_to_64_bytes(api: BotAPIDouble, bot: Bot) -> None:
    fits = InlineKeyboardMarkup([[InlineKeyboardButton("ok", callback_data="é" * 32)]])
    await bot.send_message(PRIVATE, "fits", reply_markup=fits)

    too_long = InlineKeyboardMarkup([[InlineKeyboardButton("no", callback_data="é" * 33)]])
    with pytest.raises(BadRequest, match="Button_data_invalid"):
        await bot.send_message(PRIVATE, "too long", reply_markup=too_long)


@pytest.mark.parametrize(
    ("status", "ptb_class"),
    [
        ("creator", ChatMemberOwner),
        ("administrator", ChatMemberAdministrator),
        ("member", ChatMemberMember),
        ("restricted", ChatMemberRestricted),
        ("left", ChatMemberLeft),
        ("kicked", ChatMemberBanned),
    ],
)
async def test_chat_member_statuses_de_json_to_ptb_classes(
    api: BotAPIDouble, bot: Bot, status: str, ptb_class: type
) -> None:
    api.set_chat_member_status(GROUP, 77, status)

    member = await bot.get_chat_member(GROUP, 77)

    assert type(member) is ptb_class
    assert member.status == status and member.user.id == 77


async def test_chat_member_defaults_follow_what_the_double_saw(api: BotAPIDouble, bot: Bot) -> None:
    api.push_message(GROUP, "hello", chat_type="group", user_id=55)

    assert (await bot.get_chat_member(GROUP, 55)).status == "member"
    assert (await bot.get_chat_member(GROUP, 56)).status == "left"
    api.set_chat_member_status(GROUP, 55, "administrator")
    admins = await bot.get_chat_administrators(GROUP)
    assert [a.user.id for a in admins] == [55]
    assert isinstance(admins[0], ChatMemberAdministrator) and admins[0].can_delete_messages


async def test_get_chat_describes_the_chat_from_pushed_updates(api: BotAPIDouble, bot: Bot) -> None:
    api.push_message(
        SUPERGROUP, "hi", chat_type="supergroup", is_forum=True, chat_title="Newsroom", thread_id=9
    )

    chat = await bot.get_chat(SUPERGROUP)

    assert chat.type == "supergroup" and chat.title == "Newsroom" and chat.is_forum
    assert (await bot.get_chat(GROUP)).type == "group"


async def test_edit_to_the_same_content_is_not_modified(api: BotAPIDouble, bot: Bot) -> None:
    message = await bot.send_message(PRIVATE, "<b>Digest</b>", parse_mode="HTML")

    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_text("<b>Digest</b>", PRIVATE, message.message_id, parse_mode="HTML")
    edited = await bot.edit_message_text(
        "<i>Digest</i>", PRIVATE, message.message_id, parse_mode="HTML"
    )
    assert isinstance(edited, Message) and edited.entities[0].type == "italic"
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await bot.edit_message_text("x", PRIVATE, 999)
    assert [e.text for e in api.edited] == ["Digest"]


async def test_delete_message_forgets_it(api: BotAPIDouble, bot: Bot) -> None:
    message = await bot.send_message(PRIVATE, "temporary")

    assert await bot.delete_message(PRIVATE, message.message_id)
    with pytest.raises(BadRequest, match="Message to delete not found"):
        await bot.delete_message(PRIVATE, message.message_id)
    assert api.deleted == [(PRIVATE, message.message_id)]


async def test_message_ids_increase_per_chat_and_threads_are_kept(
    api: BotAPIDouble, bot: Bot
) -> None:
    api.push_message(SUPERGROUP, "/subscribe x", chat_type="supergroup", is_forum=True, thread_id=7)
    first = await bot.send_message(SUPERGROUP, "in topic", message_thread_id=7)
    second = await bot.send_message(SUPERGROUP, "general")
    other = await bot.send_message(PRIVATE, "elsewhere")

    assert (first.message_id, second.message_id, other.message_id) == (2, 3, 1)
    assert first.is_topic_message and first.message_thread_id == 7
    assert [m.text for m in api.messages_to(SUPERGROUP, thread_id=7)] == ["in topic"]
    assert [m.text for m in api.messages_to(SUPERGROUP)] == ["in topic", "general"]


async def test_link_previews_can_be_turned_off(api: BotAPIDouble, bot: Bot) -> None:
    await bot.send_message(
        PRIVATE,
        "https://www.info.gov.hk",
        link_preview_options=LinkPreviewOptions(is_disabled=True),
    )
    await bot.send_message(PRIVATE, "https://www.info.gov.hk")

    assert [m.link_preview_disabled for m in api.sent] == [True, False]


async def test_fail_next_answers_with_the_planned_error() -> None:
    now = [1000.0]
    async with BotAPIDouble(clock=lambda: now[0]) as api, api.ptb_bot() as bot:
        api.fail_next("sendMessage", status=502, description="Bad Gateway", times=2)
        api.fail_next("sendMessage", status=429, retry_after=7)

        for _ in range(2):
            with pytest.raises(NetworkError, match="Bad Gateway"):
                await bot.send_message(PRIVATE, "x")
        with pytest.raises(RetryAfter) as caught:
            await bot.send_message(PRIVATE, "x")
        assert _seconds(caught.value.retry_after) == 7
        now[0] += 7
        await bot.send_message(PRIVATE, "finally")
        assert [m.text for m in api.sent] == ["finally"]
        assert api.flood_429_count == 0  # planned failures are not flood control's
        assert api.retry_after_violations == []


async def test_sending_before_retry_after_ends_is_refused_and_recorded() -> None:
    now = [1000.0]
    async with (
        BotAPIDouble(flood_limits=True, chat_burst=1, clock=lambda: now[0]) as api,
        api.ptb_bot() as bot,
    ):
        await bot.send_message(PRIVATE, "first")
        with pytest.raises(RetryAfter):
            await bot.send_message(PRIVATE, "too soon")
        now[0] += 0.5
        with pytest.raises(RetryAfter):
            await bot.send_message(PRIVATE, "still too soon")
        await bot.send_message(PRIVATE + 1, "other chats are not held back")
        now[0] += 0.5
        await bot.send_message(PRIVATE, "on time")

        assert api.retry_after_violations == ["chat 1001: sent 0.50s before its retry_after ended"]
        assert [m.text for m in api.sent] == ["first", "other chats are not held back", "on time"]


async def test_drop_next_closes_the_connection(api: BotAPIDouble, bot: Bot) -> None:
    api.drop_next("sendMessage")
    with pytest.raises(NetworkError):
        await bot.send_message(PRIVATE, "lost before processing")
    assert api.sent == []

    api.drop_next("sendMessage", after_processing=True)
    with pytest.raises(NetworkError):
        await bot.send_message(PRIVATE, "sent, answer lost")
    assert [m.text for m in api.sent] == ["sent, answer lost"]


async def test_long_polling_waits_for_an_update_and_offset_confirms(
    api: BotAPIDouble, bot: Bot
) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await api.wait_for(lambda: bool(api.calls))
    api.push_message(PRIVATE, "hello")
    updates = await asyncio.wait_for(poll, 2)  # answered on arrival, not after the timeout

    assert [u.message.text for u in updates if u.message] == ["hello"]
    again = await bot.get_updates(timeout=0)
    assert [u.update_id for u in again] == [updates[0].update_id]  # not confirmed yet
    assert await bot.get_updates(offset=updates[0].update_id + 1, timeout=0) == ()


async def test_a_second_poller_ends_the_first_with_conflict(api: BotAPIDouble, bot: Bot) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=5))
    await api.wait_for(lambda: len(api.calls) == 1)
    async with api.ptb_bot() as second_instance:
        second = asyncio.create_task(second_instance.get_updates(timeout=5))

        with pytest.raises(Conflict, match="terminated by other getUpdates request"):
            await asyncio.wait_for(first, 2)
        api.push_message(PRIVATE, "to the second")
        assert len(await asyncio.wait_for(second, 2)) == 1


async def test_updates_outside_allowed_updates_are_not_delivered(
    api: BotAPIDouble, bot: Bot
) -> None:
    member_update = {
        "chat_member": {
            "chat": {"id": GROUP, "type": "group", "title": "g"},
            "from": {"id": 5, "is_bot": False, "first_name": "A"},
            "date": 0,
            "old_chat_member": {
                "status": "left",
                "user": {"id": 5, "is_bot": False, "first_name": "A"},
            },
            "new_chat_member": {
                "status": "member",
                "user": {"id": 5, "is_bot": False, "first_name": "A"},
            },
        }
    }
    api.push_update(dict(member_update))
    assert await bot.get_updates(timeout=0) == ()  # not asked for: dropped, as on Telegram

    api.push_update(dict(member_update))
    updates = await bot.get_updates(timeout=0, allowed_updates=["chat_member"])
    assert [u.chat_member is not None for u in updates] == [True]


async def test_commands_round_trip_and_are_validated(api: BotAPIDouble, bot: Bot) -> None:
    await bot.set_my_commands([("subscribe", "Follow a topic"), ("help", "Every command")])
    assert [c.command for c in await bot.get_my_commands()] == ["subscribe", "help"]
    assert await bot.get_my_commands(language_code="zh") == ()

    with pytest.raises(BadRequest, match="Bot_command_invalid"):
        await bot.set_my_commands([("Sub-Scribe", "bad name")])


async def test_spec_methods_the_double_lacks_are_recorded(api: BotAPIDouble, bot: Bot) -> None:
    assert await bot.set_my_description("Press releases, digested") is True
    with pytest.raises(NetworkError, match="not supported by the test double"):
        await bot.send_dice(PRIVATE)

    assert [c.method for c in api.unsupported_calls] == ["setMyDescription", "sendDice"]


async def test_wait_for_explains_what_happened_on_timeout(api: BotAPIDouble, bot: Bot) -> None:
    await bot.send_message(PRIVATE, "only one")

    with pytest.raises(AssertionError, match=r"expected 2 message\(s\) to chat 1001, got 1"):
        await api.wait_for_message(PRIVATE, count=2, timeout=0.05)


def test_parse_html_gives_utf16_offsets() -> None:
    plain, entities = parse_html("😀 <b>bold</b>")

    assert plain == "😀 bold"
    assert entities == [{"type": "bold", "offset": 3, "length": 4}]


async def test_gone_users_and_forum_topics_fail_like_telegram(api: BotAPIDouble, bot: Bot) -> None:
    api.deactivate_user(PRIVATE)
    with pytest.raises(Forbidden, match="user is deactivated"):
        await bot.send_message(PRIVATE, "hi")

    api.push_message(SUPERGROUP, "hi", chat_type="supergroup", is_forum=True, thread_id=3)
    api.delete_topic(SUPERGROUP, 3)
    api.close_topic(SUPERGROUP, 4)
    with pytest.raises(BadRequest, match="Message thread not found"):
        await bot.send_message(SUPERGROUP, "hi", message_thread_id=3)
    with pytest.raises(BadRequest, match="Topic_closed"):
        await bot.send_message(SUPERGROUP, "hi", message_thread_id=4)
    await bot.send_message(SUPERGROUP, "general topic still works")


async def test_block_chat_can_tell_the_bot_through_my_chat_member(
    api: BotAPIDouble, bot: Bot
) -> None:
    api.block_chat(PRIVATE, notify=True)

    updates = await bot.get_updates(timeout=0)

    assert updates[0].my_chat_member is not None
    assert updates[0].my_chat_member.new_chat_member.status == "kicked"
    assert updates[0].my_chat_member.chat.id == PRIVATE


async def test_my_chat_member_updates_carry_bot_api_chat_members_and_change_the_chat(
    api: BotAPIDouble, bot: Bot
) -> None:
    api.push_my_chat_member(GROUP, "left", "member", user_id=77, chat_type="group")
    api.push_my_chat_member(GROUP, "member", "administrator", user_id=77)
    api.push_my_chat_member(GROUP, "administrator", "kicked", user_id=77)
    api.push_my_chat_member(PRIVATE, "member", "kicked")

    updates = await bot.get_updates(timeout=0)

    changes = [u.my_chat_member for u in updates]
    assert all(c is not None and c.new_chat_member.user.id == api.bot_id for c in changes)
    assert [(type(c.old_chat_member), type(c.new_chat_member)) for c in changes if c] == [
        (ChatMemberLeft, ChatMemberMember),
        (ChatMemberMember, ChatMemberAdministrator),
        (ChatMemberAdministrator, ChatMemberBanned),
        (ChatMemberMember, ChatMemberBanned),
    ]
    assert [(c.chat.id, c.chat.type, c.from_user.id) for c in changes if c] == [
        (GROUP, "group", 77),
        (GROUP, "group", 77),
        (GROUP, "group", 77),
        (PRIVATE, "private", PRIVATE),
    ]
    with pytest.raises(Forbidden, match="bot was kicked from the group chat"):
        await bot.send_message(GROUP, "hi")
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_message(PRIVATE, "hi")
    api.push_my_chat_member(GROUP, "kicked", "member", user_id=77)
    api.push_my_chat_member(PRIVATE, "kicked", "member")
    await bot.send_message(GROUP, "back in the group")
    await bot.send_message(PRIVATE, "unblocked")
    with pytest.raises(ValueError, match="only blocked or unblocked"):
        api.push_my_chat_member(PRIVATE, "left", "member")


async def test_a_reopened_topic_takes_messages_again(api: BotAPIDouble, bot: Bot) -> None:
    api.push_message(SUPERGROUP, "hi", chat_type="supergroup", is_forum=True, thread_id=4)
    api.close_topic(SUPERGROUP, 4)
    with pytest.raises(BadRequest, match="Topic_closed"):
        await bot.send_message(SUPERGROUP, "hi", message_thread_id=4)
    api.reopen_topic(SUPERGROUP, 4)
    assert (await bot.send_message(SUPERGROUP, "hi", message_thread_id=4)).message_thread_id == 4


async def test_a_bot_removed_from_a_group_cannot_send(api: BotAPIDouble, bot: Bot) -> None:
    api.push_message(GROUP, "hi", chat_type="group")
    api.set_chat_member_status(GROUP, api.bot_id, "kicked")

    with pytest.raises(Forbidden, match="bot was kicked from the group chat"):
        await bot.send_message(GROUP, "hi")


async def test_links_telegram_cannot_use_are_dropped_but_the_text_stays(
    api: BotAPIDouble, bot: Bot
) -> None:
    message = await bot.send_message(
        PRIVATE,
        '<a href="javascript:alert(1)">click</a> <a href="/relative">here</a>',
        parse_mode="HTML",
    )

    assert message.text == "click here"
    assert message.entities == ()


async def test_a_lone_surrogate_entity_is_refused() -> None:
    async with BotAPIDouble(strict_html=False) as api, api.ptb_bot() as bot:
        with pytest.raises(BadRequest, match="unmatched surrogate"):
            await bot.send_message(PRIVATE, "&#xD83D;", parse_mode="HTML")


async def test_a_callback_query_can_be_answered_once(api: BotAPIDouble, bot: Bot) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("A", callback_data="a")]])
    sent = await bot.send_message(PRIVATE, "Pick", reply_markup=keyboard)
    update = api.push_callback(PRIVATE, PRIVATE, "a", message_id=sent.message_id)
    query_id = update["callback_query"]["id"]

    assert await bot.answer_callback_query(query_id)
    with pytest.raises(BadRequest, match="Query is too old"):
        await bot.answer_callback_query(query_id)
    assert len(api.callback_answers) == 1


async def test_migration_can_be_announced_with_service_messages(
    api: BotAPIDouble, bot: Bot
) -> None:
    api.push_message(GROUP, "hi", chat_type="group", chat_title="Newsroom")
    api.migrate_chat(GROUP, SUPERGROUP, notify=True)

    updates = await bot.get_updates(timeout=0)

    service = [u.message for u in updates[1:] if u.message]
    assert [(m.chat.id, m.migrate_to_chat_id, m.migrate_from_chat_id) for m in service] == [
        (GROUP, SUPERGROUP, None),
        (SUPERGROUP, None, GROUP),
    ]
    assert service[1].chat.title == "Newsroom"


async def test_require_start_refuses_chats_that_never_wrote() -> None:
    async with BotAPIDouble(require_start=True) as api, api.ptb_bot() as bot:
        with pytest.raises(Forbidden, match="can't initiate conversation"):
            await bot.send_message(PRIVATE, "hello stranger")
        with pytest.raises(BadRequest, match="Chat not found"):
            await bot.send_message(GROUP, "hello group")

        api.push_message(PRIVATE, "/start")
        await bot.send_message(PRIVATE, "hello friend")
        assert [m.text for m in api.sent] == ["hello friend"]


def _escape(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


@given(st.text())
def test_parse_html_gives_back_any_escaped_text(text: str) -> None:
    plain, entities = parse_html(f"<b>{_escape(text)}</b>")

    assert plain == text
    assert entities == ([{"type": "bold", "offset": 0, "length": utf16_len(text)}] if text else [])


@given(st.text(alphabet="ab <>&;/=\"'", min_size=1))
def test_parse_html_accepts_only_what_it_can_account_for(text: str) -> None:
    try:
        plain, entities = parse_html(text)
    except EntityParseError:
        return
    assert "<" not in re.sub(r"</?[ab]? *>", "", text)  # every accepted '<' began a real tag
    for entity in entities:
        assert 0 <= entity["offset"] < entity["offset"] + entity["length"] <= utf16_len(plain)


async def test_latency_slows_every_answer() -> None:
    async with BotAPIDouble(latency=0.05) as api, api.ptb_bot() as bot:
        started = asyncio.get_running_loop().time()
        await asyncio.gather(*(bot.send_message(PRIVATE + i, "x") for i in range(5)))
        elapsed = asyncio.get_running_loop().time() - started

    assert 0.05 <= elapsed < 0.5  # concurrent requests wait side by side, not in a queue


async def test_chat_actions_are_recorded(api: BotAPIDouble, bot: Bot) -> None:
    await bot.send_chat_action(PRIVATE, "typing")

    with pytest.raises(BadRequest, match="Wrong parameter action"):
        await bot.send_chat_action(PRIVATE, "dancing")
    assert api.chat_actions == [(PRIVATE, "typing")]

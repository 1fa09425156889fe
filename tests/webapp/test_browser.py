"""The Mini App in a real browser (Debian's Chromium): what a subscriber sees and changes."""

from __future__ import annotations

import re

from playwright.async_api import expect

from bot.subscriptions import list_followed, register_chat, subscribe
from bot.telegram.common import schedule_lines
from tests.webapp.browser import open_page
from tests.webapp.conftest import USER_ID, MiniAppServer
from tests.webapp.signing import OTHER_BOT_TOKEN, signed_init_data


async def test_a_subscriber_adds_and_removes_topics_and_changes_the_time(
    mini_app: MiniAppServer,
) -> None:
    await mini_app.add_release("Customs seize smuggled cigarettes worth $2 million")
    chat = await register_chat(mini_app.sessions, USER_ID, "private", None, "en", mini_app.settings)
    await subscribe(mini_app.sessions, chat, 0, "typhoon", 50)

    async with open_page(mini_app.base_url, signed_init_data(USER_ID)) as page:
        topics = page.locator("#topics li")
        await expect(topics).to_have_count(1)
        await expect(topics.first).to_contain_text("typhoon")

        await page.locator("#topic-input").press_sequentially("customs", delay=20)
        preview = page.locator("#preview")
        await expect(preview).to_contain_text("Matches: Customs")
        await expect(preview).to_contain_text("海關")
        await expect(preview.locator("li")).to_contain_text(["Customs seize smuggled cigarettes"])
        assert len(await mini_app.followed()) == 1  # the preview followed nothing

        await page.get_by_role("button", name="Add", exact=True).click()
        await expect(topics).to_have_count(2)
        await expect(topics.nth(1)).to_contain_text("Customs")
        await expect(preview).to_be_hidden()

        await page.get_by_role("button", name=re.compile("^Stop following Weather")).click()
        await expect(topics).to_have_count(1)
        await expect(topics.first).to_contain_text("Customs")

        await page.locator("#time").fill("21:45")
        await expect(page.locator("#notice")).to_have_text("Saved.")

    chat = await mini_app.chat()
    assert chat is not None
    followed = await list_followed(mini_app.sessions, chat, 0)
    assert [item.subscription.query_text for item in followed] == ["customs"]
    assert chat.digest_time.strftime("%H:%M") == "21:45"
    # what /list shows: the same rows, and the schedule with the new time
    assert [item.label for item in followed] == ["Customs / 海關"]
    assert "21:45" in schedule_lines(chat)[0]


async def test_the_device_timezone_is_suggested_and_saved_on_request(
    mini_app: MiniAppServer,
) -> None:
    async with open_page(
        mini_app.base_url, signed_init_data(USER_ID), timezone_id="Europe/Berlin"
    ) as page:
        await expect(page.locator("#timezone")).to_have_value("Europe/Berlin")
        await expect(page.locator("#timezone-hint")).to_be_visible()
        chat = await mini_app.chat()
        assert chat is not None and chat.timezone == "Asia/Hong_Kong"  # not saved by itself
        await page.get_by_role("button", name="Save").click()
        await expect(page.locator("#notice")).to_have_text("Saved.")
        await expect(page.locator("#timezone-hint")).to_be_hidden()

        await page.get_by_role("radio", name="Weekly").check()
        await expect(page.locator("#weekday-row")).to_be_visible()
        await page.locator("#weekday").select_option(label="Friday")
        await expect(page.locator("#notice")).to_have_text("Saved.")
        await page.locator("#paused").check()
        await expect(page.locator("#notice")).to_have_text("Saved.")
    chat = await mini_app.chat()
    assert chat is not None
    assert (chat.timezone, chat.frequency, chat.digest_weekday, chat.paused) == (
        "Europe/Berlin",
        "weekly",
        4,
        True,
    )


async def test_a_bad_query_shows_its_error_and_follows_nothing(mini_app: MiniAppServer) -> None:
    async with open_page(mini_app.base_url, signed_init_data(USER_ID)) as page:
        await page.locator("#topic-input").press_sequentially('"national security', delay=10)
        preview = page.locator("#preview")
        await expect(preview).to_have_class("preview error")
        await page.get_by_role("button", name="Add", exact=True).click()
        await expect(preview).to_have_class("preview error")
        await expect(page.locator("#topics li")).to_have_count(0)
    assert await mini_app.followed() == []


async def test_a_bad_query_is_explained_in_chinese_on_a_chinese_page(
    mini_app: MiniAppServer,
) -> None:
    zh = signed_init_data(USER_ID, language_code="zh-hant")
    async with open_page(mini_app.base_url, zh) as page:
        await page.locator("#topic-input").press_sequentially('"national security', delay=10)
        preview = page.locator("#preview")
        await expect(preview).to_have_class("preview error")
        await expect(preview).to_contain_text("的引號沒有閉合：請補上引號")
        await page.locator("#topic-input").fill("")
        await page.locator("#topic-input").press_sequentially("customs OR", delay=10)
        await expect(preview).to_have_text(
            "OR 在查詢末尾：OR 兩邊都要有字詞，例如 customs OR excise"
        )
    assert await mini_app.followed() == []


async def test_the_preview_names_a_few_of_a_topics_aliases_not_dozens(
    mini_app: MiniAppServer,
) -> None:
    async with open_page(mini_app.base_url, signed_init_data(USER_ID)) as page:
        await page.locator("#topic-input").press_sequentially("typhoon", delay=10)
        aliases = page.locator("#preview .hint").first
        await expect(aliases).to_contain_text("It also matches: ")
        text = await aliases.text_content()
        assert text is not None and text.endswith(", …")
        assert len(text.removeprefix("It also matches: ").split(", ")) == 8 + 1


async def test_refused_init_data_is_explained_in_the_pages_language(
    mini_app: MiniAppServer,
) -> None:
    forged = signed_init_data(USER_ID, token=OTHER_BOT_TOKEN, language_code="zh-hant")
    async with open_page(mini_app.base_url, forged) as page:
        notice = page.locator("#notice")
        await expect(notice).to_have_text(
            "此頁面只能從 Telegram 內的機械人開啟（登入資料並非由此機械人簽發）。"
        )
    assert await mini_app.chat_count() == 0


async def test_the_page_speaks_chinese_to_a_chinese_chat(mini_app: MiniAppServer) -> None:
    zh = signed_init_data(USER_ID, language_code="zh-hant")
    async with open_page(mini_app.base_url, zh) as page:
        await expect(page.locator("h1")).to_have_text("摘要設定")
        await expect(page.locator("#topics-none")).to_have_text("尚未關注任何主題：請在下面新增。")
        await page.get_by_role("radio", name="English").check()
        await expect(page.locator("h1")).to_have_text("Digest settings")
    chat = await mini_app.chat()
    assert chat is not None and chat.language == "en"


async def test_forged_init_data_changes_nothing_and_the_page_says_so(
    mini_app: MiniAppServer,
) -> None:
    forged = signed_init_data(USER_ID, token=OTHER_BOT_TOKEN)
    async with open_page(mini_app.base_url, forged) as page:
        notice = page.locator("#notice")
        await expect(notice).to_contain_text("only when opened from the bot in Telegram")
        await expect(notice).to_contain_text("not signed for this bot")
        await expect(notice).to_have_class("notice error")
        # whatever the page still sends is refused too
        status = await page.evaluate(
            """async () => (await fetch('app/api/subscriptions', {method: 'POST',
                headers: {Authorization: 'tma ' + Telegram.WebApp.initData,
                          'Content-Type': 'application/json'},
                body: JSON.stringify({query: 'customs'})})).status"""
        )
        assert status == 401
    assert await mini_app.chat_count() == 0


async def test_without_telegrams_script_the_page_still_loads_and_explains(
    mini_app: MiniAppServer,
) -> None:
    async with open_page(mini_app.base_url, None) as page:
        await expect(page.locator("h1")).to_have_text("Digest settings")
        await expect(page.locator("#notice")).to_contain_text("initData is missing")
    assert await mini_app.chat_count() == 0

"""The Mini App's API: the same rules and errors as the commands, and nothing without initData."""

from __future__ import annotations

import time

import aiohttp
import pytest

from tests.webapp.conftest import USER_ID, MiniAppServer
from tests.webapp.signing import OTHER_BOT_TOKEN, signed_init_data

REFUSED = {
    "missing": "",
    "forged": signed_init_data(USER_ID)[:-4] + "0000",
    "another bot's": signed_init_data(USER_ID, token=OTHER_BOT_TOKEN),
    "stale": signed_init_data(USER_ID, auth_date=time.time() - 2 * 86_400),
}


@pytest.mark.parametrize("kind", sorted(REFUSED))
async def test_refused_init_data_gets_401_and_changes_nothing(
    mini_app: MiniAppServer, kind: str
) -> None:
    bad = REFUSED[kind]
    for method, path, body in [
        ("GET", "state", None),
        ("POST", "subscriptions", {"query": "customs"}),
        ("PATCH", "settings", {"time": "21:00"}),
        ("POST", "preview", {"query": "customs"}),
    ]:
        status, answer = await mini_app.call(method, path, body, init_data=bad)
        assert status == 401, (method, path)
        assert isinstance(answer["error"], str) and "\n" not in answer["error"]
    assert await mini_app.chat_count() == 0  # not even registered


async def test_a_wrong_authorization_scheme_is_refused(mini_app: MiniAppServer) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{mini_app.base_url}/api/state",
            headers={"Authorization": f"Bearer {signed_init_data(USER_ID)}"},
        ) as response,
    ):
        assert response.status == 401


async def test_the_state_registers_the_private_chat_with_the_defaults(
    mini_app: MiniAppServer,
) -> None:
    status, state = await mini_app.call(
        "GET", "state", init_data=signed_init_data(USER_ID, language_code="zh-hant")
    )
    assert status == 200
    assert state == {
        "language": "zh",
        "subscriptions": [],
        "time": "08:00",
        "timezone": "Asia/Hong_Kong",
        "timezone_is_default": True,
        "frequency": "daily",
        "weekday": 0,
        "paused": False,
    }
    chat = await mini_app.chat()
    assert chat is not None and chat.type == "private" and chat.language == "zh"


async def test_preview_add_and_remove_go_through_the_same_rules_as_the_commands(
    mini_app: MiniAppServer,
) -> None:
    await mini_app.add_release("Customs seize smuggled cigarettes")
    await mini_app.add_release("Typhoon signal No. 8", hours_ago=2)
    status, preview = await mini_app.call("POST", "preview", {"query": "customs"})
    assert status == 200
    assert "海關" in preview["aliases"]
    assert [r["title"] for r in preview["recent"]] == ["Customs seize smuggled cigarettes"]
    assert await mini_app.followed() == []  # a preview follows nothing

    status, state = await mini_app.call("POST", "subscriptions", {"query": "customs"})
    assert status == 200 and state["created"] is True
    status, state = await mini_app.call("POST", "subscriptions", {"query": "typhoon"})
    assert [s["query"] for s in state["subscriptions"]] == ["customs", "typhoon"]
    status, again = await mini_app.call("POST", "subscriptions", {"query": "Customs"})
    assert again["created"] is False and len(again["subscriptions"]) == 2

    first = state["subscriptions"][0]["id"]
    status, state = await mini_app.call("DELETE", f"subscriptions/{first}")
    assert status == 200 and [s["query"] for s in state["subscriptions"]] == ["typhoon"]
    assert [f.subscription.query_text for f in await mini_app.followed()] == ["typhoon"]
    status, answer = await mini_app.call("DELETE", f"subscriptions/{first}")
    assert status == 404 and "out of date" in answer["error"]


async def test_bad_queries_get_the_commands_one_line_errors(mini_app: MiniAppServer) -> None:
    status, answer = await mini_app.call("POST", "preview", {"query": '"unclosed'})
    assert status == 400 and answer["error"] and "\n" not in answer["error"]
    status, answer = await mini_app.call("POST", "subscriptions", {"query": "x" * 201})
    assert status == 400 and "201 characters" in answer["error"]
    assert await mini_app.followed() == []


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ('"unclosed', "引號沒有閉合"),
        ("-only", "只有要排除的字詞"),
        ("OR", "OR 在查詢開頭"),
        ("x" * 201, "這個查詢有 201 個字元"),
    ],
)
async def test_a_chinese_chats_preview_says_whats_wrong_with_the_query_in_chinese(
    mini_app: MiniAppServer, query: str, reason: str
) -> None:
    zh = signed_init_data(USER_ID, language_code="zh-hant")
    for path in ("preview", "subscriptions"):
        status, answer = await mini_app.call("POST", path, {"query": query}, init_data=zh)
        assert status == 400 and reason in answer["error"], (path, answer)
    assert await mini_app.followed() == []


async def test_refused_init_data_names_its_reason_for_the_page(mini_app: MiniAppServer) -> None:
    forged = signed_init_data(USER_ID, token=OTHER_BOT_TOKEN)
    status, answer = await mini_app.call("GET", "state", init_data=forged)
    assert status == 401
    assert answer == {"error": "initData is not signed for this bot", "key": "app_auth_forged"}


async def test_someone_elses_subscription_cannot_be_removed(mini_app: MiniAppServer) -> None:
    _, state = await mini_app.call("POST", "subscriptions", {"query": "customs"})
    theirs = state["subscriptions"][0]["id"]
    status, _ = await mini_app.call(
        "DELETE", f"subscriptions/{theirs}", init_data=signed_init_data(6002)
    )
    assert status == 404
    assert len(await mini_app.followed()) == 1


async def test_settings_change_through_the_domain_and_reschedule(mini_app: MiniAppServer) -> None:
    await mini_app.call("GET", "state")
    before = await mini_app.chat()
    status, state = await mini_app.call("PATCH", "settings", {"time": "21:30"})
    assert status == 200 and state["time"] == "21:30"
    status, state = await mini_app.call("PATCH", "settings", {"timezone": "europe/london"})
    assert state["timezone"] == "Europe/London" and state["timezone_is_default"] is False
    status, state = await mini_app.call("PATCH", "settings", {"frequency": "weekly", "weekday": 4})
    assert (state["frequency"], state["weekday"]) == ("weekly", 4)
    status, state = await mini_app.call("PATCH", "settings", {"paused": True})
    assert state["paused"] is True
    status, state = await mini_app.call("PATCH", "settings", {"language": "zh"})
    assert state["language"] == "zh"
    chat = await mini_app.chat()
    assert chat is not None and before is not None
    assert chat.next_digest_at != before.next_digest_at  # rescheduled like /time does
    assert (chat.digest_time.strftime("%H:%M"), chat.timezone, chat.digest_weekday) == (
        "21:30",
        "Europe/London",
        4,
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"time": "25:00"}, "不是有效的時間"),
        ({"timezone": "Mars/Olympus"}, "不是已知的時區"),
        ({"frequency": "hourly"}, "不是可用的頻率"),
        ({"frequency": "weekly", "weekday": 9}, "不是星期幾"),
        ({"paused": "yes"}, "paused must be true or false"),
        ({"colour": "red"}, "unknown"),
    ],
)
async def test_a_bad_setting_is_refused_in_the_chats_language_and_changes_nothing(
    mini_app: MiniAppServer, change: dict[str, object], expected: str
) -> None:
    zh = signed_init_data(USER_ID, language_code="zh-hant")
    status, answer = await mini_app.call("PATCH", "settings", change, init_data=zh)
    assert status == 400 and expected in answer["error"]
    _, state = await mini_app.call("GET", "state", init_data=zh)
    assert (state["time"], state["timezone"], state["frequency"], state["paused"]) == (
        "08:00",
        "Asia/Hong_Kong",
        "daily",
        False,
    )


async def test_the_page_carries_both_languages_and_loads_telegrams_script(
    mini_app: MiniAppServer,
) -> None:
    async with aiohttp.ClientSession() as http, http.get(mini_app.base_url) as response:
        assert response.status == 200
        html = await response.text()
        assert (
            "script-src 'self' https://telegram.org" in response.headers["Content-Security-Policy"]
        )
    assert '<script src="https://telegram.org/js/telegram-web-app.js"></script>' in html
    assert "摘要設定" in html and "Digest settings" in html and "Europe/London" in html
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{mini_app.base_url}/static/app.js") as response:
            assert response.status == 200
        async with http.get(f"{mini_app.base_url}/static/..%2Fapi.py") as response:
            assert response.status == 404

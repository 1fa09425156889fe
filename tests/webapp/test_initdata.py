"""initData proves who opened the Mini App only when Telegram signed it for this bot, lately."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qsl, urlencode

import pytest

from bot.webapp.initdata import InitDataError, verify_init_data
from tests.webapp.signing import BOT_TOKEN, OTHER_BOT_TOKEN, signed_init_data


def test_a_correctly_signed_init_data_names_its_user() -> None:
    user = verify_init_data(signed_init_data(5001, language_code="zh-hant"), BOT_TOKEN)
    assert user.id == 5001 and user.language_code == "zh-hant" and user.first_name == "Ada"


def test_a_field_telegram_adds_later_is_part_of_the_signature() -> None:
    signed = signed_init_data(5001, signature="abc", chat_instance="-1")
    assert verify_init_data(signed, BOT_TOKEN).id == 5001


def test_a_forged_hash_is_refused() -> None:
    fields = dict(parse_qsl(signed_init_data(5001)))
    fields["hash"] = "0" * 64
    with pytest.raises(InitDataError, match="app auth forged"):
        verify_init_data(urlencode(fields), BOT_TOKEN)


def test_init_data_signed_with_another_bots_token_is_refused() -> None:
    with pytest.raises(InitDataError, match="app auth forged"):
        verify_init_data(signed_init_data(5001, token=OTHER_BOT_TOKEN), BOT_TOKEN)


def test_init_data_older_than_a_day_is_refused() -> None:
    stale = signed_init_data(5001, auth_date=time.time() - 86_400 - 60)
    with pytest.raises(InitDataError, match="app auth stale"):
        verify_init_data(stale, BOT_TOKEN)


def test_init_data_from_a_day_ago_less_a_minute_still_counts() -> None:
    assert verify_init_data(signed_init_data(7, auth_date=time.time() - 86_340), BOT_TOKEN).id == 7


def test_init_data_dated_in_the_future_is_refused() -> None:
    with pytest.raises(InitDataError, match="future"):
        verify_init_data(signed_init_data(5001, auth_date=time.time() + 3600), BOT_TOKEN)


def test_init_data_without_a_hash_is_refused() -> None:
    fields = dict(parse_qsl(signed_init_data(5001)))
    del fields["hash"]
    with pytest.raises(InitDataError, match="app auth malformed"):
        verify_init_data(urlencode(fields), BOT_TOKEN)


def test_missing_init_data_is_refused() -> None:
    with pytest.raises(InitDataError, match="missing"):
        verify_init_data("", BOT_TOKEN)


def test_a_tampered_user_breaks_the_signature() -> None:
    fields = dict(parse_qsl(signed_init_data(5001)))
    user = json.loads(fields["user"])
    user["id"] = 6666  # someone else's settings
    fields["user"] = json.dumps(user, separators=(",", ":"))
    with pytest.raises(InitDataError, match="app auth forged"):
        verify_init_data(urlencode(fields), BOT_TOKEN)


def test_a_repeated_field_is_refused() -> None:
    with pytest.raises(InitDataError, match="app auth malformed"):
        verify_init_data(signed_init_data(5001) + "&auth_date=1", BOT_TOKEN)


def test_signed_init_data_without_a_user_names_no_one() -> None:
    from bot.webapp.initdata import sign_init_data

    fields = {"auth_date": str(int(time.time())), "query_id": "x"}
    signed = urlencode({**fields, "hash": sign_init_data(fields, BOT_TOKEN)})
    with pytest.raises(InitDataError, match="no user"):
        verify_init_data(signed, BOT_TOKEN)

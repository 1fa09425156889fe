"""Telegram Mini App `initData`: the signed proof of who opened the app, checked as Telegram says.

data-check-string = the received `key=value` pairs except `hash`, sorted by key, joined by
"\\n"; secret = HMAC_SHA256(key="WebAppData", msg=bot_token); the hash is
hex(HMAC_SHA256(key=secret, msg=data-check-string)).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

from bot.errors import KeyedError

MAX_AGE = timedelta(days=1)
# a phone whose clock runs a little ahead still signs in
FUTURE_SKEW = timedelta(minutes=5)


class InitDataError(KeyedError):
    """initData that proves nothing; `key` names the page's words for it (app_auth_*, in both
    languages: the page shows them), str(exc) is the English line for logs."""


@dataclass(frozen=True)
class WebAppUser:
    """The Telegram user who opened the Mini App, as initData's `user` field names them."""

    id: int
    language_code: str | None
    first_name: str
    auth_date: datetime


def _secret(bot_token: str) -> bytes:
    return hmac.new(b"WebAppData", bot_token.encode(), hashlib.sha256).digest()


def sign_init_data(fields: dict[str, str], bot_token: str) -> str:
    """The hash Telegram would put beside `fields` (used to check, and by tests to sign)."""
    check = "\n".join(f"{key}={value}" for key, value in sorted(fields.items()))
    return hmac.new(_secret(bot_token), check.encode(), hashlib.sha256).hexdigest()


def verify_init_data(
    init_data: str, bot_token: str, *, now: datetime | None = None, max_age: timedelta = MAX_AGE
) -> WebAppUser:
    """The user that `init_data` proves; InitDataError (one line) when it proves nothing."""
    if not init_data:
        raise InitDataError("app_auth_missing")
    try:
        pairs = parse_qsl(init_data, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise InitDataError("app_auth_malformed") from None
    fields = dict(pairs)
    if len(fields) != len(pairs):
        raise InitDataError("app_auth_malformed")
    received = fields.pop("hash", "")
    if not received:
        raise InitDataError("app_auth_malformed")
    expected = sign_init_data(fields, bot_token)
    if not hmac.compare_digest(expected.encode(), received.lower().encode()):
        raise InitDataError("app_auth_forged")
    try:
        auth_date = datetime.fromtimestamp(int(fields.get("auth_date", "")), UTC)
    except (ValueError, OverflowError, OSError):
        raise InitDataError("app_auth_malformed") from None
    now = now or datetime.now(UTC)
    if auth_date > now + FUTURE_SKEW:
        raise InitDataError("app_auth_future")
    if now - auth_date > max_age:
        raise InitDataError("app_auth_stale")
    try:
        user = json.loads(fields.get("user", ""))
        user_id = int(user["id"])
    except (ValueError, TypeError, KeyError):
        raise InitDataError("app_auth_no_user") from None
    if not isinstance(user, dict) or isinstance(user["id"], bool) or user_id <= 0:
        raise InitDataError("app_auth_no_user")
    language = user.get("language_code")
    return WebAppUser(
        id=user_id,
        language_code=language if isinstance(language, str) else None,
        first_name=str(user.get("first_name") or ""),
        auth_date=auth_date,
    )

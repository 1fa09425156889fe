"""initData the way Telegram builds it: fields, then a hash signed with the bot's token."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

from bot.webapp.initdata import sign_init_data

BOT_TOKEN = "123456:TEST-token_for-the-mini-app"
OTHER_BOT_TOKEN = "654321:another-bots-token"


def signed_init_data(
    user_id: int = 5001,
    *,
    token: str = BOT_TOKEN,
    auth_date: float | None = None,
    language_code: str = "en",
    **extra: Any,
) -> str:
    fields = {
        "query_id": "AAHdF6IQAAAAAN0XohDhrOrc",
        "user": json.dumps(
            {"id": user_id, "first_name": "Ada", "language_code": language_code},
            separators=(",", ":"),
        ),
        "auth_date": str(int(auth_date if auth_date is not None else time.time())),
        **{k: str(v) for k, v in extra.items()},
    }
    return urlencode({**fields, "hash": sign_init_data(fields, token)})

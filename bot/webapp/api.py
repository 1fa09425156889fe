"""The Mini App's HTTP side: the page (`GET /app`) and its JSON API under `/app/api/`.

Every API call carries Telegram's initData (`Authorization: tma <initData>`); the chat is the
private chat with the user it names. The handlers call the same domain functions as the
commands (bot.subscriptions): parse the request, call the domain, answer JSON.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from importlib.resources import files
from typing import Any

from aiohttp import web

from bot.config import Settings
from bot.db import SessionFactory
from bot.digest.schedule import as_utc, chat_zone
from bot.errors import KeyedError
from bot.i18n import LANGUAGES, t_plain, templates
from bot.models import Chat
from bot.subscriptions import (
    ChatInputError,
    Followed,
    list_followed,
    preview_subscription,
    register_chat,
    set_frequency,
    set_language,
    set_paused,
    set_time,
    set_timezone,
    subscribe,
    unsubscribe_by_id,
)
from bot.webapp.initdata import InitDataError, WebAppUser, verify_init_data

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MiniApp:
    sessions: SessionFactory
    settings: Settings
    bot_token: str


MINI_APP_KEY = web.AppKey("mini_app", MiniApp)
# InitDataError's keys (app_auth_*): a 401 names its key, the page says it in its language
AUTH_REASONS = ("missing", "malformed", "forged", "future", "stale", "no_user")
THREAD = 0  # the Mini App manages the private chat itself, never a forum topic
PREVIEW_RELEASES = 3
# the page's own texts, plus the domain's error and weekday texts it shows
PAGE_TEXT_KEYS = sorted(
    {
        "app_title",
        "app_loading",
        "app_topics",
        "app_topics_none",
        "app_add_placeholder",
        "app_add",
        "app_remove",
        "app_preview_means",
        "app_preview_recent",
        "app_preview_none",
        "subscribed_aliases",
        "app_schedule",
        "app_time",
        "app_timezone",
        "app_timezone_search",
        "app_timezone_device",
        "app_save",
        "app_frequency",
        "app_daily",
        "app_weekly",
        "app_instant",
        "app_weekday",
        "app_language",
        "app_pause",
        "app_saved",
        "app_error_auth",
        "app_error_network",
        *(f"app_auth_{reason}" for reason in AUTH_REASONS),
        *(f"weekday_{n}" for n in range(7)),
    }
)
STATIC_FILES = {
    "app.js": "text/javascript",
    "app.css": "text/css",
}
# the page loads only itself and Telegram's script; the API is same-origin
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' https://telegram.org; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'"
)


def _static(name: str) -> bytes:
    return files("bot.webapp").joinpath("static", name).read_bytes()


def _page() -> bytes:
    """index.html with the texts of both languages and the timezone names inlined as JSON."""
    from bot.subscriptions import timezone_names

    data = {
        "texts": {lang: templates(lang, PAGE_TEXT_KEYS) for lang in LANGUAGES},
        "timezones": timezone_names(),
    }
    # "<" escaped: nothing in the data can close the <script> element it sits in
    inlined = json.dumps(data, ensure_ascii=False).replace("<", "\\u003c")
    return _static("index.html").replace(b"__PAGE_DATA__", inlined.encode())


def _error(
    status: type[web.HTTPException], message: str, key: str | None = None
) -> web.HTTPException:
    body = {"error": message, **({"key": key} if key else {})}
    return status(text=json.dumps(body, ensure_ascii=False), content_type="application/json")


async def page(request: web.Request) -> web.Response:
    return web.Response(
        body=_page(),
        content_type="text/html",
        charset="utf-8",
        headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-cache"},
    )


async def static_file(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in STATIC_FILES:
        raise web.HTTPNotFound()
    return web.Response(
        body=_static(name), content_type=STATIC_FILES[name], headers={"Cache-Control": "no-cache"}
    )


# --- who is asking ------------------------------------------------------------------------


def _user(request: web.Request) -> WebAppUser:
    """The user the request's initData proves; 401 with a one-line reason otherwise."""
    header = request.headers.get("Authorization", "")
    scheme, _, init_data = header.partition(" ")
    if scheme.lower() != "tma":
        init_data = ""
    try:
        return verify_init_data(init_data.strip(), request.app[MINI_APP_KEY].bot_token)
    except InitDataError as exc:
        log.info("Mini App request refused: %s", exc)
        # whose language is unknown (nothing is proven): English, and the key for the page
        raise _error(web.HTTPUnauthorized, t_plain("en", exc.key), exc.key) from None


async def _chat(request: web.Request) -> Chat:
    user = _user(request)
    mini_app = request.app[MINI_APP_KEY]
    return await register_chat(
        mini_app.sessions, user.id, "private", None, user.language_code, mini_app.settings
    )


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise _error(web.HTTPBadRequest, "the request body is not JSON") from None
    if not isinstance(body, dict):
        raise _error(web.HTTPBadRequest, "the request body is not a JSON object")
    return body


def _text_field(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise _error(web.HTTPBadRequest, f"{name} must be a string")
    return value


def _input_error(chat: Chat, exc: KeyedError) -> web.HTTPException:
    """A domain refusal (a query, a setting) in the chat's language: the command's words."""
    return _error(web.HTTPBadRequest, t_plain(chat.language, exc.key, **exc.params))


# --- what the page shows ------------------------------------------------------------------


def _local_date(chat: Chat, moment: datetime) -> str:
    return as_utc(moment).astimezone(chat_zone(chat)).date().isoformat()


def _state(chat: Chat, followed: list[Followed], settings: Settings) -> dict[str, Any]:
    return {
        "language": chat.language,
        "subscriptions": [
            {"id": item.subscription.id, "label": item.label, "query": item.subscription.query_text}
            for item in followed
        ],
        "time": chat.digest_time.strftime("%H:%M"),
        "timezone": chat.timezone,
        "timezone_is_default": chat.timezone == settings.default_timezone,
        "frequency": chat.frequency,
        "weekday": chat.digest_weekday % 7,
        "paused": chat.paused,
    }


async def _answer_state(request: web.Request, chat: Chat, **extra: Any) -> web.Response:
    mini_app = request.app[MINI_APP_KEY]
    followed = await list_followed(mini_app.sessions, chat, THREAD)
    return web.json_response({**_state(chat, followed, mini_app.settings), **extra})


async def get_state(request: web.Request) -> web.Response:
    return await _answer_state(request, await _chat(request))


async def preview(request: web.Request) -> web.Response:
    from bot.matching.query import QueryError

    chat = await _chat(request)
    text = _text_field(await _body(request), "query")
    try:
        found = await preview_subscription(
            request.app[MINI_APP_KEY].sessions, text, limit=PREVIEW_RELEASES
        )
    except (ChatInputError, QueryError) as exc:
        raise _input_error(chat, exc) from None
    return web.json_response(
        {
            "label": found.label,
            "aliases": list(found.aliases),
            "recent": [
                {"title": r.title, "link": r.link, "date": _local_date(chat, r.published_at)}
                for r in found.recent
            ],
        }
    )


async def add_subscription(request: web.Request) -> web.Response:
    from bot.matching.query import QueryError

    chat = await _chat(request)
    text = _text_field(await _body(request), "query")
    mini_app = request.app[MINI_APP_KEY]
    try:
        result = await subscribe(
            mini_app.sessions, chat, THREAD, text, mini_app.settings.max_subscriptions
        )
    except (ChatInputError, QueryError) as exc:
        raise _input_error(chat, exc) from None
    return await _answer_state(request, chat, created=result.created)


async def remove_subscription(request: web.Request) -> web.Response:
    chat = await _chat(request)
    try:
        subscription_id = int(request.match_info["id"])
    except ValueError:
        raise _error(web.HTTPNotFound, t_plain(chat.language, "button_stale")) from None
    removed = await unsubscribe_by_id(request.app[MINI_APP_KEY].sessions, chat, subscription_id)
    if removed is None:  # another device removed it first, or it was never this chat's
        raise _error(web.HTTPNotFound, t_plain(chat.language, "button_stale"))
    return await _answer_state(request, chat)


SETTING_NAMES = ("timezone", "time", "frequency", "weekday", "language", "paused")


async def change_settings(request: web.Request) -> web.Response:
    """Applies the fields sent (the page sends one at a time), each through its domain call."""
    chat = await _chat(request)
    body = await _body(request)
    unknown = sorted(set(body) - set(SETTING_NAMES))
    if unknown or not body:
        raise _error(
            web.HTTPBadRequest, f"send one of {', '.join(SETTING_NAMES)}; unknown: {unknown}"
        )
    if "weekday" in body and "frequency" not in body:
        raise _error(web.HTTPBadRequest, 'send the weekday with "frequency": "weekly"')
    sessions = request.app[MINI_APP_KEY].sessions
    try:
        if "timezone" in body:
            chat = await set_timezone(sessions, chat, _text_field(body, "timezone"))
        if "time" in body:
            chat = await set_time(sessions, chat, _text_field(body, "time"))
        if "frequency" in body:
            weekday = body.get("weekday")
            if weekday is not None and (not isinstance(weekday, int) or isinstance(weekday, bool)):
                raise _error(web.HTTPBadRequest, "weekday must be a number, 0 = Monday")
            chat = await set_frequency(sessions, chat, _text_field(body, "frequency"), weekday)
        if "language" in body:
            chat = await set_language(sessions, chat, _text_field(body, "language"))
        if "paused" in body:
            if not isinstance(body["paused"], bool):
                raise _error(web.HTTPBadRequest, "paused must be true or false")
            chat, _ = await set_paused(sessions, chat, body["paused"])
    except ChatInputError as exc:
        raise _input_error(chat, exc) from None
    return await _answer_state(request, chat)


def add_mini_app(
    app: web.Application, sessions: SessionFactory, settings: Settings, bot_token: str
) -> None:
    """Mounts the page and the API on `app`."""
    app[MINI_APP_KEY] = MiniApp(sessions, settings, bot_token)
    app.router.add_get("/app", page)
    app.router.add_get("/app/static/{name}", static_file)
    app.router.add_get("/app/api/state", get_state)
    app.router.add_post("/app/api/preview", preview)
    app.router.add_post("/app/api/subscriptions", add_subscription)
    app.router.add_delete("/app/api/subscriptions/{id}", remove_subscription)
    app.router.add_patch("/app/api/settings", change_settings)

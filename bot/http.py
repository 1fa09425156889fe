"""The HTTP server of a `run` process: `GET /healthz`, `GET /metrics`, the webhook path
(WEBHOOK_URL's) and the Mini App (`/app`, bot.webapp).

One server per process (HTTP_HOST, HTTP_PORT; port 0 turns it off). One-shot commands
(`poll`, `stats`, ...) open none.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from bot.config import ConfigError, Settings
from bot.db import SessionFactory
from bot.metrics import render
from bot.stats import collect_health

log = logging.getLogger(__name__)

HEALTH_TIMEOUT = 5.0  # a database that takes longer than this to answer counts as down
SESSIONS_KEY = web.AppKey("sessions", SessionFactory)
ROLE_KEY = web.AppKey("role", str)


async def healthz(request: web.Request) -> web.Response:
    role = request.app[ROLE_KEY]
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT):
            health = await collect_health(request.app[SESSIONS_KEY])
    except Exception as exc:  # unreachable, dropped, timed out: the reason, on one line
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split()) or type(exc).__name__
        log.warning("health check: database unreachable: %s", reason)
        return web.json_response(
            {"status": "unhealthy", "role": role, "database": "unreachable", "reason": reason},
            status=503,
        )
    return web.json_response(
        {
            "status": "ok",
            "role": role,
            "database": "ok",
            "outbox_depth": health.outbox_depth,
            "last_poll_age_s": health.last_poll_age_s,
        }
    )


UpdateHandler = Callable[[dict[str, Any]], Awaitable[None]]
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class WebhookInbox:
    """The webhook path (WEBHOOK_URL's) and its secret; the `updates` role attaches `handler`.

    A request without the secret, or with another, gets 403 and changes nothing; until a
    handler is attached, 503 (Telegram delivers again later).
    """

    def __init__(self, url: str, secret: str) -> None:
        self.url = url
        self.path = urlsplit(url).path or "/"
        self._secret = secret.encode()
        self.handler: UpdateHandler | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookInbox | None:
        if not settings.webhook_url or settings.webhook_secret is None:
            return None
        return cls(settings.webhook_url, settings.webhook_secret.get_secret_value())

    @property
    def secret(self) -> str:
        return self._secret.decode()

    async def receive(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, self._secret):
            log.warning("webhook: a request without the right secret from %s", request.remote)
            return web.json_response({"error": "forbidden"}, status=403)
        if self.handler is None:
            return web.json_response({"error": "not ready"}, status=503)
        try:
            update = await request.json()
        except ValueError:
            return web.json_response({"error": "the body is not JSON"}, status=400)
        if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
            return web.json_response({"error": "not a Telegram Update"}, status=400)
        await self.handler(update)
        return web.json_response({})


async def metrics(request: web.Request) -> web.Response:
    depth: int | None
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT):
            depth = (await collect_health(request.app[SESSIONS_KEY])).outbox_depth
    except Exception:  # the counters are still worth a scrape; /healthz says what is wrong
        depth = None
    body, content_type = render(depth)
    return web.Response(body=body, headers={"Content-Type": content_type})


def build_http_app(
    sessions: SessionFactory,
    role: str,
    settings: Settings | None = None,
    webhook: WebhookInbox | None = None,
) -> web.Application:
    """/healthz; with settings that hold a bot token, the Mini App under /app too; the
    webhook path when there is one."""
    app = web.Application()
    app[SESSIONS_KEY] = sessions
    app[ROLE_KEY] = role
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    if webhook is not None:
        app.router.add_post(webhook.path, webhook.receive)
    if settings is not None and settings.bot_token is not None:
        from bot.webapp.api import add_mini_app

        add_mini_app(app, sessions, settings, settings.token)
    return app


@asynccontextmanager
async def http_server(
    sessions: SessionFactory,
    host: str,
    port: int,
    role: str = "all",
    *,
    settings: Settings | None = None,
    webhook: WebhookInbox | None = None,
) -> AsyncIterator[int | None]:
    """Serves until the block ends; yields the bound port (None when HTTP_PORT is 0)."""
    if port == 0:
        if webhook is not None:
            raise ConfigError("HTTP_PORT: WEBHOOK_URL needs the HTTP server; set HTTP_PORT")
        yield None
        return
    runner = web.AppRunner(build_http_app(sessions, role, settings, webhook), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(
            f"HTTP_PORT: cannot listen on {host}:{port} ({exc.strerror or exc}); "
            "choose a free port, or HTTP_PORT=0 to turn the HTTP server off"
        ) from None
    bound = runner.addresses[0][1] if runner.addresses else port
    log.info("HTTP server on http://%s:%s (GET /healthz, /metrics)", host, bound)
    try:
        yield bound
    finally:
        await runner.cleanup()

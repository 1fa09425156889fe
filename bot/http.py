"""The HTTP server of a `run` process: `GET /healthz` and the Mini App (`/app`, bot.webapp).

One server per process (HTTP_HOST, HTTP_PORT; port 0 turns it off). One-shot commands
(`poll`, `stats`, ...) open none.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from bot.config import ConfigError, Settings
from bot.db import SessionFactory
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


def build_http_app(
    sessions: SessionFactory, role: str, settings: Settings | None = None
) -> web.Application:
    """/healthz; with settings that hold a bot token, the Mini App under /app too."""
    app = web.Application()
    app[SESSIONS_KEY] = sessions
    app[ROLE_KEY] = role
    app.router.add_get("/healthz", healthz)
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
) -> AsyncIterator[int | None]:
    """Serves until the block ends; yields the bound port (None when HTTP_PORT is 0)."""
    if port == 0:
        yield None
        return
    runner = web.AppRunner(build_http_app(sessions, role, settings), access_log=None)
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
    log.info("HTTP server on http://%s:%s (GET /healthz)", host, bound)
    try:
        yield bound
    finally:
        await runner.cleanup()

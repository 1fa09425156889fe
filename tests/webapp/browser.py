"""Debian's Chromium driven by Playwright, and a stand-in for telegram-web-app.js (no network)."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from tests.conftest import IN_CI

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TELEGRAM_SCRIPT = "https://telegram.org/js/telegram-web-app.js"
# Telegram's light theme, as telegram-web-app.js would set it
THEME = {
    "bg_color": "#ffffff",
    "text_color": "#000000",
    "hint_color": "#999999",
    "link_color": "#2481cc",
    "button_color": "#2481cc",
    "button_text_color": "#ffffff",
    "secondary_bg_color": "#efeff3",
    "section_bg_color": "#ffffff",
    "destructive_text_color": "#e53935",
}


def require_chromium() -> None:
    """Skips (fails under CI=true) when Debian's Chromium is not installed."""
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} is missing: apt-get install -y chromium (the Mini App browser tests)"
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


def telegram_stub(init_data: str, theme: dict[str, str] | None = None) -> str:
    """JavaScript that does what telegram-web-app.js does for the page: initData and theme."""
    fields = dict(parse_qsl(init_data))
    try:
        user: Any = json.loads(fields.get("user", "null"))
    except ValueError:
        user = None
    web_app = {
        "initData": init_data,
        "initDataUnsafe": {"user": user} if user else {},
        "themeParams": theme or THEME,
        "colorScheme": "light",
    }
    return (
        "(function () {\n"
        f"  const app = {json.dumps(web_app)};\n"
        "  app.ready = function () {}; app.expand = function () {};\n"
        "  app.openLink = function (url) { window.__opened = url; };\n"
        "  for (const [key, value] of Object.entries(app.themeParams)) {\n"
        "    document.documentElement.style.setProperty(\n"
        "      '--tg-theme-' + key.replace(/_/g, '-'), value);\n"
        "  }\n"
        "  window.Telegram = { WebApp: app };\n"
        "})();\n"
    )


@asynccontextmanager
async def open_page(
    url: str,
    init_data: str | None,
    *,
    timezone_id: str = "Europe/London",
    width: int = 390,
    height: int = 844,
) -> AsyncIterator[Any]:
    """A phone-sized page at `url`; Telegram's script answered by the stub (None: it fails)."""
    require_chromium()
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=10_000)

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            context = await browser.new_context(
                viewport={"width": width, "height": height},
                device_scale_factor=1,
                timezone_id=timezone_id,
                locale="en-GB",
            )
            errors: list[str] = []

            async def telegram_script(route: Any) -> None:
                if init_data is None:
                    await route.abort()  # as when telegram.org cannot be reached
                else:
                    await route.fulfill(
                        content_type="text/javascript", body=telegram_stub(init_data)
                    )

            await context.route(TELEGRAM_SCRIPT, telegram_script)
            context.set_default_timeout(10_000)
            page = await context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.errors = errors
            await page.goto(url)
            yield page
            assert errors == [], errors  # no uncaught script error on the page
        finally:
            await browser.close()

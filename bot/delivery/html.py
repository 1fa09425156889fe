"""Telegram HTML: escaping feed text, and checking text against Telegram's HTML rules."""

from __future__ import annotations


def escape(text: str) -> str:
    """Escapes text for Telegram HTML (only &lt; &gt; &amp; &quot; are understood there)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")

"""The one rule for "is this an absolute http(s) URL" (FEEDS, /addfeed, fetches, feed links,
WEBHOOK_URL, TELEGRAM_API_URL, PUBLIC_URL); pure, no imports from the rest of the bot."""

from __future__ import annotations

from urllib.parse import urlsplit

HTTP_SCHEMES = ("http", "https")


def http_url_problem(url: str, *, schemes: tuple[str, ...] = HTTP_SCHEMES) -> str | None:
    """None if `url` is an absolute URL with one of `schemes` and a host; else why not."""
    if any(c.isspace() for c in url):
        return "a URL has no spaces in it"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if parts.scheme not in schemes:
        shown = f"{parts.scheme}:" if parts.scheme else "a relative"
        wanted = " and ".join(schemes)
        return f"only {wanted} URLs are accepted, not {shown} URL"
    if not parts.hostname:
        return "the URL has no host name"
    return None


def is_http_url(url: str) -> bool:
    return http_url_problem(url) is None


__all__ = ["HTTP_SCHEMES", "http_url_problem", "is_http_url"]

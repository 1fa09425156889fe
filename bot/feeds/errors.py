"""Every way a feed poll can fail has a name and a one-line reason a person can act on."""

from __future__ import annotations

from bot.errors import KeyedError


class FeedError(Exception):
    """A named feed failure: `str(exc)` is "kind: reason", e.g. "http_404: Not Found"."""

    def __init__(self, kind: str, reason: str, *, retry_after: int | None = None) -> None:
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason
        # seconds the server asked us to wait (Retry-After on 429/503)
        self.retry_after = retry_after


class FeedInputError(KeyedError):
    """A feed address /addfeed refuses; `key` names the reply in bot.i18n (feed_url_*)."""


def split_feed_error(text: str) -> tuple[str, str]:
    """A stored failure "kind: reason" -> (kind, reason); ("other", text) for anything else."""
    kind, sep, reason = text.partition(":")
    kind = kind.strip()
    if not sep or not kind.replace("_", "").isalnum() or len(kind) > 32:
        return "other", text.strip()
    return kind, reason.strip()

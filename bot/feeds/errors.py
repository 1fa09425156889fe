"""Every way a feed poll can fail has a name and a one-line reason a person can act on."""

from __future__ import annotations


class FeedError(Exception):
    """A named feed failure: `str(exc)` is "kind: reason", e.g. "http_404: Not Found"."""

    def __init__(self, kind: str, reason: str, *, retry_after: int | None = None) -> None:
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason
        # seconds the server asked us to wait (Retry-After on 429/503)
        self.retry_after = retry_after

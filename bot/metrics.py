"""Prometheus metrics of one process, served at GET /metrics (prometheus-client's registry).

Counters are per process; Prometheus sums them across a deployment's processes. The outbox
depth is read from the database at each scrape, so every process reports the same figure.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

from bot.feeds.errors import split_feed_error

MESSAGES_SENT = Counter("press_digest_messages_sent", "Messages Telegram accepted")
MESSAGES_FAILED = Counter(
    "press_digest_messages_failed",
    "Messages given up on, by reason (failed, chat_gone, maybe_delivered)",
    ["reason"],
)
RETRY_AFTER = Counter(
    "press_digest_telegram_retry_after", "429 answers from Telegram (sends and replies)"
)
RELEASES_INGESTED = Counter("press_digest_releases_ingested", "New releases stored from feeds")
FEED_ERRORS = Counter(
    "press_digest_feed_errors", "Failed feed polls, by reason (timeout, http_404, ...)", ["reason"]
)
SEND_SECONDS = Histogram(
    "press_digest_send_seconds",
    "Time one sendMessage took, answer included",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25),
)
OUTBOX_DEPTH = Gauge("press_digest_outbox_depth", "Messages queued or being sent (all processes)")


for _reason in ("failed", "chat_gone", "maybe_delivered"):
    MESSAGES_FAILED.labels(_reason)  # every reason shows, at 0, from the first scrape


def feed_error_reason(error: str) -> str:
    """'http_404: Not Found' -> 'http_404': a label with few values, never a URL."""
    return split_feed_error(error)[0]


def render(outbox_depth: int | None) -> tuple[bytes, str]:
    """The text format and its content type; `outbox_depth` None leaves the gauge as it was."""
    if outbox_depth is not None:
        OUTBOX_DEPTH.set(outbox_depth)
    return generate_latest(), CONTENT_TYPE_LATEST

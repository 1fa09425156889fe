"""Logging that never shows the bot token or the webhook secret, wherever they appear (URLs,
tracebacks, reprs)."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

from bot.config import Settings

# Telegram tokens look like 123456789:AA...; redact any such string even if not ours
_TOKEN_RE = re.compile(r"\d{5,}:[A-Za-z0-9_-]{30,}")


class RedactTokenFilter(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[token]")
        return _TOKEN_RE.sub("[token]", text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg = self.redact(message)
        record.args = None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    """LOG_FORMAT=json: one object a line; `chat` and `feed` when the record carries them."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("chat", "feed"):  # log.info(..., extra={"chat": chat_id})
            if (value := getattr(record, key, None)) is not None:
                entry[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


def setup_logging(level: str, settings: Settings | None = None) -> None:
    secrets: list[str] = []
    if settings is not None:
        for secret in (settings.bot_token, settings.webhook_secret):
            if secret is not None:
                secrets.append(secret.get_secret_value())
    handler = logging.StreamHandler(sys.stderr)
    if settings is not None and settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactTokenFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request URL at INFO, and Bot API URLs contain the token
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # alembic says "Context impl SQLiteImpl." on every command; bot.db logs real migrations
    logging.getLogger("alembic").setLevel(logging.WARNING)

"""Settings: every environment variable of the interface contract, read also from `.env`."""

from __future__ import annotations

import re
from datetime import time
from functools import lru_cache
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.urls import http_url_problem

HKSAR_FEEDS = (
    "https://www.info.gov.hk/gia/rss/general_en.xml",
    "https://www.info.gov.hk/gia/rss/general_zh.xml",
)

_TIME_RE = re.compile(r"([0-9]{1,2})(?:[:.h]?([0-9]{2}))?\s*(am|pm|a\.m\.|p\.m\.)?")


# twice a weekly digest's window: a weekly digest missed once (downtime) still finds its matches
MIN_MATCH_RETENTION_DAYS = 14
_TOKEN_SHAPE = re.compile(r"[0-9]+:[A-Za-z0-9_-]+")


class ConfigError(Exception):
    """A missing or malformed setting; the message is one line naming the variable."""


def parse_hhmm(value: str) -> time:
    """`08:00`, `8:30`, `7.30`, `0830`, `8`, `7pm`, `7:30 am` -> time; ValueError otherwise."""
    m = _TIME_RE.fullmatch(value.strip().casefold())
    if not m:
        raise ValueError(f"{value!r} is not a time like 08:00")
    hour, minute = int(m.group(1)), int(m.group(2) or 0)
    if m.group(3):  # 12-hour clock: 12am is midnight, 12pm noon
        if not 1 <= hour <= 12:
            raise ValueError(f"{value!r} is not a time like 08:00")
        hour = hour % 12 + (12 if m.group(3).startswith("p") else 0)
    if hour > 23 or minute > 59:
        raise ValueError(f"{value!r} is not a time like 08:00")
    return time(hour, minute)


def _split_list(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part for part in re.split(r"[,\s]+", str(value)) if part]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    bot_token: SecretStr | None = None
    telegram_api_url: str = "https://api.telegram.org/bot"
    database_url: str = "sqlite+aiosqlite:///data/press_digest.db"
    feeds: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(HKSAR_FEEDS))
    admin_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    poll_interval: int = Field(300, ge=10)
    default_timezone: str = "Asia/Hong_Kong"
    default_digest_time: str = "08:00"
    send_rate: float = Field(25, gt=0)  # the whole deployment's, shared by every sender
    paid_broadcast: bool = False  # broadcasts with allow_paid_broadcast (paid in Stars)
    paid_send_rate: float = Field(1000, gt=0)
    log_level: str = "INFO"
    log_format: str = "text"  # or json: one object a line
    # one HTTP server in each `run` process (GET /healthz); port 0 turns it off
    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    # webhooks instead of long polling: Telegram POSTs updates to WEBHOOK_URL (its path is
    # served by the HTTP server above, behind the operator's https proxy)
    webhook_url: str = ""
    webhook_secret: SecretStr | None = None
    # public https address of the HTTP server; when set, /settings opens the Mini App at /app
    public_url: str = ""

    # Not in the contract's table, but tunable by operators.
    max_subscriptions: int = Field(50, ge=1)
    fetch_timeout: float = Field(30.0, gt=0)
    max_feed_bytes: int = Field(10 * 1024 * 1024, gt=0)
    fetch_concurrency: int = Field(8, ge=1)
    # seconds a sender's claim lasts unless renewed (every lease/4): a killed sender's
    # messages go out again after at most this long
    send_lease: float = Field(20.0, ge=1)
    # days the outbox keeps sent, failed and dropped messages; the match table keeps matches
    # (bot.prune); matches must outlive the longest digest window (see _match_retention)
    outbox_retention_days: int = Field(30, ge=1)
    match_retention_days: int = 90

    @field_validator("feeds", mode="before")
    @classmethod
    def _feeds(cls, value: object) -> list[str]:
        urls = _split_list(value)
        for url in urls:
            if (problem := http_url_problem(url)) is not None:
                raise ValueError(f"{url!r}: {problem}")
        return urls

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _admin_ids(cls, value: object) -> list[int]:
        ids = []
        for part in _split_list(value):
            try:
                ids.append(int(part))
            except ValueError:
                raise ValueError(f"{part!r} is not a Telegram user id (a whole number)") from None
        return ids

    @field_validator("default_timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder, "Asia"
            raise ValueError(f"{value!r} is not an IANA timezone like Asia/Hong_Kong") from None
        return value

    @field_validator("match_retention_days")
    @classmethod
    def _match_retention(cls, value: int) -> int:
        if value < MIN_MATCH_RETENTION_DAYS:
            raise ValueError(
                f"must be at least {MIN_MATCH_RETENTION_DAYS} days (got {value}): a weekly "
                "digest covers 7 days and a missed one more, and a digest cannot show a "
                "match already pruned"
            )
        return value

    @field_validator("default_digest_time")
    @classmethod
    def _digest_time(cls, value: str) -> str:
        return parse_hhmm(value).strftime("%H:%M")

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"{value!r} is not one of DEBUG, INFO, WARNING, ERROR")
        return level

    @field_validator("log_format")
    @classmethod
    def _log_format(cls, value: str) -> str:
        if value.strip().lower() not in {"text", "json"}:
            raise ValueError(f"{value!r} is not text or json")
        return value.strip().lower()

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str) -> str:
        value = value.strip()
        if value and (problem := http_url_problem(value)) is not None:
            raise ValueError(f"{value!r}: {problem}; like https://bot.example.org/telegram")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", value.get_secret_value().strip()):
            # never repeated: it is a secret
            raise ValueError("must be 1-256 characters of A-Z, a-z, 0-9, _ and - (Telegram's rule)")
        return SecretStr(value.get_secret_value().strip())

    @model_validator(mode="after")
    def _webhook_needs_a_secret(self) -> Settings:
        if self.webhook_url and self.webhook_secret is None:
            raise ValueError(
                "WEBHOOK_SECRET is required with WEBHOOK_URL (any 32+ random letters and digits)"
            )
        return self

    @field_validator("telegram_api_url")
    @classmethod
    def _telegram_api_url(cls, value: str) -> str:
        if (problem := http_url_problem(value.strip())) is not None:
            raise ValueError(f"{value!r}: {problem}; like https://api.telegram.org/bot")
        return value.strip()

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        url = value.strip().rstrip("/")
        # Telegram opens Mini Apps only over https; /app is added to the path
        problem = http_url_problem(url, schemes=("https",))
        if url and problem is None and ("?" in url or "#" in url):
            problem = "it has a ? or # part, where /app would not be added to the path"
        if url and problem is not None:
            raise ValueError(f"{url!r}: {problem}; like https://bot.example.org")
        return url

    @property
    def mini_app_url(self) -> str | None:
        """PUBLIC_URL/app, or None when PUBLIC_URL is not set."""
        return f"{self.public_url}/app" if self.public_url else None

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not re.match(r"^[a-z0-9_+]+://", value.strip()):
            raise ValueError(f"{value!r} is not a database URL like sqlite+aiosqlite:///data/x.db")
        return value.strip()

    @property
    def digest_time(self) -> time:
        return parse_hhmm(self.default_digest_time)

    @property
    def token(self) -> str:
        """The bot token; ConfigError (exit 2) when it is not set."""
        if self.bot_token is None or not self.bot_token.get_secret_value().strip():
            raise ConfigError(
                "BOT_TOKEN is not set: ask @BotFather on Telegram for a token (/newbot) and put "
                "BOT_TOKEN=... in .env; to try the bot offline run "
                "`press-digest poll` then `press-digest preview customs`"
            )
        token = self.bot_token.get_secret_value().strip()
        if not _TOKEN_SHAPE.fullmatch(token):
            # the value itself is never repeated: it may be a real token pasted wrongly
            raise ConfigError(
                "BOT_TOKEN does not look like a token from @BotFather (digits, a colon, then "
                "letters, digits, _ or -, like 110201543:AAHdq...); copy it again from @BotFather"
            )
        return token


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment and `.env`; ConfigError names the first bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]).upper() if err["loc"] else "configuration"
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{name}: {msg}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()

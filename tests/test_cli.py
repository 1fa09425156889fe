"""`press-digest` exit statuses and messages: 0 success, 2 usage or configuration, 1 else."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import HKSAR_FEEDS, load_settings
from bot.logging import setup_logging

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory (no .env) and no press-digest variables in the environment."""
    monkeypatch.chdir(tmp_path)
    for name in (
        "BOT_TOKEN", "TELEGRAM_API_URL", "DATABASE_URL", "FEEDS", "ADMIN_IDS", "POLL_INTERVAL",
        "DEFAULT_TIMEZONE", "DEFAULT_DIGEST_TIME", "SEND_RATE", "LOG_LEVEL",
    ):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_defaults_match_the_contract(workdir: Path) -> None:
    settings = load_settings()
    assert settings.telegram_api_url == "https://api.telegram.org/bot"
    assert settings.database_url == "sqlite+aiosqlite:///data/press_digest.db"
    assert settings.feeds == list(HKSAR_FEEDS)
    assert settings.admin_ids == []
    assert settings.poll_interval == 300
    assert settings.default_timezone == "Asia/Hong_Kong"
    assert settings.default_digest_time == "08:00"
    assert settings.send_rate == 25
    assert settings.log_level == "INFO"


def test_lists_are_read_with_commas_or_spaces(workdir: Path, monkeypatch) -> None:
    monkeypatch.setenv("FEEDS", "http://a.example/rss, https://b.example/feed\nhttp://c.example/x")
    monkeypatch.setenv("ADMIN_IDS", "1, 22,333")
    settings = load_settings()
    assert settings.feeds == [
        "http://a.example/rss",
        "https://b.example/feed",
        "http://c.example/x",
    ]
    assert settings.admin_ids == [1, 22, 333]


def test_settings_are_read_from_dotenv(workdir: Path) -> None:
    (workdir / ".env").write_text("POLL_INTERVAL=120\nDEFAULT_DIGEST_TIME=7:30\n")
    settings = load_settings()
    assert settings.poll_interval == 120
    assert settings.default_digest_time == "07:30"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("POLL_INTERVAL", "often"),
        ("ADMIN_IDS", "alice"),
        ("DEFAULT_TIMEZONE", "Mars/Olympus"),
        ("DEFAULT_TIMEZONE", "Asia"),
        ("DEFAULT_DIGEST_TIME", "25:99"),
        ("FEEDS", "ftp://example.org/feed"),
        ("SEND_RATE", "-1"),
        ("LOG_LEVEL", "LOUD"),
    ],
)
def test_a_bad_setting_exits_2_with_one_line_naming_it(workdir, monkeypatch, capsys, name, value):
    monkeypatch.setenv(name, value)
    assert main(["stats"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert name in err


def test_run_without_a_token_exits_2_and_says_how_to_get_one(workdir, capsys) -> None:
    assert main(["run"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "BOT_TOKEN" in err and "@BotFather" in err and "preview" in err


def test_usage_errors_exit_2(workdir, capsys) -> None:
    assert main([]) == 2
    assert main(["frobnicate"]) == 2
    assert main(["poll", "--bogus"]) == 2
    assert main(["preview", "customs", "--days", "0"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice" in err and "--bogus" in err and "--days" in err


def test_migrate_creates_the_database(workdir, monkeypatch, capsys) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{workdir / 'sub' / 'pd.db'}")
    assert main(["migrate"]) == 0
    assert (workdir / "sub" / "pd.db").exists()
    assert main(["migrate"]) == 0  # nothing pending: still fine


def test_stats_json_reports_every_figure(workdir, monkeypatch, capsys) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{workdir / 'pd.db'}")
    monkeypatch.setenv("FEEDS", "http://127.0.0.1:9/a.xml")
    assert main(["stats", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["chats"] == 0 and stats["subscriptions"] == 0 and stats["releases"] == 0
    assert stats["feeds"] == 1
    assert stats["feed_health"][0]["url"] == "http://127.0.0.1:9/a.xml"
    assert {"messages_queued", "messages_sent", "messages_failed", "topics"} <= stats.keys()


def test_the_token_never_reaches_the_log(workdir, monkeypatch, capsys) -> None:
    monkeypatch.setenv("BOT_TOKEN", TOKEN)
    setup_logging("DEBUG", load_settings())
    log = logging.getLogger("bot.test")
    log.info("calling https://api.telegram.org/bot%s/getMe", TOKEN)
    try:
        raise RuntimeError(f"POST https://api.telegram.org/bot{TOKEN}/sendMessage failed")
    except RuntimeError:
        log.exception("send failed")
    log.warning("some other bot's token 987654321:ZZHdqTcvCH1vGWJxfSeofSAs0K5PALDsbb")
    err = capsys.readouterr().err
    assert "getMe" in err and "sendMessage failed" in err
    assert TOKEN not in err
    assert "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw" not in err
    assert "ZZHdqTcvCH1vGWJxfSeofSAs0K5PALDsbb" not in err
    logging.getLogger().handlers.clear()


def test_version_prints_the_package_version(workdir, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("press-digest ") and out.split()[1][0].isdigit()


def test_preview_on_an_empty_database_says_to_run_poll(workdir, monkeypatch, capsys) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{workdir / 'pd.db'}")
    monkeypatch.setenv("FEEDS", "http://127.0.0.1:9/a.xml")
    assert main(["preview", "customs"]) == 0
    out = capsys.readouterr().out
    assert "no releases yet" in out and "press-digest poll" in out


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://someone:s3cret-pw@127.0.0.1:9/nowhere",  # nothing listens on 9
        "sqlite+aiosqlite:////proc/no-such-dir/pd.db",  # a folder that cannot be made
    ],
)
def test_an_unreachable_database_names_database_url_and_hides_the_password(
    workdir, monkeypatch, capsys, url
) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    assert main(["stats"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "DATABASE_URL" in err
    assert "s3cret-pw" not in err


@pytest.mark.parametrize("token", ["not-a-token", "123456", "abc:def", "123:has space"])
def test_a_malformed_token_is_refused_before_any_network_call(workdir, monkeypatch, capsys, token):
    monkeypatch.setenv("BOT_TOKEN", token)
    # nothing listens here: a network call would fail differently (and later)
    monkeypatch.setenv("TELEGRAM_API_URL", "http://127.0.0.1:9/bot")
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "BOT_TOKEN" in err and "@BotFather" in err
    assert token not in err


def test_a_telegram_api_url_that_is_not_a_url_names_the_variable(workdir, monkeypatch, capsys):
    monkeypatch.setenv("TELEGRAM_API_URL", "api.telegram.org")
    assert main(["stats"]) == 2
    assert "TELEGRAM_API_URL" in capsys.readouterr().err


def test_json_logs_are_one_object_a_line_and_never_show_the_token(workdir, monkeypatch, capsys):
    monkeypatch.setenv("BOT_TOKEN", TOKEN)
    monkeypatch.setenv("LOG_FORMAT", "json")
    setup_logging("INFO", load_settings())
    log = logging.getLogger("bot.sender")
    log.info("sent to chat %s via https://api.telegram.org/bot%s/x", 42, TOKEN, extra={"chat": 42})
    try:
        raise RuntimeError(f"POST https://api.telegram.org/bot{TOKEN}/sendMessage failed")
    except RuntimeError:
        log.exception("send failed", extra={"feed": "http://127.0.0.1:9/a.xml"})
    err = capsys.readouterr().err
    logging.getLogger().handlers.clear()
    lines = [json.loads(line) for line in err.strip().splitlines()]
    assert [line["level"] for line in lines] == ["INFO", "ERROR"]
    assert lines[0]["logger"] == "bot.sender" and lines[0]["chat"] == 42 and "time" in lines[0]
    assert lines[1]["feed"] == "http://127.0.0.1:9/a.xml"
    assert "sendMessage failed" in lines[1]["exception"]
    assert TOKEN not in err and TOKEN.split(":")[1] not in err


def test_an_unknown_log_format_names_the_variable(workdir, monkeypatch, capsys) -> None:
    monkeypatch.setenv("LOG_FORMAT", "xml")
    assert main(["stats"]) == 2
    assert "LOG_FORMAT" in capsys.readouterr().err


def test_webhook_url_without_a_secret_names_webhook_secret(workdir, monkeypatch, capsys) -> None:
    monkeypatch.setenv("WEBHOOK_URL", "https://bot.example.org/telegram")
    assert main(["stats"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "WEBHOOK_SECRET" in err


def test_a_webhook_secret_telegram_would_refuse_is_named_not_shown(workdir, monkeypatch, capsys):
    monkeypatch.setenv("WEBHOOK_URL", "https://bot.example.org/telegram")
    monkeypatch.setenv("WEBHOOK_SECRET", "has spaces and ünïcode")
    assert main(["stats"]) == 2
    err = capsys.readouterr().err
    assert "WEBHOOK_SECRET" in err and "ünïcode" not in err


def test_the_webhook_secret_never_reaches_the_log(workdir, monkeypatch, capsys) -> None:
    secret = "webhookSecret_0123456789_abcdefXYZ"
    monkeypatch.setenv("WEBHOOK_URL", "https://bot.example.org/telegram")
    monkeypatch.setenv("WEBHOOK_SECRET", secret)
    setup_logging("INFO", load_settings())
    logging.getLogger("bot.test").warning("header was %s", secret)
    err = capsys.readouterr().err
    logging.getLogger().handlers.clear()
    assert "header was" in err and secret not in err


def test_preview_of_a_malformed_query_says_what_is_wrong_in_english(
    workdir, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{workdir / 'pd.db'}")
    monkeypatch.setenv("FEEDS", "http://127.0.0.1:9/a.xml")
    assert main(["preview", '"national security']) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the migration's log lines
    assert 'Unbalanced quote in "national security: close the quote' in last

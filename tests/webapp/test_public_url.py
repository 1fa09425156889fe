"""PUBLIC_URL: empty by default, else an https address; anything else is a one-line error."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, load_settings


def test_without_public_url_there_is_no_mini_app_url() -> None:
    assert load_settings(_env_file=None).mini_app_url is None


def test_the_mini_app_lives_under_app() -> None:
    settings = load_settings(_env_file=None, public_url="https://digest.example.org/")
    assert settings.mini_app_url == "https://digest.example.org/app"


@pytest.mark.parametrize("value", ["http://digest.example.org", "digest.example.org", "https://"])
def test_a_public_url_that_is_not_https_names_the_variable(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None, public_url=value)
    message = str(caught.value)
    assert message.startswith("PUBLIC_URL: ") and "https" in message and "\n" not in message

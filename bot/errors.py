"""Errors that name the reply a person sees: a key of bot.i18n and its parameters.

Domain code (matching, feeds, subscriptions) raises them without knowing any language; the
Telegram layer, the Mini App and the CLI render `t(lang, exc.key, **exc.params)`. str(exc)
is one English line for logs: the key's words and the parameters.
"""

from __future__ import annotations


class KeyedError(ValueError):
    """Input the bot refuses; `key` and `params` name the one-line reply in bot.i18n."""

    def __init__(self, key: str, **params: object) -> None:
        self.key = key
        self.params = params
        details = ", ".join(f"{name}={value!r}" for name, value in params.items())
        words = key.replace("_", " ")
        super().__init__(f"{words} ({details})" if details else words)

"""The topic catalogue: well-known topics with their names in English and Chinese (topics.toml).

A query word or phrase that is one of a topic's aliases (compared in normalised, joined
form, so ``E-Commerce``, ``e commerce`` and ``ecommerce`` are one alias) stands for the
whole topic: every alias, in English, Traditional and Simplified Chinese.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from bot.matching.text import Term, tokens


@dataclass(frozen=True)
class CatalogueTopic:
    key: str  # stable id; a query refers to it as "@key"
    name_en: str
    name_zh: str
    aliases: tuple[str, ...]  # as written in topics.toml, for display
    popular: bool = False

    @property
    def label(self) -> str:
        return f"{self.name_en} / {self.name_zh}"

    def terms(self) -> tuple[Term, ...]:
        """What the topic matches: every alias and name as a normalised term, without duplicates."""
        return _terms(self.key)


@cache
def _load() -> tuple[dict[str, CatalogueTopic], dict[str, str]]:
    """(topics by key, key by joined alias); read once from the package's topics.toml."""
    data = tomllib.loads(resources.files("bot.matching").joinpath("topics.toml").read_text("utf-8"))
    by_key: dict[str, CatalogueTopic] = {}
    by_alias: dict[str, str] = {}
    for row in data["topic"]:
        topic = CatalogueTopic(
            key=row["key"],
            name_en=row["name_en"],
            name_zh=row["name_zh"],
            aliases=tuple(row["aliases"]),
            popular=bool(row.get("popular", False)),
        )
        if topic.key in by_key:
            raise ValueError(f"topics.toml: duplicate key {topic.key!r}")
        by_key[topic.key] = topic
        for text in (topic.key, topic.name_en, topic.name_zh, *topic.aliases):
            joined = "".join(tokens(text))
            if not joined:
                raise ValueError(f"topics.toml: alias {text!r} of {topic.key!r} has no words")
            # the first topic that claims an alias keeps it; topics.toml is ordered by importance
            by_alias.setdefault(joined, topic.key)
    return by_key, by_alias


@cache
def _terms(key: str) -> tuple[Term, ...]:
    topic = _load()[0][key]
    found: dict[Term, None] = {}
    for text in (topic.name_en, topic.name_zh, *topic.aliases):
        found[Term(tuple(tokens(text)))] = None
    return tuple(found)


def all_topics() -> list[CatalogueTopic]:
    return list(_load()[0].values())


def popular_topics() -> list[CatalogueTopic]:
    """The topics offered as buttons by /start (about 6-8)."""
    return [t for t in _load()[0].values() if t.popular]


def topic_by_key(key: str) -> CatalogueTopic | None:
    return _load()[0].get(key)


def lookup_joined(joined: str) -> CatalogueTopic | None:
    """The topic whose alias, in joined normalised form, is `joined` (``"nationalsecurity"``)."""
    key = _load()[1].get(joined)
    return None if key is None else _load()[0][key]


def find_topic(text: str) -> CatalogueTopic | None:
    """The catalogue topic `text` names (``customs``, ``海關``, ``C&ED``, ``@customs``)."""
    text = text.strip()
    if text.startswith("@") and (topic := topic_by_key(text[1:].strip().lower())):
        return topic
    return lookup_joined("".join(tokens(text.replace('"', " "))))

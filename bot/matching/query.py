"""The query language of subscriptions and /search, parsed into one canonical form.

Syntax (product.md, "Query language"):

- ``customs seizure``: words are ANDed.
- ``"national security"``: a phrase (straight or curly quotes, or 「」).
- ``customs OR excise``: ``OR`` (uppercase only; ``or`` is a word) binds looser than AND:
  ``a b OR c`` means ``(a AND b) OR c``. This is what search engines do and what people
  expect from ``customs seizure OR smuggling`` … mostly; write two subscriptions otherwise.
- ``-conference``, ``-"press conference"``: excludes releases containing it. An exclusion
  applies to the whole query wherever it stands: ``a OR b -c`` means ``(a OR b) AND NOT c``.
- ``smuggl*``: a prefix (at least two letters before the ``*``).
- Case, width and accents do not matter; ``e-commerce`` = ``ecommerce``; a phrase
  ``"e commerce"`` also finds ``ecommerce``. Latin words match whole words only; Chinese,
  Japanese and Korean terms match as substrings.
- A word or phrase that names a catalogue topic (``customs``, ``海關``, ``"national
  security"``) stands for the whole topic in every language: ``customs -conference`` is
  ``(customs OR 海關 OR 海关 OR "c ed" OR …) AND NOT conference``. Exclusions are never
  expanded: ``-customs`` excludes the English word only. ``@key`` names a topic directly.

The canonical form (``Topic.query``) has sorted, de-duplicated terms and clauses, folded
case, catalogue topics as ``@key`` and exclusions last: ``Customs  -Conference`` and
``-conference 海關`` are both ``@customs -conference``. Parsing a canonical form gives it
back unchanged, and it alone decides what matches (the index compiles it).

Nothing the user writes is ever compiled as a regular expression.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from typing import NamedTuple

from bot.errors import KeyedError
from bot.matching.catalogue import CatalogueTopic, lookup_joined, topic_by_key
from bot.matching.text import Term, is_no_space, tidy, tokens

MAX_QUERY_LENGTH = 200  # characters of one query (a subscription, a search)
MAX_TERMS = 20
MIN_PREFIX = 2  # letters before a `*`: `a*` would match half of every text
_CANONICAL_LIMIT = 10_000  # a stored canonical form is re-parsed without the user's limit
_QUOTES = frozenset('"“”„‟«»「」『』＂')
_MINUS = frozenset("-−–—－")


class QueryError(KeyedError):
    """A malformed query: `key` names the one-line reply in bot.i18n (what is wrong and an
    example that works, in the chat's language); str(exc) is English for logs."""


@dataclass(frozen=True)
class ParsedQuery:
    canonical: str  # one canonical form, stored as Topic.query (unique)
    label: str  # how we show it (catalogue name, else the user's words tidied)
    aliases: tuple[str, ...]  # catalogue aliases it covers (empty if not a catalogue topic)


class TopicRef(NamedTuple):
    """A catalogue topic inside a query: matches any of its aliases."""

    key: str

    @property
    def canonical(self) -> str:
        return "@" + self.key

    def terms(self) -> tuple[Term, ...]:
        topic = topic_by_key(self.key)
        return topic.terms() if topic else ()


Group = Term | TopicRef


@dataclass(frozen=True, slots=True)
class QueryTree:
    """OR of clauses; a clause is an AND of groups; `excluded` rules a release out."""

    clauses: tuple[tuple[Group, ...], ...]
    excluded: tuple[Group, ...]

    @property
    def canonical(self) -> str:
        text = " OR ".join(" ".join(g.canonical for g in clause) for clause in self.clauses)
        return " ".join([text, *("-" + g.canonical for g in self.excluded)])


@dataclass(slots=True)
class _Item:
    raw: str
    quoted: bool
    negated: bool


def _snippet(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _lex(text: str) -> list[_Item | None]:
    """Items of the query; None stands for the OR operator."""
    items: list[_Item | None] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        negated = False
        if ch in _MINUS and i + 1 < n and not text[i + 1].isspace():
            negated = True
            i += 1
            ch = text[i]
        if ch in _QUOTES:
            end = next((j for j in range(i + 1, n) if text[j] in _QUOTES), -1)
            if end < 0:
                fixed = text.rstrip() + '"'
                raise QueryError(
                    "query_unbalanced_quote", text=_snippet(text), fixed=_snippet(fixed)
                )
            items.append(_Item(text[i + 1 : end], quoted=True, negated=negated))
            i = end + 1
            continue
        j = i
        while j < n and not text[j].isspace() and text[j] not in _QUOTES:
            j += 1
        chunk = text[i:j]
        items.append(
            None if chunk == "OR" and not negated else _Item(chunk, quoted=False, negated=negated)
        )
        i = j
    return items


def _group(item: _Item) -> Group | None:
    """The term an item stands for, or None when it has no letters or digits (punctuation)."""
    raw = item.raw.strip()
    if not item.quoted and raw.startswith("@") and (topic := topic_by_key(raw[1:].lower())):
        return TopicRef(topic.key)
    stem = raw.rstrip("*")
    prefix = stem != raw
    if prefix and not stem.strip():
        raise QueryError("query_lone_star")
    if "*" in stem:
        raise QueryError("query_star_inside", word=_snippet(raw))
    words = tokens(stem)
    if not words:
        return None
    if prefix and is_no_space(words[-1]):
        prefix = False  # CJK matches as a substring anyway
    if prefix and len(words[-1]) < MIN_PREFIX:
        raise QueryError("query_short_prefix", word=_snippet(raw), letters=MIN_PREFIX)
    return Term(tuple(words), prefix)


def _resolve(clause: list[Group]) -> list[Group]:
    """Catalogue topics in a clause: the clause's words as a whole, else each word or phrase."""
    clause = list(dict.fromkeys(clause))  # as the canonical form will have it
    plain = [g for g in clause if isinstance(g, Term) and not g.prefix]
    if len(plain) == len(clause) and len(clause) > 1:
        # both orders, so that the sorted canonical form resolves exactly as the original did
        for order in (clause, sorted(clause, key=lambda g: g.canonical)):
            topic = lookup_joined("".join(g.joined for g in order if isinstance(g, Term)))
            if topic:
                return [TopicRef(topic.key)]
    resolved: list[Group] = []
    for g in clause:
        topic = lookup_joined(g.joined) if isinstance(g, Term) and not g.prefix else None
        resolved.append(TopicRef(topic.key) if topic else g)
    return resolved


def _build(text: str, max_length: int) -> tuple[QueryTree, str]:
    """The query tree and the tidied text; QueryError for anything malformed."""
    shown = tidy(text)
    if not shown:
        raise QueryError("query_empty")
    if len(shown) > max_length:
        raise QueryError("query_too_long", length=len(shown), limit=max_length)
    items = _lex(shown)
    if items[0] is None or items[-1] is None:
        raise QueryError("query_or_at_start" if items[0] is None else "query_or_at_end")
    terms = [item for item in items if item is not None]
    if len(terms) > MAX_TERMS:
        raise QueryError("query_too_many_terms", terms=len(terms), limit=MAX_TERMS)
    clauses: list[list[Group]] = [[]]
    excluded: list[Group] = []
    previous_was_or = False
    for item in items:
        if item is None:
            if previous_was_or:
                raise QueryError("query_two_ors")
            clauses.append([])
            previous_was_or = True
            continue
        previous_was_or = False
        group = _group(item)
        if group is None:
            continue
        (excluded if item.negated else clauses[-1]).append(group)
    if all(not clause for clause in clauses):
        if excluded:
            raise QueryError("query_only_exclusions")
        raise QueryError("query_only_punctuation")
    if any(not clause for clause in clauses):
        raise QueryError("query_or_empty_side")
    resolved = [_resolve(clause) for clause in clauses]
    canon_excluded = tuple(sorted(dict.fromkeys(excluded), key=lambda g: g.canonical))
    excluded_names = {g.canonical for g in canon_excluded}
    canon_clauses: dict[tuple[Group, ...], None] = {}
    for clause in resolved:
        unique = tuple(sorted(dict.fromkeys(clause), key=lambda g: g.canonical))
        for g in unique:
            if g.canonical in excluded_names:
                raise QueryError("query_wanted_and_excluded", term=g.canonical)
        canon_clauses[unique] = None
    ordered = tuple(sorted(canon_clauses, key=lambda c: " ".join(g.canonical for g in c)))
    tree = QueryTree(ordered, canon_excluded)
    if len(tree.canonical) > max_length:
        raise QueryError("query_too_long_normalised", limit=max_length)
    return tree, shown


def _catalogue_only(tree: QueryTree) -> CatalogueTopic | None:
    if tree.excluded or len(tree.clauses) != 1 or len(tree.clauses[0]) != 1:
        return None
    group = tree.clauses[0][0]
    return topic_by_key(group.key) if isinstance(group, TopicRef) else None


def _label(shown: str) -> str:
    return "".join('"' if ch in _QUOTES else ch for ch in shown)


def parse_query(text: str, *, max_length: int = MAX_QUERY_LENGTH) -> ParsedQuery:
    """The canonical form, label and catalogue aliases of a query; QueryError if malformed."""
    tree, shown = _build(text, max_length)
    topic = _catalogue_only(tree)
    aliases: dict[str, None] = {}
    for group in (g for clause in tree.clauses for g in clause):
        if isinstance(group, TopicRef) and (ref := topic_by_key(group.key)):
            aliases.update(dict.fromkeys(ref.aliases))
    return ParsedQuery(
        canonical=tree.canonical,
        label=topic.label if topic else _label(shown),
        aliases=tuple(aliases),
    )


def _plain_token(token: str) -> bool:
    """A token that `tokens` gives back unchanged: lower-case ASCII letters and digits, or a
    run of NFKC-normal CJK (Thai-like) characters."""
    if token.isascii():
        return token.isalnum() and token == token.lower()
    return all(map(is_no_space, token)) and unicodedata.is_normalized("NFKC", token)


def _fast_group(item: str) -> Group | None:
    """The group of one item of a canonical form, or None to leave it to the full parser."""
    if item.startswith("@"):
        return TopicRef(item[1:]) if topic_by_key(item[1:]) else None
    if item.startswith('"'):
        if len(item) < 2 or not item.endswith('"'):
            return None
        item = item[1:-1]
    stem = item.removesuffix("*")
    words = stem.split(" ")
    if not all(map(_plain_token, words)):
        return None
    term = Term(tuple(words), stem != item)
    if term.prefix and (len(words[-1]) < MIN_PREFIX or is_no_space(words[-1])):
        return None
    if not term.prefix and lookup_joined(term.joined):
        return None  # a catalogue alias: the full parser resolves it
    return term


def _fast_tree(canonical: str) -> QueryTree | None:
    """The tree of a canonical form read without the general parser (two to three times faster),
    or None when the text is anything but a plain canonical form (the full parser decides)."""
    if not canonical or len(canonical) > _CANONICAL_LIMIT:
        return None
    pieces = canonical.split(" ")
    items: list[str] = []
    while pieces:
        piece = pieces.pop(0)
        if piece.lstrip("-").startswith('"'):
            while not (piece.endswith('"') and len(piece.lstrip("-")) > 1) and pieces:
                piece += " " + pieces.pop(0)
        items.append(piece)
    clauses: list[list[Group]] = [[]]
    names: list[list[str]] = [[]]  # each group's canonical form: the item as written
    excluded: list[Group] = []
    excluded_names: list[str] = []
    for item in items:
        if item == "OR":
            if excluded:
                return None  # exclusions come last
            clauses.append([])
            names.append([])
            continue
        negated = item.startswith("-")
        text = item[1:] if negated else item
        group = _fast_group(text)
        if group is None or group.canonical != text:
            return None
        if negated:
            excluded.append(group)
            excluded_names.append(text)
        elif excluded:
            return None
        else:
            clauses[-1].append(group)
            names[-1].append(text)
    if len(items) - len(clauses) + 1 > MAX_TERMS or not all(clauses):
        return None
    keys = [" ".join(clause) for clause in names]
    if (
        excluded_names != sorted(set(excluded_names))
        or keys != sorted(set(keys))
        or any(clause != sorted(set(clause)) for clause in names)
        or not set(excluded_names).isdisjoint(chain.from_iterable(names))
    ):
        return None  # not in canonical order: the full parser sorts it (or refuses it)
    for clause in clauses:
        if len(clause) > 1 and all(isinstance(g, Term) and not g.prefix for g in clause):
            joined = "".join(g.joined for g in clause if isinstance(g, Term))
            if lookup_joined(joined):
                return None  # the clause as a whole names a catalogue topic
    return QueryTree(tuple(tuple(c) for c in clauses), tuple(excluded))


def compile_canonical(canonical: str) -> QueryTree:
    """The tree of a stored canonical form (not cached); QueryError if it no longer parses."""
    return _fast_tree(canonical) or _build(canonical, _CANONICAL_LIMIT)[0]


@lru_cache(maxsize=20_000)
def compile_tree(canonical: str) -> QueryTree:
    """The tree of a stored canonical form (cached: /search and previews reuse these)."""
    return compile_canonical(canonical)


def query_tree(text: str, *, max_length: int = MAX_QUERY_LENGTH) -> QueryTree:
    """The tree of a user's query (for /search and preview)."""
    return _build(text, max_length)[0]

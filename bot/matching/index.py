"""Matching releases to topics: an incremental index over every active topic, and a one-query
matcher.

`TopicIndex` works like Lucene's Monitor or the Elasticsearch percolator: each stored query
is filed under the terms it needs, so that a batch of releases only looks at the queries
whose terms it contains. Three layers of dicts that `add` and `remove` change in place
(never a rebuild: one topic costs well under a millisecond whatever the size):

- *patterns* (``" customs "``, ``"海關"``, ``" smuggl"``, ``" national security "``: the
  strings whose presence in a normalised view means a term is there) are filed under one
  *feature*: a whole word, a prefix's stem, or a CJK character pair. A feature present
  decides alone for most patterns (a word, a stem, a two-character CJK term); a phrase or
  longer CJK term is confirmed with a substring test, only where its rarest word (and a
  second one) occurs;
- *atoms* (a word, phrase, prefix or catalogue group: any of its patterns) follow;
- each *clause* (an AND of atoms) of one atom is listed under it; a longer one under its
  two rarest atoms (fewest of a sample of recent releases contain them). Exclusions are
  checked last, on the topics that matched.

`match_many` runs a batch at once, the releases that contain an atom held as a bit mask (an
int: AND and OR in C), so each index entry is looked at once per batch, not once per
release, and the work is proportional to the terms present, not to the topics.
`QueryMatcher` checks one query with plain substring tests: used for /search, preview and
new subscriptions, and as the reference the index is tested against.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from typing import TypeVar

from bot.matching.query import Group, QueryError, QueryTree, TopicRef, compile_canonical
from bot.matching.text import Term, is_no_space, text_views

log = logging.getLogger(__name__)
K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class ReleaseText:
    """A release's title and body, normalised once (both views)."""

    title: tuple[str, ...]
    body: tuple[str, ...]

    @classmethod
    def of(cls, title: str, body: str) -> ReleaseText:
        return cls(text_views(title or ""), text_views(body or ""))


def group_terms(group: Group) -> tuple[Term, ...]:
    return group.terms() if isinstance(group, TopicRef) else (group,)


def _group_patterns(group: Group) -> tuple[str, ...]:
    return tuple(dict.fromkeys(key for term in group_terms(group) for key in term.patterns()))


group_keys = lru_cache(maxsize=50_000)(_group_patterns)


def _rarity(keys: Sequence[str]) -> int:
    """How unlikely a group is to occur in a text: its most common key decides (higher = rarer)."""

    def score(key: str) -> int:
        phrase_bonus = 8 * key.strip().count(" ")
        prefix_malus = 0 if key.endswith(" ") or not key.startswith(" ") else 3
        # a CJK character carries about as much as three Latin letters
        width = len(key.strip()) * (1 if key.isascii() else 3)
        return width + phrase_bonus - prefix_malus

    return min(score(k) for k in keys)


class QueryMatcher:
    """One query, checked with substring tests on normalised views (no automaton)."""

    def __init__(self, tree: QueryTree) -> None:
        self.tree = tree
        self._clauses = tuple(tuple(group_keys(g) for g in clause) for clause in tree.clauses)
        self._excluded = tuple(k for g in tree.excluded for k in group_keys(g))
        self._positive = tuple(
            dict.fromkeys(k for clause in self._clauses for g in clause for k in g)
        )

    @staticmethod
    def _present(keys: Sequence[str], views: Sequence[str]) -> bool:
        return any(key in view for view in views for key in keys)

    def matches(self, text: ReleaseText) -> bool | None:
        """None when the release does not match, else whether the title mentions the query."""
        views = (*text.title, *text.body)
        if self._excluded and self._present(self._excluded, views):
            return None
        if not any(all(self._present(g, views) for g in clause) for clause in self._clauses):
            return None
        return self._present(self._positive, text.title)


# Feature kinds: a pattern is filed under a whole word, the stem of a prefix, a CJK gram, or
# a pair of neighbouring words.
WORD, PREFIX, GRAM, PAIR = 0, 1, 2, 3  # PAIR: two whole Latin words in a row ("a b")
SAMPLE_PREFIX = 8  # the sample counts word starts up to this length (longer: this one's count)


@dataclass(frozen=True, slots=True)
class _Filed:
    """Where one pattern of an atom is filed; `pattern` None when the feature alone decides."""

    kind: int
    feature: str
    pattern: str | None
    also: str | None  # a second word the pattern needs (checked before the substring test)


def _options(pattern: str) -> tuple[list[tuple[int, str]], bool]:
    """The features a pattern can be filed under (each necessary for it), and whether the
    feature is exact (present ⇔ pattern present: no substring test)."""
    toks = pattern.split()
    lead, tail = pattern.startswith(" "), pattern.endswith(" ")
    if len(toks) == 2 and lead and tail:  # " a b ": present ⇔ the two words are neighbours
        return [(PAIR, " ".join(toks))], True
    if len(toks) == 1:
        tok = toks[0]
        if lead:  # a whole Latin word, or the stem of a prefix
            return [(WORD if tail else PREFIX, tok)], True
        if len(tok) <= 2:
            return [(GRAM, tok)], True
        return [(GRAM, tok[j : j + 2]) for j in range(len(tok) - 1)], False
    options: list[tuple[int, str]] = []
    for i, tok in enumerate(toks):
        if is_no_space(tok):
            grams = [tok] if len(tok) == 1 else [tok[j : j + 2] for j in range(len(tok) - 1)]
            options.extend((GRAM, g) for g in grams)
        elif i < len(toks) - 1 or tail:  # a prefix's stem is not a whole word: not an option
            options.append((WORD, tok))
    return options, False


def _pairs(views: Sequence[str]) -> set[str]:
    """Every two neighbouring words of the views, as "a b"."""
    pairs: set[str] = set()
    for view in views:
        toks = view.split()
        pairs.update(map(" ".join, zip(toks, toks[1:])))
    return pairs


def _words(views: Sequence[str]) -> set[str]:
    words: set[str] = set()
    for view in views:
        words.update(view.split())
    return words


def _cjk_grams(run: str) -> set[str]:
    """Every character and pair of neighbouring characters of a CJK run."""
    grams = {run[j : j + 2] for j in range(len(run) - 1)}
    grams.update(run)
    return grams


def _is_cjk_run(token: str) -> bool:
    return not token.isascii() and is_no_space(token)


@dataclass(frozen=True, slots=True)
class _Topic:
    clauses: tuple[frozenset[int], ...]
    excluded: frozenset[int]


class Covered:
    """The topics an index held when it was taken: `in` says whether a match covered a topic."""

    def __init__(self, index: TopicIndex) -> None:
        self._index = index
        self._serial = index.serial

    def __contains__(self, topic_id: object) -> bool:
        index = self._index
        if not isinstance(topic_id, int) or topic_id not in index:
            return False
        return index.added_serial(topic_id) <= self._serial


class TopicIndex:
    """Every active topic indexed by its terms; `match_many` gives {topic_id: in_title} per
    release.

    `add` and `remove` change it in place and may run while other threads match (a lock
    keeps each call whole). `sample`: recent releases; how often each feature occurs in them
    picks the rarest anchors.
    """

    def __init__(
        self, topics: Iterable[tuple[int, str]] = (), sample: Sequence[ReleaseText] = ()
    ) -> None:
        self._lock = threading.Lock()
        self._df: tuple[Counter[str], ...] = (Counter(), Counter(), Counter(), Counter())
        for text in sample:
            words = _words((*text.title, *text.body))
            self._df[WORD].update(words)
            self._df[PREFIX].update({w[:n] for w in words for n in range(2, SAMPLE_PREFIX + 1)})
            runs = [w for w in words if _is_cjk_run(w)]
            self._df[GRAM].update(set().union(*map(_cjk_grams, runs)) if runs else ())
            self._df[PAIR].update(_pairs((*text.title, *text.body)))
        self._atom_ids: dict[Group, int] = {}
        self._atom_groups: dict[int, Group] = {}
        self._atom_refs: dict[int, int] = {}  # atom → how many topics use it
        self._atom_df: dict[int, tuple[int, int]] = {}  # atom → (sample frequency, -rarity)
        self._atom_filed: dict[int, tuple[_Filed, ...]] = {}
        self._next_atom = 0
        # per feature kind: feature → atoms (exact) and feature → patterns to confirm
        self._exact: tuple[dict[str, list[int]], ...] = ({}, {}, {}, {})
        self._confirm: tuple[dict[str, list[tuple[str, int, str | None]]], ...] = (
            {},
            {},
            {},
            {},
        )
        self._prefix_lengths: Counter[int] = Counter()
        # atom → topics whose whole query is that atom (one clause of it alone, no exclusion)
        self._solo: dict[int, list[int]] = {}
        self._single: dict[int, list[int]] = {}  # atom → other topics with a clause of it alone
        self._general: set[int] = set()  # topics with OR or exclusions
        # atom → the topics (but solo ones) whose clauses mention it: in_title
        self._mentions: dict[int, list[int]] = {}
        self._excluding: dict[int, frozenset[int]] = {}  # topic → the atoms it excludes
        # a clause of 2+ atoms is filed under its two rarest atoms, first → second → …:
        # the topics of a clause of two atoms, or the clauses of three or more
        self._pairs: dict[int, dict[int, list[int]]] = {}
        self._long: dict[int, dict[int, list[frozenset[int]]]] = {}
        self._clause_topics: dict[frozenset[int], list[int]] = {}  # clauses of 3+ atoms
        self._topics: dict[int, _Topic] = {}
        # matching: each distinct word's atoms, kept until an atom is added or dropped
        self._atom_changes = self._cache_changes = 0
        self._word_cache: dict[str, tuple[int, ...]] = {}  # only words that bring atoms
        self._words_seen: set[str] = set()
        self._spaced: dict[str, tuple[tuple[str, int], ...]] = {}  # CJK run → mixed patterns
        self._added: dict[int, int] = {}  # topic → serial of its add after construction
        self.serial = 0
        for topic_id, canonical in topics:
            self.add(topic_id, canonical)
        self._added.clear()

    # ---- building -----------------------------------------------------------------------

    def _feature_df(self, kind: int, feature: str) -> int:
        return self._df[kind].get(feature[:SAMPLE_PREFIX] if kind == PREFIX else feature, 0)

    def _atom(self, group: Group) -> int:
        """The id of an atom, filing its patterns if it is new."""
        atom = self._atom_ids.get(group)
        if atom is not None:
            self._atom_refs[atom] += 1
            return atom
        atom = self._atom_ids[group] = self._next_atom
        self._next_atom += 1
        self._atom_changes += 1
        self._atom_groups[atom] = group
        self._atom_refs[atom] = 1
        patterns = _group_patterns(group)
        filed: list[_Filed] = []
        df = 0
        for pattern in patterns:
            options, exact = _options(pattern)

            def commonness(option: tuple[int, str]) -> tuple[int, int, tuple[int, str]]:
                # rarest first; the longer one when the sample has seen neither
                return (self._feature_df(*option), -len(option[1]), option)

            ranked = sorted(set(options), key=commonness)
            kind, feature = ranked[0]
            df += self._feature_df(kind, feature)
            if exact:
                self._exact[kind].setdefault(feature, []).append(atom)
                filed.append(_Filed(kind, feature, None, None))
            else:
                also = next((f for k, f in ranked[1:] if k == WORD), None) if kind == WORD else None
                self._confirm[kind].setdefault(feature, []).append((pattern, atom, also))
                filed.append(_Filed(kind, feature, pattern, also))
            if kind == PREFIX:
                self._prefix_lengths[len(feature)] += 1
        self._atom_filed[atom] = tuple(filed)
        self._atom_df[atom] = (df, -_rarity(patterns))
        return atom

    def _release_atom(self, atom: int) -> None:
        refs = self._atom_refs[atom] - 1
        if refs:
            self._atom_refs[atom] = refs
            return
        del self._atom_refs[atom], self._atom_df[atom]
        self._atom_changes += 1
        del self._atom_ids[self._atom_groups.pop(atom)]
        for filed in self._atom_filed.pop(atom):
            if filed.pattern is None:
                _drop(self._exact[filed.kind], filed.feature, atom)
            else:
                entry = (filed.pattern, atom, filed.also)
                _drop(self._confirm[filed.kind], filed.feature, entry)
            if filed.kind == PREFIX:
                self._prefix_lengths[len(filed.feature)] -= 1
                if not self._prefix_lengths[len(filed.feature)]:
                    del self._prefix_lengths[len(filed.feature)]

    def _anchor(self, clause: frozenset[int]) -> tuple[int, int]:
        """The clause's two rarest atoms (ties by id: the same whatever the set's order)."""
        df = self._atom_df
        first, second = sorted(clause, key=lambda atom: (df[atom], atom))[:2]
        return first, second

    def add(self, topic_id: int, canonical: str) -> bool:
        """Indexes a topic (replacing one of that id); False when the stored query no longer
        parses (a row written by an older version of the language: logged, not matched)."""
        try:
            tree = compile_canonical(canonical)
        except QueryError as exc:
            log.warning("topic %s %r not matched: %s", topic_id, canonical, exc)
            self.remove(topic_id)
            return False
        with self._lock:
            self._remove(topic_id)
            self.serial += 1
            self._added[topic_id] = self.serial
            clauses = tuple(frozenset(self._atom(g) for g in clause) for clause in tree.clauses)
            excluded = frozenset(self._atom(g) for g in tree.excluded)
            simple = len(clauses) == 1 and not excluded
            if not simple:
                self._general.add(topic_id)
            if not simple or len(clauses[0]) > 1:
                for atom in frozenset().union(*clauses):
                    self._mentions.setdefault(atom, []).append(topic_id)
            if excluded:
                self._excluding[topic_id] = excluded
            for clause in clauses:
                if len(clause) == 1:
                    alone = self._solo if simple else self._single
                    alone.setdefault(next(iter(clause)), []).append(topic_id)
                    continue
                first, second = self._anchor(clause)
                if len(clause) == 2:
                    self._pairs.setdefault(first, {}).setdefault(second, []).append(topic_id)
                    continue
                topics = self._clause_topics.get(clause)
                if topics is None:
                    topics = self._clause_topics[clause] = []
                    self._long.setdefault(first, {}).setdefault(second, []).append(clause)
                topics.append(topic_id)
            self._topics[topic_id] = _Topic(clauses, excluded)
        return True

    def remove(self, topic_id: int) -> bool:
        """Forgets a topic; False if it was not indexed."""
        with self._lock:
            return self._remove(topic_id)

    def _remove(self, topic_id: int) -> bool:
        topic = self._topics.pop(topic_id, None)
        if topic is None:
            return False
        self._added.pop(topic_id, None)
        simple = topic_id not in self._general
        self._general.discard(topic_id)
        if not simple or len(topic.clauses[0]) > 1:
            for atom in frozenset().union(*topic.clauses):
                _drop(self._mentions, atom, topic_id)
        self._excluding.pop(topic_id, None)
        alone = self._solo if simple else self._single
        for clause in topic.clauses:
            if len(clause) == 1:
                _drop(alone, next(iter(clause)), topic_id)
                continue
            first, second = self._anchor(clause)
            if len(clause) == 2:
                _drop_nested(self._pairs, first, second, topic_id)
                continue
            topics = self._clause_topics[clause]
            topics.remove(topic_id)
            if not topics:
                del self._clause_topics[clause]
                _drop_nested(self._long, first, second, clause)
        for clause in topic.clauses:
            for atom in clause:
                self._release_atom(atom)
        for atom in topic.excluded:
            self._release_atom(atom)
        return True

    # ---- reading ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._topics)

    def __contains__(self, topic_id: object) -> bool:
        return topic_id in self._topics

    @property
    def topic_ids(self) -> frozenset[int]:
        return frozenset(self._topics)

    def added_serial(self, topic_id: int) -> int:
        """When a topic was added after construction (0: by the constructor)."""
        return self._added.get(topic_id, 0)

    def covered(self) -> Covered:
        """The topics indexed now (a later `add` is not covered by a match taken before it)."""
        return Covered(self)

    @property
    def key_count(self) -> int:
        """How many patterns are filed."""
        return sum(len(filed) for filed in self._atom_filed.values())

    def _word_atoms(self, word: str, lengths: Sequence[int]) -> tuple[int, ...]:
        """The atoms one word of a text brings by itself: the whole word, the prefixes it
        starts with and, for a CJK run, the terms inside it (no other text needed)."""
        found: list[int] = list(self._exact[WORD].get(word, ()))
        stems = self._exact[PREFIX]
        for n in lengths:
            if n > len(word):
                break
            found.extend(stems.get(word[:n], ()))
        if _is_cjk_run(word):
            grams = _cjk_grams(word)
            gram_exact, gram_confirm = self._exact[GRAM], self._confirm[GRAM]
            for gram in gram_exact.keys() & grams:
                found.extend(gram_exact[gram])
            spaced: list[tuple[str, int]] = []
            for gram in gram_confirm.keys() & grams:
                for pattern, atom, _also in gram_confirm[gram]:
                    if " " in pattern:  # CJK and more: the whole text decides
                        spaced.append((pattern, atom))
                    elif pattern in word:  # one CJK run: it is inside this one or not
                        found.append(atom)
            if spaced:
                self._spaced[word] = tuple(spaced)
        return tuple(dict.fromkeys(found))

    def _present(self, views: Sequence[str], lengths: Sequence[int]) -> set[int]:
        """The atoms present in a text's views (its title, or its body)."""
        words: set[str] = set()
        for view in views:
            words.update(view.split())
        cache = self._word_cache
        for word in words - self._words_seen:
            self._words_seen.add(word)
            found = self._word_atoms(word, lengths)
            if found:
                cache[word] = found
        atoms = set(chain.from_iterable(map(cache.__getitem__, cache.keys() & words)))
        pair_exact = self._exact[PAIR]
        if pair_exact:
            pairs = pair_exact.keys() & _pairs(views)
            atoms.update(chain.from_iterable(map(pair_exact.__getitem__, pairs)))
        confirm = self._confirm[WORD]
        candidates = confirm.keys() & words
        spaced = self._spaced.keys() & words
        if candidates or spaced:
            text = "\n".join(views)  # no pattern has a newline
            for word in candidates:
                for pattern, atom, also in confirm[word]:
                    if (
                        atom not in atoms
                        and (also is None or also in words)
                        and pattern in text
                    ):
                        atoms.add(atom)
            for word in spaced:
                for pattern, atom in self._spaced[word]:
                    if atom not in atoms and pattern in text:
                        atoms.add(atom)
        return atoms

    def match_many(self, texts: Sequence[ReleaseText]) -> list[dict[int, bool]]:
        """For each release, the topics it matches, each with whether its title mentions it.

        Per release: the set of atoms present (each distinct word of the batch looked up
        once); then only the queries filed under a present atom are looked at, and most of
        them (one atom, no OR, no exclusion) are copied out in C (`dict.fromkeys`).
        """
        with self._lock:
            if self._atom_changes != self._cache_changes or len(self._words_seen) > 200_000:
                self._word_cache, self._words_seen, self._spaced = {}, set(), {}
                self._cache_changes = self._atom_changes
            lengths = sorted(self._prefix_lengths)
            solo, single, pairs, long = self._solo, self._single, self._pairs, self._long
            clause_topics, excluding, mentions = self._clause_topics, self._excluding, self._mentions
            results: list[dict[int, bool]] = []
            for text in texts:
                in_title = self._present(text.title, lengths)
                present = in_title | self._present(text.body, lengths)
                body_only = present - in_title
                found = dict.fromkeys(
                    chain.from_iterable(map(solo.__getitem__, solo.keys() & body_only)), False
                )
                found.update(
                    dict.fromkeys(
                        chain.from_iterable(map(solo.__getitem__, solo.keys() & in_title)), True
                    )
                )
                matched = set(chain.from_iterable(map(single.__getitem__, single.keys() & present)))
                for first in pairs.keys() & present:
                    by_second = pairs[first]
                    matched.update(
                        chain.from_iterable(map(by_second.__getitem__, by_second.keys() & present))
                    )
                for first in long.keys() & present:
                    by_second_long = long[first]
                    for second in by_second_long.keys() & present:
                        for clause in by_second_long[second]:
                            if clause <= present:
                                matched.update(clause_topics[clause])
                if matched:
                    for topic_id in matched & excluding.keys():
                        if not excluding[topic_id].isdisjoint(present):
                            matched.discard(topic_id)
                    titled = matched.intersection(
                        chain.from_iterable(map(mentions.__getitem__, mentions.keys() & in_title))
                    )
                    found.update(dict.fromkeys(matched, False))
                    found.update(dict.fromkeys(titled, True))
                results.append(found)
        return results

    def match(self, text: ReleaseText) -> dict[int, bool]:
        """Topics the release matches, each with whether its title mentions the topic."""
        return self.match_many([text])[0]


def _drop_nested(table: dict[int, dict[int, list[V]]], first: int, second: int, value: V) -> None:
    """Removes one value from a dict of dicts of lists, and the keys left empty."""
    inner = table[first]
    _drop(inner, second, value)
    if not inner:
        del table[first]


def _drop(table: dict[K, list[V]], key: K, value: V) -> None:
    """Removes one value from a dict of lists, and the key when its list is empty."""
    values = table[key]
    values.remove(value)
    if not values:
        del table[key]

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
release, and the work is proportional to the terms present, not to the topics. A *simple*
topic (one clause, or an OR of single atoms, and no exclusion) matches exactly where an atom
or clause of it does: the topics of an atom or clause are kept in one list, written out per
release with `dict.fromkeys` (in C), never one topic and one release at a time; only the
other topics (exclusions, OR of longer clauses) get a mask each.
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
from itertools import chain, compress, count
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


# Feature kinds: a pattern is filed under a whole word, the stem of a prefix, or a CJK gram.
WORD, PREFIX, GRAM = 0, 1, 2
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
        self._df: tuple[Counter[str], Counter[str], Counter[str]] = (
            Counter(),
            Counter(),
            Counter(),
        )
        for text in sample:
            words = _words((*text.title, *text.body))
            self._df[WORD].update(words)
            self._df[PREFIX].update({w[:n] for w in words for n in range(2, SAMPLE_PREFIX + 1)})
            runs = [w for w in words if _is_cjk_run(w)]
            self._df[GRAM].update(set().union(*map(_cjk_grams, runs)) if runs else ())
        self._atom_ids: dict[Group, int] = {}
        self._atom_groups: dict[int, Group] = {}
        self._atom_refs: dict[int, int] = {}  # atom → how many topics use it
        self._atom_df: dict[int, tuple[int, int]] = {}  # atom → (sample frequency, -rarity)
        self._atom_filed: dict[int, tuple[_Filed, ...]] = {}
        self._next_atom = 0
        # per feature kind: feature → atoms (exact) and feature → patterns to confirm
        self._exact: tuple[dict[str, list[int]], ...] = ({}, {}, {})
        self._confirm: tuple[dict[str, list[tuple[str, int, str | None]]], ...] = ({}, {}, {})
        self._prefix_lengths: Counter[int] = Counter()
        # a *simple* topic (`_simple`): its releases are those of one of its clauses, so the
        # topics of an atom or clause are written out together (never one by one)
        self._solo: dict[int, list[int]] = {}  # atom → simple topics with a clause of it
        self._single: dict[int, list[int]] = {}  # atom → other topics with a clause of it alone
        self._clause_simple: dict[frozenset[int], list[int]] = {}  # clauses of 2+ atoms
        self._clause_topics: dict[frozenset[int], list[int]] = {}  # the other topics' ones
        # a clause of 2+ atoms is filed under its two rarest: first → seconds, pair → clauses
        self._partners: dict[int, set[int]] = {}
        self._paired: dict[tuple[int, int], list[frozenset[int]]] = {}
        self._excluding: dict[int, frozenset[int]] = {}  # topic → its excluded atoms
        self._topics: dict[int, _Topic] = {}
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
            simple = _simple(clauses, excluded)
            for clause in clauses:
                if len(clause) == 1:
                    alone = self._solo if simple else self._single
                    alone.setdefault(next(iter(clause)), []).append(topic_id)
                    continue
                if clause not in self._clause_simple and clause not in self._clause_topics:
                    first, second = self._anchor(clause)
                    self._paired.setdefault((first, second), []).append(clause)
                    self._partners.setdefault(first, set()).add(second)
                table = self._clause_simple if simple else self._clause_topics
                table.setdefault(clause, []).append(topic_id)
            if excluded:
                self._excluding[topic_id] = excluded
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
        self._excluding.pop(topic_id, None)
        simple = _simple(topic.clauses, topic.excluded)
        for clause in topic.clauses:
            if len(clause) == 1:
                _drop(self._solo if simple else self._single, next(iter(clause)), topic_id)
                continue
            _drop(self._clause_simple if simple else self._clause_topics, clause, topic_id)
            if clause not in self._clause_simple and clause not in self._clause_topics:
                first, second = pair = self._anchor(clause)
                _drop(self._paired, pair, clause)
                if pair not in self._paired:
                    seconds = self._partners[first]
                    seconds.discard(second)
                    if not seconds:
                        del self._partners[first]
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

    def _atoms(self, docs: Sequence[Sequence[str]]) -> dict[int, int]:
        """For each atom present in some of the documents (each a tuple of views): a bit mask
        of which (bit i: document i)."""
        inverted: dict[str, list[int]] = {}  # word → documents containing it
        doc_words: list[set[str]] = []
        for i, views in enumerate(docs):
            words = _words(views)
            doc_words.append(words)
            for word in words:
                found = inverted.get(word)
                if found is None:
                    inverted[word] = [i]
                else:
                    found.append(i)
        texts = ["\n".join(views) for views in docs]  # no pattern has a newline
        bit = [1 << i for i in range(len(docs))].__getitem__
        atoms: dict[int, int] = {}
        get = atoms.get

        exact, confirm = self._exact[WORD], self._confirm[WORD]
        for word in filter(exact.__contains__, inverted):
            mask = sum(map(bit, inverted[word]))  # distinct bits: the sum is their union
            for atom in exact[word]:
                atoms[atom] = get(atom, 0) | mask
        for word in filter(confirm.__contains__, inverted):
            where = inverted[word]
            for pattern, atom, also in confirm[word]:
                for i in where:
                    if (also is None or also in doc_words[i]) and pattern in texts[i]:
                        atoms[atom] = get(atom, 0) | bit(i)
        if self._prefix_lengths:
            stems = self._exact[PREFIX]
            lengths = sorted(self._prefix_lengths)
            for word, where in inverted.items():
                mask = 0
                for n in lengths:
                    if n > len(word):
                        break
                    found = stems.get(word[:n])
                    if found:
                        mask = mask or sum(map(bit, where))
                        for atom in found:
                            atoms[atom] = get(atom, 0) | mask
        gram_exact, gram_confirm = self._exact[GRAM], self._confirm[GRAM]
        if gram_exact or gram_confirm:
            for run in filter(_is_cjk_run, inverted):
                where = inverted[run]
                mask = sum(map(bit, where))
                grams = _cjk_grams(run)
                for gram in filter(gram_exact.__contains__, grams):
                    for atom in gram_exact[gram]:
                        atoms[atom] = get(atom, 0) | mask
                for gram in filter(gram_confirm.__contains__, grams):
                    for pattern, atom, _also in gram_confirm[gram]:
                        if " " not in pattern:  # one CJK run: it is inside this one or not
                            if pattern in run:
                                atoms[atom] = get(atom, 0) | mask
                            continue
                        for i in where:
                            if pattern in texts[i]:
                                atoms[atom] = get(atom, 0) | bit(i)
        return atoms

    def match_many(self, texts: Sequence[ReleaseText]) -> list[dict[int, bool]]:
        """For each release, the topics it matches, each with whether its title mentions it.

        One pass for the whole batch: each index entry is looked at once per batch, with the
        releases containing its terms as a bit mask (AND, OR in C), not once per release.
        """
        with self._lock:
            title = self._atoms([t.title for t in texts])
            present = self._atoms([t.body for t in texts])
            for atom, mask in title.items():
                present[atom] = present.get(atom, 0) | mask
            size = len(texts)
            # per release: lists of simple topics it matches, without and with the title
            body_lists: list[list[list[int]]] = [[] for _ in range(size)]
            title_lists: list[list[list[int]]] = [[] for _ in range(size)]
            tget = title.get
            solo = self._solo
            for atom in solo.keys() & present.keys():
                topics = solo[atom]
                titled = tget(atom, 0)
                for i in _positions(present[atom] & ~titled):
                    body_lists[i].append(topics)
                for i in _positions(titled):
                    title_lists[i].append(topics)
            matched: dict[int, int] = {}  # other topics → releases
            get = matched.get
            single = self._single
            for atom in single.keys() & present.keys():
                mask = present[atom]
                for topic_id in single[atom]:
                    matched[topic_id] = get(topic_id, 0) | mask
            partners, paired = self._partners, self._paired
            clause_simple, clause_topics = self._clause_simple, self._clause_topics
            for first in partners.keys() & present.keys():
                where_first = present[first]
                for second in partners[first]:
                    both = where_first & present.get(second, 0)
                    if not both:
                        continue
                    for clause in paired[first, second]:
                        where = both
                        if len(clause) > 2:
                            for atom in clause:
                                where &= present.get(atom, 0)
                        if not where:
                            continue
                        simple_topics = clause_simple.get(clause)
                        if simple_topics:
                            titled = 0
                            for atom in clause:
                                titled |= tget(atom, 0)
                            titled &= where
                            for i in _positions(where & ~titled):
                                body_lists[i].append(simple_topics)
                            for i in _positions(titled):
                                title_lists[i].append(simple_topics)
                        for topic_id in clause_topics.get(clause, ()):
                            matched[topic_id] = get(topic_id, 0) | where
            excluding = self._excluding
            for topic_id in [t for t in matched if t in excluding]:
                where = matched[topic_id]
                for atom in excluding[topic_id]:
                    where &= ~present.get(atom, 0)
                if where:
                    matched[topic_id] = where
                else:
                    del matched[topic_id]
            results = [
                _flags(body, titled) for body, titled in zip(body_lists, title_lists, strict=True)
            ]
            topics_of = self._topics
            for topic_id, where in matched.items():
                titled = 0
                for clause in topics_of[topic_id].clauses:
                    for atom in filter(title.__contains__, clause):
                        titled |= title[atom]
                for i in _positions(where & ~titled):
                    results[i][topic_id] = False
                for i in _positions(where & titled):
                    results[i][topic_id] = True
        return results

    def match(self, text: ReleaseText) -> dict[int, bool]:
        """Topics the release matches, each with whether its title mentions the topic."""
        return self.match_many([text])[0]


def _simple(clauses: tuple[frozenset[int], ...], excluded: frozenset[int]) -> bool:
    """A topic whose releases are those of its atoms' (an OR of single atoms or one clause, no
    exclusion), and whose title flag is any of them in the title: written out per atom or
    clause, not one by one. Listed under each of its atoms (or its one clause)."""
    if excluded:
        return False
    return len(clauses) == 1 or all(len(clause) == 1 for clause in clauses)


_BITS = bytes.maketrans(b"01", b"\x00\x01")


def _positions(mask: int) -> Iterable[int]:
    """The positions of a mask's bits, lowest first (in C: no Python step per bit)."""
    if mask & (mask - 1) == 0:  # none or one
        return (mask.bit_length() - 1,) if mask else ()
    return compress(count(), bin(mask)[:1:-1].encode().translate(_BITS))


def _flags(body: list[list[int]], titled: list[list[int]]) -> dict[int, bool]:
    """{topic: False} for the lists of body-only topics, then {topic: True} for the titled."""
    flags = dict.fromkeys(chain.from_iterable(body), False)
    if titled:
        flags.update(dict.fromkeys(chain.from_iterable(titled), True))
    return flags


def _drop(table: dict[K, list[V]], key: K, value: V) -> None:
    """Removes one value from a dict of lists, and the key when its list is empty."""
    values = table[key]
    values.remove(value)
    if not values:
        del table[key]

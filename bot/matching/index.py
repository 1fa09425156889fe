"""Matching releases to topics: a compiled index over every active topic, and a one-query matcher.

`TopicIndex` turns every topic into *atoms* (a word, phrase, prefix or catalogue group)
and every atom into the strings that show it is there (``" customs "``, ``"海關"``,
``" smuggl"``, ``" national security "`` …). Per release, one pass finds every atom present,
whatever the number of topics: single Latin words by intersecting the text's word set with
the index's (C set operations), phrases, prefixes and CJK terms by one Aho-Corasick
automaton (pyahocorasick). Then:

- a *direct* topic (no exclusion, each OR-clause one atom: single words, phrases, catalogue
  topics, `a OR b`) matches as soon as one of its atoms is present: a list lookup;
- any other clause waits for its two rarest atoms to be present together (rarest = seen in
  the fewest of a sample of recent releases), and only then is its topic checked (AND, NOT).

So the work is one pass over the text plus what was found, not a loop over topics.
`QueryMatcher` checks one query with plain substring tests: used for /search, preview and
new subscriptions, and as the reference the index is tested against.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain

import ahocorasick

from bot.matching.query import Group, QueryError, QueryTree, TopicRef, compile_tree
from bot.matching.text import Term, text_views

log = logging.getLogger(__name__)


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


@lru_cache(maxsize=500_000)
def group_keys(group: Group) -> tuple[str, ...]:
    return tuple(dict.fromkeys(key for term in group_terms(group) for key in term.patterns()))


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


@dataclass(frozen=True, slots=True)
class _Checked:
    """A topic that needs a check: any clause whose atoms are all present, and no exclusion."""

    topic_id: int
    clauses: tuple[frozenset[int], ...]
    excluded: frozenset[int]
    positive: frozenset[int]


def _is_word(pattern: str) -> bool:
    """A whole single Latin word (`" customs "`): found by a set lookup on the text's words."""
    return (
        len(pattern) > 2 and pattern[0] == " " and pattern[-1] == " " and " " not in pattern[1:-1]
    )


def _is_word_prefix(pattern: str) -> bool:
    """The start of one Latin word (`" smuggl"`): found among the text's distinct words."""
    return len(pattern) > 1 and pattern[0] == " " and pattern[-1] != " " and " " not in pattern[1:]


class TopicIndex:
    """Every active topic compiled into one matcher; `match` gives {topic_id: in_title}.

    An *atom* is one word, phrase, prefix or catalogue group (any of its aliases); a topic
    is an OR of clauses, each an AND of atoms, minus excluded atoms. Single Latin words
    (most patterns) are found by intersecting the text's words with a set; phrases,
    prefixes and CJK terms by the Aho-Corasick automaton.
    """

    def __init__(
        self, topics: Iterable[tuple[int, str]], sample: Sequence[ReleaseText] = ()
    ) -> None:
        """`sample`: recent releases; how often each term occurs in them picks the anchors."""
        atom_ids: dict[Group, int] = {}
        pattern_atoms: defaultdict[str, list[int]] = defaultdict(list)
        direct: defaultdict[int, list[int]] = defaultdict(list)
        clause_groups: list[tuple[int, tuple[Group, ...]]] = []  # (checked position, clause)
        self._checked: list[_Checked] = []
        ids: set[int] = set()

        def atom(group: Group) -> int:
            found = atom_ids.get(group)
            if found is None:
                found = atom_ids[group] = len(atom_ids)
                for pattern in group_keys(group):
                    pattern_atoms[pattern].append(found)
            return found

        for topic_id, canonical in topics:
            try:
                tree = compile_tree(canonical)
            except QueryError as exc:  # a row written by an older version of the language
                log.warning("topic %s %r not matched: %s", topic_id, canonical, exc)
                continue
            ids.add(topic_id)
            clauses = tuple(frozenset(atom(g) for g in clause) for clause in tree.clauses)
            excluded = frozenset(atom(g) for g in tree.excluded)
            positive = frozenset().union(*clauses)
            if not excluded and all(len(clause) == 1 for clause in clauses):
                for atom_id in positive:
                    direct[atom_id].append(topic_id)
                continue
            clause_groups.extend((len(self._checked), clause) for clause in tree.clauses)
            self._checked.append(_Checked(topic_id, clauses, excluded, positive))
        self.topic_ids = frozenset(ids)
        self.key_count = len(pattern_atoms)
        self._word_atoms = {p[1:-1]: tuple(a) for p, a in pattern_atoms.items() if _is_word(p)}
        self._words = frozenset(self._word_atoms)
        others = [(p, tuple(a)) for p, a in pattern_atoms.items() if not _is_word(p)]
        self._other_atoms = [a for _, a in others]
        # a one-word prefix (" smuggl") is looked for among the text's distinct words only
        self._automaton = ahocorasick.Automaton()
        self._prefixes = ahocorasick.Automaton()
        for position, (pattern, _) in enumerate(others):
            target = self._prefixes if _is_word_prefix(pattern) else self._automaton
            target.add_word(pattern, position)
        for automaton in (self._automaton, self._prefixes):
            if len(automaton):
                automaton.make_automaton()

        # the anchor of a clause is its atom seen in the fewest sample releases
        seen = self._document_frequency(sample)
        rarity_cache: dict[Group, tuple[int, int]] = {}

        def commonness(group: Group) -> tuple[int, int]:
            found = rarity_cache.get(group)
            if found is None:
                atom_id = atom_ids[group]
                found = rarity_cache[group] = (seen.get(atom_id, 0), -_rarity(group_keys(group)))
            return found

        # a clause of one atom waits for it; a longer one for its two rarest atoms together
        anchored: defaultdict[int, list[int]] = defaultdict(list)
        paired: defaultdict[tuple[int, int], list[int]] = defaultdict(list)
        for position, clause in clause_groups:
            rarest = sorted(set(clause), key=commonness)[:2]
            if len(rarest) == 1:
                anchored[atom_ids[rarest[0]]].append(position)
            else:
                paired[atom_ids[rarest[0]], atom_ids[rarest[1]]].append(position)
        partners: defaultdict[int, set[int]] = defaultdict(set)
        for first, second in paired:
            partners[first].add(second)
        self._paired = {pair: tuple(dict.fromkeys(p)) for pair, p in paired.items()}
        self._partners = {first: frozenset(seconds) for first, seconds in partners.items()}
        self._pair_firsts = frozenset(self._partners)
        atoms = len(atom_ids)
        # lists indexed by atom id: `map(list.__getitem__, atoms)` runs in C
        self._direct: list[tuple[int, ...]] = [tuple(direct.get(a, ())) for a in range(atoms)]
        self._anchored: list[tuple[int, ...]] = [
            tuple(dict.fromkeys(anchored.get(a, ()))) for a in range(atoms)
        ]

    def _document_frequency(self, sample: Sequence[ReleaseText]) -> dict[int, int]:
        """In how many sample releases each atom occurs."""
        counts: Counter[int] = Counter()
        for text in sample:
            counts.update(self._atoms((*text.title, *text.body)))
        return dict(counts)

    def __len__(self) -> int:
        return len(self.topic_ids)

    def _atoms(self, views: Sequence[str]) -> set[int]:
        """Atoms present in the views (their patterns found)."""
        words: set[str] = set()
        for view in views:
            words.update(view.split())
        found = set(
            chain.from_iterable(map(self._word_atoms.__getitem__, self._words.intersection(words)))
        )
        other = self._other_atoms
        if len(self._automaton):
            for view in views:
                hits = {position for _end, position in self._automaton.iter(view)}
                found.update(chain.from_iterable(map(other.__getitem__, hits)))
        if len(self._prefixes):
            distinct = " " + " ".join(words) + " "
            hits = {position for _end, position in self._prefixes.iter(distinct)}
            found.update(chain.from_iterable(map(other.__getitem__, hits)))
        return found

    def match(self, text: ReleaseText) -> dict[int, bool]:
        """Topics the release matches, each with whether its title mentions the topic."""
        in_title = self._atoms(text.title)
        found = in_title | self._atoms(text.body)
        direct = self._direct.__getitem__
        result = dict.fromkeys(chain.from_iterable(map(direct, found)), False)
        result.update(dict.fromkeys(chain.from_iterable(map(direct, in_title)), True))
        candidates = set(chain.from_iterable(map(self._anchored.__getitem__, found)))
        paired, partners = self._paired, self._partners
        for first in self._pair_firsts.intersection(found):
            for second in partners[first].intersection(found):
                candidates.update(paired[first, second])
        checked = self._checked
        for position in candidates:
            topic = checked[position]
            if topic.excluded and not topic.excluded.isdisjoint(found):
                continue
            for clause in topic.clauses:
                if clause <= found:
                    result[topic.topic_id] = not topic.positive.isdisjoint(in_title)
                    break
        return result

"""Matching releases to topics: an incremental index over every active topic, and a one-query
matcher.

`TopicIndex` works like Lucene's Monitor or the Elasticsearch percolator: each stored query
is filed under the terms it needs, so that a batch of releases only looks at the queries
whose terms it contains. Three layers (dicts, and one numpy table) that `add` and `remove`
change in place (never a rebuild: one topic costs well under a millisecond whatever the size):

- *patterns* (``" customs "``, ``"海關"``, ``" smuggl"``, ``" national security "``: the
  strings whose presence in a normalised view means a term is there) are filed under one
  *feature*: a whole word, a prefix's stem, or a CJK character pair. A feature present
  decides alone for most patterns (a word, a stem, a two-character CJK term); a phrase or
  longer CJK term is confirmed with a substring test, only where its rarest word (and a
  second one) occurs;
- *atoms* (a word, phrase, prefix or catalogue group: any of its patterns) follow;
- each *clause* (an AND of atoms) of one atom is listed under it; a longer one has a row in
  a numpy table of the atoms it needs (a freed row is reused; the table grows by doubling).
  Exclusions are checked last, on the topics that matched.

`match_many` runs a batch at once, the releases that contain an atom held as a bit mask (an
int: AND and OR in C), so each index entry is looked at once per batch, not once per
release. The clause table is AND-ed for the whole batch in numpy (one byte row of releases
per atom), so a clause costs a few bytes of vectorised work, not a Python step. A *simple*
topic (one clause, or an OR of single atoms, and no exclusion) matches exactly where an atom
or clause of it does: the topics of an atom or clause are kept in one list, a *unit*; only
the other topics (exclusions, OR of longer clauses) get a mask each. The units are written
out per release in numpy (`_Units.write_out`): never one topic and one release at a time.

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
from itertools import chain, compress
from typing import TypeVar

import numpy as np

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
        self._atom_filed: dict[int, tuple[_Filed, ...]] = {}
        self._next_atom = 0
        # ids of released atoms, given to new ones: the batch's presence table has a row per
        # id, so it stays as large as the most atoms ever held at once, not every one seen
        self._free_atoms: list[int] = []
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
        # every clause of 2+ atoms has a slot: a row of the atoms it needs (row numbers of the
        # batch's presence table, `_table`), AND-ed for the whole batch at once in numpy
        self._slot_of: dict[frozenset[int], int] = {}
        self._slot_clause: list[frozenset[int]] = []  # _FREED: a free slot
        self._slot_atoms = np.zeros((0, 2), np.int32)
        self._free_slots: list[int] = []
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
        if self._free_atoms:
            atom = self._free_atoms.pop()
        else:
            atom, self._next_atom = self._next_atom, self._next_atom + 1
        self._atom_ids[group] = atom
        self._atom_groups[atom] = group
        self._atom_refs[atom] = 1
        patterns = _group_patterns(group)
        filed: list[_Filed] = []
        for pattern in patterns:
            options, exact = _options(pattern)

            def commonness(option: tuple[int, str]) -> tuple[int, int, tuple[int, str]]:
                # rarest first; the longer one when the sample has seen neither
                return (self._feature_df(*option), -len(option[1]), option)

            ranked = sorted(set(options), key=commonness)
            kind, feature = ranked[0]
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
        return atom

    def _release_atom(self, atom: int) -> None:
        refs = self._atom_refs[atom] - 1
        if refs:
            self._atom_refs[atom] = refs
            return
        del self._atom_refs[atom]
        del self._atom_ids[self._atom_groups.pop(atom)]
        self._free_atoms.append(atom)  # no clause row names it: its clauses went first
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

    def _new_slot(self, clause: frozenset[int]) -> None:
        """A row of the clause table for a new clause (a freed one, or the table grows: in
        doubling steps, never a rebuild)."""
        slot = self._free_slots.pop() if self._free_slots else len(self._slot_clause)
        table = self._slot_atoms
        rows, width = table.shape
        if slot >= rows or len(clause) > width:
            grown = np.full((max(64, 2 * rows), max(width, len(clause))), _ALL, np.int32)
            grown[:rows, :width] = table
            self._slot_atoms = table = grown
        row = [_FIRST + atom for atom in sorted(clause)]
        table[slot] = row + [_ALL] * (table.shape[1] - len(row))
        if slot == len(self._slot_clause):
            self._slot_clause.append(clause)
        else:
            self._slot_clause[slot] = clause
        self._slot_of[clause] = slot

    def _free_slot(self, clause: frozenset[int]) -> None:
        slot = self._slot_of.pop(clause)
        self._slot_atoms[slot] = _NONE  # never present: the row matches nothing
        self._slot_clause[slot] = _FREED
        self._free_slots.append(slot)

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
                if clause not in self._slot_of:
                    self._new_slot(clause)
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
                self._free_slot(clause)
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

        One pass for the whole batch: which releases contain each atom is a bit mask; the
        clauses of 2+ atoms are AND-ed all at once in numpy (a table of byte rows); what
        matched is gathered as *units* (a list of topics, the releases where they match by
        the body only, those where the title mentions them) and written out per release by
        `_Units.write_out`: no Python step per (topic, release) or (clause, release).
        """
        size = len(texts)
        width = (size + 7) // 8
        with self._lock:
            title = self._atoms([t.title for t in texts])
            present = self._atoms([t.body for t in texts])
            for atom, mask in title.items():
                present[atom] = present.get(atom, 0) | mask
            units = _Units(width)
            # the batch's presence table: a row of bytes per atom (bit i: release i)
            rows = self._next_atom + _FIRST
            found, in_title = _table(present, rows, width), _table(title, rows, width)
            found[_ALL] = 0xFF
            solo = self._solo
            atoms = list(solo.keys() & present.keys())
            if atoms:
                at = np.array(atoms, np.int64) + _FIRST
                units.rows(
                    list(map(solo.__getitem__, atoms)), found[at] & ~in_title[at], in_title[at]
                )
            matched: dict[int, int] = {}  # other topics → releases
            get = matched.get
            single = self._single
            for atom in single.keys() & present.keys():
                mask = present[atom]
                for topic_id in single[atom]:
                    matched[topic_id] = get(topic_id, 0) | mask
            if self._slot_of:
                self._clauses(found, in_title, units, matched)
            excluding = self._excluding
            for topic_id in [t for t in matched if t in excluding]:
                where = matched[topic_id]
                for atom in excluding[topic_id]:
                    where &= ~present.get(atom, 0)
                if where:
                    matched[topic_id] = where
                else:
                    del matched[topic_id]
            topics_of = self._topics
            for topic_id, where in matched.items():
                titled = 0
                for clause in topics_of[topic_id].clauses:
                    for atom in filter(title.__contains__, clause):
                        titled |= title[atom]
                titled &= where
                units.add((topic_id,), where & ~titled, titled)
        return units.write_out(size)

    def _clauses(
        self, found: np.ndarray, in_title: np.ndarray, units: _Units, matched: dict[int, int]
    ) -> None:
        """Every clause of 2+ atoms at once: the AND of its atoms' rows of the presence table;
        a simple clause's topics become a unit, the others' masks go to `matched`."""
        slots = self._slot_atoms[: len(self._slot_clause)]
        where = found[slots[:, 0]]
        titled = in_title[slots[:, 0]]
        for k in range(1, slots.shape[1]):
            where &= found[slots[:, k]]
            titled |= in_title[slots[:, k]]
        hit = np.flatnonzero(where.any(axis=1))
        where, titled = where[hit], titled[hit]
        titled &= where
        # C-level maps, not a Python step per clause: most hits are simple clauses' units
        clauses = list(map(self._slot_clause.__getitem__, hit.tolist()))
        simple_topics = list(map(self._clause_simple.get, clauses))
        simple = np.fromiter(map(bool, simple_topics), bool, len(clauses))
        if simple.any():
            topics: list[Sequence[int]] = list(compress(simple_topics, simple.tolist()))  # type: ignore[arg-type]
            units.rows(topics, where[simple] & ~titled[simple], titled[simple])
        get = matched.get
        others = list(map(self._clause_topics.get, clauses))
        for n in compress(range(len(others)), others):
            mask = int.from_bytes(where[n].tobytes(), "little")
            for topic_id in others[n] or ():
                matched[topic_id] = get(topic_id, 0) | mask

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


# rows of a batch's presence table (`_table`): one that every release has (pads a clause's
# row of atoms), one that none has (a freed clause's), then atom a's at _FIRST + a
_ALL, _NONE, _FIRST = 0, 1, 2
_FREED: frozenset[int] = frozenset()  # the clause of a free row of the clause table


def _packed(masks: Iterable[int], width: int) -> bytes:
    """Bit masks (bit i: release i) as `width` bytes each, one after the other."""
    return b"".join([mask.to_bytes(width, "little") for mask in masks])


def _table(masks: dict[int, int], rows: int, width: int) -> np.ndarray:
    """Atoms' masks as a table of byte rows (atom a's at _FIRST + a); zero for the others."""
    table = np.zeros((rows, width), np.uint8)
    if masks:
        at = np.fromiter(masks.keys(), np.int64, len(masks)) + _FIRST
        table[at] = np.frombuffer(_packed(masks.values(), width), np.uint8).reshape(-1, width)
    return table


def _set_bits(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(release, unit) of every set bit of the units' byte rows, release-major (units in
    order within a release): a byte of releases at a time, only its nonzero bytes unpacked."""
    releases, units = [], []
    for byte, column in enumerate(np.ascontiguousarray(packed.T)):  # a row per byte
        at = np.flatnonzero(column)
        if not len(at):
            continue
        # (bit, unit) of the set bits, bit-major: release 8 * byte + bit, units in order
        bit, which = np.nonzero(np.unpackbits(column[at][None, :], axis=0, bitorder="little"))
        releases.append(bit + 8 * byte)
        units.append(at[which])
    if not units:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(releases), np.concatenate(units)


class _Units:
    """What a batch matched: per unit, a list of topics and two bit masks of releases (by
    the body only; with the title), added one at a time as ints or in blocks of numpy byte
    rows; written out per release in numpy."""

    __slots__ = ("blocks", "body", "titled", "topics", "width")

    def __init__(self, width: int) -> None:
        self.width = width
        self.topics: list[Sequence[int]] = []  # the units added one at a time
        self.body: list[int] = []
        self.titled: list[int] = []
        self.blocks: list[tuple[list[Sequence[int]], np.ndarray, np.ndarray]] = []

    def add(self, topics: Sequence[int], body: int, titled: int) -> None:
        self.topics.append(topics)
        self.body.append(body)
        self.titled.append(titled)

    def rows(self, topics: list[Sequence[int]], body: np.ndarray, titled: np.ndarray) -> None:
        self.blocks.append((topics, body, titled))

    def _packed(self, masks: list[int], which: int) -> np.ndarray:
        """Every unit's body (1) or title (2) mask as a byte row: the ones added one at a
        time, then the blocks'."""
        ints = np.frombuffer(_packed(masks, self.width), np.uint8).reshape(-1, self.width)
        return np.concatenate([ints, *(block[which] for block in self.blocks)])

    def write_out(self, size: int) -> list[dict[int, bool]]:
        """{topic: in_title} per release: False for the body-only units, then True for the
        titled ones (a topic in both is True)."""
        results: list[dict[int, bool]] = [{} for _ in range(size)]
        units = [*self.topics, *chain.from_iterable(block[0] for block in self.blocks)]
        n = len(units)
        if not n or not size:
            return results
        lengths = np.fromiter(map(len, units), dtype=np.int64, count=n)
        starts = np.cumsum(lengths) - lengths
        flat = np.fromiter(chain.from_iterable(units), dtype=np.int64, count=int(lengths.sum()))
        for masks, which, flag in ((self.body, 1, False), (self.titled, 2, True)):
            release, unit = _set_bits(self._packed(masks, which))
            if not len(unit):
                continue
            counts = lengths[unit]
            ends = np.cumsum(counts)
            # for each (release, unit): its unit's slice of `flat`, one after the other
            offsets = np.repeat(starts[unit] - (ends - counts), counts) + np.arange(ends[-1])
            topics = flat[offsets].tolist()
            # where each release's topics end: the end of its last pair (0 before any)
            last_pair = np.searchsorted(release, np.arange(size), side="right")
            bounds = np.concatenate(([0], ends))[last_pair]
            begin = 0
            for i, end in enumerate(bounds.tolist()):
                if end > begin:
                    if flag:
                        results[i].update(dict.fromkeys(topics[begin:end], True))
                    else:
                        results[i] = dict.fromkeys(topics[begin:end], False)
                    begin = end
        return results


def _drop(table: dict[K, list[V]], key: K, value: V) -> None:
    """Removes one value from a dict of lists, and the key when its list is empty."""
    values = table[key]
    values.remove(value)
    if not values:
        del table[key]

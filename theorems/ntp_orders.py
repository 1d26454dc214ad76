"""The partial-order data of next-token prediction (Huang, Liang, Yang, NeurIPS 2024,
arXiv 2409.17335): the text parameters of the theorems, parsed and checked.

The setting is the project's formulation of the paper's: a vocabulary with one-hot
embeddings, a collocation permutation and one strict partial order per query token.
:func:`resolve` turns the parameters ``K``, ``collocation``, ``orders``, ``order_seed``, ``L``,
``sentences`` (and ``holdout``) into a :class:`Setting`, raising :class:`SettingError` for a
specification that is not realisable.

Data
----
Vocabulary ``{0, ..., K-1}``, a collocation permutation ``n``, and for each query ``q`` a strict
partial order ``>_q``. A sentence is a set of distinct tokens ending in its query ``q`` (the
attention of the last token is invariant under permuting the others, so each token set is one
sentence); it is admissible when its tokens have a unique greatest element ``x*`` under ``>_q``,
and its next token is ``n(x*)``. The K collocation sentences ``[x]`` have next token ``n(x)``.

Texts
-----
``orders``: ``q: a>b>c, d>e; q2: ...`` (chains, transitively closed; unlisted queries get a
seeded random total order) or ``random`` (a seeded random weak order for every query).
``collocation``: ``shift`` (``n(x) = x + 1 mod K``) or ``K`` tokens forming a permutation.
``sentences``: ``all`` admissible sentences of length ``2..L``, or explicit ones ``2 0 1; 4 3 1``
(query last). ``holdout``: ``q: a>b>c`` or ``auto``.

Which comparisons the training sentences contain
-------------------------------------------------
With every admissible sentence of length ``2..L``, the pairs ``(x*, x)`` of query ``q`` are
(``>=_q`` includes equality)

* ``(q, x)`` for ``x <_q q`` (the sentence ``{x, q}``),
* ``(g, q)`` for ``g >_q q`` (``{g, q}``),
* if ``L >= 3``: ``(g, x)`` for ``g >_q q`` and ``x <_q g``, ``x != q`` (``{g, x, q}``);

a token ``g`` that is not ``>=_q q`` is never the greatest of a sentence that contains ``q``.
This characterisation is checked against the generator's enumeration in the tests.
"""

from __future__ import annotations

import graphlib
import random
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from theorems.core import Params, TheoremError

Pair = tuple[int, int]


class SettingError(TheoremError):
    """A data specification that is not realisable (cycle, bad permutation, no greatest token)."""


@dataclass(frozen=True)
class Setting:
    """The partial-order data of the theorems, resolved from the parameters.

    Attributes
    ----------
    K : int
        Vocabulary size (one-hot embeddings, ``d = K``).
    collocation : tuple[int, ...]
        ``n(x)`` for each token ``x`` (a permutation).
    greater : tuple[frozenset[tuple[int, int]], ...]
        Per query ``q``, the transitively closed strict order: ``(a, b)`` in ``greater[q]``
        means ``a >_q b``.
    length : int
        Longest training sentence ``L``.
    sentences : tuple[tuple[int, ...], ...] or None
        Explicit training sentences (query last), or None for every admissible sentence of
        length ``2..L``.
    holdout : tuple[int, int, int, int] or None
        ``(q, a, b, c)``: training sentences of query ``q`` whose greatest token is ``a`` and
        that contain ``c`` are held out, so ``a > c`` follows only from ``a > b > c``.
    """

    K: int
    collocation: tuple[int, ...]
    greater: tuple[frozenset[Pair], ...]
    length: int
    sentences: tuple[tuple[int, ...], ...] | None
    holdout: tuple[int, int, int, int] | None

    def at_least(self, q: int, a: int, b: int) -> bool:
        """``a >=_q b``."""
        return a == b or (a, b) in self.greater[q]

    def greatest(self, tokens: Iterable[int]) -> int | None:
        """The unique greatest token of a sentence under its query's order (last token)."""
        tokens = tuple(tokens)
        q = tokens[-1]
        for g in tokens:
            if all(self.at_least(q, g, x) for x in tokens):
                return g
        return None

    def comparisons(self) -> tuple[frozenset[Pair], ...]:
        """Per query, the pairs ``(x*, x)`` the training sentences contain (module docstring)."""
        if self.sentences is not None:
            found: list[set[Pair]] = [set() for _ in range(self.K)]
            for sentence in self.training_sentences():
                g = self.greatest(sentence)
                found[sentence[-1]].update((g, x) for x in sentence if x != g)
            return tuple(frozenset(pairs) for pairs in found)
        result = []
        for q in range(self.K):
            above = [g for g in range(self.K) if (g, q) in self.greater[q]]
            pairs = {(q, x) for x in range(self.K) if (q, x) in self.greater[q]}
            pairs |= {(g, q) for g in above}
            if self.length >= 3:
                pairs |= {(g, x) for g in above for x in range(self.K)
                          if x != q and (g, x) in self.greater[q]}
            if self.holdout is not None and self.holdout[0] == q:
                pairs.discard((self.holdout[1], self.holdout[3]))
            result.append(frozenset(pairs))
        return tuple(result)

    def training_sentences(self) -> tuple[tuple[int, ...], ...]:
        """The explicit sentences minus the held-out ones (only when ``sentences`` is given)."""
        if self.sentences is None:
            raise ValueError("the training sentences are enumerated by the numeric generator")
        return tuple(s for s in self.sentences if not self.held_out(s))

    def held_out(self, sentence: tuple[int, ...]) -> bool:
        """Whether the transitivity hold-out removes ``sentence`` from training."""
        if self.holdout is None:
            return False
        q, a, _, c = self.holdout
        return sentence[-1] == q and c in sentence and self.greatest(sentence) == a


def _parse_int(text: str, what: str, K: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise SettingError(f"{what}: {text!r} is not a token") from None
    if not 0 <= value < K:
        raise SettingError(f"{what}: token {value} is outside the vocabulary 0..{K - 1}")
    return value


def parse_collocation(text: str, K: int) -> tuple[int, ...]:
    """``shift`` (``n(x) = x + 1 mod K``) or ``K`` comma-separated tokens forming a permutation."""
    if text == "shift":
        return tuple((x + 1) % K for x in range(K))
    values = tuple(_parse_int(v, "collocation", K) for v in text.replace(",", " ").split())
    if sorted(values) != list(range(K)):
        missing = sorted(set(range(K)) - set(values))
        raise SettingError(f"collocation {text!r} is not a permutation of 0..{K - 1} "
                           f"(missing {missing}, {len(values)} values given)")
    return values


def _closure(K: int, q: int, relations: Iterable[Pair]) -> frozenset[Pair]:
    """Transitive closure of ``a > b`` relations; a cycle is a :class:`SettingError`."""
    below: dict[int, set[int]] = {x: set() for x in range(K)}
    for a, b in relations:
        below[a].add(b)
    try:
        tuple(graphlib.TopologicalSorter(below).static_order())
    except graphlib.CycleError as exc:
        cycle = " > ".join(map(str, reversed(exc.args[1])))
        raise SettingError(f"orders: the order of query {q} has a cycle {cycle}; a partial "
                           "order must be acyclic") from None
    for k in range(K):  # Warshall
        for i in range(K):
            if k in below[i]:
                below[i] |= below[k]
    return frozenset((a, b) for a in range(K) for b in below[a])


def _random_total_order(K: int, seed: int, q: int) -> list[Pair]:
    ranking = random.Random(seed * 1_000_003 + q).sample(range(K), K)
    return list(zip(ranking, ranking[1:], strict=False))


def _random_weak_order(K: int, seed: int, q: int) -> list[Pair]:
    """A random order of ``K`` tokens cut into levels (tokens of one level are incomparable)."""
    rng = random.Random(seed * 1_000_003 + q)
    ranking = rng.sample(range(K), K)
    levels: list[list[int]] = [[ranking[0]]]
    for token in ranking[1:]:
        if rng.random() < 0.5:
            levels[-1].append(token)
        else:
            levels.append([token])
    return [(a, b) for upper, lower in zip(levels, levels[1:], strict=False)
            for a in upper for b in lower]


def parse_orders(text: str, K: int, seed: int) -> tuple[frozenset[Pair], ...]:
    """Per-query strict orders from ``q: a>b>c, d>e; q2: ...``.

    Queries not listed get a seeded random total order; ``random`` gives every query a seeded
    random weak order (random levels of incomparable tokens).
    """
    if text == "random":
        return tuple(_closure(K, q, _random_weak_order(K, seed, q)) for q in range(K))
    given: dict[int, list[Pair]] = {}
    entries = [e.strip() for e in text.split(";") if e.strip()]
    if not entries:
        raise SettingError(f"orders: {text!r} lists no query; write 'q: a>b>c, ...' or "
                           "'random'")
    for entry in entries:
        head, sep, chains = entry.partition(":")
        if not sep:
            raise SettingError(f"orders: {entry!r} should read 'q: a>b>c, ...'")
        q = _parse_int(head.strip(), "orders (query)", K)
        if q in given:
            raise SettingError(f"orders: query {q} is given twice")
        relations: list[Pair] = []
        for chain in filter(None, (c.strip() for c in chains.split(","))):
            tokens = [_parse_int(t.strip(), f"orders (query {q})", K) for t in chain.split(">")]
            relations += list(zip(tokens, tokens[1:], strict=False))
        if not relations:
            raise SettingError(f"orders: query {q} is listed without a comparison; give it a "
                               "chain such as 'a>b' (or leave it out for a random total order)")
        given[q] = relations
    return tuple(_closure(K, q, given[q] if q in given else _random_total_order(K, seed, q))
                 for q in range(K))


def _parse_sentences(text: str, K: int) -> tuple[tuple[int, ...], ...] | None:
    if text == "all":
        return None
    sentences = []
    for entry in filter(None, (e.strip() for e in text.split(";"))):
        tokens = tuple(_parse_int(t, "sentences", K) for t in entry.replace(",", " ").split())
        if len(tokens) < 2 or len(set(tokens)) != len(tokens):
            raise SettingError(f"sentences: {entry!r} must have at least 2 distinct tokens "
                               "(the last is the query)")
        sentences.append(tokens)
    if not sentences:
        raise SettingError("sentences: no sentence given (use 'all' for every admissible one)")
    return tuple(sentences)


def _auto_holdout(setting: Setting) -> tuple[int, int, int, int]:
    for q in range(setting.K):
        triples = sorted(
            (a, b, c)
            for (a, b) in setting.greater[q] if setting.at_least(q, b, q)
            for (b2, c) in setting.greater[q] if b2 == b and c != q
        )
        if triples:
            return (q, *triples[0])
    raise SettingError("holdout=auto: no query has a chain a > b > c with b >= q and c != q")


def _parse_holdout(text: str, setting: Setting) -> tuple[int, int, int, int]:
    if text == "auto":
        return _auto_holdout(setting)
    head, sep, chain = text.partition(":")
    if not sep or chain.count(">") != 2:  # the form first: '2' is no chain, not a bad token
        raise SettingError(f"holdout {text!r} should read 'q: a>b>c' or 'auto'")
    tokens = [_parse_int(t.strip(), "holdout", setting.K) for t in chain.split(">")]
    return (_parse_int(head.strip(), "holdout (query)", setting.K), *tokens)


def _check_holdout(setting: Setting) -> None:
    q, a, b, c = setting.holdout
    if not ((a, b) in setting.greater[q] and (b, c) in setting.greater[q]):
        raise SettingError(f"holdout: {a} > {b} > {c} is not a chain of query {q}'s order")
    if c == q:
        raise SettingError(f"holdout: c = {c} is the query; every sentence contains it")
    comparisons = setting.comparisons()[q]
    missing = [p for p in ((a, b), (b, c)) if p not in comparisons]
    if missing:
        raise SettingError(f"holdout: after removing the sentences that compare {a} and {c}, "
                           f"training no longer compares {missing} for query {q} (needs "
                           f"{b} >= {q} under query {q}'s order and sentences of length 3)")


def setting(params: Params) -> Setting:
    """Resolve and validate the data parameters.

    Raises
    ------
    SettingError
        Cyclic order, collocation that is not a permutation, a sentence without a unique
        greatest token, an impossible hold-out.
    """
    K, length = int(params["K"]), int(params["L"])
    if K < 2:
        raise SettingError(f"K must be at least 2 tokens (got K = {K})")
    if length < 2:
        raise SettingError(f"L must be at least 2 (got L = {length}): sentences of length 1 "
                           "are the collocations")
    resolved = Setting(K, parse_collocation(str(params["collocation"]), K),
                       parse_orders(str(params["orders"]), K, int(params["order_seed"])),
                       length, _parse_sentences(str(params["sentences"]), K), None)
    for sentence in resolved.sentences or ():
        if resolved.greatest(sentence) is None:
            raise SettingError(f"sentences: {' '.join(map(str, sentence))} has no unique "
                               f"greatest token under query {sentence[-1]}'s order")
    if resolved.sentences is not None:
        resolved = Setting(K, resolved.collocation, resolved.greater,
                           max(map(len, resolved.sentences)), resolved.sentences, None)
    if "holdout" in params:
        if resolved.length < 3:
            raise SettingError("holdout needs training sentences of length 3 (L >= 3)")
        resolved = Setting(K, resolved.collocation, resolved.greater, resolved.length,
                           resolved.sentences, _parse_holdout(str(params["holdout"]), resolved))
        _check_holdout(resolved)
    return resolved


@cache
def _setting_cached(items: tuple[tuple[str, object], ...]) -> Setting:
    return setting(dict(items))


def resolve(params: Params) -> Setting:
    """:func:`setting`, memoised on the parameter values."""
    return _setting_cached(tuple(sorted((k, v) for k, v in params.items())))

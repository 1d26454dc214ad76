"""Next-token prediction converges to max-margin directions (Huang, Liang, Yang, NeurIPS 2024,
arXiv 2409.17335; attention SVM background: Tarzanagh, Li, Thrampoulidis, Oymak, 2023).

The statements are the project's formulation (``shared/spec/ntp.md``): a one-layer transformer
with merged matrices, orthonormal (one-hot) embeddings and two-stage normalized gradient descent.

Data
----
Vocabulary ``{0, ..., K-1}``, a collocation permutation ``n``, and for each query ``q`` a strict
partial order ``>_q``. A sentence is a set of distinct tokens ending in its query ``q`` (the
attention of the last token is invariant under permuting the others, so each token set is one
sentence); it is admissible when its tokens have a unique greatest element ``x*`` under ``>_q``,
and its next token is ``n(x*)``. The K collocation sentences ``[x]`` have next token ``n(x)``.

Which comparisons the training sentences contain
-------------------------------------------------
With every admissible sentence of length ``2..L``, the pairs ``(x*, x)`` of query ``q`` are
(``>=_q`` includes equality)

* ``(q, x)`` for ``x <_q q`` (the sentence ``{x, q}``),
* ``(g, q)`` for ``g >_q q`` (``{g, q}``),
* if ``L >= 3``: ``(g, x)`` for ``g >_q q`` and ``x <_q g``, ``x != q`` (``{g, x, q}``);

a token ``g`` that is not ``>=_q q`` is never the greatest of a sentence that contains ``q``.
This characterisation is checked against the generator's enumeration in the tests.

Max-margin problems
-------------------
Stage 1 (feed-forward): ``W_ov* = argmin ||W||_F`` s.t. ``(e_n(x) - e_v)^T W e_x >= 1``; closed
form ``sum_x (e_n(x) - e_bar) e_x^T``. Stage 2 (attention): with one-hot embeddings
``W_kq* = argmin ||W||_F`` s.t. ``W[g, q] - W[x, q] >= 1`` for every comparison splits into one
least-distance problem per query column, solved here exactly (rational arithmetic) by the
Lawson-Hanson reduction to non-negative least squares; the obligations then prove optimality by
exact KKT conditions, so the solver is only a way to find the certificate.
"""

from __future__ import annotations

import graphlib
import random
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from itertools import product

import sympy as sp
from sympy.polys.domains import QQ
from sympy.polys.matrices import DomainMatrix

from theorems.core import (
    Obligation,
    Parameter,
    Params,
    Prediction,
    Theorem,
    TheoremError,
)

K_ = sp.Symbol("K", positive=True, integer=True)
t_, eta0_, T0_ = sp.symbols("t eta_0 T_0", positive=True)
c_ = sp.Symbol("c", nonnegative=True)

#: The worked toy of the spec (K = 6); queries 3, 4, 5 get seeded random total orders.
TOY_ORDERS = "0: 5>4>3>2>1>0; 1: 0>2>4>1>3>5; 2: 3>1>2>0, 3>4>2>5"
#: The feed-forward obligations that build K x K matrices are built at K <= this (the closed
#: form is proved for symbolic K where sympy can; these keep ``verify`` fast at K = 50).
FFN_EXPLICIT_K = 6

Pair = tuple[int, int]


class SettingError(TheoremError):
    """A data specification that is not realisable (cycle, bad permutation, no greatest token)."""


# ----------------------------------------------------------------------------- the data setting


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
    for entry in filter(None, (e.strip() for e in text.split(";"))):
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
    tokens = [_parse_int(t.strip(), "holdout", setting.K) for t in chain.split(">")]
    if not sep or len(tokens) != 3:
        raise SettingError(f"holdout {text!r} should read 'q: a>b>c' or 'auto'")
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


# ----------------------------------------------------------------------------- exact max margin


def _nnls(E: DomainMatrix, f: DomainMatrix) -> list:
    """Exact non-negative least squares ``min ||E u - f||, u >= 0`` (Lawson and Hanson, 1974,
    Algorithm NNLS of ch. 23), in rational arithmetic, where it terminates finitely."""
    m = E.shape[1]
    rows = list(range(E.shape[0]))
    u = [QQ(0)] * m
    passive: list[int] = []
    Et = E.transpose()
    while True:
        residual = f - E * DomainMatrix([[v] for v in u], (m, 1), QQ)
        w = [row[0] for row in (Et * residual).to_list()]
        free = [j for j in range(m) if j not in passive and w[j] > 0]
        if not free:
            return u
        passive.append(max(free, key=lambda j: w[j]))
        while True:
            E_p = E.extract(rows, passive)
            z = [row[0] for row in (E_p.transpose() * E_p).lu_solve(E_p.transpose() * f)
                 .to_list()]
            if all(v > 0 for v in z):
                u = [QQ(0)] * m
                for j, v in zip(passive, z, strict=True):
                    u[j] = v
                break
            alpha = min(u[j] / (u[j] - v) for j, v in zip(passive, z, strict=True) if v <= 0)
            for j, v in zip(passive, z, strict=True):
                u[j] = u[j] + alpha * (v - u[j])
            passive = [j for j in passive if u[j] > 0]


@dataclass(frozen=True)
class MaxMarginColumn:
    """Exact solution of one query's least-distance problem.

    Attributes
    ----------
    scores : tuple[sympy.Rational, ...]
        ``s_q(x) = W*[x, q]`` for every token.
    duals : dict[tuple[int, int], sympy.Rational]
        KKT multiplier of each constraint ``s_g - s_x >= 1``.
    """

    scores: tuple[sp.Rational, ...]
    duals: dict[Pair, sp.Rational]


@cache
def max_margin_column(K: int, pairs: frozenset[Pair]) -> MaxMarginColumn:
    """``argmin ||s||`` s.t. ``s_g - s_x >= 1`` for ``(g, x)`` in ``pairs``, exactly.

    Least-distance programming via NNLS (Lawson and Hanson, 1974, ch. 23): with
    ``E = [G^T; h^T]`` and ``f = e_{K+1}`` the NNLS solution ``u`` gives
    ``s = G^T u / (1 - h^T u)`` and the KKT multipliers ``u / (1 - h^T u)``.
    """
    if not pairs:
        return MaxMarginColumn(tuple(sp.Integer(0) for _ in range(K)), {})
    order = sorted(pairs)
    columns = []
    for g, x in order:
        column = [QQ(0)] * (K + 1)
        column[g], column[x], column[K] = QQ(1), QQ(-1), QQ(1)
        columns.append(column)
    E = DomainMatrix([list(r) for r in zip(*columns, strict=True)], (K + 1, len(order)), QQ)
    f = DomainMatrix([[QQ(0)]] * K + [[QQ(1)]], (K + 1, 1), QQ)
    u = _nnls(E, f)
    scale = 1 - sum(u, QQ(0))
    scores = [QQ(0)] * K
    for (g, x), v in zip(order, u, strict=True):
        scores[g] += v / scale
        scores[x] -= v / scale
    return MaxMarginColumn(tuple(QQ.to_sympy(s) for s in scores),
                           {p: QQ.to_sympy(v / scale) for p, v in zip(order, u, strict=True)})


def attention_max_margin(resolved: Setting) -> sp.ImmutableMatrix:
    """``W_kq*`` (rows: key tokens, columns: queries) for one-hot embeddings."""
    columns = [max_margin_column(resolved.K, pairs).scores for pairs in resolved.comparisons()]
    return sp.ImmutableMatrix(resolved.K, resolved.K, lambda x, q: columns[q][x])


def score_maximiser(scores: sp.MatrixBase, sentence: tuple[int, ...]) -> int | None:
    """The token of ``sentence`` with the largest score ``W*[x, q]``, or None on a tie."""
    q = sentence[-1]
    best = max(scores[x, q] for x in sentence)
    winners = [x for x in sentence if scores[x, q] == best]
    return winners[0] if len(winners) == 1 else None


def _kkt_obligations(resolved: Setting, W: sp.MatrixBase, label: str) -> list[Obligation]:
    """Exact KKT conditions of the attention max-margin problem (they prove optimality)."""
    margins, duals, slack = [], [], sp.Integer(0)
    stationarity = sp.Matrix(W)
    for q, pairs in enumerate(resolved.comparisons()):
        column = max_margin_column(resolved.K, pairs)
        for (g, x), lam in column.duals.items():
            margins.append(W[g, q] - W[x, q])
            duals.append(lam)
            slack += lam * (W[g, q] - W[x, q] - 1)
            stationarity[g, q] -= lam
            stationarity[x, q] += lam
    count = len(margins)
    return [
        Obligation(f"{label}: feasibility, every margin W[x*, q] - W[x, q] >= 1 ({count} "
                   "constraints)", sp.Min(*margins) if margins else sp.Integer(1), ">=", {},
                   sp.Integer(1)),
        Obligation(f"{label}: dual feasibility, every multiplier >= 0",
                   sp.Min(*duals) if duals else sp.Integer(0), ">=", {}),
        Obligation(f"{label}: stationarity, W* = sum lambda (e_x* - e_x) e_q^T",
                   sp.ImmutableMatrix(stationarity), "==", {}, sp.zeros(*W.shape)),
        Obligation(f"{label}: complementary slackness, sum lambda (margin - 1) = 0", slack,
                   "==", {}),
    ]


def _structure_obligations(resolved: Setting, W: sp.MatrixBase) -> list[Obligation]:
    """Chains with the query least get scores ``rank - (K-1)/2``; swap-symmetric tokens tie."""
    obligations = []
    K = resolved.K
    for q, pairs in enumerate(resolved.comparisons()):
        full = {(a, b) for a in range(K) for b in range(K) if a != b and (a, b) not in pairs
                and (b, a) not in pairs}
        if not full and all((x, q) in resolved.greater[q] for x in range(K) if x != q):
            rank = {x: sum((x, y) in resolved.greater[q] for y in range(K)) for x in range(K)}
            expected = sp.ImmutableMatrix([rank[x] - sp.Rational(K - 1, 2) for x in range(K)])
            obligations.append(Obligation(
                f"query {q} (a chain with the query least): scores = rank - (K-1)/2",
                sp.ImmutableMatrix(W[:, q]) - expected, "==", {}, sp.zeros(K, 1)))
        twins = [(a, b) for a in range(K) for b in range(a + 1, K)
                 if _swap(pairs, a, b) == pairs and a != q and b != q]
        if twins and full:
            obligations.append(Obligation(
                f"query {q}: tokens the constraints cannot tell apart get equal scores "
                f"({', '.join(f'{a}~{b}' for a, b in twins)})",
                sp.ImmutableMatrix([W[a, q] - W[b, q] for a, b in twins]), "==", {},
                sp.zeros(len(twins), 1)))
    return obligations


def _swap(pairs: frozenset[Pair], a: int, b: int) -> frozenset[Pair]:
    swap = {a: b, b: a}
    return frozenset((swap.get(g, g), swap.get(x, x)) for g, x in pairs)


# ----------------------------------------------------------------------------- feed-forward


def ffn_max_margin(K: int, collocation: tuple[int, ...]) -> sp.ImmutableMatrix:
    """``W_ov* = sum_x (e_n(x) - e_bar) e_x^T`` (rows: output tokens, columns: inputs)."""
    return sp.ImmutableMatrix(K, K, lambda v, x: (1 if v == collocation[x] else 0)
                              - sp.Rational(1, K))


def collocation_loss_law() -> sp.Expr:
    """``L0(t) = log(1 + (K-1) exp(-eta0 t / sqrt(K-1)))``: NGD from 0 moves along W_ov*."""
    return sp.log(1 + (K_ - 1) * sp.exp(-eta0_ * t_ / sp.sqrt(K_ - 1)))


def token_losses(W: sp.MatrixBase, collocation: tuple[int, ...]) -> list[sp.Expr]:
    """``-log softmax(W e_x)_n(x)`` for each ``x``, written with logits shifted by the
    target's so that equal exponents collect."""
    K = len(collocation)
    return [sp.log(sum(sp.exp(sp.expand(W[v, x] - W[collocation[x], x])) for v in range(K)))
            for x in range(K)]


def collocation_loss(W: sp.MatrixBase, collocation: tuple[int, ...]) -> sp.Expr:
    """``L0(W) = (1/K) sum_x -log softmax(W e_x)_n(x)``."""
    return sum(token_losses(W, collocation)) / len(collocation)


def _explicit_collocation(resolved: Setting) -> tuple[int, ...]:
    """The collocation the K x K obligations are built with: the theorem's own up to
    :data:`FFN_EXPLICIT_K` tokens, else the shift ``x + 1 mod FFN_EXPLICIT_K``."""
    if resolved.K <= FFN_EXPLICIT_K:
        return resolved.collocation
    return tuple((x + 1) % FFN_EXPLICIT_K for x in range(FFN_EXPLICIT_K))


def _ffn_obligations(params: Params) -> list[Obligation]:
    resolved = resolve(params)
    colloc = _explicit_collocation(resolved)
    K = len(colloc)
    shown = f"K={K}" + ("" if K == resolved.K else f", the permutation x+1 mod {K}")
    W = ffn_max_margin(K, colloc)
    margins = sp.ImmutableMatrix(K, K, lambda v, x: 0 if v == colloc[x]
                                 else W[colloc[x], x] - W[v, x] - 1)
    kkt = sp.zeros(K, K)
    for x, v in product(range(K), range(K)):
        if v != colloc[x]:
            kkt[colloc[x], x] += sp.Rational(1, K)
            kkt[v, x] -= sp.Rational(1, K)
    column_norm2 = (1 - 1 / K_) ** 2 + (K_ - 1) / K_**2
    symbols = sp.Matrix(K, K, lambda v, x: sp.Symbol(f"w_{v}_{x}"))
    loss = collocation_loss(symbols, colloc)
    along = {symbols[v, x]: c_ * W[v, x] / sp.sqrt(K - 1) for v in range(K) for x in range(K)}
    gradient = sp.Matrix(K, K, lambda v, x: sp.diff(loss, symbols[v, x])).subs(along)
    m = c_ / sp.sqrt(K - 1)
    gamma = sp.exp(-m) / (1 + (K - 1) * sp.exp(-m))
    law = collocation_loss_law().subs({K_: K, t_: c_ / eta0_})
    return [
        Obligation(f"W_ov* is feasible with every margin equal to 1 ({shown})", margins, "==",
                   {}, sp.zeros(K, K)),
        Obligation(f"KKT: W_ov* = sum lambda (e_n(x) - e_v) e_x^T with every lambda = 1/K > 0 "
                   f"and every constraint tight ({shown})", sp.ImmutableMatrix(kkt - W), "==",
                   {}, sp.zeros(K, K)),
        Obligation("||W_ov*||_F^2 = K (column norm^2 (1-1/K)^2 + (K-1)/K^2) = K - 1 "
                   "(symbolic K)", K_ * column_norm2, "==", {}, K_ - 1),
        Obligation(f"L0(c W*/||W*||) = log(1 + (K-1) exp(-c/sqrt(K-1))) for all c >= 0 "
                   f"({shown})", collocation_loss(c_ * W / sp.sqrt(K - 1), colloc), "==", {},
                   law),
        Obligation(f"grad L0(c W*/||W*||) = -gamma(c) W*: every NGD step from 0 points along "
                   f"W* ({shown})", sp.ImmutableMatrix(gradient + gamma * W), "==", {},
                   sp.zeros(K, K)),
        Obligation("gamma(c) = e^{-m}/(1 + (K-1) e^{-m}) > 0, m = c/sqrt(K-1)", gamma, ">", {}),
    ]


def _stage_point(params: Params) -> dict[sp.Symbol, sp.Expr]:
    return {K_: sp.Integer(resolve(params).K), eta0_: sp.Rational(params["eta0"]),
            T0_: sp.Integer(params["T0"])}


def _ffn_predict(params: Params) -> Prediction:
    resolved = resolve(params)
    return Prediction(
        closed_forms={"W_ov": ffn_max_margin(resolved.K, resolved.collocation),
                      "norm2": K_ - 1, "L0": collocation_loss_law(),
                      "L0(T0)": collocation_loss_law().subs(t_, T0_)},
        point=_stage_point(params),
        descriptions={"W_ov": "max-margin feed-forward matrix W_ov*", "norm2": "||W_ov*||_F^2",
                      "L0": "collocation loss after t NGD steps from 0 (t symbolic)",
                      "L0(T0)": "collocation loss when stage 1 stops"},
    )


# ----------------------------------------------------------------------------- attention


def _attention_predict(params: Params) -> Prediction:
    resolved = resolve(params)
    W = attention_max_margin(resolved)
    norm2 = sum(x**2 for x in W)
    eta = sp.Rational(params["eta"])
    return Prediction(
        closed_forms={"W_kq": W, "norm2": norm2, "W_ov": ffn_max_margin(resolved.K,
                                                                       resolved.collocation),
                      "floor": collocation_loss_law().subs(t_, T0_),
                      "rate": sp.exp(-eta / sp.sqrt(norm2))},
        point=_stage_point(params),
        descriptions={
            "W_kq": "max-margin attention matrix W_kq* (rows: keys, columns: queries)",
            "norm2": "||W_kq*||_F^2", "W_ov": "stage-1 direction W_ov*",
            "floor": "loss floor L_inf with attention fully on x*: every sentence then has the "
                     "collocation loss of x*, L0(T0)",
            "rate": "asymptotic per-step factor of loss - L_inf once the direction has "
                    "converged: exp(-eta / ||W_kq*||) (the smallest margin of W_kq*/||W_kq*|| "
                    "is 1/||W_kq*||)"},
    )


def _attention_obligations(params: Params) -> list[Obligation]:
    resolved = resolve(params)
    W = attention_max_margin(resolved)
    return _kkt_obligations(resolved, W, "W_kq*") + _structure_obligations(resolved, W)


def _floor_obligations(params: Params) -> list[Obligation]:
    resolved = resolve(params)
    colloc = _explicit_collocation(resolved)
    K = len(colloc)
    law = collocation_loss_law().subs({K_: K, t_: c_ / eta0_})
    per_token = sp.ImmutableMatrix([loss - law for loss in token_losses(
        ffn_max_margin(K, colloc) * c_ / sp.sqrt(K - 1), colloc)])
    W_kq = attention_max_margin(resolved)
    norm2 = sum(x**2 for x in W_kq)
    return [
        Obligation(f"with attention fully on x*, a sentence's loss is the collocation loss of "
                   f"x*, equal for every x at W_ov = c W*/||W*|| (K={K}): the floor is L0(T0)",
                   per_token, "==", {}, sp.zeros(K, 1)),
        Obligation("smallest margin of W_kq*/||W_kq*|| is 1/||W_kq*|| > 0 (attention on "
                   "non-optimal tokens decays like exp(-||W_kq|| / ||W_kq*||))",
                   1 / sp.sqrt(norm2), ">", {}),
    ] + _kkt_obligations(resolved, W_kq, "W_kq*")


# ----------------------------------------------------------------------------- dataset shift


def _shift_predict(params: Params) -> Prediction:
    q, a, _, c = resolve(params).holdout
    base = _attention_predict(params)
    W = base.closed_forms["W_kq"]
    return Prediction(
        closed_forms={**base.closed_forms, "gap": W[a, q] - W[c, q]},
        point=base.point,
        descriptions={**base.descriptions,
                      "W_kq": "max-margin attention matrix without the held-out sentences",
                      "gap": f"s_{q}({a}) - s_{q}({c}): the held-out comparison, decided by "
                             "transitivity"},
    )


def _shift_obligations(params: Params) -> list[Obligation]:
    resolved = resolve(params)
    q, a, b, c = resolved.holdout
    W = attention_max_margin(resolved)
    return [
        Obligation(f"training no longer compares {a} and {c} for query {q}",
                   sp.Integer(int((a, c) in resolved.comparisons()[q])), "==", {}),
        Obligation(f"transitivity: s_{q}({a}) - s_{q}({c}) >= 2 in the SVM solution "
                   f"(margins {a}>{b} and {b}>{c} are each >= 1)", W[a, q] - W[c, q], ">=",
                   {}, sp.Integer(2)),
    ] + _kkt_obligations(resolved, W, "W_kq* without the held-out sentences")


# ----------------------------------------------------------------------------- registration


def _problems(params: Params) -> list[str]:
    problems = []
    try:
        resolve(params)
    except SettingError as exc:
        problems.append(str(exc))
    for name in ("eta0", "eta"):
        if not params[name] > 0:
            problems.append(f"{name} must be a step size > 0 (got {name} = {params[name]})")
    if params["T0"] < 1:
        problems.append(f"T0 must be at least 1 stage-1 step (got T0 = {params['T0']})")
    return problems


def _parameters(holdout: bool = False) -> tuple[Parameter, ...]:
    parameters = (
        Parameter("K", "integer", 6, "vocabulary size (one-hot embeddings, d = K)"),
        Parameter("collocation", "text", "shift",
                  "collocation permutation n: 'shift' (x+1 mod K) or K tokens '1,2,...,0'"),
        Parameter("orders", "text", TOY_ORDERS,
                  "per-query partial orders 'q: a>b>c, d>e; ...' (unlisted queries: seeded "
                  "random total orders) or 'random' (seeded random weak orders)"),
        Parameter("order_seed", "integer", 0, "seed of the random orders"),
        Parameter("L", "integer", 3, "longest training sentence"),
        Parameter("sentences", "text", "all",
                  "'all' admissible sentences of length 2..L, or explicit ones '2 0 1; 4 3 1' "
                  "(query last)"),
        Parameter("eta0", "rational", sp.Rational(1, 2), "stage-1 NGD step eta_0 > 0"),
        Parameter("T0", "integer", 20, "stage-1 NGD steps T_0 (W_ov is then frozen)"),
        Parameter("eta", "rational", sp.Rational(1, 2), "stage-2 NGD step eta > 0"),
    )
    if holdout:
        parameters += (Parameter("holdout", "text", "auto",
                                 "transitivity hold-out 'q: a>b>c' (sentences of query q whose "
                                 "greatest token is a and that contain c) or 'auto'"),)
    return parameters


_PAPER = "huang2024ntp"
_ASSUMPTIONS = (
    "orthonormal (one-hot) embeddings, d = K",
    "collocation n is a permutation; every per-query order is a strict partial order (acyclic)",
    "every training sentence has a unique greatest token under its query's order",
    r"normalized GD with steps $\eta_0, \eta > 0$; stage 1 trains $W_{ov}$ alone from 0, "
    r"stage 2 trains $W_{kq}$ alone from 0",
)

FFN_MAX_MARGIN = Theorem(
    id="ntp-ffn-max-margin",
    title="Stage 1: the feed-forward matrix converges in direction to the max-margin W_ov*",
    paper=f"{_PAPER}, feed-forward pre-processing (stage 1)",
    statement=(
        r"Normalized GD on the collocation loss $L_0(W) = \frac1K\sum_x -\log\mathrm{softmax}"
        r"(E^\top W e_x)_{n(x)}$ gives $W(t)/\|W(t)\| \to W_{ov}^*/\|W_{ov}^*\|$, where "
        r"$W_{ov}^* = \arg\min\|W\|_F$ s.t. $(e_{n(x)} - e_v)^\top W e_x \ge 1$; for "
        r"orthonormal embeddings $W_{ov}^* = \sum_x (e_{n(x)} - \bar e) e_x^\top$, "
        r"$\|W_{ov}^*\|_F^2 = K-1$, and from $W(0) = 0$: "
        r"$L_0(t) = \log(1 + (K-1)e^{-\eta_0 t/\sqrt{K-1}})$ (linear convergence)."
    ),
    parameters=_parameters(),
    assumption_text=_ASSUMPTIONS,
    assumptions=_problems,
    predict=_ffn_predict,
    obligations=_ffn_obligations,
)

ATTENTION_MAX_MARGIN = Theorem(
    id="ntp-attention-max-margin",
    title="Stage 2: attention converges in direction to the max-margin W_kq*",
    paper=f"{_PAPER}, attention training (stage 2)",
    statement=(
        r"With $W_{ov}$ frozen after stage 1, normalized GD on $W_{kq}$ from 0 gives "
        r"$W_{kq}(t)/\|W_{kq}(t)\| \to W_{kq}^*/\|W_{kq}^*\|$ with $W_{kq}^* = \arg\min"
        r"\|W\|_F$ s.t. $(e_{x^*(X)} - e_x)^\top W e_{x_L} \ge 1$ for every training "
        r"sentence $X$ and token $x \ne x^*(X)$ of $X$, and the attention on the optimal "
        r"token tends to 1."
    ),
    parameters=_parameters(),
    assumption_text=_ASSUMPTIONS,
    assumptions=_problems,
    predict=_attention_predict,
    obligations=_attention_obligations,
)

LOSS_LINEAR_RATE = Theorem(
    id="ntp-loss-linear-rate",
    title="Stage 2: the loss converges linearly to its floor",
    paper=f"{_PAPER}, linear convergence of the training loss",
    statement=(
        r"The stage-2 loss converges linearly to $L_\infty = \frac1N\sum -\log\mathrm{softmax}"
        r"(E^\top W_{ov} e_{x^*})_y$, which equals $L_0(T_0)$ since $W_{ov}(T_0) = "
        r"\eta_0 T_0 W_{ov}^*/\|W_{ov}^*\|$: $L(t) - L_\infty \le C\rho^t$ with $\rho < 1$."
    ),
    parameters=_parameters(),
    assumption_text=_ASSUMPTIONS,
    assumptions=_problems,
    predict=_attention_predict,
    obligations=_floor_obligations,
)

DATASET_SHIFT = Theorem(
    id="ntp-dataset-shift",
    title="The trained model generalises to longer sentences and to transitive comparisons",
    paper=f"{_PAPER}, generalisation under dataset shift",
    statement=(
        r"On a new sentence whose greatest token exists under the order induced by the "
        r"scores $s_q(x) = e_x^\top W_{kq}^* e_q$ (which contains the transitive closure of "
        r"the training comparisons), the trained model predicts $n(x^*)$; in particular "
        r"$s_q(a) - s_q(c) \ge 2$ when training compares only $a > b$ and $b > c$."
    ),
    parameters=_parameters(holdout=True),
    assumption_text=_ASSUMPTIONS + ("hold-out: a >_q b >_q c with b >=_q q and c != q",),
    assumptions=_problems,
    predict=_shift_predict,
    obligations=_shift_obligations,
)

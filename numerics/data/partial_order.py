"""Partial-order sentences for next-token prediction (Huang, Liang, Yang, 2024), vectorised.

A task is a vocabulary ``0..K-1``, a collocation permutation ``n`` and, per query ``q``, a strict
partial order given as a boolean relation ``greater[q, a, b]`` (``a >_q b``). A sentence is a set
of distinct tokens with its query last (the other tokens in increasing order: attention from the
last token does not depend on their order); it is admissible when its tokens have a unique
greatest element ``x*`` under the query's order, and its next token is ``n(x*)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np


class OrderError(ValueError):
    """A specification that no partial-order dataset realises (cycle, bad permutation, ...)."""


def transitive_closure(relations: np.ndarray) -> np.ndarray:
    """Close ``relations`` ``(Q, K, K)`` under transitivity (Warshall, batched over queries).

    Raises
    ------
    OrderError
        If some query's relation has a cycle (then the closure relates a token to itself).
    """
    closure = np.asarray(relations, dtype=bool).copy()
    for k in range(closure.shape[-1]):
        closure |= closure[:, :, k, None] & closure[:, None, k, :]
    cyclic = np.argwhere(np.diagonal(closure, axis1=1, axis2=2))
    if len(cyclic):
        q, x = cyclic[0]
        raise OrderError(f"the order of query {q} has a cycle through token {x}")
    return closure


@dataclass(frozen=True)
class Sentences:
    """A batch of sentences, left-aligned and padded.

    Attributes
    ----------
    tokens : numpy.ndarray
        ``(N, L)`` int64 token ids; positions at or beyond ``lengths`` hold 0 (padding).
    lengths : numpy.ndarray
        ``(N,)`` sentence lengths; the query is ``tokens[i, lengths[i] - 1]``.
    greatest : numpy.ndarray
        ``(N,)`` the greatest token ``x*`` (-1 where the sentence has none).
    targets : numpy.ndarray
        ``(N,)`` next token ``n(x*)`` (-1 where there is no greatest token).
    """

    tokens: np.ndarray
    lengths: np.ndarray
    greatest: np.ndarray
    targets: np.ndarray

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def queries(self) -> np.ndarray:
        """``(N,)`` the last token of each sentence."""
        return self.tokens[np.arange(len(self)), self.lengths - 1]

    def select(self, keep: np.ndarray) -> Sentences:
        """The sentences where the boolean ``keep`` ``(N,)`` is true (or at integer indices)."""
        return Sentences(self.tokens[keep], self.lengths[keep], self.greatest[keep],
                         self.targets[keep])

    def rows(self) -> list[tuple[int, ...]]:
        """Each sentence as a tuple of tokens (query last)."""
        return [tuple(int(t) for t in row[:n]) for row, n in zip(self.tokens, self.lengths,
                                                                  strict=True)]


def concatenate(parts: list[Sentences]) -> Sentences:
    """One batch from several, padded to the longest sentence."""
    width = max(p.tokens.shape[1] for p in parts)
    tokens = np.concatenate([np.pad(p.tokens, ((0, 0), (0, width - p.tokens.shape[1])))
                             for p in parts])
    return Sentences(tokens, *(np.concatenate([getattr(p, f) for p in parts])
                               for f in ("lengths", "greatest", "targets")))


@dataclass(frozen=True)
class PartialOrderTask:
    """Vocabulary, collocation and per-query strict orders.

    Attributes
    ----------
    collocation : numpy.ndarray
        ``(K,)`` the permutation ``n``.
    greater : numpy.ndarray
        ``(K, K, K)`` boolean, transitively closed: ``greater[q, a, b]`` is ``a >_q b``.
    """

    collocation: np.ndarray
    greater: np.ndarray

    @classmethod
    def from_relations(cls, collocation: np.ndarray, relations: np.ndarray) -> PartialOrderTask:
        """Validate and close a specification.

        Raises
        ------
        OrderError
            If ``collocation`` is not a permutation of ``0..K-1``, ``relations`` is not
            ``(K, K, K)``, or some query's order has a cycle.
        """
        collocation = np.asarray(collocation, dtype=np.int64)
        K = len(collocation)
        if sorted(collocation.tolist()) != list(range(K)):
            raise OrderError(f"collocation {collocation.tolist()} is not a permutation of "
                             f"0..{K - 1}")
        relations = np.asarray(relations, dtype=bool)
        if relations.shape != (K, K, K):
            raise OrderError(f"relations must have shape (K, K, K) = {(K, K, K)}, got "
                             f"{relations.shape}")
        return cls(collocation, transitive_closure(relations))

    @property
    def K(self) -> int:
        """Vocabulary size."""
        return len(self.collocation)

    def _label(self, tokens: np.ndarray, lengths: np.ndarray) -> Sentences:
        """Greatest token and target of every sentence, batched ``(N, L)``."""
        N, L = tokens.shape
        valid = np.arange(L) < lengths[:, None]  # (N, L)
        q = tokens[np.arange(N), lengths - 1]
        beats = self.greater[q[:, None, None], tokens[:, :, None], tokens[:, None, :]]
        beats |= np.eye(L, dtype=bool) | ~valid[:, None, :]  # (N, L, L): row beats column
        is_greatest = beats.all(-1) & valid  # (N, L)
        has = is_greatest.any(-1)
        greatest = np.where(has, tokens[np.arange(N), is_greatest.argmax(-1)], -1)
        targets = np.where(has, self.collocation[greatest], -1)
        return Sentences(tokens, lengths, greatest, targets)

    def collocation_sentences(self) -> Sentences:
        """The ``K`` length-1 sentences ``[x]`` with next token ``n(x)``."""
        tokens = np.arange(self.K)[:, None]
        return self._label(tokens, np.ones(self.K, dtype=np.int64))

    def token_sets(self, length: int) -> Sentences:
        """Every sentence of ``length`` distinct tokens (admissible or not), for every query."""
        prefixes = np.array(list(combinations(range(self.K - 1), length - 1)),
                            dtype=np.int64).reshape(-1, length - 1)  # (C, length-1)
        queries = np.arange(self.K)
        shifted = prefixes[None] + (prefixes[None] >= queries[:, None, None])  # skip the query
        tokens = np.concatenate(
            (shifted, np.broadcast_to(queries[:, None, None], (self.K, len(prefixes), 1))),
            axis=-1).reshape(-1, length)
        return self._label(tokens, np.full(len(tokens), length, dtype=np.int64))

    def admissible(self, lengths: range) -> Sentences:
        """Every admissible sentence with a length in ``lengths``."""
        parts = [self.token_sets(n) for n in lengths if 1 < n <= self.K]
        if not parts:
            raise OrderError(f"no sentence length in {lengths} lies in 2..{self.K}")
        batch = concatenate(parts)
        return batch.select(batch.greatest >= 0)

    def sentences(self, rows: list[tuple[int, ...]]) -> Sentences:
        """Explicit sentences (query last).

        Raises
        ------
        OrderError
            For a token outside the vocabulary, a repeated token, or a sentence without a
            unique greatest token under its query's order.
        """
        width = max(map(len, rows))
        tokens = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            if len(set(row)) != len(row) or not all(0 <= t < self.K for t in row):
                raise OrderError(f"sentence {row}: tokens must be distinct and in 0..{self.K-1}")
            tokens[i, : len(row)] = row
        batch = self._label(tokens, np.array([len(r) for r in rows], dtype=np.int64))
        bad = np.flatnonzero(batch.greatest < 0)
        if len(bad):
            row = rows[bad[0]]
            raise OrderError(f"sentence {row} has no unique greatest token under query "
                             f"{row[-1]}'s order")
        return batch


def subsample(sentences: Sentences, count: int, rng: np.random.Generator) -> Sentences:
    """``count`` sentences drawn without replacement (all of them if there are fewer)."""
    if count >= len(sentences):
        return sentences
    return sentences.select(np.sort(rng.choice(len(sentences), size=count, replace=False)))


def transitivity_split(sentences: Sentences, q: int, a: int, c: int
                       ) -> tuple[Sentences, Sentences]:
    """Split off the sentences of query ``q`` whose greatest token is ``a`` and contain ``c``.

    Training on the rest compares ``a`` and ``c`` only through other tokens; returns
    ``(kept, held_out)``.
    """
    valid = np.arange(sentences.tokens.shape[1]) < sentences.lengths[:, None]
    contains_c = ((sentences.tokens == c) & valid).any(-1)
    held = (sentences.queries == q) & (sentences.greatest == a) & contains_c
    return sentences.select(~held), sentences.select(held)


def comparisons(sentences: Sentences, K: int) -> np.ndarray:
    """``(K, K, K)`` boolean ``compared[q, g, x]``: some sentence of query ``q`` has greatest
    token ``g`` and contains ``x != g`` (one constraint of the attention max-margin problem)."""
    valid = np.arange(sentences.tokens.shape[1]) < sentences.lengths[:, None]
    rows, cols = np.nonzero(valid & (sentences.tokens != sentences.greatest[:, None])
                            & (sentences.greatest[:, None] >= 0))
    compared = np.zeros((K, K, K), dtype=bool)
    compared[sentences.queries[rows], sentences.greatest[rows], sentences.tokens[rows, cols]] = True
    return compared

"""Same-topic vs different-topic statistics of a trained model, for any word -> topic labels.

Li, Li and Risteski (2023) compare, over pairs of vocabulary words, the mean of a pairwise
quantity (the embeddings' inner product, the attention between the two words) on pairs of the
same topic with its mean on pairs of different topics. On real text the topics are an LDA fit's
labels, so the statistic takes them as an array:

* :func:`label_gap`: the same-minus-different gap of a ``(V, V)`` table, with its standard
  error from random relabellings (the permutation null, see :class:`LabelGap`);
* :func:`attention_lift`: the ``(V, V)`` table of attention lifts of a model on documents
  (the attention share of word ``k`` from queries of word ``q``, relative to ``k``'s share of
  the keys; copies of the query's word excluded), the unit the attention claim is measured in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


def _same_topic_sums(tables: np.ndarray, labelings: np.ndarray, T: int) -> np.ndarray:
    """``(P, K)`` sums of each of ``K`` tables over the pairs ``(i, j)`` that the ``P``
    labelings put in one topic, for all labelings in one matrix product.

    Parameters
    ----------
    tables : numpy.ndarray
        ``(K, V, V)``, zero wherever a pair is not to be counted.
    labelings : numpy.ndarray
        ``(P, V)`` int topic of each word under each labeling.
    """
    P, V = labelings.shape
    H = np.zeros((P, T, V))
    H[np.arange(P)[:, None], labelings, np.arange(V)[None, :]] = 1.0  # one-hot, (P, T, V)
    rows = H.reshape(P * T, V)
    sums = [np.einsum("ptv,ptv->p", (rows @ table).reshape(P, T, V), H) for table in tables]
    return np.stack(sums, axis=1)


def _gaps(table: np.ndarray, labelings: np.ndarray) -> np.ndarray:
    """``(P,)`` same-minus-different gap of ``table`` under each labeling (NaN entries and
    the diagonal left out)."""
    usable = np.isfinite(table) & ~np.eye(table.shape[0], dtype=bool)
    values = np.where(usable, table, 0.0)
    weights = usable.astype(float)
    T = int(labelings.max()) + 1
    same = _same_topic_sums(np.stack([values, weights]), labelings, T)  # (P, 2)
    other_sum, other_count = values.sum() - same[:, 0], weights.sum() - same[:, 1]
    return same[:, 0] / same[:, 1] - other_sum / other_count


def pair_gap(table: np.ndarray, labels: np.ndarray) -> float:
    """Mean of ``table`` over same-topic pairs of different words minus its mean over
    different-topic pairs; NaN entries (pairs without a value) are left out."""
    return float(_gaps(table, labels[None, :])[0])


@dataclass(frozen=True)
class LabelGap:
    """The same-minus-different gap of a pairwise table, against the permutation null.

    The pairs share words (word ``i`` is in ``V - 1`` pairs), so they are not independent
    samples and ``std / sqrt(pairs)`` understates the error: a word-level effect (an
    embedding's norm) averages out over the pairs of a topic only when the topics are
    balanced, and LDA's topics of real text are not (on the Wikipedia sample the
    independent-pairs error is about 6 times too small). The standard error used here is
    the spread of the gap under random relabellings of the words (topic sizes kept): the
    gap's standard deviation when the labels carry no information about the table.

    Attributes
    ----------
    gap : float
        :func:`pair_gap` with the given labels.
    standard_error : float
        Standard deviation of :func:`pair_gap` over ``permutations`` relabellings.
    null_mean : float
        Mean of the gap over the relabellings (the permutation null's centre, 0 in
        expectation for a complete table).
    permutations : int
    naive_error : float
        ``sqrt(var_same / n_same + var_other / n_other)`` over the pairs as if independent
        (reported: the ratio to :attr:`standard_error` says how much the pairs share).
    pairs : tuple[int, int]
        Usable same-topic and different-topic pairs (ordered pairs, both orders counted).
    """

    gap: float
    standard_error: float
    null_mean: float
    permutations: int
    naive_error: float
    pairs: tuple[int, int]

    @property
    def sigmas(self) -> float:
        """:attr:`gap` in standard errors."""
        return self.gap / self.standard_error


def label_gap(table: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
              permutations: int) -> LabelGap:
    """:func:`pair_gap` of ``table`` under ``labels`` and under ``permutations`` random
    relabellings drawn from ``rng`` (see :class:`LabelGap`).

    Parameters
    ----------
    table : numpy.ndarray
        ``(V, V)`` pairwise values, NaN where a pair has none (the diagonal is ignored).
    labels : numpy.ndarray
        ``(V,)`` int topic of each word.
    """
    usable = np.isfinite(table) & ~np.eye(len(labels), dtype=bool)
    null = _gaps(table, np.stack([rng.permutation(labels) for _ in range(permutations)]))
    same_pairs = labels[:, None] == labels[None, :]
    same, other = table[usable & same_pairs], table[usable & ~same_pairs]
    naive = math.sqrt(same.var(ddof=1) / same.size + other.var(ddof=1) / other.size)
    return LabelGap(pair_gap(table, labels), float(null.std(ddof=1)), float(null.mean()),
                    permutations, naive, (int(same.size), int(other.size)))


@torch.no_grad()
def attention_lift(model: torch.nn.Module, tokens: torch.Tensor, V: int) -> np.ndarray:
    """``(V, V)`` attention lifts of ``model`` on unmasked, unpadded documents.

    For query ``i`` let ``K_i`` be the keys whose word differs from ``x_i`` (this drops ``i``
    itself and every copy of its word). For a word ``k`` present in ``K_i`` the lift is
    ``(sum_{j in K_i, x_j = k} A_ij / sum_{j in K_i} A_ij) / (n_k / |K_i|)``: the attention
    share of ``k``, renormalised over ``K_i``, over its share of those keys (uniform attention
    gives exactly 1, whatever the words' frequencies). Entry ``[q, k]`` is the mean lift over
    all queries of word ``q`` whose document contains ``k``; NaN where there are none and on
    the diagonal.

    Parameters
    ----------
    model : torch.nn.Module
        Returns ``(logits, attention)`` with attention ``(B, N, N)`` (a
        :class:`~numerics.models.topic_transformer.TopicTransformer`).
    tokens : torch.Tensor
        ``(B, N)`` word ids ``< V``, every position a word.
    """
    _, attention = model(tokens)
    return lift_table(attention, tokens, V)


def lift_table(attention: torch.Tensor, tokens: torch.Tensor, V: int) -> np.ndarray:
    """The ``(V, V)`` lift table of :func:`attention_lift` from the attention ``(B, N, N)`` of
    the documents ``tokens`` (``(B, N)``, unpadded), for a caller that needs the attention
    too."""
    words = F.one_hot(tokens, V).to(attention.dtype)  # (B, N, V)
    mass = attention @ words  # (B, N, V): attention of query i on the keys of word k
    present = words.sum(1)  # (B, V): n_k
    others = present[:, None, :] * (1 - words)  # n_k for k != x_i, 0 for the query's own word
    kept = mass.masked_fill(words.bool(), 0.0).sum(-1, keepdim=True)  # attention on K_i
    size = others.sum(-1, keepdim=True)  # |K_i|
    valid = (others > 0) & (kept > 0)
    lift = torch.where(valid, mass * size / (kept * others.clamp_min(1)), 0.0)
    queries = tokens.reshape(-1)  # row q of the table sums the lifts of the queries of word q
    total = lift.new_zeros(V, V).index_add_(0, queries, lift.reshape(-1, V))
    count = lift.new_zeros(V, V).index_add_(0, queries, valid.to(lift.dtype).reshape(-1, V))
    table = torch.where(count > 0, total / count.clamp_min(1), math.nan).double().cpu().numpy()
    np.fill_diagonal(table, math.nan)
    return table

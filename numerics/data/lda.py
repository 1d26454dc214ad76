"""Topic-model documents and masked-language-model corruption (Li, Li, Risteski, 2023).

``T`` disjoint topics of ``v`` words (word ``w`` belongs to topic ``w // v``). Two document
models:

* theory documents: a set of ``tau`` topics drawn uniformly, words uniform over those topics;
  the long-document limit of their context is :func:`context_distributions`;
* LDA documents (the reference code's experiments): topic proportions ~ Dirichlet(alpha),
  lengths uniform in ``[min_length, max_length]``;
* topic-free documents (the control, ``sample_lda_documents(..., topic_structure=False)``): the
  same lengths, every token's topic drawn uniformly and independently, so words are i.i.d.
  uniform over the whole vocabulary and no two words co-occur more than chance. The unigram
  distribution is the LDA one (a symmetric Dirichlet mix is uniform on average); only the
  co-occurrence of same-topic words is gone.

Token ids: content words ``0..V-1``, ``[MASK] = V``, padding ``V+1``. Everything is drawn with a
seeded ``numpy.random.Generator`` in whole-array operations (no loop over documents or positions).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np


def topic_of(word: np.ndarray | int, v: int) -> np.ndarray | int:
    """Topic of each content word."""
    return word // v


def topic_blocks(T: int, v: int) -> np.ndarray:
    """``Blk``: ``(T v, T v)`` bool, ``True`` where content words ``i`` and ``j`` share a topic."""
    return np.kron(np.eye(T), np.ones((v, v))).astype(bool)


def context_distributions(T: int, v: int, tau: int) -> np.ndarray:
    """``p_S`` for every ``tau``-subset ``S`` of topics, shape ``(C(T, tau), T v)``."""
    subsets = list(combinations(range(T), tau))
    P = np.zeros((len(subsets), T * v))
    for row, S in enumerate(subsets):
        for t in S:
            P[row, t * v : (t + 1) * v] = 1.0 / (tau * v)
    return P


@dataclass(frozen=True)
class Documents:
    """A padded batch of documents.

    Attributes
    ----------
    tokens : numpy.ndarray
        ``(B, N)`` token ids, padding ``V+1`` after each document's length.
    lengths : numpy.ndarray
        ``(B,)`` document lengths.
    """

    tokens: np.ndarray
    lengths: np.ndarray


def sample_lda_documents(
    rng: np.random.Generator, batch: int, T: int, v: int, alpha: float = 0.1,
    min_length: int = 100, max_length: int = 150, topic_structure: bool = True,
) -> Documents:
    """LDA documents: ``theta ~ Dir(alpha 1_T)``, each token's topic ~ theta, word uniform.

    Parameters
    ----------
    rng : numpy.random.Generator
    batch, T, v : int
        Documents, topics, words per topic.
    alpha : float
        Dirichlet concentration of the topic proportions.
    min_length, max_length : int
        Document lengths are uniform in ``[min_length, max_length]``.
    topic_structure : bool
        ``False`` draws each token's topic uniformly and independently of its document (the
        topic-free control: words i.i.d. uniform over the vocabulary, no co-occurrence signal);
        the random draws are the same as with ``True``, only ``theta`` is replaced by ``1/T``.

    Returns
    -------
    Documents
    """
    if not alpha > 0:
        raise ValueError(f"the Dirichlet parameter alpha must be > 0 (got {alpha})")
    if not 1 <= min_length <= max_length:
        raise ValueError(f"need 1 <= min_length <= max_length (got {min_length}, {max_length})")
    V = T * v
    theta = rng.dirichlet(np.full(T, alpha), size=batch)  # (B, T)
    if not topic_structure:
        theta = np.full_like(theta, 1.0 / T)
    lengths = rng.integers(min_length, max_length + 1, size=batch)
    u = rng.random((batch, max_length))
    topics = (u[:, :, None] > np.cumsum(theta, axis=1)[:, None, :]).sum(-1)
    topics = np.minimum(topics, T - 1)  # guards the last cumulative sum's round-off
    words = topics * v + rng.integers(0, v, size=(batch, max_length))
    tokens = np.where(np.arange(max_length)[None, :] < lengths[:, None], words, V + 1)
    return Documents(tokens, lengths)


@dataclass(frozen=True)
class MaskedBatch:
    """Masked-LM inputs.

    Attributes
    ----------
    inputs : numpy.ndarray
        ``(B, N)`` corrupted token ids.
    labels : numpy.ndarray
        ``(B, N)`` original ids at selected positions, ``-1`` elsewhere.
    keys : numpy.ndarray
        ``(B, N)`` bool: positions usable as attention keys (not selected, not padding).
    """

    inputs: np.ndarray
    labels: np.ndarray
    keys: np.ndarray


def mask_for_mlm(
    rng: np.random.Generator, documents: Documents, V: int, mask_prob: float = 0.15,
    keep_prob: float = 0.1, random_prob: float = 0.1,
) -> MaskedBatch:
    """BERT-style corruption as in the reference code.

    Each content position is selected w.p. ``mask_prob``; a selected token becomes ``[MASK]``
    w.p. ``1 - keep_prob - random_prob``, a uniformly random content word w.p. ``random_prob``,
    and stays w.p. ``keep_prob``. Loss only on selected positions; selected positions are not
    attention keys. (The reference code's random replacement can also draw special tokens; here
    it draws content words.)
    """
    for name, value in (("mask_prob", mask_prob), ("keep_prob", keep_prob),
                        ("random_prob", random_prob)):
        if not 0 <= value <= 1:
            raise ValueError(f"{name} must lie in [0, 1] (got {value})")
    if keep_prob + random_prob > 1:
        raise ValueError(f"keep_prob + random_prob must be <= 1 (got {keep_prob + random_prob}): "
                         "the three outcomes of a selected token are probabilities")
    tokens = documents.tokens
    content = tokens < V
    selected = content & (rng.random(tokens.shape) < mask_prob)
    outcome = rng.random(tokens.shape)
    random_words = rng.integers(0, V, size=tokens.shape)
    inputs = np.where(selected & (outcome < random_prob), random_words, tokens)
    inputs = np.where(selected & (outcome >= random_prob + keep_prob), V, inputs)
    labels = np.where(selected, tokens, -1)
    return MaskedBatch(inputs, labels, content & ~selected)

"""Exact population losses, by enumerating every input sequence with its probability.

For binary Markov data of any order (Makkuva et al., 2024, eq. of the loss in Section 2) the
model's logit at position ``n`` depends on ``x_1..x_n`` only, so the expectation over
``x_{n+1}`` is taken in closed form: the population loss is

``L = sum_x P(x_1..x_N) (1/N) sum_n CE(P(1 | x_1..x_n), logit_n(x))``

with ``CE(k, l) = k softplus(-l) + (1-k) softplus(l)``. Enumerating the ``2^N`` sequences is
exact (float64 round-off only) and feasible for ``N <= 12``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from numerics.data.higher_order_markov import sequence_probabilities
from numerics.data.lda import context_distributions

#: Largest N for which the 2^N sequences are enumerated.
MAX_ENUMERATED_LENGTH = 12


def expected_cross_entropy(logits: torch.Tensor, prob_one: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``sigmoid(logits)`` averaged over a Bernoulli(``prob_one``) target."""
    return prob_one * F.softplus(-logits) + (1 - prob_one) * F.softplus(logits)


def all_binary_sequences(length: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Every sequence in {0,1}^length, shape ``(2^length, length)``."""
    codes = torch.arange(2**length, device=device)
    bits = 2 ** torch.arange(length - 1, -1, -1, device=device)
    return ((codes.unsqueeze(-1) & bits) > 0).to(dtype)


@dataclass(frozen=True)
class MarkovPopulation:
    """All length-``N`` sequences of a stationary binary Markov chain (of any order ``k``) with
    their probabilities.

    Attributes
    ----------
    sequences : torch.Tensor
        ``(2^N, N)`` inputs.
    probabilities : torch.Tensor
        ``(2^N,)`` probabilities ``mu(x_1..x_k) prod_t P(x_{t+1} | x_{t-k+1..t})``; they sum
        to 1.
    next_one : torch.Tensor
        ``(2^N, N)``: ``P(x_{n+1} = 1 | x_1..x_n)`` at every position (``P(1 | x_n)`` for a
        first-order chain).
    prefixes : torch.Tensor
        ``(2^(N+1) - 2, N)`` every distinct prefix ``x_1..x_n`` (``n = 1..N``), zero-padded.
        A causal model's logit at position ``n`` depends on the prefix only, so the loss is a
        sum over distinct prefixes: 4x fewer feed-forward rows than over all positions of
        all sequences (``2^(N+1)`` vs ``N 2^N``), with the same value.
    lengths : torch.Tensor
        ``(2^(N+1) - 2,)`` prefix lengths ``n``.
    prefix_weights : torch.Tensor
        ``P(x_1..x_n) / N``: each prefix's share of the position-averaged loss (sum 1).
    prefix_next_one : torch.Tensor
        ``P(x_{n+1} = 1 | x_1..x_n)`` after each prefix.
    prefix_last : torch.Tensor
        The last token ``x_n`` of each prefix.
    """

    sequences: torch.Tensor
    probabilities: torch.Tensor
    next_one: torch.Tensor
    prefixes: torch.Tensor
    lengths: torch.Tensor
    prefix_weights: torch.Tensor
    prefix_next_one: torch.Tensor
    prefix_last: torch.Tensor

    @classmethod
    def build(
        cls, p: float, q: float, length: int, device: torch.device, dtype: torch.dtype
    ) -> MarkovPopulation:
        """Enumerate the population for the first-order kernel ``(p, q)`` and length ``N``."""
        return cls.from_kernel(np.array([p, 1 - q]), length, device, dtype)

    @classmethod
    def from_kernel(
        cls, kernel: np.ndarray, length: int, device: torch.device, dtype: torch.dtype
    ) -> MarkovPopulation:
        """Enumerate the population of a chain of order ``k`` (``kernel`` of ``2^k``
        probabilities, see :mod:`numerics.data.higher_order_markov`), length ``N``.

        Every conditional ``P(x_{n+1} = 1 | x_1..x_n)`` is a ratio of marginals of the
        length-``N + 1`` law, so positions before the ``k``-th see the stationary context law.
        """
        if not 1 <= length <= MAX_ENUMERATED_LENGTH:
            raise ValueError(f"exact enumeration needs 1 <= N <= {MAX_ENUMERATED_LENGTH}")
        extended = sequence_probabilities(kernel, length + 1, device, dtype)  # (2^(N+1),)
        x = all_binary_sequences(length, device, dtype)
        codes = torch.arange(2**length, device=device)
        positions = torch.arange(length, device=device)
        prefix_parts, weights, lengths, next_ones, columns = [], [], [], [], []
        for n in range(1, length + 1):  # prefixes of length n, padded; P(prefix) by marginals
            joint = extended.reshape(2**n, 2, -1).sum(-1)  # (2^n, 2): P(prefix, x_{n+1})
            mass = joint.sum(1)  # 0 for an impossible prefix (a kernel entry 1 - q = 1.0)
            next_ones.append(joint[:, 1] / mass.clamp_min(torch.finfo(dtype).tiny))
            columns.append(next_ones[-1][codes >> (length - n)])  # at position n of x
            prefix_parts.append(x[:: 2 ** (length - n)] * (positions < n))
            weights.append(mass / length)
            lengths.append(torch.full((2**n,), n, device=device))
        prefixes = torch.cat(prefix_parts)
        lengths_all = torch.cat(lengths)
        last = prefixes[torch.arange(len(prefixes), device=device), lengths_all - 1]
        return cls(x, extended.reshape(2**length, 2).sum(1), torch.stack(columns, dim=1),
                   prefixes, lengths_all, torch.cat(weights), torch.cat(next_ones), last)

    def loss(self, logits: torch.Tensor) -> torch.Tensor:
        """Exact population loss of ``logits`` (shape ``(..., 2^N, N)``, leading dims batched)."""
        per_sequence = expected_cross_entropy(logits, self.next_one).mean(dim=-1)
        return (per_sequence * self.probabilities).sum(-1)

    def prefix_loss(self, last_logits: torch.Tensor) -> torch.Tensor:
        """The same loss from the logit after each distinct prefix, ``(..., 2^(N+1) - 2)``."""
        ce = expected_cross_entropy(last_logits, self.prefix_next_one)
        return (ce * self.prefix_weights).sum(-1)

    def tail_loss(self, last_logits: torch.Tensor, start: int) -> torch.Tensor:
        """The population loss over the positions ``n >= start`` only (their weights
        renormalised): for a chain of order ``k`` and ``start = k`` every such position has
        the whole context in view, so the best predictor's value is the entropy rate."""
        weights = self.prefix_weights * (self.lengths >= start)
        ce = expected_cross_entropy(last_logits, self.prefix_next_one)
        return (ce * weights).sum(-1) / weights.sum()

    def mean_prediction(self, last_logits: torch.Tensor, after: int) -> torch.Tensor:
        """Population mean of ``sigmoid(logit_n)`` over positions with ``x_n = after``, from
        the logits after each distinct prefix (``(..., 2^(N+1) - 2)``)."""
        mask = (self.prefix_last == after).to(last_logits.dtype) * self.prefix_weights
        return (torch.sigmoid(last_logits) * mask).sum(-1) / mask.sum()

    def objective(self, model) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss of ``model`` and the probes the Markov checks read (mean prediction after 0/1).

        ``model.last_logits(prefixes, lengths)`` gives the logit after each distinct prefix
        (shape ``(..., 2^(N+1) - 2)``; an ensemble adds a leading member axis).
        """
        logits = model.last_logits(self.prefixes, self.lengths)
        probes = {
            "after_0": self.mean_prediction(logits.detach(), 0),
            "after_1": self.mean_prediction(logits.detach(), 1),
        }
        return self.prefix_loss(logits), probes


def topic_distributions(T: int, v: int, tau: int, device: torch.device,
                        dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The population of the topic objectives: ``p_S`` for every ``tau``-subset ``S`` of the
    ``T`` topics of ``v`` words, shape ``(C(T, tau), T v)``
    (:func:`numerics.data.lda.context_distributions` as a tensor)."""
    return torch.tensor(context_distributions(T, v, tau), dtype=dtype, device=device)


def _long_document_logits(model: Callable, distributions: torch.Tensor) -> torch.Tensor:
    """Logits ``(C(T, tau), V)`` of a uniform-attention topic model on the soft tokens ``p_S``
    (padded with zero mass on ``[MASK]`` and padding)."""
    n = distributions.shape[0]
    soft = torch.cat((distributions, distributions.new_zeros(n, 2)), dim=1)  # + [MASK], pad
    logits, _ = model(soft.unsqueeze(1))  # (n, 1, V)
    return logits[:, 0]


def topic_population_loss(model: Callable, distributions: torch.Tensor, penalty: float,
                          parameters: list[torch.Tensor]) -> torch.Tensor:
    """Exact long-document population objective of a uniform-attention topic model.

    ``E_S E_{w ~ p_S}[-log softmax(logits(p_S))_w] + penalty * sum ||theta||_F^2`` with ``S``
    enumerated (rows of ``distributions``, shape ``(C(T, tau), V)``; each ``S`` equally
    likely). With uniform attention the context enters only through its word distribution,
    so a single soft token ``p_S`` is the infinite-document limit (Li, Li, Risteski, 2023).
    """
    logits = _long_document_logits(model, distributions)
    nll = -(distributions * torch.log_softmax(logits, dim=-1)).sum(-1).mean()
    return nll + penalty * sum((p**2).sum() for p in parameters)


def topic_population_squared_loss(model: Callable, distributions: torch.Tensor) -> torch.Tensor:
    """The same population with the squared loss against the one-hot target and no penalty.

    ``E_S E_{w ~ p_S} ||logits(p_S) - e_w||^2``: outside the value-matrix theorem's
    assumptions (cross-entropy with a penalty; Li, Li, Risteski, 2023), where ``W^V = I`` is
    optimal and the topic blocks need not appear.
    """
    logits = _long_document_logits(model, distributions)
    error = (logits[:, :, None] - torch.eye(logits.shape[-1], dtype=logits.dtype,
                                            device=logits.device)) ** 2
    return (distributions * error.sum(1)).sum(-1).mean()

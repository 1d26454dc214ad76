"""Exact population losses, by enumerating every input sequence with its probability.

For binary Markov data (Makkuva et al., 2024, eq. of the loss in Section 2) the model's logit
at position ``n`` depends on ``x_1..x_n`` only, so the expectation over ``x_{n+1}`` is taken in
closed form: the population loss is

``L = sum_x P(x_1..x_N) (1/N) sum_n CE(P(1 | x_n), logit_n(x))``

with ``CE(k, l) = k softplus(-l) + (1-k) softplus(l)``. Enumerating the ``2^N`` sequences is
exact (float64 round-off only) and feasible for ``N <= 12``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from numerics.data.lda import context_distributions
from numerics.data.markov import next_one_probability, stationary_one

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
    """All length-``N`` sequences of a stationary binary Markov chain with their probabilities.

    Attributes
    ----------
    sequences : torch.Tensor
        ``(2^N, N)`` inputs.
    probabilities : torch.Tensor
        ``(2^N,)`` probabilities ``pi(x_1) prod_t P(x_{t+1} | x_t)``; they sum to 1.
    next_one : torch.Tensor
        ``(2^N, N)``: ``P(x_{n+1} = 1 | x_n)`` at every position.
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
        ``P(x_{n+1} = 1 | x_n)`` after each prefix.
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
        """Enumerate the population for kernel ``(p, q)`` and sequence length ``length``."""
        if not 1 <= length <= MAX_ENUMERATED_LENGTH:
            raise ValueError(f"exact enumeration needs 1 <= N <= {MAX_ENUMERATED_LENGTH}")
        x = all_binary_sequences(length, device, dtype)
        pi1 = stationary_one(p, q)
        first = pi1 * x[:, 0] + (1 - pi1) * (1 - x[:, 0])  # (2^N,), in x's dtype
        step_one = next_one_probability(x[:, :-1], p, q)
        steps = step_one * x[:, 1:] + (1 - step_one) * (1 - x[:, 1:])  # (2^N, N-1)
        probabilities = first * steps.prod(dim=1)
        prefix_parts, weights, lengths = [], [], []
        for n in range(1, length + 1):  # prefixes of length n, padded; P(prefix) by marginals
            block = x[:: 2 ** (length - n)]  # (2^n, N): the sequences ending in zeros
            mass = probabilities.reshape(2**n, -1).sum(1)  # sum over the 2^(N-n) suffixes
            prefix_parts.append(block * (torch.arange(length, device=device) < n))
            weights.append(mass / length)
            lengths.append(torch.full((2**n,), n, device=device))
        prefixes = torch.cat(prefix_parts)
        lengths_all = torch.cat(lengths)
        last = prefixes[torch.arange(len(prefixes), device=device), lengths_all - 1]
        return cls(x, probabilities, next_one_probability(x, p, q), prefixes, lengths_all,
                   torch.cat(weights), next_one_probability(last, p, q), last)

    def loss(self, logits: torch.Tensor) -> torch.Tensor:
        """Exact population loss of ``logits`` (shape ``(..., 2^N, N)``, leading dims batched)."""
        per_sequence = expected_cross_entropy(logits, self.next_one).mean(dim=-1)
        return (per_sequence * self.probabilities).sum(-1)

    def prefix_loss(self, last_logits: torch.Tensor) -> torch.Tensor:
        """The same loss from the logit after each distinct prefix, ``(..., 2^(N+1) - 2)``."""
        ce = expected_cross_entropy(last_logits, self.prefix_next_one)
        return (ce * self.prefix_weights).sum(-1)

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

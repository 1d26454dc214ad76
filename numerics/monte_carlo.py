"""Monte Carlo losses on fresh Markov batches of any order (the paper-scale ``full`` budget).

Training uses the paper's objective: binary cross-entropy against the sampled next symbol.
Evaluation uses the Rao-Blackwellised estimator ``CE(P(1 | x_n), logit_n)`` (the expectation
over ``x_{n+1}`` taken in closed form), which is unbiased for the population loss and has a
smaller variance; its standard error is computed from the per-sequence losses.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from numerics.data.higher_order_markov import chain_order, sample_higher_order_chains
from numerics.data.markov import next_one_probability, sample_markov_chains
from numerics.population import expected_cross_entropy

Model = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class MarkovBatches:
    """Fresh batches of stationary chains, one per call (online, infinite data).

    With a tuple of generators (one per member of a seed ensemble,
    :class:`~numerics.models.markov_transformer.MarkovEnsemble`) every call draws one batch
    from each, in order, exactly the batches each generator gives a single model; the loss
    and probes then have one entry per member.
    """

    p: float
    q: float
    batch: int
    length: int
    generator: torch.Generator | tuple[torch.Generator, ...]
    dtype: torch.dtype

    def objective(self, model: Model) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Sampled-target cross-entropy of ``model`` on a fresh batch, with the 0/1 probes
        (scalars, or ``(S,)`` for a tuple of generators)."""
        generators = self.generator if isinstance(self.generator, tuple) else (self.generator,)
        data = torch.stack([sample_markov_chains(self.p, self.q, self.batch, self.length + 1,
                                                 gen, self.dtype) for gen in generators])
        if not isinstance(self.generator, tuple):
            data = data[0]
        x, y = data[..., :-1], data[..., 1:]  # (B, N), or (S, B, N) per member
        logits = model(x)
        dims = (-2, -1)
        with torch.no_grad():
            predictions = torch.sigmoid(logits)
            probes = {
                "after_0": (predictions * (1 - x)).sum(dims) / (1 - x).sum(dims).clamp_min(1),
                "after_1": (predictions * x).sum(dims) / x.sum(dims).clamp_min(1),
            }
        if isinstance(self.generator, tuple):
            losses = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
            return losses.mean(dims), probes
        return F.binary_cross_entropy_with_logits(logits, y), probes


@dataclass(frozen=True)
class Estimate:
    """A Monte Carlo mean with its standard error."""

    mean: float
    standard_error: float


@torch.no_grad()
def estimate_population_loss(
    model: Model,
    p: float,
    q: float,
    sequences: int,
    length: int,
    generator: torch.Generator,
    dtype: torch.dtype,
) -> Estimate:
    """Rao-Blackwellised population loss over ``sequences`` fresh chains.

    The standard error is ``std(per-sequence loss) / sqrt(sequences)``: sequences are
    independent, positions within one are not, so the sequence is the sampling unit.
    """
    x = sample_markov_chains(p, q, sequences, length, generator, dtype)  # (S, N)
    per_sequence = expected_cross_entropy(model(x), next_one_probability(x, p, q)).mean(dim=-1)
    std = per_sequence.std(unbiased=True).item()
    return Estimate(per_sequence.mean().item(), std / math.sqrt(sequences))


@dataclass(frozen=True, eq=False)
class KernelBatches:
    """Fresh batches of stationary chains of order ``k`` (kernel of ``2^k`` probabilities,
    :mod:`numerics.data.higher_order_markov`), one per call."""

    kernel: np.ndarray
    batch: int
    length: int
    generator: torch.Generator
    dtype: torch.dtype

    def objective(self, model: Model) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Sampled-target cross-entropy of ``model`` on a fresh batch (no probes)."""
        data = sample_higher_order_chains(self.kernel, self.batch, self.length + 1,
                                          self.generator, self.dtype)  # (B, N+1)
        return F.binary_cross_entropy_with_logits(model(data[:, :-1]), data[:, 1:]), {}


@torch.no_grad()
def estimate_tail_loss(model: Model, kernel: np.ndarray, sequences: int, length: int,
                       generator: torch.Generator, dtype: torch.dtype) -> Estimate:
    """Rao-Blackwellised loss at the positions ``n >= k`` of a chain of order ``k``, where
    ``P(x_{n+1} = 1 | x_1..x_n) = kernel[x_{n-k+1..n}]``, over ``sequences`` fresh chains
    (standard error over sequences, as :func:`estimate_population_loss`)."""
    k = chain_order(kernel)
    x = sample_higher_order_chains(kernel, sequences, length, generator, dtype)  # (S, N)
    powers = 2 ** torch.arange(k - 1, -1, -1, device=x.device)
    contexts = (x.unfold(1, k, 1).long() * powers).sum(-1)  # (S, N-k+1): positions k..N
    table = torch.tensor(kernel, device=x.device, dtype=dtype)
    losses = expected_cross_entropy(model(x)[:, k - 1:], table[contexts])
    per_sequence = losses.mean(dim=-1)
    std = per_sequence.std(unbiased=True).item()
    return Estimate(per_sequence.mean().item(), std / math.sqrt(sequences))


class MaskedLMBatches:
    """Cycle through a fixed set of masked documents, ``batch`` documents per call.

    The objective is the masked-LM cross-entropy on the selected positions (Li, Li, Risteski,
    2023; masking is static, as in their reference code). A batch without a selected position
    (a small selection probability) has no term to average: its loss is 0 and its gradient
    too, so the step learns nothing (the mean over no positions would be 0/0, a NaN).
    """

    def __init__(self, inputs: torch.Tensor, keys: torch.Tensor, labels: torch.Tensor,
                 batch: int) -> None:
        self.inputs, self.keys, self.labels, self.batch = inputs, keys, labels, batch
        self.calls = 0

    def objective(self, model: torch.nn.Module) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Cross-entropy on the selected positions of the next batch."""
        start = (self.calls * self.batch) % self.inputs.shape[0]
        self.calls += 1
        rows = slice(start, start + self.batch)
        labels = self.labels[rows]
        chosen = labels >= 0
        # the selected positions of each document in order, padded to the batch's largest count
        # (padding rows are computed and dropped): the same logits as the full pass, in the same
        # order, without the attention rows of the positions the loss does not read
        counts = chosen.sum(1)
        positions = torch.argsort((~chosen).to(torch.int8), dim=1, stable=True)
        positions = positions[:, : int(counts.max())]
        valid = torch.arange(positions.shape[1], device=counts.device)[None, :] < counts[:, None]
        logits, _ = model(self.inputs[rows], self.keys[rows], queries=positions)
        if not valid.any():  # keeps the loss in the graph, so that backward gives zeros
            return logits.sum() * 0, {}
        return F.cross_entropy(logits[valid], labels.gather(1, positions)[valid]), {}

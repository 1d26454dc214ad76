"""Binary Markov chains of order ``k``, exactly and by sampling without a loop over positions.

The kernel gives one probability per context of ``k`` bits: ``kernel[c] = P(x_{n+1} = 1 |
x_{n-k+1..n} = c)``, where the context ``c`` is read as a binary number with the oldest bit
most significant (``c = sum_j x_{n-k+j} 2^(k-j)``, ``j = 1..k``). The chain starts from its
stationary law on contexts, as in the higher-order experiments of Makkuva et al. (2024); a
first-order chain is ``kernel = (p, 1 - q)``.
"""

from __future__ import annotations

import numpy as np
import torch


def chain_order(kernel: np.ndarray) -> int:
    """The order ``k`` of a kernel of ``2^k`` probabilities."""
    k = int(np.log2(len(kernel)))
    if len(kernel) != 2**k or k < 1:
        raise ValueError(f"a kernel of order k has 2^k >= 2 entries, got {len(kernel)}")
    return k


def context_transitions(kernel: np.ndarray) -> np.ndarray:
    """The ``2^k x 2^k`` transition matrix of the contexts: ``c -> (2c mod 2^k) + x`` with
    probability ``P(x | c)``."""
    kernel = np.asarray(kernel, dtype=np.float64)
    size = len(kernel)
    contexts = np.arange(size)
    shifted = (2 * contexts) % size
    matrix = np.zeros((size, size))
    matrix[contexts, shifted] = 1 - kernel
    matrix[contexts, shifted + 1] += kernel
    return matrix


def stationary_contexts(kernel: np.ndarray) -> np.ndarray:
    """The stationary law ``mu`` of the contexts (``mu P = mu``, ``sum mu = 1``), by a linear
    solve; unique when every kernel entry lies strictly in (0, 1) (the chain is irreducible)."""
    matrix = context_transitions(kernel)
    size = len(matrix)
    system = np.vstack((matrix.T - np.eye(size), np.ones(size)))
    rhs = np.zeros(size + 1)
    rhs[-1] = 1.0
    return np.linalg.lstsq(system, rhs, rcond=None)[0]


def sequence_probabilities(kernel: np.ndarray, length: int, device: torch.device,
                           dtype: torch.dtype) -> torch.Tensor:
    """``P(x_1..x_length)`` of every binary sequence, in the order of
    :func:`numerics.population.all_binary_sequences` (first bit most significant)."""
    kernel = np.asarray(kernel, dtype=np.float64)
    k = chain_order(kernel)
    mu = torch.tensor(stationary_contexts(kernel), device=device, dtype=dtype)
    if length <= k:  # the first `length` bits of the stationary context
        return mu.reshape(2**length, -1).sum(1)
    table = torch.tensor(kernel, device=device, dtype=dtype)
    codes = torch.arange(2**length, device=device)
    probabilities = mu[codes >> (length - k)]
    for t in range(k, length):  # a loop over positions of an exact table, not over samples
        context = (codes >> (length - t)) % 2**k
        bit = (codes >> (length - 1 - t)) & 1
        one = table[context]
        probabilities = probabilities * torch.where(bit == 1, one, 1 - one)
    return probabilities


def sample_higher_order_chains(kernel: np.ndarray, batch: int, length: int,
                               generator: torch.Generator,
                               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Sample ``batch`` stationary chains of ``length`` symbols.

    The first ``k`` bits are a context drawn from the stationary law; each later step applies
    a random map of the contexts, ``F_t(c) = (2c mod 2^k) + [u_t < kernel[c]]`` with one
    ``u_t ~ U(0, 1)`` per step, and the prefix compositions ``F_t o ... o F_1`` come from a
    Hillis-Steele scan (``ceil(log2(length))`` batched gathers), as for first order.

    Returns
    -------
    torch.Tensor
        Shape ``(batch, length)``, values in {0, 1}, on the generator's device.
    """
    device = generator.device
    kernel = np.asarray(kernel, dtype=np.float64)
    k = chain_order(kernel)
    size = 2**k
    mu = torch.tensor(stationary_contexts(kernel), device=device, dtype=torch.float64)
    start = torch.multinomial(mu.clamp_min(0), batch, replacement=True, generator=generator)
    powers = 2 ** torch.arange(k - 1, -1, -1, device=device)
    first = ((start[:, None] & powers) > 0).long()  # (B, k)
    if length <= k:
        return first[:, :length].to(dtype)
    table = torch.tensor(kernel, device=device, dtype=torch.float64)
    u = torch.rand(batch, length - k, 1, generator=generator, device=device,
                   dtype=torch.float64)
    contexts = torch.arange(size, device=device)
    maps = (2 * contexts) % size + (u < table).long()  # (B, length-k, 2^k): F_t(c)
    shift = 1
    while shift < length - k:
        composed = torch.gather(maps[:, shift:], -1, maps[:, :-shift])
        maps = torch.cat((maps[:, :shift], composed), dim=1)
        shift *= 2
    states = torch.gather(maps, -1, start[:, None, None].expand(-1, length - k, 1)).squeeze(-1)
    return torch.cat((first, states & 1), dim=1).to(dtype)

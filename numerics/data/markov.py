"""Binary first-order Markov chains, sampled without a Python loop over positions.

Kernel ``P = [[1-p, p], [q, 1-q]]`` (``p = P(1|0)``, ``q = P(0|1)``), stationary start
``x_1 ~ pi = (q, p)/(p+q)``, as in Section 2 of Makkuva et al. (2024).
"""

from __future__ import annotations

import torch


def stationary_one(p: float, q: float) -> float:
    """``pi_1 = p/(p+q)``, the stationary probability of a 1."""
    return p / (p + q)


def next_one_probability(x: torch.Tensor, p: float, q: float) -> torch.Tensor:
    """``P(x_{n+1} = 1 | x_n)`` elementwise: ``p`` after a 0, ``1-q`` after a 1."""
    return p + (1 - p - q) * x


def sample_markov_chains(
    p: float,
    q: float,
    batch: int,
    length: int,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Sample ``batch`` stationary chains of ``length`` symbols.

    Each step ``x_{t+1} = F_t(x_t)`` applies a random map ``F_t: {0,1} -> {0,1}`` with
    ``F_t(0) = a_t = [u_t < p]`` and ``F_t(1) = [u_t >= q]``, ``u_t ~ U(0,1)``. A map is either
    constant (``F_t(0) = F_t(1)``: ``x_{t+1} = a_t``) or ``x -> a_t XOR x`` (identity or
    negation), so ``x_{t+1}`` is the parity of ``a_r + ... + a_t`` with ``r`` the last constant
    map at or before ``t`` (of ``x_1 + a_1 + ... + a_t`` when there is none): a cumulative sum,
    a cumulative maximum and one gather, no loop over positions. The same chains, for the
    same generator state, as applying the maps one step at a time.

    Returns
    -------
    torch.Tensor
        Shape ``(batch, length)``, values in {0, 1}, on the generator's device.
    """
    device = generator.device
    first = (torch.rand(batch, 1, generator=generator, device=device) < stationary_one(p, q)).long()
    if length == 1:
        return first.to(dtype)
    u = torch.rand(batch, length - 1, generator=generator, device=device)
    image_of_zero = (u < p).long()
    constant = image_of_zero == (u >= q).long()
    parity = torch.cumsum(image_of_zero, dim=1)  # a_1 + ... + a_t (its parity is what counts)
    steps = torch.arange(length - 1, device=device)
    last_constant = torch.where(constant, steps, -1).cummax(dim=1).values  # r_t, -1 if none
    # parity before r_t: 0 for r_t = 0, a_1 + ... + a_{r-1} after, and x_1 without a reset
    before = torch.cat((first, torch.zeros_like(first), parity[:, :-1]), dim=1)
    rest = (parity - torch.gather(before, 1, last_constant + 1)) & 1
    return torch.cat((first, rest), dim=1).to(dtype)

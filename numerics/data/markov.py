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
    ``F_t(0) = [u_t < p]`` and ``F_t(1) = [u_t >= q]``, ``u_t ~ U(0,1)``. The prefix compositions
    ``F_t o ... o F_1`` are computed by a Hillis-Steele scan: ``ceil(log2(length))`` steps, each
    one batched gather, so there is no loop over positions.

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
    # (B, length-1, 2): the images F_t(0), F_t(1)
    maps = torch.stack(((u < p).long(), (u >= q).long()), dim=-1)
    shift = 1
    while shift < length - 1:
        # maps[t] <- maps[t] o maps[t - shift]: (F o G)(x) = F[G[x]]
        composed = torch.gather(maps[:, shift:], -1, maps[:, :-shift])
        maps = torch.cat((maps[:, :shift], composed), dim=1)
        shift *= 2
    rest = torch.gather(maps, -1, first.unsqueeze(-1).expand(-1, length - 1, 1)).squeeze(-1)
    return torch.cat((first, rest), dim=1).to(dtype)

"""Sequences ``s_{t+1} = W s_t`` with commuting orthogonal ``W`` (Sander et al., 2024).

Complex-tensor convention, in the common eigenbasis (the same as :mod:`theorems.ical`):
``s_{t,j} = exp(i (t lambda_j + phi_j))``.

* ``paired=False`` (unitary case): ``lambda_j`` i.i.d. uniform on ``[0, 2 pi)``.
* ``paired=True`` (real rotations in ``d/2`` planes, seen in the conjugate-pair eigenbasis):
  ``lambda_{2m} = l_m``, ``lambda_{2m+1} = -l_m``.
* ``random_phase``: ``phi_j`` i.i.d. uniform; otherwise ``s_0 = 1``.

A batch is drawn in one tensor operation (no loop over positions or sequences).
"""

from __future__ import annotations

import math

import torch


def sample_rotation_sequences(
    batch: int,
    d: int,
    length: int,
    generator: torch.Generator,
    paired: bool = False,
    random_phase: bool = False,
    dtype: torch.dtype = torch.complex128,
) -> torch.Tensor:
    """Sample ``batch`` sequences ``s_0..s_{length-1}``.

    Returns
    -------
    torch.Tensor
        Complex, shape ``(batch, length, d)``.
    """
    if paired and d % 2:
        raise ValueError(f"paired (orthogonal) sequences need an even d, got {d}")
    real = torch.float64 if dtype == torch.complex128 else torch.float32
    device = generator.device
    count = d // 2 if paired else d
    angles = 2 * math.pi * torch.rand(batch, count, generator=generator, device=device,
                                      dtype=real)
    if paired:  # (l_1, -l_1, l_2, -l_2, ...)
        angles = torch.stack((angles, -angles), dim=-1).reshape(batch, d)
    phases = (2 * math.pi * torch.rand(batch, d, generator=generator, device=device, dtype=real)
              if random_phase else torch.zeros(batch, d, device=device, dtype=real))
    t = torch.arange(length, device=device, dtype=real)
    return torch.polar(torch.ones((), dtype=real, device=device),
                       t[None, :, None] * angles[:, None, :] + phases[:, None, :]).to(dtype)

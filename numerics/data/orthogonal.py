"""Sequences ``s_{t+1} = W s_t`` with commuting orthogonal ``W`` (Sander et al., 2024).

Complex-tensor convention, in the common eigenbasis (the same as :mod:`theorems.ical`):
``s_{t,j} = exp(i (t lambda_j + phi_j))``.

* ``paired=False`` (unitary case): ``lambda_j`` i.i.d. uniform on ``[0, 2 pi)``.
* ``paired=True`` (real rotations in ``d/2`` planes, seen in the conjugate-pair eigenbasis):
  ``lambda_{2m} = l_m``, ``lambda_{2m+1} = -l_m``.
* ``random_phase``: ``phi_j`` i.i.d. uniform; otherwise ``s_0 = 1``.

A batch is drawn in one tensor operation (no loop over positions or sequences).

Every token is a monomial ``exp(i F[t, j] . theta)`` in the independent uniform angles
(:func:`rotation_frequencies`), so the expectation of a trigonometric polynomial of the sequence
is exact on a lattice of angles (:func:`lattice_rotation_sequences`).

:func:`sample_haar_sequences` is the paper's experimental, non-commuting case: a real ``W``
drawn Haar-orthogonal per sequence (``scipy.stats.ortho_group``), so that different sequences'
matrices do not commute.
"""

from __future__ import annotations

import math

import numpy as np
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


def rotation_frequencies(d: int, length: int, paired: bool = False,
                         random_phase: bool = False) -> np.ndarray:
    """Integer frequency vectors of the tokens: ``s_{t,j} = exp(i F[t, j] . theta)``.

    ``theta`` holds the independent uniform angles of :func:`sample_rotation_sequences`, in its
    order: the ``lambda_j`` (``l_m`` when ``paired``), then the phases ``phi_j`` when
    ``random_phase``.

    Returns
    -------
    numpy.ndarray
        ``int64``, shape ``(length, d, angles)``.
    """
    if paired and d % 2:
        raise ValueError(f"paired (orthogonal) sequences need an even d, got {d}")
    count = d // 2 if paired else d
    F = np.zeros((length, d, count + (d if random_phase else 0)), dtype=np.int64)
    t = np.arange(length)
    for j in range(d):
        F[:, j, j // 2 if paired else j] = -t if paired and j % 2 else t
        if random_phase:
            F[:, j, count + j] = 1
    return F


def lattice_rotation_sequences(d: int, length: int, points: int, paired: bool = False,
                               random_phase: bool = False, device: torch.device | None = None,
                               dtype: torch.dtype = torch.complex128) -> torch.Tensor:
    """The sequences at every point of the product lattice ``theta_a in {2 pi n / points}``.

    Exactness (the lattice rule for trigonometric polynomials): the mean over the lattice of
    ``exp(i f . theta)`` is 1 if every ``f_a`` is a multiple of ``points`` and 0 otherwise, while
    its expectation over uniform angles is ``[f = 0]``. So for any function of the sequence
    whose frequencies ``f`` satisfy ``|f_a| < points`` for every angle, the lattice mean *is*
    the expectation over the law of :func:`sample_rotation_sequences`, up to float round-off.

    Returns
    -------
    torch.Tensor
        Complex, ``(points^angles, length, d)``.
    """
    F = torch.as_tensor(rotation_frequencies(d, length, paired, random_phase), device=device)
    real = torch.float64 if dtype == torch.complex128 else torch.float32
    grid = 2 * math.pi * torch.arange(points, device=device, dtype=real) / points
    theta = torch.cartesian_prod(*[grid] * F.shape[-1]).reshape(-1, F.shape[-1])
    return torch.polar(torch.ones((), dtype=real, device=device),
                       torch.einsum("ltk,bk->blt", F.to(real), theta)).to(dtype)


def sample_haar_sequences(
    batch: int,
    d: int,
    length: int,
    rng: np.random.Generator,
    fixed_start: bool = False,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Sample ``batch`` real sequences ``s_0..s_{length-1}``, ``s_{t+1} = W s_t``, with ``W``
    Haar-distributed on ``O(d)`` (``scipy.stats.ortho_group``; a random sign when ``d = 1``).

    ``s_0`` is uniform on the sphere of radius ``sqrt(d)`` (the energy of the commuting case's
    ``|s_{0,j}| = 1``), so the law of the sequences is invariant under ``s -> U s`` for every
    orthogonal ``U``; ``fixed_start`` uses ``s_0 = 1`` for every sequence instead (the reference
    code's choice, up to its scale), which breaks that invariance.

    Returns
    -------
    torch.Tensor
        float64, ``(batch, length, d)``. The powers of ``W`` are applied by ``length`` batched
        matrix products (a loop over time, not over sequences).
    """
    from scipy.stats import ortho_group  # heavy (about 1 s): only the Haar case needs it

    if d == 1:
        W = rng.choice([-1.0, 1.0], size=(batch, 1, 1))
    else:
        W = ortho_group.rvs(dim=d, size=batch, random_state=rng).reshape(batch, d, d)
    if fixed_start:
        start = np.ones((batch, d))
    else:
        start = rng.standard_normal((batch, d))
        start *= math.sqrt(d) / np.linalg.norm(start, axis=1, keepdims=True)
    W_t = torch.tensor(W, dtype=torch.float64, device=device)
    states = [torch.tensor(start, dtype=torch.float64, device=device)]
    for _ in range(length - 1):
        states.append(torch.einsum("bij,bj->bi", W_t, states[-1]))
    return torch.stack(states, dim=1)

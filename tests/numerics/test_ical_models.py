"""The complex rotation sampler and the two linear-attention modules."""

import pytest
import torch

from numerics.data.orthogonal import sample_rotation_sequences
from numerics.device import generator
from numerics.models.linear_attention import BlockLinearAttention, DiagonalLinearAttention


def test_sequences_follow_a_fixed_commuting_orthogonal_map(cpu):
    s = sample_rotation_sequences(6, 4, 9, generator(cpu, 0), paired=True)
    ratio = s[:, 1:] / s[:, :-1]  # the eigenvalues of W, the same at every step
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), atol=1e-12)
    assert torch.allclose(s[:, :, 0::2], s[:, :, 1::2].conj())  # conjugate pairs: real W
    assert torch.allclose(s.abs(), torch.ones_like(s.abs()))
    with pytest.raises(ValueError, match="even"):
        sample_rotation_sequences(1, 3, 2, generator(cpu, 0), paired=True)


def test_block_head_is_the_linear_attention_formula(cpu):
    d, T = 3, 4
    model = BlockLinearAttention(d)
    gen = generator(cpu, 1)
    with torch.no_grad():
        model.V.copy_(torch.randn(d, d, generator=gen, dtype=torch.float64))
        model.Q.copy_(torch.randn(d, d, generator=gen, dtype=torch.float64))
    s = sample_rotation_sequences(5, d, T + 1, generator(cpu, 2), random_phase=True)
    V, Q = model.V.to(s.dtype), model.Q.to(s.dtype)
    expected = sum(
        (s[:, t] @ V.T) * (s[:, t - 1].conj() * (s[:, T] @ Q.T)).sum(-1, keepdim=True)
        for t in range(1, T + 1)
    )
    assert torch.allclose(model(s), expected, atol=1e-12)


def test_diagonal_heads_at_the_unitary_minimum_predict_exactly(cpu):
    d, T = 3, 5
    model = DiagonalLinearAttention(d, d, T)
    with torch.no_grad():
        model.A.copy_(2 * torch.eye(d, dtype=torch.float64))
        model.B.copy_(torch.eye(d, dtype=torch.float64))
        model.P.copy_(0.5 * torch.eye(T + 1, dtype=torch.float64))  # p_T C = I on every row
    s = sample_rotation_sequences(7, d, T + 2, generator(cpu, 3))
    assert torch.allclose(model(s[:, :-1]), s[:, 2:], atol=1e-12)
    assert torch.equal(model.coupling(), model.B.T @ model.A)

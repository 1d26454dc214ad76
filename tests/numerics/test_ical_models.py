"""The complex rotation sampler and the two linear-attention modules."""

import numpy as np
import pytest
import torch

from numerics.data.orthogonal import sample_rotation_sequences
from numerics.device import generator
from numerics.models.linear_attention import (
    BlockLinearAttention,
    BlockMoments,
    DiagonalLinearAttention,
    vq_standard_errors,
)
from numerics.train import TrainConfig, train


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


def test_reset_parameters_draws_every_parameter_in_order(cpu):
    """``N(0, std^2)`` for A, B, P in parameter order from one generator: reproducible, and the
    same draws as the explicit loop."""
    model = DiagonalLinearAttention(3, 2, 4)
    model.reset_parameters(generator(cpu, 7), 0.5)
    gen = generator(cpu, 7)
    for parameter in (model.A, model.B, model.P):
        expected = 0.5 * torch.randn(parameter.shape, generator=gen, dtype=torch.float64)
        assert torch.equal(parameter.detach(), expected)
    assert torch.equal(model.causal, torch.ones(4, 5, dtype=torch.float64).tril(1))  # a buffer


def test_balanced_reset_has_equal_head_grams(cpu):
    model = DiagonalLinearAttention(4, 4, 3)
    model.reset_parameters(generator(cpu, 0), 0.1, balanced=True)
    assert torch.equal(model.A, model.B)
    assert torch.equal(model.A @ model.A.T - model.B @ model.B.T, torch.zeros(4, 4,
                                                                            dtype=torch.float64))
    assert model.A.abs().max() > 0


def test_scalar_step_head_is_one_gradient_step(cpu):
    """V = I, Q = eta I: the output is eta sum_t s_t (s_(t-1)^* s_T), one GD step on L_T."""
    d, T, eta = 3, 5, 0.2
    model = BlockLinearAttention(d)
    model.reset_parameters(generator(cpu, 4), 1.0)
    model.set_scalar_step(eta)
    assert torch.equal(model.V @ model.Q, eta * torch.eye(d, dtype=torch.float64))
    s = sample_rotation_sequences(6, d, T + 1, generator(cpu, 5), random_phase=True)
    gd = eta * sum(s[:, t] * (s[:, t - 1].conj() * s[:, T]).sum(-1, keepdim=True)
                   for t in range(1, T + 1))
    assert torch.allclose(model(s), gd, atol=1e-12)


def test_one_step_head_squared_error_at_the_optimal_step(cpu):
    """Monte Carlo mean of the squared errors at eta* = 1/(T+d-1) vs L* = d(d-1)/(T+d-1),
    within 5 standard errors computed from the samples."""
    d, T, n = 2, 3, 20_000
    model = BlockLinearAttention(d)
    model.set_scalar_step(1 / (T + d - 1))
    s = sample_rotation_sequences(n, d, T + 2, generator(cpu, 6), random_phase=True)
    with torch.no_grad():
        errors = model.squared_errors(s)
    assert errors.shape == (n,) and not errors.is_complex()
    error = errors.std().item() / n**0.5
    assert abs(errors.mean().item() - d * (d - 1) / (T + d - 1)) <= 5 * error


def _at_the_unitary_minimum(d: int, T: int) -> DiagonalLinearAttention:
    """``d`` heads with ``C = B^T A = 2 I`` and ``p_T = 1/2`` (``p_T C = I``), other ``p = 0``."""
    model = DiagonalLinearAttention(d, d, T)
    with torch.no_grad():
        model.A.copy_(2 * torch.eye(d, dtype=torch.float64))
        model.B.copy_(torch.eye(d, dtype=torch.float64))
        model.P.copy_(0.5 * torch.eye(T + 1, dtype=torch.float64))
    return model


def test_diagonal_squared_errors_vanish_at_the_unitary_minimum(cpu):
    d, T = 3, 5
    model = _at_the_unitary_minimum(d, T)
    s = sample_rotation_sequences(7, d, T + 2, generator(cpu, 3))
    errors = model.squared_errors(s)
    assert errors.shape == (7, T)
    assert errors.abs().max() < 1e-20


def test_haar_sequences_are_orbits_of_one_orthogonal_matrix_each():
    """s_{t+1} = W s_t with W orthogonal: norms stay sqrt(d) and the Gram matrix of the orbit
    is shift-invariant; s_0 is spread over the sphere (or 1 when fixed); draws are seeded."""
    import numpy as np

    from numerics.data.orthogonal import sample_haar_sequences

    d = 4
    s = sample_haar_sequences(256, d, 6, np.random.default_rng(0))
    assert s.shape == (256, 6, d) and s.dtype == torch.float64
    assert torch.allclose(s.norm(dim=-1), torch.full((256, 6), d ** 0.5, dtype=s.dtype))
    gram = torch.einsum("btd,bud->btu", s, s)
    assert torch.allclose(gram[:, 1:, 1:], gram[:, :-1, :-1], atol=1e-12)
    assert s[:, 0].mean(0).abs().max() < 0.3  # not one fixed start
    assert torch.equal(s, sample_haar_sequences(256, d, 6, np.random.default_rng(0)))
    fixed = sample_haar_sequences(8, d, 3, np.random.default_rng(1), fixed_start=True)
    assert torch.equal(fixed[:, 0], torch.ones(8, d, dtype=torch.float64))
    line = sample_haar_sequences(64, 1, 3, np.random.default_rng(2))  # O(1) = {-1, 1}
    assert torch.allclose(line.abs(), torch.ones_like(line), atol=1e-15)
    assert set((line[:, 1, 0] / line[:, 0, 0]).round().tolist()) == {-1.0, 1.0}


@pytest.mark.parametrize(("d", "heads", "T", "paired"), [(3, 2, 4, False), (4, 2, 5, True)])
def test_exact_population_loss_of_the_diagonal_heads(cpu, d, heads, T, paired):
    """The moment-lemma quadratic form, the lattice mean of the module's squared errors and a
    large Monte Carlo mean agree: the first two to round-off (both exact), the Monte Carlo
    within 5 of its standard errors; one lattice point fewer per angle aliases (unpaired)."""
    from numerics.data.orthogonal import lattice_rotation_sequences, rotation_frequencies
    from numerics.models.linear_attention import DiagonalMoments

    model = DiagonalLinearAttention(d, heads, T)
    model.reset_parameters(generator(cpu, 11), 0.5)
    moments = DiagonalMoments.of(rotation_frequencies(d, T + 2, paired))
    with torch.no_grad():
        exact = moments.loss(model)
        lattice = model.squared_errors(
            lattice_rotation_sequences(d, T + 2, moments.points, paired)).mean(0)
        n = 200_000
        sampled = model.squared_errors(sample_rotation_sequences(n, d, T + 2, generator(cpu, 12),
                                                                 paired=paired))
    assert exact.shape == (T,)
    assert torch.allclose(lattice, exact, rtol=0, atol=1e-11)
    error = sampled.std(0) / n**0.5
    assert ((sampled.mean(0) - exact).abs() <= 5 * error).all()
    if not paired:
        coarse = model.squared_errors(
            lattice_rotation_sequences(d, T + 2, moments.points - 1, paired)).mean(0)
        assert (coarse - exact).abs().max() > 1e-3


def test_exact_population_loss_is_zero_at_the_unitary_minimum_and_differentiable(cpu):
    from numerics.data.orthogonal import rotation_frequencies
    from numerics.models.linear_attention import DiagonalMoments

    d, T = 3, 5
    model = _at_the_unitary_minimum(d, T)
    moments = DiagonalMoments.of(rotation_frequencies(d, T + 2))
    loss = moments.loss(model)
    assert loss.abs().max() < 1e-12
    loss.sum().backward()  # a global minimum: the gradient vanishes too
    assert all(p.grad.abs().max() < 1e-12 for p in model.parameters())
    assert moments.points == 2 * T + 1  # spread 2T per angle: target T+1 vs -(T-1)


def test_lattice_sequences_are_the_rotation_sequences_at_grid_angles():
    from numerics.data.orthogonal import lattice_rotation_sequences, rotation_frequencies

    s = lattice_rotation_sequences(4, 6, 5, paired=True)
    assert s.shape == (25, 6, 4)
    assert torch.allclose(s[:, :, 0::2], s[:, :, 1::2].conj())  # conjugate pairs: real W
    ratio = s[:, 1:] / s[:, :-1]
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), atol=1e-12)
    phases = lattice_rotation_sequences(2, 3, 4, random_phase=True)
    assert phases.shape == (4**4, 3, 2)
    assert len({tuple(x) for x in phases[:, 0].angle().round(decimals=6).tolist()}) == 16
    F = rotation_frequencies(4, 3, paired=True, random_phase=True)
    assert F.shape == (3, 4, 6) and F[2, 1, 0] == -2 and F[2, 3, 1] == -2
    assert F[1, 2, 4] == 1 and F[1, 2, 5] == 0  # phases after the d / 2 plane angles


@pytest.mark.parametrize("haar", [False, True])
def test_block_moments_give_the_module_mean_squared_error(cpu, haar):
    """The second-moment quadratic form equals the mean of the module's squared errors over the
    set, value and gradient, at a random (V, Q)."""
    import numpy as np

    from numerics.data.orthogonal import sample_haar_sequences
    from numerics.models.linear_attention import BlockMoments

    d, T = 3, 5
    s = (sample_haar_sequences(500, d, T + 2, np.random.default_rng(0)) if haar
         else sample_rotation_sequences(500, d, T + 2, generator(cpu, 8), random_phase=True))
    model = BlockLinearAttention(d)
    model.reset_parameters(generator(cpu, 9), 0.3)
    direct = model.squared_errors(s).mean()
    grads = torch.autograd.grad(direct, (model.V, model.Q))
    moments = BlockMoments.of(s)
    quadratic = moments.loss(model)
    assert abs(quadratic.item() - direct.item()) <= 1e-12 * direct.item()
    for a, b in zip(torch.autograd.grad(quadratic, (model.V, model.Q)), grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)


def test_sequence_gradients_are_the_autograd_gradients_of_each_squared_error(cpu):
    d, T = 3, 4
    s = sample_rotation_sequences(6, d, T + 2, generator(cpu, 5), random_phase=True)
    model = BlockLinearAttention(d, device=cpu)
    model.reset_parameters(generator(cpu, 6), 0.3)
    gradients = model.sequence_gradients(s)
    for i in range(len(s)):
        model.zero_grad()
        model.squared_errors(s[i:i + 1]).sum().backward()
        expected = torch.cat((model.V.grad.flatten(), model.Q.grad.flatten()))
        assert torch.allclose(gradients[i], expected, atol=1e-12, rtol=1e-10)


def test_vq_standard_errors_match_the_spread_of_minimisers_over_training_sets(cpu):
    """The sandwich standard errors of one fit against the scatter of the fitted VQ over 40
    independent training sets (a standard deviation from 40 draws is within 35% of the true one
    with probability above 0.998)."""
    d, T, n = 2, 2, 512
    fitted, predicted = [], []
    for draw in range(40):
        s = sample_rotation_sequences(n, d, T + 2, generator(cpu, draw), random_phase=True)
        moments = BlockMoments.of(s)
        model = BlockLinearAttention(d, device=cpu)
        model.reset_parameters(generator(cpu, 1000 + draw), 0.3)
        def objective(m, moments=moments):
            return moments.loss(m), {}
        train(model, objective, TrainConfig(steps=300, lr=1e-2, weight_decay=0.0))
        train(model, objective, TrainConfig.lbfgs(30))
        fitted.append((model.V @ model.Q).detach().numpy())
        predicted.append(vq_standard_errors(model, s, moments))
    spread = np.std(fitted, axis=0, ddof=1)
    ratio = spread / np.mean(predicted, axis=0)
    assert np.all(np.abs(ratio - 1) < 0.35), ratio

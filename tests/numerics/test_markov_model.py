"""The Markov transformer module, the Monte Carlo loss and the trainer."""

import math
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from numerics.device import DeviceUnavailableError, generator, select_device
from numerics.models import markov_transformer
from numerics.models.markov_transformer import MarkovTransformer, MarkovTransformerConfig
from numerics.monte_carlo import estimate_population_loss
from numerics.population import MarkovPopulation
from numerics.train import TrainConfig, train


def _model(cpu, tied=True, d=3, N=6, seed=0, std=0.5):
    model = MarkovTransformer(MarkovTransformerConfig(d, N, tied), torch.float64, cpu)
    model.reset_parameters(generator(cpu, seed), std=std)
    return model


def test_parameter_counts_follow_the_config(cpu):
    d, N = 3, 6
    tied = sum(x.numel() for x in _model(cpu, True).parameters())
    untied = sum(x.numel() for x in _model(cpu, False).parameters())
    expected = d + N * d + 4 * d * d + 2 * (4 * d) * d + 1
    assert tied == expected and untied == expected + d


def test_attention_is_causal(cpu):
    model = _model(cpu)
    x = torch.randint(0, 2, (4, 6), generator=generator(cpu, 1)).double()
    changed = x.clone()
    changed[:, 4:] = 1 - changed[:, 4:]
    assert torch.allclose(model(x)[:, :4], model(changed)[:, :4], atol=1e-14)
    assert not torch.allclose(model(x)[:, 4:], model(changed)[:, 4:])


@pytest.mark.parametrize("tied", [True, False])
def test_bigram_point_realises_slope_and_bias(cpu, tied):
    model = _model(cpu, tied)
    model.set_bigram_point(slope=-1.3, bias=0.4)
    x = torch.randint(0, 2, (5, 6), generator=generator(cpu, 2)).double()
    assert torch.allclose(model(x), -1.3 * x + 0.4, atol=1e-14)


def test_unigram_point_ignores_the_context(cpu):
    model = _model(cpu)
    model.set_unigram_point(bias=-0.2, generator=generator(cpu, 3))
    x = torch.randint(0, 2, (5, 6), generator=generator(cpu, 4)).double()
    assert torch.allclose(model(x), torch.full_like(x, -0.2), atol=1e-14)
    assert model.W_V.abs().sum() > 0  # the generic member keeps random other weights


def test_monte_carlo_estimate_agrees_with_the_exact_loss(cpu):
    model = _model(cpu, std=0.8)
    exact = MarkovPopulation.build(0.5, 0.8, 6, cpu, torch.float64).objective(model)[0].item()
    estimate = estimate_population_loss(model, 0.5, 0.8, 20000, 6, generator(cpu, 5),
                                        torch.float64)
    assert abs(estimate.mean - exact) < 5 * estimate.standard_error
    assert estimate.standard_error < 0.01


def test_training_lowers_the_exact_loss_reproducibly(cpu):
    pop = MarkovPopulation.build(0.2, 0.3, 6, cpu, torch.float64)
    runs = []
    for _ in range(2):
        model = _model(cpu, std=0.02)
        runs.append(train(model, pop.objective, TrainConfig(steps=60, sync_every=20)))
    assert runs[0].losses[-1] < runs[0].losses[0] - 1e-3
    assert np.array_equal(runs[0].losses, runs[1].losses)
    assert len(runs[0].grad_norms) == 60 and set(runs[0].probes) == {"after_0", "after_1"}


def test_training_stops_at_the_first_non_finite_loss(cpu):
    model = _model(cpu)
    calls = {"n": 0}

    def objective(m):
        calls["n"] += 1
        loss = m(torch.zeros(1, 6, dtype=torch.float64)).pow(2).mean()
        return (loss * math.nan if calls["n"] == 8 else loss), {}

    history = train(model, objective, TrainConfig(steps=100, sync_every=5))
    assert history.nonfinite_step == 7
    assert len(history.losses) == 8 and not np.isfinite(history.losses[-1])


def test_progress_callback_reports_every_sync(cpu):
    seen = []
    pop = MarkovPopulation.build(0.5, 0.8, 4, cpu, torch.float64)
    train(_model(cpu, N=4), pop.objective, TrainConfig(steps=25, sync_every=10),
          progress=lambda done, total, loss: seen.append((done, total)))
    assert seen == [(10, 25), (20, 25), (25, 25)]


def test_device_selection(monkeypatch):
    assert select_device("cpu").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_device("auto").type == "cpu"
    with pytest.raises(DeviceUnavailableError, match="CUDA is not available"):
        select_device("cuda")


def _deep(cpu, layers, tied=True, d=3, N=6, seed=0):
    model = MarkovTransformer(MarkovTransformerConfig(d, N, tied, n_layers=layers),
                              torch.float64, cpu)
    model.reset_parameters(generator(cpu, seed), std=0.5)
    return model


@pytest.mark.parametrize("layers", [2, 3])
def test_deeper_model_stacks_layers_on_the_residual_stream(cpu, layers):
    """Each extra layer adds its own matrices; the module equals the equations written out,
    is causal, its prefix logits are its logits at the prefix ends, and a layer whose output
    projections are zero changes nothing."""
    from numerics.models.markov_transformer import reference_logits

    model = _deep(cpu, layers)
    d, N = 3, 6
    one_layer = d + N * d + 4 * d * d + 2 * (4 * d) * d + 1
    assert sum(x.numel() for x in model.parameters()) == (
        one_layer + (layers - 1) * (4 * d * d + 2 * (4 * d) * d))
    assert len(model.matrices()) == 6 * layers
    x = torch.randint(0, 2, (8, N), generator=generator(cpu, 1)).double()
    assert torch.allclose(model(x), reference_logits(model, x), atol=1e-12)
    changed = x.clone()
    changed[:, 3:] = 1 - changed[:, 3:]
    assert torch.allclose(model(x)[:, :3], model(changed)[:, :3], atol=1e-14)
    lengths = torch.randint(1, N + 1, (8,), generator=generator(cpu, 2))
    padded = x * (torch.arange(N) < lengths[:, None])
    expected = model(padded)[torch.arange(8), lengths - 1]
    assert torch.allclose(model.last_logits(padded, lengths), expected, atol=1e-14)
    shallow = _deep(cpu, 1)
    shallow.load_state_dict({k: v for k, v in model.state_dict().items()
                             if not k.startswith("deeper.")})
    with torch.no_grad():
        for layer in model.deeper:
            layer.W_O.zero_()
            layer.W_2.zero_()
    assert torch.allclose(model(x), shallow(x), atol=1e-14)


def test_a_model_needs_a_layer_and_ensembles_stay_one_layer(cpu):
    from numerics.models.markov_transformer import MarkovEnsemble

    with pytest.raises(ValueError, match="n_layers"):
        _deep(cpu, 0)
    with pytest.raises(ValueError, match="one-layer"):
        MarkovEnsemble([_deep(cpu, 2), _deep(cpu, 2, seed=1)])


def _loss_and_gradients(model, x, y, attention):
    model.attention = attention
    model.zero_grad(set_to_none=True)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("memory", [None, 7])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_binary_attention_path_equals_the_fused_kernel(cpu, tied, memory, layers, dtype):
    """Layer 1's attention from the batch-independent score tables is the same function as
    the fused kernel: same loss and gradients to round-off, on random parameters large enough
    that the attention is far from uniform and both signs of the key-class shift occur."""
    from numerics.data.markov import sample_markov_chains

    d, N = 4, 96
    config = MarkovTransformerConfig(d, N, tied, n_layers=layers, memory=memory)
    model = MarkovTransformer(config, dtype, cpu)
    model.reset_parameters(generator(cpu, 7), std=0.6)
    data = sample_markov_chains(0.3, 0.6, 5, N + 1, generator(cpu, 8), dtype)
    x, y = data[:, :-1], data[:, 1:]
    _assert_paths_agree(model, x, y)
    gamma = (model.pos @ model.W_Q.T) @ (model.W_K @ model.e)
    assert (gamma > 0).any() and (gamma < 0).any()  # both row groups of the path are used
    with torch.no_grad():
        model.e.zero_()  # the unigram point: every row in one group, the other one empty
    _assert_paths_agree(model, x, y)


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 4), n=st.integers(1, 40), d=st.integers(2, 6),
       memory=st.one_of(st.none(), st.integers(0, 8)), seed=st.integers(0, 2**16),
       block_rows=st.integers(1, 9), key_step=st.integers(1, 9),
       dtype=st.sampled_from([torch.float32, torch.float64]))
def test_binary_attention_path_equals_the_fused_kernel_at_any_size(batch, n, d, memory, seed,
                                                                   block_rows, key_step, dtype):
    """The same agreement at arbitrary small sizes: one sequence, one position, windows of
    width 0, rows split unevenly over the two key-class groups, and (blocks of a few rows,
    key ranges rounded to a few keys) many blocks per group, a last block filled up with
    padding rows, key ranges rounded past the visible keys and cut at ``n``."""
    from numerics.data.markov import sample_markov_chains

    cpu = torch.device("cpu")
    model = MarkovTransformer(MarkovTransformerConfig(d, n, True, memory=memory), dtype, cpu)
    model.reset_parameters(generator(cpu, seed), std=0.6)
    data = sample_markov_chains(0.3, 0.6, batch, n + 1, generator(cpu, seed + 1), dtype)
    with (mock.patch.object(markov_transformer, "BINARY_BLOCK_ROWS", block_rows),
          mock.patch.object(markov_transformer, "BINARY_KEY_STEP", key_step)):
        _assert_paths_agree(model, data[:, :-1], data[:, 1:])


@pytest.mark.parametrize("memory", [None, 100])
def test_binary_attention_path_equals_the_fused_kernel_over_many_blocks(cpu, memory):
    """float32 at a length of several default blocks per group (the products then go to
    :func:`~numerics.products.linear_product`'s oneDNN kernels on the CPU)."""
    from numerics.data.markov import sample_markov_chains

    n = 3 * markov_transformer.BINARY_BLOCK_ROWS + 17
    model = MarkovTransformer(MarkovTransformerConfig(8, n, False, memory=memory), torch.float32,
                              cpu)
    model.reset_parameters(generator(cpu, 11), std=0.4)
    data = sample_markov_chains(0.3, 0.6, 4, n + 1, generator(cpu, 12), torch.float32)
    _assert_paths_agree(model, data[:, :-1], data[:, 1:])


def _assert_paths_agree(model, x, y):
    """Same loss and gradients from both paths: round-off of sums over the B n positions in
    two summation orders, relative to the largest gradient entry (a small entry such as b's
    is a cancelling sum of O(1) terms)."""
    fused_loss, fused = _loss_and_gradients(model, x, y, "fused")
    binary_loss, binary = _loss_and_gradients(model, x, y, "binary")
    eps = torch.finfo(x.dtype).eps
    assert abs(binary_loss - fused_loss) <= 20 * eps * abs(fused_loss)
    scale = max(gradient.abs().max() for gradient in fused.values())
    for name, gradient in fused.items():
        assert (binary[name] - gradient).abs().max() <= 50 * eps * scale, name


def test_binary_attention_path_refuses_second_derivatives(cpu):
    """Its backward is written by hand for first derivatives: a Hessian through it
    (``create_graph=True``) is refused, not silently wrong; the fused kernel gives one."""
    model = MarkovTransformer(MarkovTransformerConfig(3, 12, True), torch.float64, cpu,
                              attention="binary")
    model.reset_parameters(generator(cpu, 3), std=0.5)
    x = torch.randint(0, 2, (2, 12), generator=generator(cpu, 4)).double()
    (gradient,) = torch.autograd.grad(model(x).square().sum(), model.W_Q)  # first order: fine
    assert torch.isfinite(gradient).all()
    with pytest.raises(RuntimeError, match="no second derivative"):
        torch.autograd.grad(model(x).square().sum(), model.W_Q, create_graph=True)
    model.attention = "fused"
    (gradient,) = torch.autograd.grad(model(x).square().sum(), model.W_Q, create_graph=True)
    assert gradient.requires_grad


def test_attention_path_is_chosen_by_device_and_length(cpu):
    from numerics.models.markov_transformer import BINARY_MIN_LENGTH

    model = MarkovTransformer(MarkovTransformerConfig(2, BINARY_MIN_LENGTH, True),
                              torch.float32, cpu)
    long, short = torch.zeros(1, BINARY_MIN_LENGTH), torch.zeros(1, BINARY_MIN_LENGTH - 1)
    assert model.uses_binary_path(long) and not model.uses_binary_path(short)
    model.attention = "fused"
    assert not model.uses_binary_path(long)
    model.attention = "binary"
    assert model.uses_binary_path(short)
    with pytest.raises(ValueError, match="attention must be one of"):
        MarkovTransformer(MarkovTransformerConfig(2, 4, True), attention="flash")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_scores_beyond_the_safe_range_take_the_fused_kernel(cpu, dtype):
    """A key-class shift |gamma| past :func:`safe_gamma` would underflow exp(-|gamma|) (a row
    of light keys only is then 0/0): the binary path declines and the logits are the fused
    kernel's, finite."""
    from numerics.models.markov_transformer import binary_attention, safe_gamma

    d, N = 4, 8
    model = MarkovTransformer(MarkovTransformerConfig(d, N, True), dtype, cpu, attention="binary")
    with torch.no_grad():  # gamma at position 0 = <W_Q p_0, W_K e> / sqrt(d)
        for W in (model.W_Q, model.W_K, model.W_V, model.W_O):
            W.copy_(torch.eye(d, dtype=dtype))
        model.e.copy_(torch.tensor([1.0, 0, 0, 0]))
        model.pos[:, 0] = 2 * safe_gamma(dtype) * d ** 0.5
    x = torch.zeros(2, N, dtype=dtype)
    assert binary_attention(x, model.e, model.pos, model.W_Q, model.W_K, model.W_V,
                            model.config) is None
    logits = model(x)
    model.attention = "fused"
    assert torch.isfinite(logits).all() and torch.equal(logits, model(x))

"""Chains of order k: the exact law, the sampler and the windowed attention."""

import math

import numpy as np
import pytest
import torch

from numerics.data.higher_order_markov import (
    context_transitions,
    sample_higher_order_chains,
    sequence_probabilities,
    stationary_contexts,
)
from numerics.data.markov import next_one_probability
from numerics.models.markov_transformer import (
    MarkovEnsemble,
    MarkovTransformer,
    MarkovTransformerConfig,
    reference_logits,
)
from numerics.population import MarkovPopulation, all_binary_sequences

CPU = torch.device("cpu")
KERNELS = [np.array([0.1, 0.6, 0.7, 0.2]), np.array([0.3, 0.9, 0.15, 0.5, 0.8, 0.05, 0.6, 0.4])]


@pytest.mark.parametrize("kernel", KERNELS)
def test_stationary_law_is_invariant_and_a_probability(kernel):
    mu = stationary_contexts(kernel)
    assert np.allclose(mu @ context_transitions(kernel), mu, atol=1e-14)
    assert math.isclose(mu.sum(), 1.0, abs_tol=1e-14) and (mu > 0).all()


@pytest.mark.parametrize("kernel", KERNELS)
def test_sequence_law_is_the_chain(kernel):
    """Probabilities sum to 1, are consistent across lengths (marginals), and every transition
    after the first k bits is the kernel of the last k bits."""
    k = int(np.log2(len(kernel)))
    six = sequence_probabilities(kernel, 6, CPU, torch.float64)
    seven = sequence_probabilities(kernel, 7, CPU, torch.float64)
    assert math.isclose(float(six.sum()), 1.0, abs_tol=1e-14)
    assert torch.allclose(seven.reshape(64, 2).sum(1), six, atol=1e-15)
    x = all_binary_sequences(6, CPU, torch.long)
    context = (x[:, 6 - k:] * 2 ** torch.arange(k - 1, -1, -1)).sum(1)
    ratio = seven.reshape(64, 2)[:, 1] / six
    assert torch.allclose(ratio, torch.tensor(kernel)[context], atol=1e-13)


def test_first_order_kernel_is_the_first_order_population():
    p, q = 0.3, 0.55
    population = MarkovPopulation.build(p, q, 6, CPU, torch.float64)
    assert torch.allclose(population.next_one, next_one_probability(population.sequences, p, q),
                          atol=1e-15)
    first = population.probabilities.reshape(2, -1).sum(1)
    assert torch.allclose(first, torch.tensor([q / (p + q), p / (p + q)], dtype=torch.float64))


@pytest.mark.parametrize("kernel", KERNELS)
def test_sampler_matches_the_exact_law(kernel):
    """Frequencies of the 2^5 sequences of length 5 against their exact probabilities, within
    5 standard errors of a multinomial count."""
    draws = 200_000
    x = sample_higher_order_chains(kernel, draws, 5, torch.Generator().manual_seed(3),
                                   torch.long)
    codes = (x * 2 ** torch.arange(4, -1, -1)).sum(1)
    frequency = torch.bincount(codes, minlength=32).double() / draws
    exact = sequence_probabilities(kernel, 5, CPU, torch.float64)
    error = torch.sqrt(exact * (1 - exact) / draws)
    assert ((frequency - exact).abs() <= 5 * error + 1e-12).all()


@pytest.mark.parametrize("kernel", KERNELS)
def test_tail_loss_of_the_true_conditional_is_the_entropy_rate(kernel):
    mu = stationary_contexts(kernel)
    rate = -(mu * (kernel * np.log(kernel) + (1 - kernel) * np.log(1 - kernel))).sum()
    k = int(np.log2(len(kernel)))
    population = MarkovPopulation.from_kernel(kernel, 8, CPU, torch.float64)
    truth = torch.logit(population.prefix_next_one)
    assert math.isclose(population.tail_loss(truth, k).item(), rate, abs_tol=1e-13)
    assert population.prefix_loss(truth).item() > rate + 1e-6  # early positions see less


@pytest.mark.parametrize(("memory", "layers"), [(0, 1), (1, 1), (2, 2), (None, 2)])
def test_windowed_model_is_the_masked_equations_and_never_sees_past_its_window(memory, layers):
    model = MarkovTransformer(MarkovTransformerConfig(6, 10, True, n_layers=layers,
                                                      memory=memory))
    generator = torch.Generator().manual_seed(1)
    model.reset_parameters(generator, std=1.0)
    x = torch.randint(0, 2, (32, 10), generator=generator)
    with torch.no_grad():
        logits = model(x)
        assert torch.allclose(logits, reference_logits(model, x), atol=1e-10)
        changed = (model(torch.cat([1 - x[:, :3], x[:, 3:]], dim=1)) - logits).abs()
    if memory is None:
        assert changed[:, -1].max() > 1e-3
    else:
        reach = layers * memory  # each layer looks `memory` tokens further back
        assert changed[:, 3 + reach:].max() < 1e-12 and changed[:, :3].max() > 1e-3


def test_windowed_prefix_logits_and_ensembles_match_the_forward_pass():
    models = []
    for seed in range(3):
        model = MarkovTransformer(MarkovTransformerConfig(4, 8, False, memory=1))
        model.reset_parameters(torch.Generator().manual_seed(seed), std=1.0)
        models.append(model)
    population = MarkovPopulation.from_kernel(KERNELS[0], 8, CPU, torch.float64)
    with torch.no_grad():
        direct = torch.stack([m(population.prefixes).gather(-1, (population.lengths - 1)[:, None])
                              .squeeze(-1) for m in models])
        assert torch.allclose(torch.stack([m.last_logits(population.prefixes, population.lengths)
                                           for m in models]), direct, atol=1e-10)
        ensemble = MarkovEnsemble(models)
        assert torch.allclose(ensemble.last_logits(population.prefixes, population.lengths),
                              direct, atol=1e-10)
        assert torch.allclose(ensemble(population.sequences),
                              torch.stack([m(population.sequences) for m in models]), atol=1e-10)


def test_a_deep_model_s_prefix_logits_are_its_forward_pass():
    model = MarkovTransformer(MarkovTransformerConfig(4, 8, True, n_layers=2))
    model.reset_parameters(torch.Generator().manual_seed(0), std=1.0)
    population = MarkovPopulation.build(0.3, 0.8, 8, CPU, torch.float64)
    with torch.no_grad():
        direct = model(population.prefixes).gather(-1, (population.lengths - 1)[:, None])
        assert torch.allclose(model.last_logits(population.prefixes, population.lengths),
                              direct.squeeze(-1), atol=1e-12)


def test_a_negative_window_is_refused():
    with pytest.raises(ValueError, match="memory"):
        MarkovTransformerConfig(4, 8, True, memory=-1)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_impossible_prefixes_weigh_nothing_and_leave_the_loss_finite(dtype):
    """p = q = 1e-17: 1 - q rounds to 1, so some prefixes have probability exactly 0; their
    conditional is finite and their weight 0 (the loss at the constant logit 0 is ln 2)."""
    population = MarkovPopulation.build(1e-17, 1e-17, 8, CPU, dtype)
    loss = population.prefix_loss(torch.zeros_like(population.prefix_next_one, dtype=dtype))
    assert torch.isfinite(population.prefix_next_one).all()
    assert math.isclose(loss.item(), math.log(2), rel_tol=1e-6)

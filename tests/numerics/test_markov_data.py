"""The vectorised Markov sampler and the exact population (Makkuva et al., 2024, Section 2)."""

import math

import pytest
import torch

from numerics.data.markov import sample_markov_chains
from numerics.device import generator
from numerics.population import MarkovPopulation, all_binary_sequences


def _stepwise_chains(p, q, batch, length, gen):
    """Reference sampler: the same uniforms as the sampler (x_1's, then one per step, in the
    same order), applied one step at a time."""
    first = torch.rand(batch, 1, generator=gen) < p / (p + q)
    u = torch.rand(batch, length - 1, generator=gen)
    x = [first[:, 0]]
    for t in range(length - 1):
        x.append(torch.where(x[-1], u[:, t] >= q, u[:, t] < p))
    return torch.stack(x, dim=1).float()


@pytest.mark.parametrize(("p", "q"), [(0.5, 0.8), (0.2, 0.3), (0.9, 0.05)])
def test_sampler_frequencies_match_the_kernel(cpu, p, q):
    x = sample_markov_chains(p, q, 4000, 64, generator(cpu, 0))
    assert x.shape == (4000, 64) and set(x.unique().tolist()) <= {0.0, 1.0}
    pi1 = p / (p + q)
    # each statistic within 5 standard errors (binomial, sequences independent; the chain's
    # autocorrelation inflates the variance by at most (1+|1-p-q|)/(1-|1-p-q|) < 40 here)
    first = x[:, 0].mean().item()
    assert abs(first - pi1) < 5 * math.sqrt(pi1 * (1 - pi1) / 4000)
    prev, nxt = x[:, :-1], x[:, 1:]
    after0 = nxt[prev == 0].mean().item()
    after1 = nxt[prev == 1].mean().item()
    n0, n1 = (prev == 0).sum().item(), (prev == 1).sum().item()
    assert abs(after0 - p) < 5 * math.sqrt(p * (1 - p) / n0)
    assert abs(after1 - (1 - q)) < 5 * math.sqrt(q * (1 - q) / n1)
    rho = abs(1 - p - q)
    inflation = (1 + rho) / (1 - rho)
    assert abs(x[:, -1].mean().item() - pi1) < 5 * math.sqrt(pi1 * (1 - pi1) / 4000)
    assert abs(x.mean().item() - pi1) < 5 * math.sqrt(inflation * pi1 * (1 - pi1) / x.numel())


def test_sampler_is_reproducible_and_seed_dependent(cpu):
    a = sample_markov_chains(0.3, 0.6, 16, 100, generator(cpu, 7))
    b = sample_markov_chains(0.3, 0.6, 16, 100, generator(cpu, 7))
    c = sample_markov_chains(0.3, 0.6, 16, 100, generator(cpu, 8))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize(("p", "q", "batch", "length"),
                         [(0.5, 0.8, 16, 300), (0.9, 0.05, 40, 97), (0.02, 0.03, 40, 200),
                          (0.999, 0.998, 8, 64), (0.3, 0.6, 5, 2)])
def test_sampler_equals_the_maps_applied_step_by_step(cpu, p, q, batch, length):
    """Same chains as the stepwise map x_{t+1} = F_t(x_t) on the same uniforms, including long
    runs of identity or negation maps (p, q near 0 or 1) and chains with no constant map."""
    fast = sample_markov_chains(p, q, batch, length, generator(cpu, 3))
    assert torch.equal(fast, _stepwise_chains(p, q, batch, length, generator(cpu, 3)))


def test_population_probabilities_sum_to_one_and_match_the_chain(cpu):
    pop = MarkovPopulation.build(0.5, 0.8, 6, cpu, torch.float64)
    assert pop.probabilities.sum().item() == pytest.approx(1.0, abs=1e-15)
    assert all_binary_sequences(3, cpu, torch.float64).tolist()[5] == [1.0, 0.0, 1.0]
    # P(x = 0,1,1,0,0,1) = pi0 * p * (1-q) * q * (1-p) * p
    index = int("011001", 2)
    expected = (0.8 / 1.3) * 0.5 * 0.2 * 0.8 * 0.5 * 0.5
    assert pop.probabilities[index].item() == pytest.approx(expected, rel=1e-14)


def test_population_loss_of_the_kernel_predictor_is_the_entropy_rate(cpu):
    p, q = 0.2, 0.3
    pop = MarkovPopulation.build(p, q, 5, cpu, torch.float64)
    kernel_logits = torch.logit(pop.next_one)
    h = lambda t: -t * math.log(t) - (1 - t) * math.log(1 - t)  # noqa: E731
    assert pop.loss(kernel_logits).item() == pytest.approx((q * h(p) + p * h(q)) / (p + q),
                                                           abs=1e-14)

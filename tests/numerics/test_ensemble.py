"""Seed ensembles in one batched model: same numbers as the sequential runs."""

import pytest
import torch

from numerics.device import generator
from numerics.models.markov_transformer import (
    MarkovEnsemble,
    MarkovTransformer,
    MarkovTransformerConfig,
)
from numerics.population import MarkovPopulation
from numerics.train import TrainConfig, train


def _members(cpu, seeds, tied=True):
    models = []
    for seed in seeds:
        model = MarkovTransformer(MarkovTransformerConfig(4, 6, tied), torch.float64, cpu)
        model.reset_parameters(generator(cpu, seed))
        models.append(model)
    return models


@pytest.mark.parametrize("tied", [True, False])
def test_ensemble_forward_is_each_members_forward(cpu, tied):
    members = _members(cpu, [0, 1, 2], tied)
    ensemble = MarkovEnsemble(members)
    x = torch.randint(0, 2, (5, 6), generator=generator(cpu, 9)).double()
    logits = ensemble(x)
    assert logits.shape == (3, 5, 6)
    for index, member in enumerate(members):
        assert torch.allclose(logits[index], member(x), atol=1e-14, rtol=0)
        restored = ensemble.member(index)
        assert torch.equal(restored(x), member(x))


def test_training_the_ensemble_is_training_each_member(cpu):
    """AdamW is elementwise: the batched run reproduces every sequential run."""
    population = MarkovPopulation.build(0.6, 0.7, 6, cpu, torch.float64)
    config = TrainConfig(steps=40)
    batched = train(MarkovEnsemble(_members(cpu, [3, 4, 5])), population.objective, config)
    assert batched.losses.shape == (40, 3) and batched.probes["after_0"].shape == (40, 3)
    for index, member in enumerate(_members(cpu, [3, 4, 5])):
        alone = train(member, population.objective, config)
        _assert_same_run(batched.member(index), alone, "after_1")


def test_members_must_share_a_configuration(cpu):
    with pytest.raises(ValueError, match="one configuration"):
        MarkovEnsemble(_members(cpu, [0], tied=True) + _members(cpu, [1], tied=False))


def test_coupling_optimizers_refuse_an_ensemble(cpu):
    population = MarkovPopulation.build(0.6, 0.7, 6, cpu, torch.float64)
    ensemble = MarkovEnsemble(_members(cpu, [0, 1]))
    with pytest.raises(ValueError, match="couples the members"):
        train(ensemble, population.objective, TrainConfig(steps=2, optimizer="ngd",
                                                          schedule="constant"))


@pytest.mark.parametrize("tied", [True, False])
def test_prefix_objective_equals_the_loss_over_all_sequences(cpu, tied):
    """The training objective sums over distinct prefixes; it must equal the plain
    expectation over all 2^N sequences and positions (what the bridge checks against sympy)."""
    population = MarkovPopulation.build(0.3, 0.9, 6, cpu, torch.float64)
    assert len(population.prefixes) == 2**7 - 2
    assert torch.isclose(population.prefix_weights.sum(), torch.tensor(1.0, dtype=torch.float64))
    members = _members(cpu, [0, 1], tied)
    with torch.no_grad():
        for model in members:
            for parameter in model.parameters():
                parameter.mul_(40)  # far from the init scale: attention and FFN matter
    for model in members:
        full = population.loss(model(population.sequences))
        loss, probes = population.objective(model)
        assert torch.isclose(loss, full, rtol=0, atol=1e-13)
        logits = model(population.sequences)
        for after in (0, 1):
            mask = (population.sequences == after) * population.probabilities[:, None]
            expected = (torch.sigmoid(logits) * mask).sum() / mask.sum()
            assert torch.isclose(probes[f"after_{after}"], expected, rtol=0, atol=1e-13)
    batched, _ = population.objective(MarkovEnsemble(members))
    assert torch.allclose(batched, torch.stack([population.objective(m)[0] for m in members]),
                          rtol=0, atol=1e-13)


@pytest.mark.parametrize("attention", ["fused", "binary"])
def test_sampled_ensemble_draws_each_members_own_batches(cpu, attention):
    """With one generator per member every member sees exactly the batches its seed's
    generator gives it alone, so the batched run on fresh sampled batches reproduces every
    sequential run (losses, gradient norms, probes, final weights) to round-off."""
    from numerics.monte_carlo import MarkovBatches

    seeds, config, length = [3, 4, 5], TrainConfig(steps=30), 24
    models = []
    for seed in seeds:
        model = MarkovTransformer(MarkovTransformerConfig(4, length, False), torch.float64, cpu)
        model.reset_parameters(generator(cpu, seed), std=0.3)
        models.append(model)
    ensemble = MarkovEnsemble(models, attention)
    assert ensemble.member(0).attention == attention
    gens = tuple(generator(cpu, 100 + seed) for seed in seeds)
    batched = train(ensemble, MarkovBatches(0.6, 0.7, 4, length, gens, torch.float64).objective,
                    config)
    assert batched.losses.shape == (30, 3) and batched.probes["after_1"].shape == (30, 3)
    assert len({float(batched.losses[0, i]) for i in range(3)}) == 3  # not one shared batch
    for index, seed in enumerate(seeds):
        model = MarkovTransformer(MarkovTransformerConfig(4, length, False), torch.float64, cpu,
                                  attention)
        model.reset_parameters(generator(cpu, seed), std=0.3)
        batches = MarkovBatches(0.6, 0.7, 4, length, generator(cpu, 100 + seed), torch.float64)
        alone = train(model, batches.objective, config)
        _assert_same_run(batched.member(index), alone, "after_0")
        assert torch.equal(gens[index].get_state(), batches.generator.get_state())


def _assert_same_run(split, alone, probe: str) -> None:
    """A member of a batched run is the same run as its seed trained alone: losses, gradient
    norms, the ``probe`` and the final weights, to float64 round-off."""
    assert abs(split.losses - alone.losses).max() < 1e-12
    assert abs(split.grad_norms - alone.grad_norms).max() < 1e-10
    assert abs(split.probes[probe] - alone.probes[probe]).max() < 1e-12
    for name, value in alone.final_state.items():
        assert torch.allclose(split.final_state[name], value, atol=1e-12, rtol=0)

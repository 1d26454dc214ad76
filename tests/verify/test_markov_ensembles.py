"""Seed ensembles of the Markov experiments: every member's run is its seed's sequential run."""

import threading

import numpy as np
import pytest
import torch

from numerics.models import markov_transformer
from verify.experiments import markov


@pytest.mark.parametrize(("budget", "length"), [("fast", 5), ("full", 16), ("full", 72)])
def test_batched_seeds_reproduce_the_sequential_runs(monkeypatch, cpu, budget, length):
    """Exact budget: one population; sampled budget (shrunk to seconds; at 72 positions, with
    the threshold lowered, the attention takes the binary path): each member draws its batches
    and evaluation chains from its own seed's stream. Either way the curves, the final
    estimates and their standard errors are the sequential runs' to round-off."""
    monkeypatch.setattr(markov_transformer, "BINARY_MIN_LENGTH", 64)
    small = {
        "fast": markov.MarkovBudget(N=length, steps=40, exact=True),
        "full": markov.MarkovBudget(N=length, steps=40, exact=False, batch=4,
                                    eval_sequences=64, smoothing=5, dtype=torch.float64),
    }[budget]
    monkeypatch.setitem(markov.BUDGETS, budget, small)
    seeds = (0, 1, 2)
    batched = markov.train_markov_ensemble(0.6, 0.7, 4, False, budget, seeds, cpu, {})
    finals = set()
    for seed, run in zip(seeds, batched, strict=True):
        alone = markov.train_markov(0.6, 0.7, 4, False, budget, seed, cpu, {})
        assert np.abs(run.history.losses - alone.history.losses).max() < 1e-12
        assert np.abs(run.curve - alone.curve).max() < 1e-12
        assert abs(run.curve_error - alone.curve_error) < 1e-12
        assert abs(run.final.mean - alone.final.mean) < 1e-12
        assert abs(run.final.standard_error - alone.final.standard_error) < 1e-12
        finals.add(run.final.mean)
    assert len(finals) == 3  # three seeds, three different runs
    if budget == "full":
        assert all(run.final.standard_error > 0 and run.curve_error > 0 for run in batched)


def test_sampled_seeds_side_by_side_reproduce_the_sequential_runs(monkeypatch, cpu):
    """On the CPU with two intra-op threads, the sampled budget trains its seeds side by side
    (one thread each): every run is its single-threaded sequential run, bit for bit, the
    thread count is restored, and the runs land in the cache under their own seeds."""
    small = markov.MarkovBudget(N=24, steps=30, exact=False, batch=4, eval_sequences=32,
                                smoothing=5, dtype=torch.float64)
    monkeypatch.setitem(markov.BUDGETS, "full", small)
    seeds = (0, 1, 2)
    threads = torch.get_num_threads()
    solo_run, ran_on = markov.train_markov, []

    def watched(*args):
        ran_on.append((threading.get_ident(), torch.get_num_threads()))
        return solo_run(*args)

    try:
        torch.set_num_threads(1)
        alone = [markov.train_markov(0.6, 0.7, 4, True, "full", seed, cpu, {}) for seed in seeds]
        torch.set_num_threads(2)
        monkeypatch.setattr(markov, "train_markov", watched)
        cache: dict = {}
        together = markov.train_seeds(0.6, 0.7, 4, True, "full", seeds, cpu, cache)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    assert len({ident for ident, _ in ran_on}) == 2  # two job threads, neither the caller's
    assert threading.get_ident() not in {ident for ident, _ in ran_on}
    assert [count for _, count in ran_on] == [1, 1, 1]  # one intra-op thread per run
    assert len(cache) == len(seeds)
    for run, solo in zip(together, alone, strict=True):
        np.testing.assert_array_equal(run.history.losses, solo.history.losses)
        assert run.final == solo.final
    assert len({run.final.mean for run in together}) == len(seeds)

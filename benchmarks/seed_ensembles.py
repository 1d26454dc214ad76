"""Seed ensembles: S seeds trained as one batched model vs S sequential runs.

Markov fast budget (d = 4, N = 8, exact population loss over all 2^8 sequences, float64,
1000 AdamW steps, tied). For S = 1, 4, 16 prints the wall time of the batched run, of S
sequential runs, their ratio (the speed-up), and the batched time relative to one seed (the
issue's target: 16 seeds in at most 3x the time of one).

Usage: python benchmarks/seed_ensembles.py [--device auto|cpu|cuda] [--steps 1000]
"""

from __future__ import annotations

import argparse
import time

from numerics.device import describe, select_device
from numerics.models.markov_transformer import MarkovEnsemble
from numerics.population import MarkovPopulation
from numerics.train import TrainConfig, train
from verify.experiments.markov import BUDGETS, _initial_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--steps", type=int, default=BUDGETS["fast"].steps)
    args = parser.parse_args()
    device = select_device(args.device)
    budget = BUDGETS["fast"]
    population = MarkovPopulation.build(0.5, 0.8, budget.N, device, budget.dtype)
    config = TrainConfig(steps=args.steps)

    def timed(model) -> float:
        start = time.perf_counter()
        train(model, population.objective, config)
        return time.perf_counter() - start

    print(f"device: {describe(device)}, {args.steps} steps, Markov fast budget (d=4, N=8)")
    timed(_initial_model(4, True, "fast", 0, device, None))  # warm-up
    one = timed(_initial_model(4, True, "fast", 0, device, None))
    print(f"one seed: {one:.2f} s")
    print(f"{'S':>3} {'batched s':>10} {'sequential s':>13} {'speed-up':>9} {'vs one seed':>12}")
    for seeds in (1, 4, 16):
        sequential = sum(timed(_initial_model(4, True, "fast", s, device, None))
                         for s in range(seeds))
        batched = timed(MarkovEnsemble([_initial_model(4, True, "fast", s, device, None)
                                        for s in range(seeds)]))
        print(f"{seeds:>3} {batched:>10.2f} {sequential:>13.2f} {sequential / batched:>8.2f}x "
              f"{batched / one:>11.2f}x")


if __name__ == "__main__":
    main()

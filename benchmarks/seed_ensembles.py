"""Seed ensembles: S seeds trained as one batched model vs S sequential runs, in both budgets.

Markov fast budget (d = 4, N = 8, exact population loss over all 2^8 sequences, float64,
1000 AdamW steps, tied) and full budget (d = 8, N = 1024, 16 fresh sequences per step and per
member, each member from its own seed's stream, float32; a few steps, since a step's cost does
not change along the run). For S = 1, 4, 16 prints the wall time of the batched run, of S
sequential runs, their ratio (the speed-up), and the batched time relative to one seed with
the target beside it (16 seeds in at most 3x the time of one).

Usage: python benchmarks/seed_ensembles.py [--device auto|cpu|cuda] [--steps 1000]
       [--full-steps 10] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

from numerics.device import describe, select_device, set_threads, stream
from numerics.models.markov_transformer import MarkovEnsemble
from numerics.monte_carlo import MarkovBatches
from numerics.population import MarkovPopulation
from numerics.train import TrainConfig, train
from verify.experiments.markov import BUDGETS, _initial_model

TARGET_SIXTEEN_VS_ONE = 3.0
P, Q = 0.5, 0.8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--steps", type=int, default=BUDGETS["fast"].steps,
                        help="steps of the fast budget")
    parser.add_argument("--full-steps", type=int, default=10, help="steps of the full budget")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (default: the runs' default, numerics.device)")
    args = parser.parse_args()
    device = select_device(args.device)
    set_threads(args.threads)
    print(f"device: {describe(device)}")
    for budget, d, steps in (("fast", 4, args.steps), ("full", 8, args.full_steps)):
        _compare(budget, d, steps, device)


def _compare(budget: str, d: int, steps: int, device) -> None:
    """Batched vs sequential seeds of one budget, printed as a table."""
    sizes = BUDGETS[budget]
    config = TrainConfig(steps=steps, sync_every=min(50, steps))
    population = (MarkovPopulation.build(P, Q, sizes.N, device, sizes.dtype) if sizes.exact
                  else None)

    def objective(seeds: range, batched: bool):
        if population is not None:
            return population.objective
        gens = tuple(stream(device, seed, "data") for seed in seeds)  # one stream per member
        return MarkovBatches(P, Q, sizes.batch, sizes.N, gens if batched else gens[0],
                             sizes.dtype).objective

    def timed(seeds: range, batched: bool) -> float:
        models = [_initial_model(d, True, budget, seed, device, None) for seed in seeds]
        start = time.perf_counter()
        if batched:
            train(MarkovEnsemble(models), objective(seeds, True), config)
        else:
            for seed, model in zip(seeds, models, strict=True):
                train(model, objective(range(seed, seed + 1), False), config)
        return time.perf_counter() - start

    print(f"\nMarkov {budget} budget (d={d}, N={sizes.N}, "
          f"{'exact loss' if sizes.exact else f'batch {sizes.batch} per member'}, "
          f"{sizes.dtype}), {steps} steps")
    timed(range(1), False)  # warm-up
    one = timed(range(1), False)
    print(f"one seed: {one:.2f} s")
    print(f"{'S':>3} {'batched s':>10} {'sequential s':>13} {'speed-up':>9} {'vs one seed':>12}")
    for count in (1, 4, 16):
        sequential = timed(range(count), False)
        batched = timed(range(count), True)
        target = f"   (target <= {TARGET_SIXTEEN_VS_ONE:g}x)" if count == 16 else ""
        print(f"{count:>3} {batched:>10.2f} {sequential:>13.2f} {sequential / batched:>8.2f}x "
              f"{batched / one:>11.2f}x{target}")


if __name__ == "__main__":
    main()

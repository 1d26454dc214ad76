"""Seed ensembles: S seeds trained as one batched model vs S sequential runs, in both budgets.

Markov fast budget (d = 4, N = 8, exact population loss over all 2^8 sequences, float64,
1000 AdamW steps, tied) and full budget (d = 8, N = 1024, 16 fresh sequences per step and per
member, each member from its own seed's stream, float32; a few steps, since a step's cost does
not change along the run). For S = 1, 4, 16 prints the wall time of the batched run (the
runs' default threads, what ``verify`` does for the exact budget), of the batched run with
every core's thread (``verify --threads N``), of S sequential runs, of the S runs side by
side on every core (CPU: one thread each, ``numerics.device.run_concurrently``, what
``verify`` does for sampled budgets on the CPU), the batched run's speed-up over the
sequential runs, and relative to one seed both what ``verify`` does by default and the
fastest of the four, with the target beside them (16 seeds in at most 3x the time of one).

Usage: python benchmarks/seed_ensembles.py [--device auto|cpu|cuda] [--steps 1000]
       [--full-steps 10] [--threads 1] [--glibc-allocator]
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import torch

from numerics.device import (
    describe,
    retain_freed_memory,
    run_concurrently,
    select_device,
    set_threads,
    stream,
)
from numerics.models.markov_transformer import MarkovEnsemble
from numerics.monte_carlo import MarkovBatches
from numerics.population import MarkovPopulation
from numerics.train import TrainConfig, train
from verify.experiments.markov import BUDGETS, _initial_model
from verify.pool import available_cores

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
    parser.add_argument("--glibc-allocator", action="store_true",
                        help="keep glibc's default malloc thresholds (verify sets its own: "
                        "numerics.device.retain_freed_memory)")
    args = parser.parse_args()
    allocator = ("glibc defaults" if args.glibc_allocator
                 else "freed memory retained" if retain_freed_memory() else "default")
    device = select_device(args.device)
    set_threads(args.threads)
    print(f"device: {describe(device)}   allocator: {allocator}")
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

    def timed(seeds: range, how: str) -> float:
        models = [_initial_model(d, True, budget, seed, device, None) for seed in seeds]
        jobs = [partial(train, model, objective(range(seed, seed + 1), False), config)
                for seed, model in zip(seeds, models, strict=True)]
        threads = torch.get_num_threads()
        if how in ("batched, all cores", "side by side"):
            torch.set_num_threads(available_cores())
        start = time.perf_counter()
        try:
            if how.startswith("batched"):
                train(MarkovEnsemble(models), objective(seeds, True), config)
            elif how == "side by side":
                run_concurrently(jobs, device)
            else:
                for job in jobs:
                    job()
            return time.perf_counter() - start
        finally:
            torch.set_num_threads(threads)

    print(f"\nMarkov {budget} budget (d={d}, N={sizes.N}, "
          f"{'exact loss' if sizes.exact else f'batch {sizes.batch} per member'}, "
          f"{sizes.dtype}), {steps} steps")
    timed(range(1), "sequential")  # warm-up
    one = timed(range(1), "sequential")
    print(f"one seed: {one:.2f} s")
    print(f"{'S':>3} {'batched s':>10} {'all cores s':>12} {'sequential s':>13} "
          f"{'side by side s':>15} {'batched speed-up':>17} {'default vs one':>15} "
          f"{'best vs one':>12}")
    for count in (1, 4, 16):
        times = {how: timed(range(count), how)
                 for how in ("sequential", "batched", "batched, all cores", "side by side")}
        # what verify does: one seed alone; several batched for the exact budget (one
        # thread unless --threads) and on CUDA, side by side for the sampled one on the CPU
        default = (times["sequential"] if count == 1
                   else times["batched"] if sizes.exact or device.type == "cuda"
                   else times["side by side"])
        best = min(times["batched"], times["batched, all cores"], times["side by side"])
        target = f"   (target <= {TARGET_SIXTEEN_VS_ONE:g}x)" if count == 16 else ""
        print(f"{count:>3} {times['batched']:>10.2f} {times['batched, all cores']:>12.2f} "
              f"{times['sequential']:>13.2f} {times['side by side']:>15.2f} "
              f"{times['sequential'] / times['batched']:>16.2f}x {default / one:>14.2f}x "
              f"{best / one:>11.2f}x{target}")


if __name__ == "__main__":
    main()

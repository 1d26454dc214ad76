"""Training steps per second of the Markov full-budget configuration on the current device.

d = 8, N = 1024, batch 16 fresh sequences per step, float32, AdamW with the one-cycle schedule
(``verify --budget full``). Prints ms per step for sampling alone, and for a whole training
step (sampling + forward + backward + AdamW), and the speed-up over the reference
implementation's 85 ms per step on a 2-core CPU (measured with the public reference code of
Makkuva et al. at the same configuration).

Usage: python benchmarks/markov_steps.py [--device auto|cpu|cuda] [--steps 200]
"""

from __future__ import annotations

import argparse
import time

import torch

from numerics.data.markov import sample_markov_chains
from numerics.device import describe, generator, select_device
from numerics.models.markov_transformer import MarkovTransformer, MarkovTransformerConfig
from numerics.monte_carlo import MarkovBatches
from numerics.train import TrainConfig, train
from verify.experiments.markov import BUDGETS

REFERENCE_MS_PER_STEP = 85.0  # public reference code, same configuration, 2-core CPU


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    device = select_device(args.device)
    budget = BUDGETS["full"]
    d, p, q = 8, 0.5, 0.8

    gen = generator(device, 0)
    sample_markov_chains(p, q, budget.batch, budget.N + 1, gen)  # warm-up
    _sync(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        sample_markov_chains(p, q, budget.batch, budget.N + 1, gen, budget.dtype)
    _sync(device)
    sampling_ms = (time.perf_counter() - start) / args.steps * 1e3

    model = MarkovTransformer(MarkovTransformerConfig(d, budget.N, tied=True), budget.dtype, device)
    model.reset_parameters(generator(device, 1))
    batches = MarkovBatches(p, q, budget.batch, budget.N, generator(device, 2), budget.dtype)
    train(model, batches.objective, TrainConfig(steps=10))  # warm-up
    history = train(model, batches.objective, TrainConfig(steps=args.steps, sync_every=50))
    step_ms = history.wall_seconds / args.steps * 1e3

    print(f"device: {describe(device)}   torch {torch.__version__}")
    print(f"config: d={d}, N={budget.N}, batch={budget.batch}, {budget.dtype}, {args.steps} steps")
    print(f"sampling only     : {sampling_ms:8.2f} ms per batch")
    print(f"full training step: {step_ms:8.2f} ms per step = {1e3 / step_ms:7.1f} steps/s")
    print(f"vs reference 85 ms: {REFERENCE_MS_PER_STEP / step_ms:8.1f}x fewer ms per step")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


if __name__ == "__main__":
    main()

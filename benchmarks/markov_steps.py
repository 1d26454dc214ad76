"""Training steps of the Markov full-budget configuration: binary attention path vs fused kernel.

d = 8, N = 1024, batch 16 fresh sequences per step, float32, AdamW with the one-cycle schedule
(``verify --budget full``). Two copies of the same model train side by side in one process:
layer 1's attention by the fused kernel (``attention="fused"``, the path before the binary
one existed) and by :func:`~numerics.models.markov_transformer.binary_attention`. The two are
timed in alternating rounds so that load from other processes hits both alike; the medians
over rounds are printed with their ratio (target: at least 4x), together with the time of
sampling alone and the speed-up over the reference implementation's 85 ms per step on a
2-core CPU (the public reference code of Makkuva et al. at the same configuration).

Usage: python benchmarks/markov_steps.py [--device auto|cpu|cuda] [--rounds 7]
       [--steps 20] [--threads 1] [--glibc-allocator]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from numerics.data.markov import sample_markov_chains
from numerics.device import describe, generator, retain_freed_memory, select_device, set_threads
from numerics.models.markov_transformer import MarkovTransformer, MarkovTransformerConfig
from numerics.monte_carlo import MarkovBatches
from numerics.train import TrainConfig, train
from verify.experiments.markov import BUDGETS

REFERENCE_MS_PER_STEP = 85.0  # public reference code, same configuration, 2-core CPU
TARGET_SPEEDUP = 4.0  # binary path vs fused kernel, same configuration and machine
PATHS = ("fused", "binary")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds per path")
    parser.add_argument("--steps", type=int, default=20, help="training steps per round")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (default: the runs' default, numerics.device)")
    parser.add_argument("--glibc-allocator", action="store_true",
                        help="keep glibc's default malloc thresholds (verify sets its own: "
                        "numerics.device.retain_freed_memory)")
    args = parser.parse_args()
    allocator = ("glibc defaults" if args.glibc_allocator
                 else "freed memory retained" if retain_freed_memory() else "default")
    device = select_device(args.device)
    threads = set_threads(args.threads)
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

    config = MarkovTransformerConfig(d, budget.N, tied=True)
    runs = {}
    for path in PATHS:
        model = MarkovTransformer(config, budget.dtype, device, attention=path)
        model.reset_parameters(generator(device, 1))
        batches = MarkovBatches(p, q, budget.batch, budget.N, generator(device, 2),
                                budget.dtype)
        runs[path] = (model, batches)
    round_config = TrainConfig(steps=args.steps, sync_every=args.steps)
    timings: dict[str, list[float]] = {path: [] for path in PATHS}
    for round_index in range(args.rounds + 1):  # round 0 warms both paths up
        for path in PATHS:
            model, batches = runs[path]
            history = train(model, batches.objective, round_config)
            if round_index:
                timings[path].append(history.wall_seconds / args.steps * 1e3)
    fused, binary = (statistics.median(timings[path]) for path in PATHS)

    print(f"device: {describe(device)}   torch {torch.__version__}   threads {threads}   "
          f"allocator: {allocator}")
    print(f"config: d={d}, N={budget.N}, batch={budget.batch}, {budget.dtype}, "
          f"{args.rounds} alternating rounds of {args.steps} steps per path (medians)")
    print(f"sampling only          : {sampling_ms:8.2f} ms per batch")
    for path, label, ms in (("fused", "fused kernel (before)", fused),
                            ("binary", "binary path (new)", binary)):
        spread = f"{min(timings[path]):.2f}..{max(timings[path]):.2f}"
        print(f"{label:<23}: {ms:8.2f} ms per step = {1e3 / ms:6.1f} steps/s   (rounds {spread})")
    print(f"speed-up binary/fused  : {fused / binary:8.2f}x   (target >= {TARGET_SPEEDUP:g}x)")
    print(f"vs reference 85 ms     : {REFERENCE_MS_PER_STEP / binary:8.2f}x fewer ms per step")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


if __name__ == "__main__":
    main()

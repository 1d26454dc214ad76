"""Thread count of a single run: 1 vs 2 torch threads, on an idle machine and under load.

Runs ``verify --theorem markov-local-minima --threads N`` as a fresh process, first with the
cores idle, then while one busy process per core competes for them (what a laptop running
anything else, or a CI machine shared by two jobs, looks like), and prints the wall times and
the ratios side by side. The default (:data:`numerics.device.DEFAULT_THREADS`) is chosen from
these figures.

Usage: python benchmarks/threads.py [--theorem markov-local-minima] [--repeats 1]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import time


def _busy(stop: multiprocessing.Event) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def _run(theorem: str, threads: int) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "verify", "--theorem", theorem, "--threads",
                    str(threads)], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--theorem", default="markov-local-minima")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    for label, load in (("idle", 0), (f"loaded ({cores} busy processes)", cores)):
        stop = multiprocessing.Event()
        busy = [multiprocessing.Process(target=_busy, args=(stop,)) for _ in range(load)]
        for process in busy:
            process.start()
        try:
            times = {n: min(_run(args.theorem, n) for _ in range(args.repeats)) for n in (1, 2)}
        finally:
            stop.set()
            for process in busy:
                process.join()
        print(f"{label:>28}: 1 thread {times[1]:6.1f} s, 2 threads {times[2]:6.1f} s, "
              f"2 threads / 1 thread = {times[2] / times[1]:.2f}")


if __name__ == "__main__":
    main()

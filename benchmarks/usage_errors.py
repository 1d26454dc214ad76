"""How long a usage error takes to appear, interpreter start included, against the 1.5 s target.

Each case runs ``python -m verify ...`` as a fresh process (what a user types), best of
``--repeats``; the table prints the time, the target and their ratio side by side. Torch is
imported only after a request is validated, so every case should stay far below the target.

Usage: python benchmarks/usage_errors.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

TARGET_SECONDS = 1.5
CASES = [
    ["--list"],
    ["--theorem", "markov-local-minimum"],
    ["--theorem", "markov-local-minima", "--param", "p=1/0"],
    ["--theorem", "markov-local-minima", "--param", "p=0.2", "--param", "q=0.3"],
    ["--theorem", "markov-local-minima", "--param", "d=10000"],
    ["--theorem", "ntp-attention-max-margin", "--param", "K=1000", "--param", "orders=random"],
    ["--theorem", "topics-value-block-structure", "--param", "T=10000"],
    ["--theorem", "markov-local-minima", "--budget", "bogus"],
    ["--theorem", "markov-local-minima", "--json", "/dev/full"],
    ["sweep", "markov-local-minima", "--grid", "p=0:1:100000000"],
    ["--all", "--workers", "0"],
]


def _seconds(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "verify", *argv], capture_output=True, timeout=60)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    worst = 0.0
    for argv in CASES:
        seconds = min(_seconds(argv) for _ in range(args.repeats))
        worst = max(worst, seconds)
        print(f"{seconds:5.2f} s  (target {TARGET_SECONDS} s, {seconds / TARGET_SECONDS:4.2f}x)  "
              f"verify {' '.join(argv)}")
    print(f"worst {worst:.2f} s = {worst / TARGET_SECONDS:.2f} x the target")


if __name__ == "__main__":
    main()

"""Sweep scaling: the same sweep with 1 and with 2 local workers.

Runs ``verify sweep markov-local-minima`` on a small (p, q) grid (fast budget) into fresh
directories and prints the wall times and the speed-up of 2 workers over 1 (ideal: 2x on two
free cores; each worker process also pays its own start-up and imports).

Usage: python benchmarks/sweep_scaling.py [--points 3]   (a points x points grid)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from verify.cli import main as verify


def _sweep(points: int, workers: int, out: Path) -> float:
    start = time.perf_counter()
    code = verify(["sweep", "markov-local-minima", "--grid", f"p=0.2:0.8:{points}", "--grid",
                   f"q=0.3:0.9:{points}", "--workers", str(workers), "--out", str(out)])
    if code not in (0, 1):
        raise SystemExit(f"sweep failed with exit code {code}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        one = _sweep(args.points, 1, Path(tmp) / "one")
        two = _sweep(args.points, 2, Path(tmp) / "two")
    print(f"{args.points}x{args.points} grid: 1 worker {one:.1f} s, 2 workers {two:.1f} s, "
          f"speed-up {one / two:.2f}x")


if __name__ == "__main__":
    main()

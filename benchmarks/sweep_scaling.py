"""Sweep scaling: the same sweep with 1 and with 2 local workers, and where the time goes.

Runs ``verify sweep markov-local-minima`` on a points x points (p, q) grid (fast budget) into
fresh directories and prints the wall times and the speed-up of 2 workers over 1 (target: at
least 1.8x), with what bounds it:

- balance: with equal tasks, 2 workers finish ``n`` tasks in ``ceil(n / 2)`` rounds, so the
  ideal speed-up is ``n / ceil(n / 2)`` (1.8x for 9 tasks, 2x for 16). Only the points inside
  the theorem's assumptions train; the others are answered at once, so ``n`` counts the
  trained points. The default grid, p and q in [0.6, 0.9], is inside (p + q > 1) at every
  point; a grid across p + q = 1 (``--low 0.2``) trains only part of its points;
- start-up: a fresh worker interpreter importing torch and the harness, paid once per run
  (both workers start in parallel), and a worker's first task's extra cost (lazy imports);
- the parent's serial work: setting up the sweep and writing the tables (the heatmaps are
  drawn by the pool's workers, in parallel; their serial time is printed for comparison).

Usage: python benchmarks/sweep_scaling.py [--points 4] [--low 0.6]
       (a points x points grid of p and q from --low to 0.9)
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

from verify import registry, sweeps
from verify.cli import main as verify
from verify.pool import process_pool

TARGET = 1.8


def _sweep(points: int, low: float, workers: int, out: Path) -> float:
    start = time.perf_counter()
    code = verify(["sweep", "markov-local-minima", "--grid", f"p={low:g}:0.9:{points}",
                   "--grid", f"q={low:g}:0.9:{points}", "--workers", str(workers),
                   "--out", str(out)])
    if code not in (0, 1):
        raise SystemExit(f"sweep failed with exit code {code}")
    return time.perf_counter() - start


def _worker_start_up() -> float:
    """Seconds from asking for a one-worker pool to its first answer from a worker that has
    imported what a task imports."""
    start = time.perf_counter()
    pool = process_pool(1)
    try:
        pool.submit(exec, "from verify import registry; registry.default()").result()
    finally:
        pool.shutdown()
    return time.perf_counter() - start


def _serial_heatmaps(out: Path) -> tuple[int, float]:
    """Draw the finished sweep's heatmaps again in this process: how many, and seconds."""
    data = json.loads((out / "sweep.json").read_text())
    spec = {key: data[key] for key in ("theorem", "grid")}
    overlay = registry.default().experiment(data["theorem"]).overlay
    with tempfile.TemporaryDirectory() as again:
        start = time.perf_counter()
        figures = sweeps.write_heatmaps(Path(again), spec, data["points"], overlay)
        return len(figures), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=4)
    parser.add_argument("--low", type=float, default=0.6, help="smallest p and q of the grid")
    args = parser.parse_args()
    tasks = args.points ** 2
    with tempfile.TemporaryDirectory() as tmp:
        one = _sweep(args.points, args.low, 1, Path(tmp) / "one")
        two = _sweep(args.points, args.low, 2, Path(tmp) / "two")
        start_up = _worker_start_up()
        count, heatmaps = _serial_heatmaps(Path(tmp) / "one")
        points = json.loads((Path(tmp) / "one" / "sweep.json").read_text())["points"]
    trained = sum(point["status"] != "outside" for point in points)
    balance = trained / math.ceil(trained / 2)
    print(f"\n{args.points}x{args.points} grid ({tasks} tasks, {trained} inside the "
          f"assumptions): 1 worker {one:.1f} s, 2 workers {two:.1f} s")
    rows = [("speed-up 2 workers / 1", f"{one / two:.2f}x   (target >= {TARGET:g}x)"),
            (f"ideal, {trained} equal tasks", f"{balance:.2f}x (ceil({trained} / 2) rounds)"),
            ("worker start-up", f"{start_up:.1f} s (once per sweep, workers in parallel)"),
            (f"{count} heatmaps serially", f"{heatmaps:.1f} s (drawn by the workers in parallel)")]
    for label, value in rows:
        print(f"{label:<25}: {value}")


if __name__ == "__main__":
    main()

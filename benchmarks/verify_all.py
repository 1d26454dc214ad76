"""Wall time of ``verify --all --budget fast`` against the 60 s target, serial and in workers.

Runs the command as a user does (a fresh process each), once with ``--workers 1`` and once with
``--workers N`` (default: the available cores), each with a JSON report, and prints side by
side: the wall time, its ratio to the target, the speed-up of the workers over the serial run,
whether both runs gave the same verdicts and measured values, and the slowest theorems (their
own seconds, from the report).

Usage: python benchmarks/verify_all.py [--workers N] [--skip-serial]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from verify.pool import available_cores

TARGET_SECONDS = 60.0


def _run(workers: int, report: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "verify", "--all", "--budget", "fast", "--workers",
                    str(workers), "--json", str(report)], check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def _values(report: dict) -> list[tuple]:
    return [(t["id"], c["key"], c["measured"], c["passed"]) for t in report["theorems"]
            for c in t["checks"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=available_cores())
    parser.add_argument("--skip-serial", action="store_true",
                        help="time only the parallel run (the serial one takes minutes)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = {}
        for workers in ([args.workers] if args.skip_serial else [1, args.workers]):
            path = Path(tmp) / f"w{workers}.json"
            runs[workers] = (_run(workers, path), json.loads(path.read_text()))
    print(f"verify --all --budget fast, {available_cores()} cores available")
    print(f"{'workers':>8} {'wall s':>8} {'target s':>9} {'wall/target':>12} {'passed':>7}")
    for workers, (seconds, report) in runs.items():
        print(f"{workers:>8} {seconds:>8.1f} {TARGET_SECONDS:>9.0f} "
              f"{seconds / TARGET_SECONDS:>12.2f} {report['passed']!s:>7}")
    if len(runs) == 2:
        (serial, first), (parallel, second) = runs.values()
        print(f"speed-up of {args.workers} workers over 1: {serial / parallel:.2f}x; same "
              f"verdicts and values: {_values(first) == _values(second)}")
    _, report = runs[args.workers]
    slowest = sorted(report["theorems"], key=lambda t: -t["seconds"])[:8]
    print("slowest theorems (their own seconds, in a worker):")
    for theorem in slowest:
        print(f"  {theorem['id']:<36} {theorem['seconds']:7.1f} s")


if __name__ == "__main__":
    main()

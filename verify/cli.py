"""The ``verify`` command: check theorems symbolically and by training, print a verdict.

Exit codes: 0 every check passed, 1 some check failed, 2 usage error (one line, no traceback).
"""

from __future__ import annotations

import argparse
import atexit
import errno
import os
import shutil
import signal
import stat
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from contextlib import closing
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

from theorems import TheoremError
from verify import api, registry


class UsageError(Exception):
    """A mistake in the command line; printed as one line, exit code 2."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be, so that a run stops the same way (exit 143)."""


#: Seconds after the first Ctrl-C or SIGTERM in which another one is the same request:
#: ``timeout`` (and process managers like it) sends SIGTERM to the process and again to its
#: process group, microseconds apart.
REPEAT_GRACE = 0.5


def _interrupt(signum: int, frame: object) -> None:
    """The first Ctrl-C or SIGTERM stops the run (an exception the run handles); a later one
    (after :data:`REPEAT_GRACE`) exits at once, whatever the run is doing then."""
    first = time.monotonic()
    for repeated, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        signal.signal(repeated, partial(_exit_unless_repeated, first, code))
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _exit_unless_repeated(first: float, code: int, signum: int, frame: object) -> None:
    """The handler after the first signal: exit at once, unless this is the first signal
    delivered again."""
    if time.monotonic() - first >= REPEAT_GRACE:
        os._exit(code)


def _exit_code(interrupt: KeyboardInterrupt) -> int:
    return 143 if isinstance(interrupt, Terminated) else 130


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``UsageError``), not a usage block."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    """The ``verify`` command line."""
    parser = _Parser(
        prog="verify",
        description="Check published theorems about transformers: sympy proof obligations, "
        "the torch model at the theorem's point (bridge), and real training.",
        epilog="Sweeps: verify sweep ID --grid p=0.05:0.95:10 --grid q=0.05:0.95:10 "
        "[--backend local|ray] (see verify sweep --help).",
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--list", action="store_true", help="list theorem ids and exit")
    target.add_argument("--theorem", metavar="ID", help="verify one theorem")
    target.add_argument("--all", action="store_true", help="verify every registered theorem")
    parser.add_argument("--param", action="append", default=[], metavar="K=V",
                        help="theorem parameter, repeatable (e.g. --param p=0.7 --param q=3/5)")
    parser.add_argument("--budget", choices=("fast", "full"), default="fast",
                        help="fast: exact losses, CPU, seconds; full: paper scale, for a GPU")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--seeds", type=int, default=None, metavar="N",
                        help="training seeds 0..N-1 (default: 1 fast, 5 full)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="torch CPU threads of this run, or of each worker (default 1; "
                        "every core for one theorem in the full budget: see the README)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="with --all: theorems verified in N processes at once (default: "
                        "the number of cores on the CPU, 1 on CUDA); output and reports keep "
                        "the registry's order")
    parser.add_argument("--allow-expensive", action="store_true",
                        help="run even when the estimated cost exceeds the budget's limit")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="write the JSON report here")
    parser.add_argument("--plots", type=Path, default=None, metavar="DIR",
                        help="write the figures (PNG) and their captions (.txt) here")
    baseline = parser.add_mutually_exclusive_group()
    baseline.add_argument("--check-baseline", action="store_true",
                          help="proof regression: compare closed forms, obligations and "
                          "measured values with each paper's committed baselines (exit 1 on a "
                          "change)")
    baseline.add_argument("--update-baseline", action="store_true",
                          help="rewrite the baselines from this run (a reviewed change)")
    return parser


def _check_baseline_request(args: argparse.Namespace, params: dict[str, str]) -> None:
    if (args.check_baseline or args.update_baseline) and (
            params or args.seeds is not None or args.budget != "fast"):
        flag = "--check-baseline" if args.check_baseline else "--update-baseline"
        raise UsageError(f"{flag}: baselines are recorded at the default parameters, the fast "
                         "budget and the default seeds; drop --param, --seeds and --budget")


def _parse_params(items: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise UsageError(f"--param expects NAME=VALUE (got {item!r})")
        params[name.strip()] = value.strip()
    return params


def _check_json_path(path: Path) -> int | None:
    """The report can be written: a writable file path, or a device or pipe with a reader.

    A pipe or device is opened here without blocking (a FIFO nobody reads is an error, not a
    hang) and the descriptor is returned, to be written at the end: closing it now would send
    the reader an end of file.
    """
    if path.is_dir():
        raise UsageError(f"--json {path}: is a directory, expected a file path")
    if path.exists() and not path.is_file():
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            reason = "a pipe nobody reads" if exc.errno == errno.ENXIO else exc.strerror
            raise UsageError(f"--json {path}: cannot write there ({reason})") from None
        os.set_blocking(descriptor, True)
        if stat.S_ISCHR(os.fstat(descriptor).st_mode):
            try:
                os.write(descriptor, b"\n")  # a device that refuses data (/dev/full)
            except OSError as exc:
                os.close(descriptor)
                raise UsageError(f"--json {path}: cannot write there ({exc.strerror})"
                                 ) from None
        return descriptor
    free = shutil.disk_usage(path.parent if path.parent.exists() else Path.cwd()).free
    if free < MIN_FREE_BYTES:
        raise UsageError(f"--json {path}: the disk is full ({free} bytes free)")
    existed = path.exists()
    try:
        with path.open("a"):
            pass
    except OSError as exc:
        raise UsageError(f"--json {path}: cannot write there ({exc.strerror})") from None
    if not existed:
        path.unlink()
    return None


def _check_plots_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--plots {path}: cannot create the directory ({exc.strerror})") from None
    if not os.access(path, os.W_OK):
        raise UsageError(f"--plots {path}: directory is not writable")


def _list(console) -> int:
    from rich.table import Table

    table = Table(title="registered theorems", title_justify="left")
    for column in ("id", "kind", "title", "paper"):
        table.add_column(column, overflow="fold")
    for row in api.list_theorems():
        place = f", {row['place']}" if row["place"] else ""
        table.add_row(row["id"], row["kind"], row["title"], row["paper"] + place)
    console.print(table)
    return 0


def _verify(args: argparse.Namespace, console) -> int:
    params = _parse_params(args.param)
    if args.all and params:
        raise UsageError("--param applies to one theorem; use it with --theorem ID")
    _check_baseline_request(args, params)
    if args.seeds is not None and args.seeds < 1:
        raise UsageError(f"--seeds must be at least 1 (got {args.seeds})")
    if args.threads is not None and not 1 <= args.threads <= (os.cpu_count() or 1) * 4:
        raise UsageError(f"--threads must lie in 1..{(os.cpu_count() or 1) * 4} "
                         f"(got {args.threads})")
    if args.workers is not None and not 1 <= args.workers <= MAX_WORKERS:
        raise UsageError(f"--workers must lie in 1..{MAX_WORKERS} (got {args.workers})")
    if args.workers is not None and not args.all:
        raise UsageError("--workers runs several theorems at once; use it with --all")
    descriptor = _check_json_path(args.json) if args.json is not None else None
    if args.plots is not None:
        _check_plots_dir(args.plots)
    reg = registry.default()
    ids = reg.ids() if args.all else [args.theorem]
    plans = [api.prepare(theorem_id, budget=args.budget, seeds=args.seeds, params=params,
                         allow_expensive=args.allow_expensive)
             for theorem_id in ids]
    for plan in plans:  # a theorem without a usable experiment: exit 2 before any work
        reg.experiment(plan.theorem.id)

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from numerics.device import DeviceUnavailableError, describe, retain_freed_memory, set_threads
    from verify import report
    from verify.pool import TheoremRequest, available_cores, run_theorems

    try:
        device = api.resolve_device(args.device)
    except DeviceUnavailableError as exc:
        raise UsageError(str(exc)) from None
    retain_freed_memory()
    # one thread for the fast budget's many small kernels; a single full-budget run on the CPU
    # gets every core, which its seeds use side by side (numerics.device.run_concurrently):
    # markov-local-minima, 5 seeds, 2-core CPU, 7.6 min with 1 thread, 5.3 min with 2 threads
    # inside each training step, 4.8 min with 2 seeds at a time
    threads = set_threads(args.threads if args.threads is not None
                          else available_cores() if args.budget == "full"
                          and device.type == "cpu" and len(plans) == 1 else None)
    workers = min(len(plans), args.workers if args.workers is not None
                  else 1 if device.type != "cpu" else max(1, available_cores() // threads))
    console.print(f"device: {describe(device)}   budget: {args.budget}"
                  + (f"   {workers} workers" if workers > 1 else ""))
    settings = {"command": ["verify", *sys.argv[1:]], "budget": args.budget,
                "device": describe(device), "threads": threads, "workers": workers,
                "seeds": args.seeds, "params": params}
    verdicts: list[Any] = []
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(),
                      TextColumn("{task.completed}/{task.total} {task.fields[unit]}  "
                                 "{task.fields[loss]}"),
                      TimeElapsedColumn(), console=console, transient=True) as progress:
            if workers > 1:
                task = progress.add_task(f"{len(plans)} theorems on {workers} workers",
                                         total=len(plans), unit="theorems", loss="")
                requests = [TheoremRequest(plan.theorem.id, params, args.budget, args.seeds,
                                           str(device)) for plan in plans]
                stream = run_theorems(requests, workers, threads,
                                      order=lambda i: _expected_seconds(reg, plans[i]))
            else:
                task = None
                stream = _serial(plans, device, progress)
            with closing(stream):
                for verdict in stream:
                    verdicts.append(verdict)
                    try:
                        if task is not None:
                            progress.advance(task)
                        progress.console.print()
                        report.render(verdict, progress.console)
                    except KeyboardInterrupt as interrupt:  # while a verdict is shown
                        # raised inside the stream, which stops it and attaches the verdicts
                        # that had finished behind a slower one (closing it would not)
                        stream.throw(interrupt)
    except BrokenProcessPool as exc:  # a worker was killed (out of memory, a signal)
        verdicts += getattr(exc, "finished", [])
        _partial_report(args, verdicts, settings, descriptor)
        raise WorkerDied("a worker process died (out of memory or killed); finished "
                         f"theorems: {', '.join(v.theorem_id for v in verdicts) or 'none'}"
                         + (f" (incomplete report in {args.json})" if args.json else "")
                         + "; rerun with fewer --workers") from None
    except KeyboardInterrupt as interrupt:
        verdicts += getattr(interrupt, "finished", [])
        _partial_report(args, verdicts, settings, descriptor)
        done = ", ".join(v.theorem_id for v in verdicts) or "none"
        print(f"verify: interrupted; finished theorems: {done}"
              + (f" (incomplete report in {args.json})" if args.json is not None else ""),
              file=sys.stderr)
        return _exit_code(interrupt)
    passed = all(v.passed for v in verdicts)
    data = report.report(verdicts, settings)
    if args.check_baseline or args.update_baseline:
        data["baseline"] = _baselines(args, verdicts, console)
        passed = passed and not data["baseline"]["differences"]
    if args.json is not None:
        _write_report(data, args.json, descriptor)
        console.print(f"report written to {args.json}")
    if args.plots is not None:
        for verdict in verdicts:
            count = len(verdict.figures(args.plots))
            console.print(f"{count} figure(s) of {verdict.theorem_id} written to {args.plots}")
    total = sum(len(v.checks) for v in verdicts)
    failed = sum(not c.passed for v in verdicts for c in v.checks)
    word = ("[green]all checks passed[/green]" if all(v.passed for v in verdicts)
            else f"[red]{failed} failed[/red]")
    console.print(f"{len(verdicts)} theorem(s), {total} checks: {word}")
    return 0 if passed else 1


def _partial_report(args: argparse.Namespace, verdicts: list, settings: dict,
                    descriptor: int | None) -> None:
    """With ``--json``, the report of an interrupted run: the theorems that finished, in the
    registry's order, marked ``"complete": false``."""
    from verify import report

    if args.json is not None:
        order = {theorem_id: i for i, theorem_id in enumerate(registry.default().ids())}
        verdicts = sorted(verdicts, key=lambda v: order.get(v.theorem_id, len(order)))
        _write_report(report.report(verdicts, settings, complete=False), args.json, descriptor)


def _serial(plans: list, device: Any, progress: Any) -> Iterator[Any]:
    """Verify ``plans`` one after the other in this process, a progress bar per training run,
    sharing finished training runs between theorems (a control may reuse another's run)."""
    import numpy as np

    cache: dict[Any, Any] = {}

    def factory(label: str, total: int):
        task = progress.add_task(label, total=total, unit="steps", loss="loss -")
        return lambda done, _total, loss: progress.update(task, completed=done,
                                                          loss=f"loss {loss:.6f}")

    for plan in plans:
        # a non-finite value is reported by the checks themselves (NaN fails every relation,
        # a diverged run names its step): numpy's floating-point warnings would only repeat it
        with np.errstate(all="ignore"):
            yield api.run(plan, device=device, progress=factory, cache=cache)


def _expected_seconds(reg: registry.Registry, plan: Any) -> float:
    """The paper's cost estimate of a plan (the longest theorems start first)."""
    from verify.harness import estimated_seconds

    return estimated_seconds(reg.entry(plan.theorem.id), plan.params, plan.budget,
                             len(plan.seeds))


def _write_report(data: dict, path: Path, descriptor: int | None) -> None:
    """Write the report to ``path`` (atomically), or to the pipe or device opened for it."""
    from verify import report

    try:
        if descriptor is None:
            report.write_json(data, path)
        else:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(report.json_text(data))
    except OSError as exc:
        raise OutputError(f"--json {path}: cannot write the report ({exc.strerror or exc})"
                          ) from None


class WorkerDied(Exception):
    """A worker process of ``--workers`` died: one line, exit code 1 (the run is incomplete,
    so not every check passed)."""


class OutputError(Exception):
    """Writing a result failed after the run (disk full, permission): one line, exit 2."""


#: The most worker processes ``--workers`` may start (each holds a torch runtime).
MAX_WORKERS = 64

#: Free space a report needs before a run starts (reports are a few hundred kB at most).
MIN_FREE_BYTES = 2**20


def _baselines(args: argparse.Namespace, verdicts, console) -> dict:
    """Check against or rewrite the committed baselines; print what changed."""
    from verify import baseline
    from verify.report import git_revision

    reg = registry.default()
    records = []
    for verdict in verdicts:
        directory = _baseline_dir(reg, verdict.theorem_id)
        revision = git_revision(directory) if args.update_baseline else None
        records.append((baseline.snapshot(verdict, revision), directory))
    if args.update_baseline:
        for record, directory in records:
            console.print(f"baseline written to {baseline.write(record, directory)}")
        return {"updated": [r["theorem"] for r, _ in records], "differences": []}
    differences = [d for record, directory in records
                   for d in baseline.compare(baseline.load(record["theorem"], directory),
                                             record)]
    if differences:
        console.print(f"[red]proof regression: {len(differences)} change(s) against the "
                      "committed baselines[/red]")
        for difference in differences:
            console.print(difference.describe(), markup=False, highlight=False)
        console.print("If the change is intended, record it with `verify --all "
                      "--update-baseline` in the same commit.")
    else:
        console.print(f"[green]proof regression: {len(records)} theorem(s) match their "
                      "baselines[/green]")
    return {"checked": [r["theorem"] for r, _ in records],
            "differences": [vars(d) for d in differences]}


def _baseline_dir(reg: registry.Registry, theorem_id: str) -> Path:
    directory = reg.paper_of(theorem_id).baselines
    if directory is None:
        raise UsageError(f"{theorem_id}: its paper registers no baseline directory")
    return directory


def build_sweep_parser() -> argparse.ArgumentParser:
    """The ``verify sweep`` subcommand."""
    parser = _Parser(
        prog="verify sweep",
        description="Evaluate a theorem's checks over a grid of parameters (a phase diagram): "
        "one task per point, results written as tasks finish, re-runs resume.",
    )
    parser.add_argument("theorem", metavar="ID", help="theorem id (see verify --list)")
    parser.add_argument("--grid", action="append", default=[], metavar="K=START:STOP:NUM",
                        help="swept parameter, repeatable (e.g. --grid p=0.05:0.95:10)")
    parser.add_argument("--param", action="append", default=[], metavar="K=V",
                        help="fixed parameter, repeatable")
    parser.add_argument("--budget", choices=("fast", "full"), default="fast")
    parser.add_argument("--seeds", type=int, default=None, metavar="N",
                        help="training seeds per point (default: the budget's)")
    parser.add_argument("--backend", choices=("local", "ray"), default="local",
                        help="local process pool (default) or a Ray cluster")
    parser.add_argument("--address", default=None, metavar="HOST:PORT",
                        help="Ray cluster to join (default: start a local Ray)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="parallel tasks (local processes, or CPUs of a local Ray)")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="results directory (default: sweeps/ID); re-runs resume there")
    return parser


def _sweep(argv: Sequence[str], console) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from verify import sweeps

    args = build_sweep_parser().parse_args(argv)
    if not args.grid:
        raise UsageError("verify sweep needs at least one --grid NAME=START:STOP:NUM "
                         "(see verify sweep --help)")
    workers = args.workers if args.workers is not None else os.cpu_count() or 1
    with Progress(TextColumn("sweep {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as progress:
        bar: list[Any] = []

        def on_start(points: int, finished: int) -> None:
            progress.console.print(
                f"{args.theorem}: {points} points, {finished} already finished, running "
                f"{points - finished} on the {args.backend} backend ({workers} workers)")
            bar.append(progress.add_task(args.theorem, total=points, completed=finished))

        result = sweeps.run_sweep(args.theorem, args.grid, budget=args.budget, seeds=args.seeds,
                                 fixed=_parse_params(args.param), backend=args.backend,
                                 workers=workers, address=args.address, out=args.out,
                                 on_start=on_start, on_point=lambda: progress.advance(bar[0]))
    if result.interrupted:
        print(f"verify: interrupted: finished points are kept in {result.directory}; run the "
              "same command again to resume", file=sys.stderr)
        return 143 if result.interrupted == "terminate" else 130
    summary = result.summary
    table = Table(title=f"sweep {args.theorem}: where the prediction held", title_justify="left")
    for column in ("points", "held", "did not hold", "outside assumptions", "skipped",
                   "task errors"):
        table.add_column(column)
    table.add_row(str(summary["points"]), str(summary["passed"]),
                  str(summary["failed-checks"]), str(summary["outside"]),
                  str(summary["skipped"]), str(summary["failed"]))
    console.print(table)
    for reason in summary["outside_reasons"][:3]:
        console.print(f"outside: {reason}", markup=False)
    for point in summary["not_held"]:
        console.print(f"did not hold at {point}", markup=False)
    for error in summary["errors"]:
        console.print(f"task error at {error['params']}: {error['error']}", markup=False)
    out = result.directory
    console.print(f"results: {out / 'sweep.csv'}, {out / 'sweep.json'}; "
                  f"{len(result.figures)} heatmaps in {out}")
    return 0 if result.passed else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``verify`` console script.

    SIGTERM stops a run like Ctrl-C (exit 143, 130); a second signal exits at once (one
    within :data:`REPEAT_GRACE` of the first is taken as the first delivered again).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if threading.current_thread() is not threading.main_thread():
        return _main(argv)
    previous = {signum: signal.signal(signum, _interrupt)
                for signum in (signal.SIGINT, signal.SIGTERM)}
    code = None
    try:
        code = _main(argv)
        return code
    finally:
        if code not in (130, 143):  # after an interrupt the second-signal handlers stay
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def console() -> NoReturn:
    """The ``verify`` console script (and ``python -m verify``): :func:`main`, exiting with its
    code. After an interrupt (130, 143) of a process without process pools the process exits
    once its output is flushed and the ``atexit`` handlers have run (its report is already
    written), without the interpreter's and the C-level teardown: an interrupt that stopped
    runs side by side on threads
    (:func:`~numerics.device.run_concurrently`) otherwise sometimes ended in an abort in
    torch's C++ teardown at exit ("terminate called without an active exception", exit 134),
    after the threads had finished."""
    code = main()
    # a process that made multiprocessing locks (the process pools of --all and of sweeps,
    # whose runs are in the workers) exits normally: the interpreter's teardown releases
    # them, where a fast exit leaves them to the resource tracker, which warns with a
    # traceback
    if code in (130, 143) and "multiprocessing.synchronize" not in sys.modules:
        # the atexit handlers (logging, ray); threading's exit hooks and non-daemon threads
        # are skipped: an interrupted run has stopped its threads already
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe (verify ... | head): nothing to keep
                pass
        os._exit(code)
    sys.exit(code)


def _main(argv: list[str]) -> int:
    from rich.console import Console

    console = Console()  # honours COLUMNS
    if not console.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
        console = Console(width=150)  # logs and CI: wide enough that the table stays readable
    try:
        for problem in registry.default().problems:  # broken plugins: one line each
            print(f"verify: warning: {problem}", file=sys.stderr)
        if argv[:1] == ["sweep"]:
            return _sweep(argv[1:], console)
        args = build_parser().parse_args(argv)
        if args.list:
            return _list(console)
        return _verify(args, console)
    except (UsageError, TheoremError) as exc:
        print(f"verify: error: {exc}", file=sys.stderr)
        return 2
    except OutputError as exc:
        print(f"verify: error: {exc}", file=sys.stderr)
        return 2
    except WorkerDied as exc:
        print(f"verify: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as interrupt:
        print("verify: interrupted", file=sys.stderr)
        return _exit_code(interrupt)


if __name__ == "__main__":
    console()

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
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from contextlib import closing
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from verify.files import directory_problem, regular_file_problem

if TYPE_CHECKING:  # sympy and the papers load in main, after its Ctrl-C handling is installed
    from verify import registry


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


#: The namespace attribute that maps each option given on the command line to its name.
GIVEN = "given_options"


def given(args: argparse.Namespace) -> dict[str, str]:
    """The options given on the command line: destination to option name."""
    return getattr(args, GIVEN, {})


class _Once(argparse.Action):
    """Store an option's value, refusing the option a second time: a silent "the last one
    wins" (``--theorem A --theorem B``) would run something else than was asked for."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        _record(parser, namespace, self, repeatable=False)
        setattr(namespace, self.dest, values)


class _OnceFlag(_Once):
    """A flag (``store_true``) given at most once."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=False, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        super().__call__(parser, namespace, True, option_string)


class _Repeated(argparse.Action):
    """A repeatable option (``--param``, ``--grid``): its values in a list."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        _record(parser, namespace, self, repeatable=True)
        setattr(namespace, self.dest, [*getattr(namespace, self.dest), values])


def _record(parser: argparse.ArgumentParser, namespace: argparse.Namespace,
            action: argparse.Action, repeatable: bool) -> None:
    """Note that ``action``'s option was given (refusing a second one unless ``repeatable``)."""
    seen = vars(namespace).setdefault(GIVEN, {})
    name = action.option_strings[-1]
    if action.dest in seen and not repeatable:
        parser.error(f"{name} is given twice; give it once")
    seen[action.dest] = name


def _count(text: str) -> int:
    """An integer option: ASCII digits only, as every number on the command line (``٣`` or
    ``1_000``, which ``int`` reads, are refused)."""
    digits = text[1:] if text[:1] in "+-" else text
    if not (digits.isascii() and digits.isdigit()) or len(digits) > MAX_DIGITS:
        raise argparse.ArgumentTypeError(f"invalid int value: {text[:40]!r} (ASCII digits "
                                         "only)")
    return int(text)


#: The most digits an integer option may have (every limit on one is far below 10^18).
MAX_DIGITS = 18


def _file_path(text: str) -> Path:
    """An output file as given: neither empty nor ending in a slash (which ``Path`` would
    silently drop)."""
    if not text:
        raise argparse.ArgumentTypeError("empty path, expected a file path")
    if text.endswith(("/", os.sep)):
        raise argparse.ArgumentTypeError(f"{text}: ends in a slash, expected a file path")
    return Path(text)


def _dir_path(text: str) -> Path:
    """An output directory as given: not empty (``Path("")`` would be the current one)."""
    if not text:
        raise argparse.ArgumentTypeError("empty path, expected a directory")
    return Path(text)


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
    target.add_argument("--list", action=_OnceFlag, help="list theorem ids and exit")
    target.add_argument("--theorem", action=_Once, metavar="ID", help="verify one theorem")
    target.add_argument("--all", action=_OnceFlag, help="verify every registered theorem")
    parser.add_argument("--param", action=_Repeated, default=[], metavar="K=V",
                        help="theorem parameter, repeatable (e.g. --param p=0.7 --param q=3/5)")
    parser.add_argument("--budget", action=_Once, choices=("fast", "full"), default="fast",
                        help="fast: exact losses, CPU, seconds; full: paper scale, for a GPU")
    parser.add_argument("--device", action=_Once, choices=("auto", "cpu", "cuda"),
                        default="auto")
    parser.add_argument("--seeds", action=_Once, type=_count, default=None, metavar="N",
                        help="training seeds 0..N-1 (default: 1 fast, 5 full)")
    parser.add_argument("--threads", action=_Once, type=_count, default=None, metavar="N",
                        help="torch CPU threads of this run, or of each worker (default 1; "
                        "every core for one theorem in the full budget: see the README)")
    parser.add_argument("--workers", action=_Once, type=_count, default=None, metavar="N",
                        help="with --all: theorems verified in N processes at once (default: "
                        "the number of cores on the CPU, 1 on CUDA); output and reports keep "
                        "the registry's order")
    parser.add_argument("--allow-expensive", action=_OnceFlag,
                        help="run even when the estimated cost exceeds the budget's limit")
    parser.add_argument("--json", action=_Once, type=_file_path, default=None, metavar="PATH",
                        help="write the JSON report here")
    parser.add_argument("--plots", action=_Once, type=_dir_path, default=None, metavar="DIR",
                        help="write the figures (PNG) and their captions (.txt) here")
    baseline = parser.add_mutually_exclusive_group()
    baseline.add_argument("--check-baseline", action=_OnceFlag,
                          help="proof regression: compare closed forms, obligations and "
                          "measured values with each paper's committed baselines (exit 1 on a "
                          "change)")
    baseline.add_argument("--update-baseline", action=_OnceFlag,
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
            raise UsageError(f"--param expects NAME=VALUE (got {item[:80]!r})")
        if name.strip() in params:
            raise UsageError(f"--param {name.strip()[:40]} is given twice; give it once")
        params[name.strip()] = value.strip()
    return params


def _check_json_path(path: Path) -> int | None:
    """The report can be written: a writable file path, or a device or pipe with a reader.

    A pipe or device is opened here without blocking (a FIFO nobody reads is an error, not a
    hang) and the descriptor is returned, to be written at the end: closing it now would send
    the reader an end of file.
    """
    try:
        mode: int | None = path.stat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:  # a name too long, a file where a directory is expected
        raise UsageError(f"--json {path}: cannot write there ({exc.strerror})") from None
    if mode is not None and stat.S_ISDIR(mode):
        raise UsageError(f"--json {path}: is a directory, expected a file path")
    if mode is not None and not stat.S_ISREG(mode):
        return _open_special(path, mode)
    usage = shutil.disk_usage(path.parent if path.parent.exists() else Path.cwd())
    if usage.total == 0:  # /proc, /sys: no blocks, and not a place for a report
        raise UsageError(f"--json {path}: cannot write there (not a regular file system: "
                         "/proc, /sys and the like hold no reports)")
    if usage.free < MIN_FREE_BYTES:
        raise UsageError(f"--json {path}: the disk is full ({usage.free} bytes free)")
    try:
        with path.open("a"):
            pass
    except OSError as exc:
        raise UsageError(f"--json {path}: cannot write there ({exc.strerror})") from None
    if mode is None:
        path.unlink()
    return None


def _open_special(path: Path, mode: int) -> int:
    """Open the pipe or device ``path`` for the report (see :func:`_check_json_path`)."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        nobody = exc.errno == errno.ENXIO and stat.S_ISFIFO(mode)
        reason = "a pipe nobody reads" if nobody else exc.strerror
        raise UsageError(f"--json {path}: cannot write there ({reason})") from None
    os.set_blocking(descriptor, True)
    if stat.S_ISCHR(mode):
        try:
            os.write(descriptor, b"\n")  # a device that refuses data (/dev/full)
        except OSError as exc:
            os.close(descriptor)
            raise UsageError(f"--json {path}: cannot write there ({exc.strerror})") from None
    return descriptor


def _check_plots_dir(path: Path) -> None:
    """The figures can be written in ``path``: checked without creating it (a request that
    fails its validation leaves nothing behind)."""
    problem = directory_problem(path)
    if problem is not None:
        raise UsageError(f"--plots {path}: cannot write the figures there ({problem})")


def _make_plots_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--plots {path}: cannot create the directory ({exc.strerror})") from None


def _check_cuda(device: str) -> None:
    """Refuse ``--device cuda`` at once where the installed torch is a CPU-only build (its
    version ends in ``+cpu``): the same message as :func:`numerics.device.select_device`,
    without importing torch (seconds)."""
    if device != "cuda":
        return
    try:
        version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        return
    if version.endswith("+cpu"):
        raise UsageError("--device cuda was asked for, but CUDA is not available on this "
                         f"machine (torch {version}); use --device cpu or --device auto")


def _list(args: argparse.Namespace, console) -> int:
    unused = [name for dest, name in given(args).items() if dest != "list"]
    if unused:
        raise UsageError(f"--list takes no other option (got {unused[0]})")
    from rich.table import Table

    from verify import api

    table = Table(title="registered theorems", title_justify="left")
    for column in ("id", "kind", "title", "paper"):
        table.add_column(column, overflow="fold")
    for row in api.list_theorems():
        place = f", {row['place']}" if row["place"] else ""
        table.add_row(row["id"], row["kind"], row["title"], row["paper"] + place)
    console.print(table)
    return 0


def _check_outputs(args: argparse.Namespace) -> None:
    """``--json`` and ``--plots`` name different paths (a report where the figures' directory
    goes fails only after the run), and the figures' directory can be made."""
    if args.json is not None and args.plots is not None and (
            os.path.abspath(args.json) == os.path.abspath(args.plots)):
        raise UsageError(f"--json and --plots name the same path ({args.json}); the report "
                         "is a file, the figures go in a directory")
    if args.plots is not None:
        _check_plots_dir(args.plots)


def _verify(args: argparse.Namespace, console) -> int:
    from verify import api, registry

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
    _check_cuda(args.device)
    _check_outputs(args)
    descriptor = _check_json_path(args.json) if args.json is not None else None
    reg = registry.default()
    ids = reg.ids() if args.all else [args.theorem]
    plans = [api.prepare(theorem_id, budget=args.budget, seeds=args.seeds, params=params,
                         allow_expensive=args.allow_expensive)
             for theorem_id in ids]
    for plan in plans:  # a theorem without a usable experiment: exit 2 before any work
        reg.experiment(plan.theorem.id)
    baselines = _baselines_before(args, reg, [plan.theorem.id for plan in plans])
    if args.plots is not None:
        _make_plots_dir(args.plots)

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
        data["baseline"] = _baselines(args, verdicts, console, baselines)
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
    from verify import registry, report

    if args.json is not None:
        order = {theorem_id: i for i, theorem_id in enumerate(registry.default().ids())}
        verdicts = sorted(verdicts, key=lambda v: order.get(v.theorem_id, len(order)))
        _write_report(report.report(verdicts, settings, complete=False), args.json, descriptor)


def _serial(plans: list, device: Any, progress: Any) -> Iterator[Any]:
    """Verify ``plans`` one after the other in this process, a progress bar per training run,
    sharing finished training runs between theorems (a control may reuse another's run)."""
    import numpy as np

    from verify import api

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


def _baselines_before(args: argparse.Namespace, reg: registry.Registry,
                      ids: list[str]) -> dict[str, tuple[Path, dict | None]]:
    """Before any run: the baseline directory of each theorem and, with ``--check-baseline``,
    its committed baseline, read and validated (an unreadable or malformed one is a usage
    error, not a traceback after the run); with ``--update-baseline``, a directory where the
    baseline can be written."""
    from verify import baseline

    found: dict[str, tuple[Path, dict | None]] = {}
    if not (args.check_baseline or args.update_baseline):
        return found
    for theorem_id in ids:
        directory = _baseline_dir(reg, theorem_id)
        if args.update_baseline:
            problem = (directory_problem(directory)
                       or regular_file_problem(baseline.path_for(theorem_id, directory)))
            if problem is not None:
                raise UsageError(f"--update-baseline: cannot write the baseline of "
                                 f"{theorem_id} in {directory} ({problem})")
            found[theorem_id] = (directory, None)
            continue
        try:
            found[theorem_id] = (directory, baseline.load(theorem_id, directory))
        except baseline.BaselineError as exc:
            raise UsageError(f"--check-baseline: {exc}; restore it, or record it again "
                             "with --update-baseline") from None
    return found


def _baselines(args: argparse.Namespace, verdicts, console,
               committed: dict[str, tuple[Path, dict | None]]) -> dict:
    """Check against or rewrite the committed baselines (read before the run:
    :func:`_baselines_before`); print what changed."""
    from verify import baseline
    from verify.report import git_revision

    records = []
    for verdict in verdicts:
        directory = committed[verdict.theorem_id][0]
        revision = git_revision(directory) if args.update_baseline else None
        records.append((baseline.snapshot(verdict, revision), directory))
    if args.update_baseline:
        for record, directory in records:
            try:
                written = baseline.write(record, directory)
            except OSError as exc:
                raise OutputError(f"--update-baseline: cannot write the baseline of "
                                  f"{record['theorem']} in {directory} "
                                  f"({exc.strerror or exc})") from None
            console.print(f"baseline written to {written}")
        return {"updated": [r["theorem"] for r, _ in records], "differences": []}
    differences = [d for record, _ in records
                   for d in baseline.compare(committed[record["theorem"]][1], record)]
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
    parser.add_argument("--grid", action=_Repeated, default=[], metavar="K=START:STOP:NUM",
                        help="swept parameter, repeatable (e.g. --grid p=0.05:0.95:10)")
    parser.add_argument("--param", action=_Repeated, default=[], metavar="K=V",
                        help="fixed parameter, repeatable")
    parser.add_argument("--budget", action=_Once, choices=("fast", "full"), default="fast")
    parser.add_argument("--seeds", action=_Once, type=_count, default=None, metavar="N",
                        help="training seeds per point (default: the budget's)")
    parser.add_argument("--backend", action=_Once, choices=("local", "ray"), default="local",
                        help="local process pool (default) or a Ray cluster")
    parser.add_argument("--address", action=_Once, default=None, metavar="HOST:PORT",
                        help="Ray cluster to join (default: start a local Ray)")
    parser.add_argument("--workers", action=_Once, type=_count, default=None, metavar="N",
                        help="parallel tasks (local processes, or CPUs of a local Ray)")
    parser.add_argument("--out", action=_Once, type=_dir_path, default=None, metavar="DIR",
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
    workers = args.workers if args.workers is not None else min(os.cpu_count() or 1,
                                                                 sweeps.MAX_WORKERS)
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
    if threading.current_thread() is not threading.main_thread():
        return _main(list(sys.argv[1:] if argv is None else argv))
    previous = {signum: signal.signal(signum, _interrupt)  # first: before any slow import
                for signum in (signal.SIGINT, signal.SIGTERM)}
    argv = list(sys.argv[1:] if argv is None else argv)
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
    out = _Output(sys.stdout)
    previous_format = warnings.formatwarning
    warnings.formatwarning = _one_line_warning
    try:
        code = _command(argv, out)
    except KeyboardInterrupt as interrupt:  # first: it may come in any import (sympy, torch)
        print("verify: interrupted", file=sys.stderr)
        return _exit_code(interrupt)
    except _one_line_errors() as exc:
        print(f"verify: error: {exc}", file=sys.stderr)
        return 2
    except WorkerDied as exc:
        print(f"verify: error: {exc}", file=sys.stderr)
        return 1
    finally:
        warnings.formatwarning = previous_format
    return _after_output(code, out)


def _one_line_errors() -> tuple[type[Exception], ...]:
    """The errors printed as one line, exit code 2: usage errors, a theorem's refusal
    (:class:`theorems.TheoremError`, imported here: sympy loads after the signal handlers)
    and results that could not be written."""
    from theorems import TheoremError

    return (UsageError, TheoremError, OutputError)


def _command(argv: list[str], out: _Output) -> int:
    """Run the command line ``argv``, printing to ``out``; its exit code."""
    from verify import registry

    console = _console(out)
    for problem in registry.default().problems:  # broken plugins: one line each
        print(f"verify: warning: {problem}", file=sys.stderr)
    if argv[:1] == ["sweep"]:
        return _sweep(argv[1:], console)
    args = build_parser().parse_args(argv)
    if args.list:
        return _list(args, console)
    return _verify(args, console)


def _console(out: _Output) -> Any:
    """The console that prints to ``out``, as wide as ``COLUMNS`` says; else the terminal's
    width, or 150 columns in logs and CI (wide enough that the table stays readable)."""
    from rich.console import Console

    console = Console(file=out)  # honours COLUMNS
    columns = os.environ.get("COLUMNS", "")
    usable = columns.isascii() and columns.isdigit() and int(columns) > 0
    if not console.is_terminal and not usable:
        console.width = 150
    elif columns and not usable:  # COLUMNS=0: Rich would print nothing at all
        console.width = shutil.get_terminal_size().columns
    return console


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str,
                      lineno: int, line: str | None = None) -> str:
    """A warning as the command prints it: one line (not the source line that raised it)."""
    return f"verify: warning: {message}\n"


class _Output:
    """Standard output as the console writes it, which never stops a run (the report is
    written, the exit code is the checks').

    Text the stream's encoding cannot hold (``PYTHONIOENCODING=ascii``) is written with ``?``
    in its place. After a failed write (a closed pipe, a full disk) the rest of the output is
    dropped, the stream's descriptor is pointed at ``/dev/null`` (so that the interpreter's
    last flush does not fail again), and the error is kept in :attr:`failure`.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.failure: OSError | None = None

    def __getattr__(self, name: str) -> Any:  # isatty, encoding, fileno: the stream's
        return getattr(self.stream, name)

    def write(self, text: str) -> int:
        self._guarded(self._write, text)
        return len(text)

    def flush(self) -> None:
        self._guarded(self.stream.flush)

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
        except UnicodeEncodeError as exc:
            self.stream.write(text.encode(exc.encoding, "replace").decode(exc.encoding))

    def _guarded(self, action: Callable[..., Any], *args: Any) -> None:
        if self.failure is not None:
            return
        try:
            action(*args)
        except OSError as exc:
            self.failure = exc
            self._silence()

    def _silence(self) -> None:
        try:
            descriptor = self.stream.fileno()
        except (OSError, ValueError):  # not a file (a test's capture): nothing to flush later
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, descriptor)
        os.close(devnull)


def _after_output(code: int, out: _Output) -> int:
    """The exit code once the output is done: a standard output that could not be written (a
    full disk, not a closed pipe, whose reader wanted no more) is one line and exit 2, as any
    result that could not be written."""
    failure = out.failure
    if failure is None or failure.errno == errno.EPIPE or code not in (0, 1):
        return code
    print(f"verify: error: cannot write to standard output ({failure.strerror or failure})",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    console()

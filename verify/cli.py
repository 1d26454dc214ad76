"""The ``verify`` command: check theorems symbolically and by training, print a verdict.

Exit codes: 0 every check passed, 1 some check failed, 2 usage error (one line, no traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import theorems
from theorems import TheoremError


class UsageError(Exception):
    """A mistake in the command line; printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="write the JSON report here")
    parser.add_argument("--plots", type=Path, default=None, metavar="DIR",
                        help="write loss-curve figures (PNG) into this directory")
    baseline = parser.add_mutually_exclusive_group()
    baseline.add_argument("--check-baseline", action="store_true",
                          help="proof regression: compare closed forms, obligations and "
                          "measured values with verify/baselines/ (exit 1 on a change)")
    baseline.add_argument("--update-baseline", action="store_true",
                          help="rewrite verify/baselines/ from this run (a reviewed change)")
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


def _check_json_path(path: Path) -> None:
    if path.is_dir():
        raise UsageError(f"--json {path}: is a directory, expected a file path")
    existed = path.exists()
    try:
        with path.open("a"):
            pass
    except OSError as exc:
        raise UsageError(f"--json {path}: cannot write there ({exc.strerror})") from None
    if not existed:
        path.unlink()


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
    for theorem_id in theorems.ids():
        theorem = theorems.get(theorem_id)
        table.add_row(theorem.id, theorem.kind, theorem.title, theorem.paper)
    console.print(table)
    return 0


def _verify(args: argparse.Namespace, console) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from numerics.device import DeviceUnavailableError, describe, select_device
    from verify import harness, report

    params = _parse_params(args.param)
    if args.all and params:
        raise UsageError("--param applies to one theorem; use it with --theorem ID")
    _check_baseline_request(args, params)
    try:
        device = select_device(args.device)
    except DeviceUnavailableError as exc:
        raise UsageError(str(exc)) from None
    if args.json is not None:
        _check_json_path(args.json)
    if args.plots is not None:
        _check_plots_dir(args.plots)
    ids = theorems.ids() if args.all else [args.theorem]
    plans = [harness.prepare(theorem_id, params, args.budget, args.seeds) for theorem_id in ids]

    console.print(f"device: {describe(device)}   budget: {args.budget}")
    verdicts = []
    with Progress(TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total} steps  loss {task.fields[loss]}"),
                  TimeElapsedColumn(), console=console, transient=True) as progress:

        def factory(label: str, total: int):
            task = progress.add_task(label, total=total, loss="-")
            return lambda done, _total, loss: progress.update(task, completed=done,
                                                              loss=f"{loss:.6f}")

        for plan in plans:
            verdict = harness.run(plan, device, factory)
            verdicts.append(verdict)
            progress.console.print()
            report.render(verdict, progress.console)
    passed = all(v.passed for v in verdicts)
    settings = {"command": ["verify", *sys.argv[1:]], "budget": args.budget,
                "device": describe(device), "seeds": args.seeds, "params": params}
    data = report.report(verdicts, settings)
    if args.check_baseline or args.update_baseline:
        data["baseline"] = _baselines(args, plans, verdicts, console)
        passed = passed and not data["baseline"]["differences"]
    if args.json is not None:
        report.write_json(data, args.json)
        console.print(f"report written to {args.json}")
    if args.plots is not None:
        for verdict in verdicts:
            for path in report.write_figures(verdict, args.plots):
                console.print(f"figure written to {path}")
    total = sum(len(v.checks) for v in verdicts)
    failed = sum(not c.passed for v in verdicts for c in v.checks)
    word = ("[green]all checks passed[/green]" if all(v.passed for v in verdicts)
            else f"[red]{failed} failed[/red]")
    console.print(f"{len(verdicts)} theorem(s), {total} checks: {word}")
    return 0 if passed else 1


def _baselines(args: argparse.Namespace, plans, verdicts, console) -> dict:
    """Check against or rewrite the committed baselines; print what changed."""
    from verify import baseline

    records = [baseline.snapshot(plan, verdict) for plan, verdict in zip(plans, verdicts,
                                                                         strict=True)]
    if args.update_baseline:
        for record in records:
            console.print(f"baseline written to {baseline.write(record)}")
        return {"updated": [r["theorem"] for r in records], "differences": []}
    differences = [d for record in records
                   for d in baseline.compare(baseline.load(record["theorem"]), record)]
    if differences:
        console.print(f"[red]proof regression: {len(differences)} change(s) against "
                      f"{baseline.BASELINE_DIR}[/red]")
        for difference in differences:
            console.print(difference.describe(), markup=False, highlight=False)
        console.print("If the change is intended, record it with `verify --all "
                      "--update-baseline` in the same commit.")
    else:
        console.print(f"[green]proof regression: {len(records)} theorem(s) match their "
                      "baselines[/green]")
    return {"checked": [r["theorem"] for r in records],
            "differences": [vars(d) for d in differences]}


def build_sweep_parser() -> argparse.ArgumentParser:
    """The ``verify sweep`` subcommand."""
    parser = argparse.ArgumentParser(
        prog="verify sweep",
        description="Evaluate a theorem's checks over a grid of parameters (a phase diagram): "
        "one task per point, results written as tasks finish, re-runs resume.",
    )
    parser.add_argument("theorem", metavar="ID", help="theorem id (see verify --list)")
    parser.add_argument("--grid", action="append", required=True, metavar="K=START:STOP:NUM",
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
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, metavar="N",
                        help="parallel tasks (local processes, or CPUs of a local Ray)")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="results directory (default: sweeps/ID); re-runs resume there")
    return parser


def _sweep(argv: Sequence[str], console) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from verify import sweep
    from verify.experiments import experiment_for

    args = build_sweep_parser().parse_args(argv)
    theorem = theorems.get(args.theorem)
    fixed = _parse_params(args.param)
    theorem.resolve_params(fixed)  # unknown or malformed fixed parameters: exit 2
    axes = [sweep.parse_grid(spec, theorem) for spec in args.grid]
    if args.seeds is not None and args.seeds < 1:
        raise UsageError(f"--seeds must be at least 1 (got {args.seeds})")
    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1 (got {args.workers})")
    if args.address and args.backend != "ray":
        raise UsageError("--address needs --backend ray")
    if args.backend == "ray" and args.address:
        sweep.check_ray_address(args.address)
    tasks = sweep.tasks_for(theorem.id, axes, fixed, args.budget, args.seeds)
    out = args.out or Path("sweeps") / theorem.id
    try:
        store = sweep.ResultStore(out)
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot create the directory ({exc.strerror})") from None
    records = {task: store.finished(task) for task in tasks}
    todo = [task for task in tasks if records[task] is None]
    console.print(f"{theorem.id}: {len(tasks)} points, {len(tasks) - len(todo)} already "
                  f"finished in {out}, running {len(todo)} on the {args.backend} backend "
                  f"({args.workers} workers)")
    experiment = experiment_for(theorem.id)
    with Progress(TextColumn("sweep {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as progress:
        bar = progress.add_task(theorem.id, total=len(tasks), completed=len(tasks) - len(todo))

        def report(task, record) -> None:
            store.write(record)
            records[task] = record
            progress.advance(bar)

        try:
            if args.backend == "ray":
                sweep.run_ray(todo, args.workers, args.address, report)
            else:
                sweep.run_local(todo, args.workers, report)
        except KeyboardInterrupt:
            console.print(f"interrupted: finished points are kept in {out}; run the same "
                          "command again to resume")
            return 130
    ordered = [records[task] for task in tasks]
    spec = {"theorem": theorem.id, "grid": [vars(axis) for axis in axes], "fixed": fixed,
            "budget": args.budget, "seeds": args.seeds, "backend": args.backend}
    summary = sweep.summarise(ordered)
    sweep.write_tables(out, {**spec, "summary": summary}, ordered)
    figures = sweep.write_heatmaps(out, spec, ordered, experiment.overlay)
    table = Table(title=f"sweep {theorem.id}: where the prediction held", title_justify="left")
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
    console.print(f"results: {out / 'sweep.csv'}, {out / 'sweep.json'}; "
                  f"{len(figures)} heatmaps in {out}")
    return 0 if not summary["failed-checks"] and not summary["failed"] else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``verify`` console script."""
    from rich.console import Console

    argv = list(sys.argv[1:] if argv is None else argv)
    console = Console()
    if not console.is_terminal:  # logs and CI: wide enough that the table stays readable
        console = Console(width=150)
    try:
        if argv[:1] == ["sweep"]:
            return _sweep(argv[1:], console)
        args = build_parser().parse_args(argv)
        if args.list:
            return _list(console)
        return _verify(args, console)
    except (UsageError, TheoremError) as exc:
        print(f"verify: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

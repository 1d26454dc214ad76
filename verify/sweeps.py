"""Parameter sweeps and phase diagrams: a theorem's checks over a grid of parameter values.

``verify sweep ID --grid p=0.05:0.95:10 --grid q=0.05:0.95:10`` makes one task per grid point.
A task resolves the point's parameters; where they satisfy the theorem's assumptions it runs
the theorem's full verification (obligations, bridge, training, controls), elsewhere it is
reported as *outside* with the violated assumption. Experiments may also define *phase
quantities* measured at every point, inside or outside (for Markov: where tied and untied
training end between the entropy rate and H(pi)), which is what a phase diagram shows.

Tasks run in a local process pool (one torch thread per worker) or on a Ray cluster. Each
finished task is written to ``OUT/tasks/`` at once; a re-run of the same sweep skips finished
tasks (resume after Ctrl-C or a lost worker); a task that raises is retried once, then
recorded as failed with its error while the others go on.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import operator
import pickle
import re
import socket
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Executor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from itertools import product
from pathlib import Path
from typing import Any

from theorems import Parameter, ParameterError, Theorem, TheoremError
from theorems.core import MAX_DIGITS
from verify import harness, registry
from verify.files import directory_problem, regular_file_problem, write_atomic
from verify.pool import process_pool, stop_workers

#: Statuses of a finished task; ``failed`` tasks are run again by a re-run of the sweep.
FINISHED = ("passed", "failed-checks", "outside", "skipped")
#: The most grid points one sweep may have (each point is a full verification).
MAX_POINTS = 10_000
#: The most parallel tasks a sweep may run (as ``verify --all --workers``: each holds a torch
#: runtime).
MAX_WORKERS = 64


class SweepError(TheoremError):
    """A sweep request that cannot run (bad grid, unreachable Ray, ...): exit code 2."""


@dataclass(frozen=True)
class Axis:
    """One swept parameter.

    Attributes
    ----------
    name : str
    values : tuple[str, ...]
        Exact values as the parameter parser reads them (``1/20``, not ``0.05``).
    """

    name: str
    values: tuple[str, ...]


def parse_grid(spec: str, theorem: Theorem) -> Axis:
    """``name=start:stop:num``: ``num`` evenly spaced values from ``start`` to ``stop``.

    Values are exact rationals (``0.05:0.95:10`` gives 1/20, 3/20, ..., 19/20).

    Raises
    ------
    SweepError
        Malformed spec, unknown or non-numeric parameter, ``num < 1`` (an empty grid), or
        non-integer values for an integer parameter.
    """
    name, sep, bounds = spec.partition("=")
    parts = bounds.split(":")
    if not sep or len(parts) != 3 or not name.strip():
        raise SweepError(f"--grid expects NAME=START:STOP:NUM (got {spec!r})")
    name = name.strip()
    kinds = {p.name: p.kind for p in theorem.parameters}
    if name not in kinds:
        raise SweepError(f"--grid {spec!r}: {theorem.id} has no parameter {name!r} "
                         f"(its parameters: {', '.join(kinds)})")
    if kinds[name] == "text":
        raise SweepError(f"--grid {spec!r}: {name} is not numeric; sweep it with separate runs")
    exact = Parameter(name, "rational", 0, "")  # the bounds obey the parameters' number rules
    try:
        start, stop = (Fraction(str(exact.parse(part))) for part in parts[:2])
        num = int(exact.parse(parts[2]))
        if Fraction(num) != exact.parse(parts[2]):
            raise ValueError(parts[2])
    except (ParameterError, ValueError):
        raise SweepError(f"--grid {spec[:60]!r}: START and STOP must be numbers (at most "
                         f"{MAX_DIGITS} digits) and NUM an integer") from None
    if num < 1:
        raise SweepError(f"--grid {spec!r}: NUM = {num} gives an empty grid")
    if num > MAX_POINTS:
        raise SweepError(f"--grid {spec!r}: NUM = {num} is more than {MAX_POINTS} points")
    values = [start] if num == 1 else [start + (stop - start) * i / (num - 1)
                                       for i in range(num)]
    if kinds[name] == "integer" and any(v.denominator != 1 for v in values):
        raise SweepError(f"--grid {spec!r}: {name} is an integer parameter but the grid "
                         f"holds {', '.join(str(v) for v in values if v.denominator != 1)}")
    return Axis(name, tuple(str(v) for v in values))


@dataclass(frozen=True)
class Task:
    """One grid point.

    Attributes
    ----------
    theorem_id : str
    params : tuple[tuple[str, str], ...]
        The grid point and the fixed ``--param`` values, as exact strings.
    budget : str
    seeds : int or None
    """

    theorem_id: str
    params: tuple[tuple[str, str], ...]
    budget: str
    seeds: int | None

    @property
    def key(self) -> str:
        """Stable identifier (also the file name of the task's result)."""
        text = json.dumps([self.theorem_id, self.params, self.budget, self.seeds])
        return hashlib.sha1(text.encode()).hexdigest()[:16]


def tasks_for(theorem_id: str, axes: list[Axis], fixed: dict[str, str], budget: str,
              seeds: int | None) -> list[Task]:
    """Every grid point (the product of the axes), fixed parameters included."""
    names = [axis.name for axis in axes]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise SweepError(f"--grid {name} is given twice; sweep each parameter once")
        if name in fixed:
            raise SweepError(f"{name} is both swept (--grid) and fixed (--param); a parameter "
                             "is swept once or fixed")
    return [Task(theorem_id, tuple(sorted({**fixed, **dict(zip(names, point, strict=True))}
                                          .items())), budget, seeds)
            for point in product(*(axis.values for axis in axes))]


def run_task(task: Task) -> dict[str, Any]:
    """Evaluate one grid point in this process (CPU, one torch thread, freed memory kept for
    reuse: :func:`~numerics.device.retain_freed_memory`); picklable for workers.

    Returns the task's record: ``status`` (``passed``, ``failed-checks``, ``outside``,
    ``skipped``), the reason where it was not evaluated, per-check results and the numeric
    quantities for the heatmaps.
    """
    import torch

    from numerics.device import retain_freed_memory, set_threads

    set_threads(1)
    retain_freed_memory()
    device = torch.device("cpu")
    params = dict(task.params)
    record: dict[str, Any] = {"key": task.key, "theorem": task.theorem_id, "params": params,
                              "quantities": {}, "checks": {}}
    reg = registry.default()
    entry = reg.entry(task.theorem_id)
    cache: dict[Any, Any] = {}
    try:
        plan = harness.prepare(entry, params, task.budget, task.seeds)
    except harness.AssumptionError as exc:
        plan = None
        record.update(status="outside", reason=str(exc))
    except TheoremError as exc:
        record.update(status="skipped", reason=str(exc))
        return record
    experiment = reg.experiment(task.theorem_id)
    if plan is not None:
        verdict = harness.run(plan, experiment, device, cache=cache)
        record["status"] = "passed" if verdict.passed else "failed-checks"
        record["seconds"] = verdict.seconds
        for check in verdict.checks:
            record["checks"][check.key] = {"name": check.name, "passed": check.passed,
                                           "kind": check.kind}
            if check.kind != "obligation" and isinstance(check.measured, int | float):
                record["quantities"][check.name] = float(check.measured)
        record["quantities"]["checks passed (1 = all)"] = float(verdict.passed)
    if experiment.phase is not None:
        defaults = entry.budget_defaults(task.budget)
        resolved = entry.theorem.resolve_params({**{k: v for k, v in defaults.items()
                                                    if k not in params}, **params})
        count = task.seeds or entry.default_seeds(task.budget)
        record["quantities"].update(experiment.phase(resolved, task.budget,
                                                     tuple(range(count)), device, cache))
    return record


Report = Callable[[Task, dict[str, Any]], None]


def _failure(task: Task, error: BaseException) -> dict[str, Any]:
    return {"key": task.key, "theorem": task.theorem_id, "params": dict(task.params),
            "status": "failed", "reason": f"{type(error).__name__}: {error}",
            "quantities": {}, "checks": {}}


def run_local(tasks: list[Task], workers: int, report: Report,
              runner: Callable[[Task], dict[str, Any]] = run_task,
              pool: Callable[[int], Executor] = process_pool,
              finish: Callable[[Callable], Any] = lambda map_: None) -> Any:
    """Run ``tasks`` in a local pool; a task that raises (or whose worker dies) is retried
    once, then reported as failed with its error.

    Once every task is reported, ``finish(map_)`` runs and its result is returned: ``map_`` is
    the last pool's ``map`` while its workers are still up (the sweep draws its heatmaps
    there, in parallel), or the built-in ``map`` when no pool is left (no task to run, or the
    last pool broke).

    On Ctrl-C (or SIGTERM, raised as :class:`KeyboardInterrupt` by the command line) pending
    tasks are cancelled and the workers killed at once; every result reported before that is
    kept, and the interrupt is raised again.
    """
    attempts = dict.fromkeys(tasks, 0)
    pending = list(tasks)
    if not pending:
        return finish(map)
    while True:
        pool_now = pool(workers)
        broken = False
        try:
            futures = {pool_now.submit(runner, task): task for task in pending}
            pending = []
            while futures:
                done, _ = wait(futures, return_when=FIRST_COMPLETED)
                for future in done:
                    task = futures.pop(future)
                    try:
                        report(task, future.result())
                    except BrokenProcessPool as exc:  # a worker died: retry in a fresh pool
                        broken = True
                        _retry(task, exc, attempts, pending, report)
                    except Exception as exc:  # noqa: BLE001  (a task's error is data)
                        _retry(task, exc, attempts, pending, report)
            if not pending:
                return finish(map if broken else pool_now.map)
        except KeyboardInterrupt:
            stop_workers(pool_now)
            raise
        finally:  # a no-op after the interrupt's shutdown
            pool_now.shutdown(wait=not broken, cancel_futures=True)


def _retry(task: Task, error: BaseException, attempts: dict[Task, int], pending: list[Task],
           report: Report) -> None:
    """Queue ``task`` again on its first failure; on its second, report it as failed."""
    attempts[task] += 1
    if attempts[task] <= 1:
        pending.append(task)
    else:
        report(task, _failure(task, error))


def check_ray_address(address: str) -> None:
    """Fail fast (``SweepError``) when a ``host:port`` Ray address does not answer."""
    if address == "auto":
        return
    target = re.sub(r"^\w+://", "", address)
    host, _, port = target.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=5):
            pass
    except (OSError, ValueError) as exc:
        raise SweepError(f"--address {address}: cannot reach a Ray cluster there "
                         f"({exc})") from None


def run_ray(tasks: list[Task], workers: int, address: str | None, report: Report,
            runner: Callable[[Task], dict[str, Any]] = run_task) -> None:
    """Submit ``tasks`` to Ray (``address``, or a local Ray with ``workers`` CPUs)."""
    try:
        import ray
    except ImportError:
        raise SweepError("--backend ray needs Ray: pip install "
                         "'transformer-theorems[distributed]'") from None
    if address:
        check_ray_address(address)
    started = not ray.is_initialized()
    if started:
        kwargs = {"address": address} if address else {"num_cpus": workers}
        try:
            ray.init(log_to_driver=False, include_dashboard=False, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise SweepError(f"cannot start or join Ray ({exc})") from None
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(runner)
        attempts = dict.fromkeys(tasks, 0)
        futures = {remote.remote(task): task for task in tasks}
        while futures:
            done, _ = ray.wait(list(futures), num_returns=1)
            task = futures.pop(done[0])
            try:
                report(task, ray.get(done[0]))
            except Exception as exc:  # noqa: BLE001  (task errors and lost workers alike)
                again: list[Task] = []
                _retry(task, exc, attempts, again, report)
                futures.update({remote.remote(t): t for t in again})
    finally:
        if started:
            ray.shutdown()


# ----------------------------------------------------------------------------- one sweep


@dataclass(frozen=True)
class SweepResult:
    """What a sweep produced.

    Attributes
    ----------
    spec : dict
        Theorem, grid, fixed parameters, budget, seeds and backend.
    records : list[dict]
        One record per grid point, in grid order (see :func:`run_task`).
    summary : dict
        Counts by status and the points where the prediction did not hold (:func:`summarise`).
    directory : pathlib.Path
        Where the per-point files, ``sweep.csv``, ``sweep.json`` and the heatmaps are.
    figures : list[pathlib.Path]
    interrupted : str
        Empty when every point finished; else what stopped the sweep (``"interrupt"`` for
        Ctrl-C, ``"terminate"`` for SIGTERM). A re-run resumes.
    """

    spec: dict[str, Any]
    records: list[dict[str, Any]]
    summary: dict[str, Any]
    directory: Path
    figures: list[Path]
    interrupted: str = ""

    @property
    def passed(self) -> bool:
        """No point where a check failed and no task error."""
        return (not self.interrupted and not self.summary["failed-checks"]
                and not self.summary["failed"])


def grid_axes(theorem: Theorem, grid: Any) -> list[Axis]:
    """Axes from ``--grid`` specs (``["p=0.05:0.95:10"]``) or a mapping from a parameter to
    ``"start:stop:num"`` or to a list of values."""
    if not isinstance(grid, dict):
        return [parse_grid(spec, theorem) for spec in grid]
    axes = []
    for name, values in grid.items():
        if isinstance(values, str):
            axes.append(parse_grid(f"{name}={values}", theorem))
            continue
        if not isinstance(values, list | tuple):
            values = [values]  # one value: a one-point axis
        kinds = {p.name: p for p in theorem.parameters}
        if name not in kinds:
            raise SweepError(f"{theorem.id} has no parameter {name!r} "
                             f"(its parameters: {', '.join(kinds)})")
        exact = [str(kinds[name].coerce(v)) for v in values]
        if not exact:
            raise SweepError(f"grid {name}: no values")
        axes.append(Axis(name, tuple(exact)))
    return axes


def run_sweep(theorem_id: str, grid: Any, *, budget: str = "fast", seeds: int | None = None,
              fixed: dict[str, str] | None = None, backend: str = "local",
              workers: int | None = None, address: str | None = None, out: Any = None,
              on_start: Callable[[int, int], None] | None = None,
              on_point: Callable[[], None] | None = None) -> SweepResult:
    """Validate a sweep, run its unfinished points, write the tables and heatmaps.

    ``on_start(points, already_finished)`` and ``on_point()`` report progress. Ctrl-C keeps
    every finished point on disk and returns a result marked ``interrupted``.

    Raises
    ------
    SweepError
        Bad grid, seeds, workers or backend options, or an output directory that cannot be
        created (all before any work starts).
    """
    import os

    reg = registry.default()
    theorem = reg.theorem(theorem_id)
    fixed = dict(fixed or {})
    theorem.resolve_params(fixed)  # unknown or malformed fixed parameters: a usage error
    axes = grid_axes(theorem, grid)
    if not axes:
        raise SweepError("a sweep needs at least one --grid axis")
    points = math.prod(len(axis.values) for axis in axes)
    if points > MAX_POINTS:
        raise SweepError(f"the grid has {points} points, more than the limit of {MAX_POINTS}; "
                         "use fewer values per axis")
    if budget not in ("fast", "full"):
        raise SweepError(f"unknown budget {budget!r}; use fast or full")
    if seeds is not None and seeds < 1:
        raise SweepError(f"--seeds must be at least 1 (got {seeds})")
    if seeds is not None and seeds > harness.MAX_SEEDS[budget]:
        raise SweepError(f"--seeds {seeds} is more than the {budget} budget's limit of "
                         f"{harness.MAX_SEEDS[budget]} training runs per point")
    workers = workers if workers is not None else min(os.cpu_count() or 1, MAX_WORKERS)
    if workers < 1:
        raise SweepError(f"--workers must be at least 1 (got {workers})")
    if workers > MAX_WORKERS:
        raise SweepError(f"--workers must be at most {MAX_WORKERS} (got {workers})")
    if backend not in ("local", "ray"):
        raise SweepError(f"unknown backend {backend!r}; use local or ray")
    if address and backend != "ray":
        raise SweepError("--address needs --backend ray")
    tasks = tasks_for(theorem.id, axes, fixed, budget, seeds)
    directory = output_directory(out, theorem.id)
    if backend == "ray" and address:
        check_ray_address(address)
    reg.experiment(theorem.id)  # a missing experiment is a usage error, before any work
    try:
        store = ResultStore(directory)
    except OSError as exc:
        raise SweepError(f"--out {directory}: cannot create the directory "
                         f"({exc.strerror})") from None
    records = {task: store.finished(task) for task in tasks}
    todo = [task for task in tasks if records[task] is None]
    if on_start is not None:
        on_start(len(tasks), len(tasks) - len(todo))

    def report(task: Task, record: dict[str, Any]) -> None:
        store.write(record)
        records[task] = record
        if on_point is not None:
            on_point()

    spec = {"theorem": theorem.id, "grid": [vars(axis) for axis in axes], "fixed": fixed,
            "budget": budget, "seeds": seeds, "backend": backend}

    def finish(map_: Callable) -> SweepResult:
        """The tables, then the heatmaps (drawn by ``map_``: the local pool's workers)."""
        ordered = [records[task] for task in tasks]
        summary = summarise(ordered)
        try:
            write_tables(directory, {**spec, "summary": summary}, ordered)
            figures = write_heatmaps(directory, spec, ordered,
                                     reg.experiment(theorem.id).overlay, map_)
        except OSError as exc:  # a full disk: the finished points are kept, a re-run resumes
            raise SweepError(f"--out {directory}: cannot write the results "
                             f"({exc.strerror or exc}); the finished points are kept in "
                             f"{store.tasks}") from None
        return SweepResult(spec, ordered, summary, directory, figures)

    try:
        if backend == "ray":
            run_ray(todo, workers, address, report)
            return finish(map)
        return run_local(todo, workers, report, finish=finish)
    except KeyboardInterrupt as exc:
        done = [r for r in records.values() if r is not None]
        cause = "terminate" if type(exc).__name__ == "Terminated" else "interrupt"
        return SweepResult(spec, done, summarise(done), directory, [], interrupted=cause)


def output_directory(out: Any, theorem_id: str) -> Path:
    """The results directory of a sweep (``out``, default ``sweeps/<id>``), checked before any
    work and without creating it: a writable directory (or one that can be made), whose
    ``tasks`` is a directory and whose tables are regular files where they exist.

    Raises
    ------
    SweepError
        An empty path, or a directory the sweep cannot write its results in.
    """
    if out is not None and not str(out):
        raise SweepError("--out: empty path; give the results directory")
    directory = Path(out) if out is not None else Path("sweeps") / theorem_id
    for path in (directory, directory / "tasks"):
        problem = directory_problem(path)
        if problem is not None:
            raise SweepError(f"--out {path}: {problem}")
    for path in (directory / "sweep.json", directory / "sweep.csv"):
        problem = regular_file_problem(path)
        if problem is not None:
            raise SweepError(f"--out {path}: {problem}, cannot write the table there")
    return directory


# ----------------------------------------------------------------------------- results


class ResultStore:
    """Per-task JSON files under ``OUT/tasks/``, written as tasks finish."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.tasks = directory / "tasks"
        self.tasks.mkdir(parents=True, exist_ok=True)

    def finished(self, task: Task) -> dict[str, Any] | None:
        """The stored record of ``task`` when it finished (not when it failed)."""
        path = self.tasks / f"{task.key}.json"
        if not path.exists():
            return None
        try:
            record = json.loads(path.read_text())
        except OSError as exc:
            problem: str | None = exc.strerror
        except ValueError:  # a truncated or corrupt file
            problem = "not valid JSON"
        else:
            problem = _record_problem(record, task)
        if problem is not None:  # compute the point again
            warnings.warn(f"{path}: unreadable result ({problem}), the point is computed "
                          "again", stacklevel=2)
            return None
        return record if record["status"] in FINISHED else None

    def write(self, record: dict[str, Any]) -> None:
        """Store one task's record (atomically: a killed sweep never leaves half a file)."""
        write_atomic(self.tasks / f"{record['key']}.json",
                     json.dumps(record, indent=1, sort_keys=True))


def _record_problem(record: Any, task: Task) -> str | None:
    """What makes a stored record unusable as the result of ``task`` (None when it is usable):
    the tables and heatmaps read its status, its parameters, its quantities and, outside the
    assumptions, its reason."""
    if not isinstance(record, dict):
        return "not a JSON object"
    status = record.get("status")
    if status == "failed":
        return None  # a task error: run again, as intended
    if status not in FINISHED:
        return f"status {str(status)[:40]!r}"
    if record.get("params") != dict(task.params):
        return "its parameters are missing or not the point's"
    quantities = record.get("quantities")
    if not isinstance(quantities, dict) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in quantities.values()):
        return "no quantities"
    if status in ("outside", "skipped") and not isinstance(record.get("reason"), str):
        return "no reason"
    return None


def write_tables(directory: Path, spec: dict[str, Any], records: list[dict[str, Any]]) -> None:
    """``sweep.json`` (the spec and every record) and ``sweep.csv`` (one row per point), each
    written atomically.

    Raises
    ------
    OSError
        When a table cannot be written (disk full); the previous table is then unchanged.
    """
    write_atomic(directory / "sweep.json", json.dumps({**spec, "points": records}, indent=1))
    axes = [axis["name"] for axis in spec["grid"]]
    quantities = sorted({name for r in records for name in r["quantities"]})
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow([*axes, "status", "reason", *quantities])
    for r in records:
        writer.writerow([*(r["params"][a] for a in axes), r["status"], r.get("reason", ""),
                         *(r["quantities"].get(q, "") for q in quantities)])
    write_atomic(directory / "sweep.csv", table.getvalue())


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:80]


#: A quantity named with its own scale (``0 = entropy rate, 1 = H(pi)``) or a fraction lives on
#: [0, 1]: its colour bar is fixed to that range, so a colour means the same thing in every
#: sweep (an auto-scaled bar would stretch 0..4.5e-6 over the full colour map under a label
#: that says ``1 = H(pi)``).
UNIT_SCALE = re.compile(r"\b0 = .+\b1 = |\bfraction\b")


def _colour_scale(quantity: str) -> tuple[float | None, float | None]:
    """``(0, 1)`` for a quantity on the unit scale, else ``(None, None)`` (the data's range)."""
    return (0.0, 1.0) if UNIT_SCALE.search(quantity) else (None, None)


def _extend(grid: Any, low: float | None, high: float | None) -> str:
    """Which ends of a fixed colour bar the data runs past (``neither`` when auto-scaled)."""
    import numpy as np

    below = low is not None and bool(np.nanmin(grid, initial=np.inf) < low)
    above = high is not None and bool(np.nanmax(grid, initial=-np.inf) > high)
    return {(False, False): "neither", (True, False): "min", (False, True): "max",
            (True, True): "both"}[(below, above)]


def _wrapped(text: str, width: int = 40) -> str:
    """The quantity in full, on lines of at most ``width`` characters (a colour bar label)."""
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text


def write_heatmaps(directory: Path, spec: dict[str, Any], records: list[dict[str, Any]],
                   overlay: Callable | None = None, map_: Callable = map) -> list[Path]:
    """One PNG per quantity: a heatmap over two swept axes (a curve over one).

    Points outside the assumptions are marked ``x``; ``overlay(ax, x_name, y_name)`` draws the
    theorem's boundary (e.g. ``p + q = 1``). ``map_`` draws the quantities' figures (a process
    pool's ``map`` draws them in parallel; an overlay that cannot be pickled keeps them here).
    """
    if len(spec["grid"]) not in (1, 2):
        return []
    quantities = sorted({name for r in records for name in r["quantities"]})
    # each figure gets the points' parameters, status and its own quantity, not every record
    jobs = [partial(draw_heatmap, directory, spec, _slim(records, quantity), overlay, quantity)
            for quantity in quantities]
    if map_ is not map and _picklable(overlay):
        try:
            return list(map_(operator.call, jobs))
        except Exception:  # noqa: BLE001  (a lost worker, say): draw them here instead
            pass
    return [job() for job in jobs]


def _slim(records: list[dict[str, Any]], quantity: str) -> list[dict[str, Any]]:
    """What :func:`draw_heatmap` reads of ``records`` for ``quantity``."""
    return [{"params": r["params"], "status": r["status"],
             "quantities": {quantity: r["quantities"][quantity]}
             if quantity in r["quantities"] else {}} for r in records]


def _picklable(value: Any) -> bool:
    try:
        pickle.dumps(value)
    except (pickle.PicklingError, AttributeError, TypeError):
        return False
    return True


def draw_heatmap(directory: Path, spec: dict[str, Any], records: list[dict[str, Any]],
                 overlay: Callable | None, quantity: str) -> Path:
    """The figure of one quantity of :func:`write_heatmaps`; returns its path."""
    import numpy as np
    from matplotlib.figure import Figure

    axes = spec["grid"]
    values = [[float(Fraction(v)) for v in axis["values"]] for axis in axes]
    by_point = {tuple(r["params"][a["name"]] for a in axes): r for r in records}
    fig = Figure(figsize=(6.0, 5.2))
    ax = fig.subplots()
    if len(axes) == 1:
        ys = [by_point.get((v,), {}).get("quantities", {}).get(quantity, math.nan)
              for v in axes[0]["values"]]
        ax.plot(values[0], ys, "o-")
        ax.set_xlabel(axes[0]["name"])
        ax.set_ylabel(quantity)
    else:
        grid = np.full((len(values[1]), len(values[0])), np.nan)
        for i, y in enumerate(axes[1]["values"]):
            for j, x in enumerate(axes[0]["values"]):
                grid[i, j] = by_point.get((x, y), {}).get("quantities", {}).get(
                    quantity, np.nan)
        low, high = _colour_scale(quantity)
        image = ax.pcolormesh(values[0], values[1], grid, shading="nearest",
                              cmap="viridis", vmin=low, vmax=high)
        fig.colorbar(image, ax=ax, label=_wrapped(quantity),
                     extend=_extend(grid, low, high))
        outside = [(float(Fraction(x)), float(Fraction(y)))
                   for (x, y), r in by_point.items() if r["status"] != "passed"
                   and r["status"] != "failed-checks"]
        if outside:
            ax.scatter(*zip(*outside, strict=True), marker="x", color="white", s=18,
                       label="outside the assumptions / not evaluated")
        failed = [(float(Fraction(x)), float(Fraction(y)))
                  for (x, y), r in by_point.items() if r["status"] == "failed-checks"]
        if failed:
            ax.scatter(*zip(*failed, strict=True), marker="o", facecolors="none",
                       edgecolors="red", s=40, label="some check failed")
        if overlay is not None:
            overlay(ax, axes[0]["name"], axes[1]["name"])
        ax.set_xlabel(axes[0]["name"])
        ax.set_ylabel(axes[1]["name"])
        if outside or failed or overlay is not None:
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3,
                      facecolor="0.8")
    ax.set_title(f"{spec['theorem']}\n{quantity}", fontsize=9)
    fig.tight_layout()
    path = directory / f"{_slug(quantity)}.png"
    fig.savefig(path, dpi=110)
    return path


def summarise(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Counts by status, and the points where the prediction did not hold or the task failed."""
    records = list(records)
    counts = {status: sum(r["status"] == status for r in records)
              for status in (*FINISHED, "failed")}
    admissible = counts["passed"] + counts["failed-checks"]
    return {
        "points": len(records), **counts,
        "held_fraction": counts["passed"] / admissible if admissible else None,
        "not_held": [r["params"] for r in records if r["status"] == "failed-checks"],
        "errors": [{"params": r["params"], "error": r["reason"]} for r in records
                   if r["status"] == "failed"],
        "outside_reasons": sorted({r["reason"] for r in records if r["status"] == "outside"}),
    }

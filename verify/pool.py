"""Worker processes: the one process pool that sweeps and ``verify --all --workers N`` share.

Workers are fresh interpreters (``spawn``: no inherited torch or OpenMP state), each with a
fixed number of torch threads (one by default), Ctrl-C left to the parent (which stops the
pool and kills its workers at once), and they die with the parent.

:func:`run_theorems` runs independent theorems in such a pool and hands their verdicts back in
the order they were asked for, whatever order they finish in, so that reports and the terminal
are the same as a serial run's. A worker receives only the request (theorem id, the parameters
as the user wrote them, budget, number of seeds, device) and prepares it again from the
registry it discovers itself, since papers hold callables that do not pickle.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context

from verify.records import Budget, Verdict


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def process_pool(workers: int, threads: int = 1) -> Executor:
    """``workers`` fresh interpreters (spawn), ``threads`` torch threads each."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                               initializer=_init_worker, initargs=(os.getpid(), threads))


def _init_worker(parent: int, threads: int = 1) -> None:
    """A worker: its torch threads and allocator (as the command line sets its own), Ctrl-C
    left to the parent (which stops the pool), and death with the parent (a parent-death
    signal on Linux, and a watchdog on the parent's pid)."""
    import signal
    import threading

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # first: a Ctrl-C during the imports too
    from numerics.device import retain_freed_memory, set_threads  # imports torch

    set_threads(threads)
    retain_freed_memory()
    _die_with_parent(parent)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _die_with_parent(parent: int) -> None:
    """Ask Linux to kill this process when its parent dies (``PR_SET_PDEATHSIG``)."""
    import ctypes
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def _watch_parent(parent: int, interval: float = 1.0) -> None:
    """Exit when the parent is gone (its pid is no longer our parent's)."""
    import time

    while os.getppid() == parent:
        time.sleep(interval)
    os._exit(1)


def stop_workers(pool: Executor, settle: float = 30.0) -> None:
    """Kill the worker processes of ``pool`` at once (after Ctrl-C or SIGTERM), so that no
    discarded work goes on and nothing waits for it, and shut the pool down; other processes
    are left alone.

    A worker killed while it sends a large result (a header, then the body in a second
    write) leaves a partial message in the result pipe, and the pool's manager thread would
    wait for the rest for ever: the parent holds the pipe's write end too, so no end of file
    comes, and the interpreter joins that thread at exit. The parent closes its write end,
    so the wait ends in an end of file once the killed workers' ends are gone with them (the
    pool then counts as broken, which nobody reads any more).

    The manager thread then closes its wake-up pipe; this waits (at most ``settle`` seconds)
    until it has. Python 3.11's exit hook for process pools writes to that pipe without a
    lock, and a close in between failed the write ("Bad file descriptor", a traceback at
    exit after an interrupt).
    """
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.kill()
    results = getattr(pool, "_result_queue", None)  # a process pool's; read before shutdown
    if results is not None:
        results._writer.close()
    manager = getattr(pool, "_executor_manager_thread", None)  # read before shutdown
    pool.shutdown(wait=False, cancel_futures=True)
    if manager is not None:
        manager.join(settle)


@dataclass(frozen=True)
class TheoremRequest:
    """One theorem to verify in a worker (already validated by the parent).

    Attributes
    ----------
    theorem_id : str
    params : Mapping[str, str]
        The parameters as the user gave them (the worker resolves the same plan from them).
    budget : {"fast", "full"}
    seeds : int or None
        Number of seeds; None for the theorem's default.
    device : str
        ``cpu`` or ``cuda`` (the device the parent resolved).
    """

    theorem_id: str
    params: Mapping[str, str] = field(default_factory=dict)
    budget: Budget = "fast"
    seeds: int | None = None
    device: str = "cpu"


def verify_request(request: TheoremRequest) -> Verdict:
    """Prepare and run one request in this process (what a worker does)."""
    import numpy as np
    import torch

    from verify import harness, registry

    reg = registry.default()
    plan = harness.prepare(reg.entry(request.theorem_id), request.params, request.budget,
                           request.seeds, allow_expensive=True)  # the parent checked it
    with np.errstate(all="ignore"):  # non-finite values are reported by the checks
        return harness.run(plan, reg.experiment(request.theorem_id),
                           torch.device(request.device))


def run_theorems(requests: Sequence[TheoremRequest], workers: int, threads: int = 1,
                 order: Callable[[int], float] | None = None,
                 runner: Callable[[TheoremRequest], Verdict] = verify_request,
                 pool: Callable[[int, int], Executor] = process_pool) -> Iterator[Verdict]:
    """Verify ``requests`` in ``workers`` processes; yield the verdicts in request order.

    ``order(i)`` is the expected cost of request ``i``: the costliest are submitted first, so
    that a long theorem does not start last (the order of the results does not change). On
    Ctrl-C, SIGTERM or a dead worker the workers are killed at once and the exception
    propagates with the verdicts that had finished but were not yet yielded (they wait for an
    earlier, slower theorem) in its ``finished`` attribute, in request order: with those
    yielded before, the caller's partial report loses nothing that finished. Workers discover
    the registry themselves (``registry.default()``).
    """
    ranked = sorted(range(len(requests)), key=lambda i: -order(i) if order else i)
    executor = pool(workers, threads)
    finished: dict[int, Verdict] = {}
    try:
        futures: dict[Future, int] = {executor.submit(runner, requests[i]): i for i in ranked}
        following = 0
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                finished[futures[future]] = future.result()
            while following in finished:
                yield finished.pop(following)
                following += 1
    except BaseException as exc:  # Ctrl-C, SIGTERM, a worker's error, or the caller stopped
        stop_workers(executor)
        exc.finished = [finished[i] for i in sorted(finished)]  # type: ignore[attr-defined]
        raise
    executor.shutdown()

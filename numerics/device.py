"""The one place that picks the device and the floating-point type."""

from __future__ import annotations

import ctypes
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Literal, TypeVar

import numpy as np
import torch

T = TypeVar("T")

DeviceName = Literal["auto", "cpu", "cuda"]


class DeviceUnavailableError(RuntimeError):
    """The requested device does not exist on this machine."""


def select_device(name: DeviceName = "auto") -> torch.device:
    """Resolve ``auto | cpu | cuda`` to a :class:`torch.device`.

    ``auto`` takes CUDA when it is available and the CPU otherwise.

    Raises
    ------
    DeviceUnavailableError
        If ``cuda`` is asked for and CUDA is absent.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailableError(
            "--device cuda was asked for, but CUDA is not available on this machine "
            "(torch " + torch.__version__ + "); use --device cpu or --device auto"
        )
    if name not in ("cpu", "cuda"):
        raise DeviceUnavailableError(f"unknown device {name!r}; use auto, cpu or cuda")
    return torch.device(name)


#: Intra-op CPU threads of a single run when none is asked for. One: the runs are many small
#: kernels (d <= 16) that a second thread does not speed up; ``benchmarks/threads.py`` measured
#: ``verify --theorem markov-local-minima`` on 2 cores at 16.7 s (1 thread) vs 19.9 s
#: (2 threads) with the cores idle, and 23.1 s vs 40.2 s with both cores busy. Sweeps
#: run one single-threaded process per core instead.
DEFAULT_THREADS = 1


def set_threads(count: int | None = None) -> int:
    """Set torch's intra-op CPU threads (``None``: :data:`DEFAULT_THREADS`); returns it."""
    torch.set_num_threads(count if count is not None else DEFAULT_THREADS)
    return torch.get_num_threads()


#: glibc's ``mallopt`` parameters (``malloc.h``) and the values :func:`retain_freed_memory`
#: sets: blocks under 32 MiB (glibc's own ceiling for its adaptive threshold on 64-bit) come
#: from the heap, and up to 64 MiB of freed heap stays in the process (glibc keeps the trim
#: threshold at twice the mmap threshold, as here).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
RETAINED_MMAP_BYTES = 32 << 20
RETAINED_TRIM_BYTES = 64 << 20


def retain_freed_memory() -> bool:
    """Keep freed tensor memory in the process for the next tensor instead of giving it back
    to the operating system (glibc's ``mallopt``; Linux only). Returns whether it was set.

    A training step allocates and frees the same few megabytes of tensors every step. With
    glibc's default adaptive thresholds part of that memory goes back to the system at each
    free (a freed block at the top of the heap beyond the trim threshold, a block above the
    mmap threshold), so the next tensor of that size takes a page fault per 4 KiB page on first
    touch. On a 2-core CPU that was 130 to 260 faults and 0.4 ms of a 2.4 ms step of the
    16-member fast-budget ensemble, and about 1000 faults per full-budget Markov step
    (``benchmarks/markov_steps.py`` and ``benchmarks/seed_ensembles.py`` set it; their
    ``--glibc-allocator`` measures without). The cost: up to :data:`RETAINED_TRIM_BYTES` of
    freed memory stays with the process.
    ``verify``'s command line, its worker processes and sweep tasks call this; a Python
    program using the API decides for itself (it changes the allocator of the whole process).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # a C library without mallopt
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, RETAINED_MMAP_BYTES)
                and mallopt(M_TRIM_THRESHOLD, RETAINED_TRIM_BYTES))


class RunCancelled(RuntimeError):
    """A job of :func:`run_concurrently` stopped early because its caller was interrupted."""


_job_state = threading.local()  # in a run_concurrently thread: the stop event of its call


def check_cancelled() -> None:
    """Raise :class:`RunCancelled` if this thread's :func:`run_concurrently` call was
    interrupted (the trainer calls it at every sync); a no-op anywhere else."""
    stop = getattr(_job_state, "stop", None)
    if stop is not None and stop.is_set():
        raise RunCancelled("interrupted")


def run_concurrently(jobs: Sequence[Callable[[], T]], device: torch.device) -> list[T]:
    """Run independent jobs on ``device`` side by side when it is the CPU, each with one
    intra-op thread; results in order. Elsewhere (CUDA) one after the other.

    With ``k = torch.get_num_threads()`` intra-op threads, up to ``k`` jobs run at once on
    ``k`` Python threads (torch releases the GIL inside its kernels), each single-threaded,
    and the thread count is restored afterwards; with ``k = 1`` or one job they run one after
    the other. A single-threaded run gives the same numbers wherever it runs, so the results
    are those of the jobs run one by one with one thread. Independent training runs of a few
    large products scale better this way than by splitting each product over threads: one
    full-budget Markov step (d = 8, N = 1024, batch 16, float32) took 16.6 ms with 2 intra-op
    threads, while two single-threaded runs side by side took 25.4 ms per step each (2-core
    CPU), 1.3x more steps per second.

    If a job raises, the others stop at their next :func:`check_cancelled` and the error of the
    first failing job (in job order) is raised. On ``KeyboardInterrupt`` the running jobs are
    asked to stop the same way, and the interrupt is raised again once they have (a training
    run reaches its next sync within ``sync_every`` steps): a thread still inside a torch
    kernel while the interpreter exits would abort the process.
    """
    width = min(len(jobs), torch.get_num_threads()) if device.type == "cpu" else 1
    if width <= 1:
        return [job() for job in jobs]
    stop = threading.Event()
    results: list = [None] * len(jobs)
    errors: dict[int, BaseException] = {}
    pending = iter(range(len(jobs)))
    lock = threading.Lock()

    def work() -> None:
        _job_state.stop = stop
        while not stop.is_set():
            with lock:
                index = next(pending, None)
            if index is None:
                return
            try:
                results[index] = jobs[index]()
            except BaseException as exc:  # noqa: BLE001  (re-raised in the caller's thread)
                errors[index] = exc
                stop.set()

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    workers = [threading.Thread(target=work) for _ in range(width)]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    except KeyboardInterrupt:
        stop.set()
        for worker in workers:
            if worker.ident is not None:  # started
                worker.join()
        raise
    finally:
        torch.set_num_threads(threads)
    failures = {i: e for i, e in errors.items() if not isinstance(e, RunCancelled)}
    if failures or errors:
        raise (failures or errors)[min(failures or errors)]
    return results


def describe(device: torch.device) -> str:
    """Human-readable device name for reports (GPU model for CUDA)."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def stream_seed(seed: int, purpose: str) -> int:
    """The seed of the random stream ``purpose`` of run ``seed``: one scheme for every stream.

    ``numpy.random.SeedSequence`` hashes ``(seed, purpose)`` (the purpose's UTF-8 bytes), so
    two streams of a run (``"init"``, ``"data"``, ``"eval"``) and the same stream of two seeds
    never coincide, unlike ``seed + 10``-style offsets (seed 10's init is seed 0's data).
    """
    entropy = [seed, *purpose.encode()]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] >> 1)


def stream(device: torch.device, seed: int, purpose: str) -> torch.Generator:
    """A torch generator on ``device`` for the stream ``purpose`` of run ``seed``."""
    return generator(device, stream_seed(seed, purpose))


def numpy_stream(seed: int, purpose: str) -> np.random.Generator:
    """A numpy generator for the stream ``purpose`` of run ``seed`` (same scheme)."""
    return np.random.default_rng(stream_seed(seed, purpose))


def generator(device: torch.device, seed: int) -> torch.Generator:
    """A seeded random generator living on ``device``."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen

"""The one place that picks the device and the floating-point type."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

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

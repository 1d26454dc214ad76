"""The one place that picks the device and the floating-point type."""

from __future__ import annotations

from typing import Literal

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
#: ``verify --theorem markov-local-minima`` on 2 cores at 15.1 s (1 thread) vs 20.6 s
#: (2 threads) with the cores nearly idle, and 23.5 s vs 49.3 s with both cores busy. Sweeps
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


def generator(device: torch.device, seed: int) -> torch.Generator:
    """A seeded random generator living on ``device``."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen

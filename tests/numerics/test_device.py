"""The process settings of numerics.device: the allocator that keeps freed tensor memory, and
the seeding scheme of the random streams."""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest
import torch

from numerics.device import retain_freed_memory, stream, stream_seed

#: A fresh interpreter that takes one block of memory from the C library's ``malloc`` (where
#: torch's CPU tensors get theirs) and frees it, and prints, from glibc's ``mallinfo2``, the
#: bytes mapped by ``mmap`` for it while it lives, those still mapped once it is freed, and the
#: free bytes the heap keeps after it; ``retain`` sets the allocator first.
ALLOCATION = """
import ctypes, sys
from numerics.device import retain_freed_memory
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                 "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype, libc.malloc.restype = MallInfo2, ctypes.c_void_p
libc.malloc.argtypes, libc.free.argtypes = (ctypes.c_size_t,), (ctypes.c_void_p,)
if sys.argv[1] == "retain":
    assert retain_freed_memory()
before = libc.mallinfo2()
block = libc.malloc(int(sys.argv[2]))
during = libc.mallinfo2()
libc.free(block)
after = libc.mallinfo2()
print(during.hblkhd - before.hblkhd, after.hblkhd - before.hblkhd, after.fordblks)
"""

#: Below ``RETAINED_MMAP_BYTES`` and ``RETAINED_TRIM_BYTES``, above glibc's starting mmap
#: threshold (128 KiB), which a fresh interpreter has not yet raised this far.
BLOCK_BYTES = 24 << 20


def _has_mallinfo2() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return False
    return hasattr(libc, "mallopt") and hasattr(libc, "mallinfo2")


def _allocation(mode: str) -> tuple[int, int, int]:
    done = subprocess.run([sys.executable, "-c", ALLOCATION, mode, str(BLOCK_BYTES)],
                          capture_output=True, text=True, check=True, timeout=120)
    mapped, still_mapped, kept_free = (int(word) for word in done.stdout.split()[-3:])
    return mapped, still_mapped, kept_free


@pytest.mark.skipif(not _has_mallinfo2(),
                    reason="reads the heap through glibc's mallinfo2 (glibc 2.33 on); without "
                           "glibc retain_freed_memory returns False, tested below")
def test_freed_tensor_memory_stays_in_the_process():
    """Each in a fresh interpreter (glibc's thresholds adapt to the blocks freed so far, so the
    test process's own history would blur the difference). With glibc's defaults a 24 MiB
    block is mapped on its own and unmapped when freed, so the next one faults its pages in
    again; once the thresholds are set it comes from the heap, and its bytes stay there when
    freed (not trimmed) for the next block."""
    mapped, still_mapped, _ = _allocation("default")
    assert mapped >= BLOCK_BYTES and still_mapped == 0
    mapped, still_mapped, kept_free = _allocation("retain")
    assert mapped == 0 and still_mapped == 0 and kept_free >= BLOCK_BYTES


def test_retain_freed_memory_is_a_no_op_off_linux(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert retain_freed_memory() is False


def test_streams_of_one_run_and_of_two_seeds_are_distinct():
    """Every random stream of a run is seeded from (seed, purpose): a scheme that dropped the
    purpose would make the training set the held-out set and the init the data."""
    purposes = ("init", "data", "train set", "monte carlo", "haar train set", "haar test set",
                "documents", "evaluation documents")
    seeds = {stream_seed(seed, purpose) for seed in range(4) for purpose in purposes}
    assert len(seeds) == 4 * len(purposes)
    first = {torch.rand(3, generator=stream(torch.device("cpu"), 0, purpose))[0].item()
             for purpose in purposes}
    assert len(first) == len(purposes)

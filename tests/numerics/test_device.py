"""The process settings of numerics.device: the allocator that keeps freed tensor memory."""

from __future__ import annotations

import resource
import sys

import pytest
import torch

from numerics.device import retain_freed_memory

TENSOR_PAGES = 2048  # an 8 MiB float32 tensor in 4 KiB pages


def _faults_per_round(rounds: int = 20) -> float:
    """Minor page faults per round of allocating, touching and freeing two 8 MiB tensors."""
    def churn() -> None:
        first, second = torch.ones(TENSOR_PAGES * 1024), torch.ones(TENSOR_PAGES * 1024)
        del first, second

    churn()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        churn()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / rounds


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="mallopt is glibc's; elsewhere retain_freed_memory returns False")
def test_freed_tensor_memory_is_reused_without_page_faults():
    """With glibc's adaptive defaults the two tensors freed together go back to the system
    (16 MiB at the heap's top is past the trim threshold of twice the last freed block), so
    every round faults their pages in again, about 2 x 2048 faults; once the thresholds are
    set the next round reuses the memory. Allowed: half a tensor's pages per round, for the
    heap's occasional growth under the interpreter's own allocations."""
    assert retain_freed_memory()
    assert _faults_per_round() < TENSOR_PAGES / 2


def test_retain_freed_memory_is_a_no_op_off_linux(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert retain_freed_memory() is False

"""The process settings of numerics.device: the allocator that keeps freed tensor memory."""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

from numerics.device import retain_freed_memory

#: A fresh interpreter that runs 30 forward and backward passes of a 16-member fast-budget
#: Markov ensemble (exact population loss, float64) after 10 warm-up passes and prints its
#: minor page faults per pass; ``retain`` sets the allocator first.
STEPS = """
import resource, sys, torch
from numerics.device import retain_freed_memory
if sys.argv[1] == "retain":
    assert retain_freed_memory()
torch.set_num_threads(1)
from numerics.models.markov_transformer import (MarkovEnsemble, MarkovTransformer,
                                                MarkovTransformerConfig)
from numerics.population import MarkovPopulation
population = MarkovPopulation.build(0.5, 0.8, 8, torch.device("cpu"), torch.float64)
members = []
for seed in range(16):
    model = MarkovTransformer(MarkovTransformerConfig(4, 8, True), torch.float64)
    model.reset_parameters(torch.Generator().manual_seed(seed))
    members.append(model)
ensemble = MarkovEnsemble(members)
def step():
    ensemble.zero_grad(set_to_none=True)
    logits = ensemble.last_logits(population.prefixes, population.lengths)
    population.prefix_loss(logits).sum().backward()
for _ in range(10):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(30):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 30)
"""


def _has_mallopt() -> bool:
    try:
        return sys.platform.startswith("linux") and hasattr(ctypes.CDLL(None), "mallopt")
    except OSError:
        return False


def _faults_per_step(mode: str) -> float:
    done = subprocess.run([sys.executable, "-c", STEPS, mode], capture_output=True, text=True,
                          check=True, timeout=120)
    return float(done.stdout.split()[-1])


@pytest.mark.skipif(not _has_mallopt(),
                    reason="mallopt is glibc's; elsewhere retain_freed_memory returns False")
def test_freed_tensor_memory_is_reused_without_page_faults():
    """Each in a fresh interpreter (glibc's thresholds adapt to the blocks freed so far, so
    the test process's own history would blur the difference): with glibc's adaptive
    defaults part of every pass's tensors goes back to the system when freed and faults its
    pages in again at the next pass (measured 140 to 260 faults per pass); once the
    thresholds are set the freed memory is reused (2 to 11). Asserted: at least 4 times
    fewer faults."""
    default, retained = _faults_per_step("default"), _faults_per_step("retain")
    assert retained * 4 < default


def test_retain_freed_memory_is_a_no_op_off_linux(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert retain_freed_memory() is False

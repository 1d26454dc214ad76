"""The ICAL bridges (Monte Carlo of the torch modules vs the sympy closed forms) over sizes."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from verify import harness, registry
from verify.records import Context


def _bridge(theorem_id: str, **sizes: int):
    plan = harness.prepare(registry.entry(theorem_id), {k: str(v) for k, v in sizes.items()})
    context = Context(plan, plan.theorem.predict(plan.params), torch.device("cpu"))
    checks, _ = registry.experiment(theorem_id).stages[0](context)
    return checks


@settings(max_examples=4)
@given(d=st.integers(1, 3), T=st.integers(2, 5))
def test_one_step_bridge(d, T):
    assert all(c.passed for c in _bridge("ical-one-step-gd", d=d, T=T))


@settings(max_examples=4)
@given(d=st.integers(1, 4), heads=st.integers(1, 4), T=st.integers(2, 5))
def test_unitary_bridge(d, heads, T):
    assert all(c.passed for c in _bridge("ical-unitary-global-minima", d=d, H=heads, T=T))


@settings(max_examples=4)
@given(half=st.integers(1, 2), T=st.integers(2, 5))
def test_orthogonal_bridge(half, T):
    assert all(c.passed for c in _bridge("ical-pe-trigonometric", d=2 * half, H=1, T=T))

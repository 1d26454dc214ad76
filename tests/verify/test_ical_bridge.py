"""The ICAL bridges (the torch modules' expected losses, exact on a lattice or by Monte Carlo,
vs the sympy closed forms) over sizes."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from verify import harness, registry


def _bridge(theorem_id: str, **sizes: int):
    plan = harness.prepare(registry.entry(theorem_id), {k: str(v) for k, v in sizes.items()})
    context = harness.stage_context(plan, torch.device("cpu"))
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


def test_diagonal_bridge_is_exact_on_the_lattice_and_falls_back_to_monte_carlo(monkeypatch):
    """At the default sizes the module's loss is an exact lattice mean (round-off tolerance, the
    lattice named); above the lattice cap it is a Monte Carlo mean with its standard error."""
    from verify.experiments import ical

    exact = {c.key: c for c in _bridge("ical-unitary-global-minima", d=2, H=2, T=3)}
    module = exact["module-loss-at-random-a-b-p-vs-closed-form"]
    assert module.passed and module.tolerance is ical.EXACT
    assert module.details["lattice_points_per_angle"] == 7  # 2T + 1
    assert abs(module.measured - module.predicted) < 1e-12
    assert exact["training-loss-at-random-a-b-p-vs-closed-form"].passed
    monkeypatch.setattr(ical, "LATTICE_MAX", 10)
    sampled = {c.key: c for c in _bridge("ical-unitary-global-minima", d=2, H=2, T=3)}
    module = sampled["module-loss-at-random-a-b-p-vs-closed-form"]
    assert module.passed and module.details["standard_error"] > 0
    assert module.tolerance.atol > 3 * module.details["standard_error"]

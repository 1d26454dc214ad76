"""The Markov controls that need a trapped run train at d <= TRAP_CONTROL_D in the exact
budget: above it a tied run at p+q > 1 can leave the trap within the plateau check's window."""

import numpy as np
import torch

import verify
from theorems import markov as theory
from verify import harness, registry
from verify.experiments import markov, markov_resolution


def _control(theorem_id: str, **params: str):
    plan = harness.prepare(registry.entry(theorem_id), params)
    context = harness.stage_context(plan, torch.device("cpu"))
    checks, curves = registry.experiment(theorem_id).stages[-1](context)
    return {check.key: check for check in checks}, curves


def test_trap_control_trains_at_the_capped_d_and_says_so():
    """At d = 6, (3/5, 1/5) the control's mirrored point (2/5, 4/5) does not hold the trap at
    d = 6 for the 200 steps (the reason for the cap), so the control trains at d = 4, where it
    is trapped, and names that d."""
    prediction = theory.LOCAL_MINIMA.predict(
        theory.LOCAL_MINIMA.resolve_params({"p": "2/5", "q": "4/5"}))
    h_pi, rate = prediction.float("unigram_loss"), prediction.float("entropy_rate")
    band = markov._trap_band(markov_resolution.FAST_LOSS, h_pi, rate)
    [run] = markov.train_seeds(0.4, 0.8, 6, True, "fast", (0,), torch.device("cpu"), {})
    assert markov.longest_plateau(run.curve, h_pi, band).length < (
        markov.PLATEAU_FRACTION * len(run.curve))
    checks, curves = _control("markov-global-minima", d="6", p="3/5", q="1/5")
    check = checks["tied-trap-steps-at-h-pi"]
    assert f"(d = {markov.TRAP_CONTROL_D})" in check.name and check.passed
    assert all(f"(d = {markov.TRAP_CONTROL_D})" in curve.title for curve in curves)


def test_trap_control_keeps_the_requested_d_at_or_below_the_cap():
    checks, _ = _control("markov-global-minima", d="3", p="3/10", q="9/10")
    check = checks["tied-trap-steps-at-h-pi"]
    assert "(d = " not in check.name and check.passed


def test_trap_predictions_are_read_where_the_run_is_most_stationary_in_the_exact_budget():
    """Near p + q = 1 the trapped run is still converging at the middle of its plateau: at
    (19/20, 1/10) the prediction after x_n = 1 read there missed pi1 by 2.9e-4 against a
    tolerance of 2.4e-4. The exact budgets read it at the plateau's smallest gradient norm
    (on a run that escapes, the step nearest H(pi) could be its crossing on the way out)."""
    [run] = markov.train_seeds(0.95, 0.1, 4, True, "fast", (0,), torch.device("cpu"), {})
    grads = np.asarray(run.history.grad_norms)
    step = markov._probe_step(run, 100, 900, exact=True)
    assert 100 <= step < 900 and grads[step] == grads[100:900].min()
    assert markov._probe_step(run, 100, 900, exact=False) == 500
    assert markov._probe_step(run, 300, 300, exact=True) == len(run.curve) - 1
    verdict = verify.check("markov-local-minima", p="19/20", q="1/10", device="cpu")
    assert verdict.passed, [c.name for c in verdict.checks if not c.passed]

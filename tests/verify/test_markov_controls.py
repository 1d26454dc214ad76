"""The Markov controls that need a trapped run train at d <= TRAP_CONTROL_D in the exact
budget: above it a tied run at p+q > 1 can leave the trap within the plateau check's window."""

import numpy as np
import torch

import verify
from numerics.train import TrainConfig, make_optimizer
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


def test_bias_reach_is_the_trainers_learning_rates_summed_over_the_arrival_fraction():
    """The constant that sizes a run's length is what the trainer's one-cycle schedule gives,
    at the budgets' length and at a longer run (the sum grows with the run)."""
    for steps in (markov.BUDGETS["fast"].steps, 2 * markov.BUDGETS["fast"].steps + 345):
        model = torch.nn.Module()
        model.w = torch.nn.Parameter(torch.zeros(1))
        model.matrices = list
        optimizer, scheduler = make_optimizer(model, TrainConfig(steps=steps))
        rates = []
        for _ in range(int(markov_resolution.BIAS_ARRIVAL * steps)):
            rates.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        reach = sum(rates) / steps
        assert markov_resolution.BIAS_REACH_PER_STEP <= reach <= 1.01 * (
            markov_resolution.BIAS_REACH_PER_STEP), reach


def test_runs_are_longer_only_where_the_bias_cannot_reach_the_trap_in_the_budget():
    fast = markov.BUDGETS["fast"].steps
    reach = markov_resolution.BIAS_REACH_PER_STEP * fast
    for p, q in ((0.5, 0.8), (0.5, 0.2), (0.6, 0.7), (0.2, 0.3), (0.9, 0.9)):
        assert abs(np.log(p / q)) < reach
        assert markov_resolution.run_steps(fast, p, q) == fast
    for p, q in ((0.95, 0.07), (0.02, 0.99), (0.07, 0.95)):
        steps = markov_resolution.run_steps(fast, p, q)
        assert steps > fast
        assert markov_resolution.BIAS_REACH_PER_STEP * steps >= abs(np.log(p / q))


def test_a_trap_at_an_extreme_stationary_law_is_resolved():
    """At (19/20, 7/100), p + q - 1 = 0.02, the tied run's bias must travel ln(p/q) = 2.6 from
    0: in 1000 steps it was still 3e-5 above H(pi) at the end (plateau 0 steps), and so was the
    trap control of the global minimum at the mirrored point (1/20, 93/100). With the run's
    length sized by the bias's reach both hold the trap."""
    verdict = verify.check("markov-local-minima", p="19/20", q="7/100", d="3", device="cpu")
    assert verdict.passed, [c.name for c in verdict.checks if not c.passed]
    checks, curves = _control("markov-global-minima", d="3", p="1/20", q="93/100")
    assert checks["tied-trap-steps-at-h-pi"].passed
    assert len(curves[0].values) == markov_resolution.run_steps(1000, 0.95, 0.07)


def test_the_cost_model_counts_the_longer_runs():
    from verify.papers import markov as registration

    assert {budget.steps for budget in markov.BUDGETS.values()} == {registration._STEPS}
    entry = registry.entry("markov-local-minima")
    usual = harness.estimated_seconds(entry, {"p": "1/2", "q": "4/5", "d": "4"}, "fast", 1)
    extreme = harness.estimated_seconds(entry, {"p": "19/20", "q": "7/100", "d": "4"}, "fast", 1)
    assert extreme > 2 * usual

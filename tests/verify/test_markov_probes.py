"""The Markov checks read a sampled curve as its tolerance is sized: a prediction probe through
the loss curve's trailing moving average, a loss deviation over full windows only; in an exact
budget (no averaging) at every step itself."""

import numpy as np
import pytest
import torch

import verify
from numerics.monte_carlo import Estimate
from numerics.train import History
from verify import harness
from verify.experiments import markov
from verify.records import Context


def _run(after_0: np.ndarray, after_1: np.ndarray) -> markov.MarkovRun:
    steps = len(after_0)
    history = History(np.zeros(steps), np.zeros(steps),
                      {"after_0": after_0, "after_1": after_1}, {}, 0.0)
    return markov.MarkovRun(history, np.zeros(steps), 0.0, Estimate(0.0, 0.0))


def _context(budget: str) -> Context:
    plan = verify.prepare("markov-local-minima", budget=budget, seeds=2)
    return harness.stage_context(plan, torch.device("cpu"))


def _oscillating(pi1: float, amplitude: float, steps: int, phase: int) -> np.ndarray:
    """pi1 plus an optimiser-like oscillation of period 10 (mean zero over a whole period)."""
    return pi1 + amplitude * np.sin(2 * np.pi * (np.arange(steps) + phase) / 10)


@pytest.mark.parametrize("budget", ["fast", "full"])
def test_prediction_probe_is_read_through_the_loss_curves_window(budget):
    """Probes oscillating around pi1 by two tolerances with a period of 10 steps: the full
    budget reads the trailing 50-step mean (a whole number of periods, so pi1 itself) and
    passes; the exact budget reads the step itself, two tolerances out, and fails."""
    ctx = _context(budget)
    window = markov.BUDGETS[budget].smoothing
    pi1 = ctx.prediction.float("stationary_one")
    tolerance = markov.PREDICTION_FRACTION * abs(float(ctx.plan.params["p"]) - pi1)
    steps, at = 400, [203, 292]  # one step near a crest of the oscillation, one near a trough
    runs = [_run(_oscillating(pi1, 2 * tolerance, steps, phase),
                 _oscillating(pi1, 2 * tolerance, steps, phase)) for phase in (0, 5)]
    checks = markov._prediction_checks(runs, ctx, pi1, pi1, at)
    for check, probe in zip(checks, ("after_0", "after_1"), strict=True):
        expected = [float(np.mean(run.history.probes[probe][step - window + 1: step + 1]))
                    for run, step in zip(runs, at, strict=True)]
        assert check.per_seed == pytest.approx(expected, abs=1e-12)
        # one step of the oscillation is 2 tolerances out; a whole number of periods averages
        # it away, so only the sampled budget (a 50-step window) passes
        assert check.passed == (window > 1)
        assert check.details.get("moving_average_steps") == (window if window > 1 else None)


def test_largest_deviation_counts_full_windows_only():
    """A trailing 50-step average starts with single batches (sqrt(50) times noisier than the
    tolerance's full window): a first point far off does not count, a later one does."""
    from numerics.statistics import moving_average

    rng = np.random.default_rng(0)
    losses = 0.6 + 0.001 * rng.standard_normal(400)
    losses[0] = 0.7  # one noisy batch at the start
    curve, _ = moving_average(losses, 50)
    full = markov._largest_deviation(curve, 0.6, 50)
    assert full == pytest.approx(np.max(np.abs(curve[49:] - 0.6)))
    assert full < 0.01 < markov._largest_deviation(curve, 0.6, 1)
    losses[300] = 0.7 + 0.5 * 50  # a jump after the first window shows through the average
    curve, _ = moving_average(losses, 50)
    assert markov._largest_deviation(curve, 0.6, 50) > 0.4

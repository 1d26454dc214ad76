"""The orthogonal-heads experiment at the sizes where one run is not enough (Sander et al., 2024,
non-augmented theorem): a slow escape from the saddle at 0, a control step that diverges, and an
unbalanced draw that is orthogonal by chance. Each seed below was found failing before the fix."""

import dataclasses

import torch

from verify import harness, registry
from verify.experiments import ical


def _stage(stage: int, seed: int, **sizes: str) -> dict:
    entry = registry.entry("ical-orthogonal-heads")
    plan = dataclasses.replace(harness.prepare(entry, sizes, seeds=1), seeds=(seed,))
    context = harness.stage_context(plan, torch.device("cpu"))
    checks, _ = registry.experiment("ical-orthogonal-heads").stages[stage](context)
    return {check.key: check for check in checks}


def test_a_balanced_run_that_has_not_left_the_saddle_restarts(monkeypatch):
    """d = 2, T = 12, seed 2: gradient descent from the small balanced init is still near the
    saddle at 0 after 4 times the budget's steps (it leaves it after about 8900): with one run
    the loss check fails and the heads are not orthogonal yet; the restart reaches the global
    minimum, where they are."""
    monkeypatch.setattr(ical, "HEADS_MAX_RUNS", 1)
    alone = _stage(1, 2, d="2", T="12")
    assert not alone["balanced-init-loss-at-the-end-seed-2"].passed
    assert alone["balanced-init-loss-at-the-end-seed-2"].measured > 1.0
    assert not alone["a-a-t-max-off-diagonal-mean-diagonal-seed-2"].passed
    monkeypatch.undo()
    checks = _stage(1, 2, d="2", T="12")
    assert all(check.passed for check in checks.values()), checks
    runs = checks["balanced-init-loss-at-the-end-seed-2"].details["runs"]
    budget = ical.BUDGETS["fast"].steps * ical.HEADS_STEP_FACTOR
    assert [run["restart"] for run in runs] == [0, 1]
    assert runs[0]["steps"] == budget and not runs[0]["reached"]
    assert runs[1]["steps"] < budget and runs[1]["loss"] <= 1e-6
    assert checks["b-t-a-max-off-diagonal-mean-diagonal-seed-2"].details["run"] == (
        "seed 2, restart 1")


def test_the_control_step_is_halved_until_its_run_stays_finite(monkeypatch):
    """d = 8, T = 4, seed 2: the scale-1 control diverges at the step of the small-init runs and not
    at half of it, where it gets twice the steps."""
    monkeypatch.setattr(ical, "CONTROL_HALVINGS", 0)
    [diverged] = _stage(2, 2, d="8", T="4").values()
    assert not diverged.passed and diverged.key.endswith("-diverged")
    monkeypatch.undo()
    [control] = _stage(2, 2, d="8", T="4").values()
    assert control.passed
    assert control.details["draws"][0]["step"] == ical.GD_LR / 2
    assert control.details["draws"][0]["loss"] <= ical.ZERO_LOSS_BOUND  # at its minimum


def test_an_unbalanced_draw_orthogonal_by_chance_is_drawn_again(monkeypatch):
    """d = 2, T = 4, seed 10: the unbalanced run ends with A A^T's off-diagonal at 1.3% of its
    diagonal, inside the tolerance; the next draw is far outside it."""
    monkeypatch.setattr(ical, "HEADS_CONTROL_DRAWS", 1)
    [alone] = _stage(2, 10, d="2", T="4").values()
    assert not alone.passed and alone.measured < ical.HEADS_RATIO
    monkeypatch.undo()
    [control] = _stage(2, 10, d="2", T="4").values()
    assert control.passed and control.measured > 2 * ical.HEADS_RATIO
    assert [draw["apart"] for draw in control.details["draws"]] == [False, True]

"""The two-stage dynamics claim: its scores, its half-way rule, and its full-budget code path.

The claim times two curves; these tests hold the pieces that time them to what they say: the
block pattern is scale-free and reads block matrices as +-1, the half-way step is the first
step from which a curve stays at half its final value, the order of two curves decides the
sign of the lead, and the paper-scale code path runs end to end on a shrunk budget.
"""

import math

import numpy as np
import pytest
import torch

import verify.experiments.topics_dynamics as dynamics
from numerics.data.lda import topic_blocks
from verify import harness, registry
from verify.papers import topics_dynamics as registration

THEOREM = "topics-two-stage-dynamics"


def _block(T: int, v: int, same: float, other: float) -> np.ndarray:
    return np.where(topic_blocks(T, v), same, other)


def test_block_pattern_reads_block_matrices_and_ignores_scale():
    T, v = 4, 3
    assert dynamics.block_pattern(_block(T, v, 0.3, -0.1), T, v) == pytest.approx(1, abs=1e-12)
    assert dynamics.block_pattern(_block(T, v, -0.3, 0.1), T, v) == pytest.approx(-1, abs=1e-12)
    rng = np.random.default_rng(0)
    noisy = _block(T, v, 1.0, 0.0) + 0.3 * rng.standard_normal((T * v, T * v))
    pattern = dynamics.block_pattern(noisy, T, v)
    assert 0.5 < pattern < 1
    # a shift and a positive scale leave the pattern alone; the size of the gap grows with it
    assert dynamics.block_pattern(7 * noisy - 2, T, v) == pytest.approx(pattern, abs=1e-12)
    assert abs(dynamics.block_pattern(rng.standard_normal((T * v, T * v)), T, v)) < 0.3
    # the diagonal does not enter: a large diagonal on pure noise-free blocks changes nothing
    diagonal = _block(T, v, 0.3, -0.1) + 5 * np.eye(T * v)
    assert dynamics.block_pattern(diagonal, T, v) == pytest.approx(1, abs=1e-12)
    assert math.isnan(dynamics.block_pattern(np.ones((T * v, T * v)), T, v))


def test_value_sigmas_resolve_blocks_and_not_noise():
    T, v = 4, 3
    rng = np.random.default_rng(1)
    noise = rng.standard_normal((T * v, T * v))
    assert dynamics.value_sigmas(_block(T, v, 1.0, 0.0) + 0.1 * noise, T, v) > 20
    assert abs(dynamics.value_sigmas(noise, T, v)) < dynamics.SAMPLED_SIGMAS


def test_half_step_is_the_first_step_from_which_a_curve_stays_above_half():
    steps = np.arange(10)
    rising = np.array([0, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0, 1.0, 1.0])
    assert dynamics.half_step(rising, steps, 1.0) == 4
    # a transient crossing (step 2) that falls back does not count
    transient = np.array([0, 0.1, 0.7, 0.3, 0.45, 0.8, 0.9, 1.0, 1.0, 1.0])
    assert dynamics.half_step(transient, steps, 1.0) == 5
    # the steps of a sparse grid are reported, not indices
    assert dynamics.half_step(rising, 10 * steps, 1.0) == 40
    assert dynamics.half_step(rising, steps, 0.0) is None  # no structure: no time scale
    assert dynamics.half_step(rising[::-1], steps, 1.0) is None  # ends below half
    assert dynamics.final_value(rising, steps, 10) == pytest.approx(1.0)  # last tenth


def test_probe_steps_cover_the_start_densely_and_the_end_several_times():
    for budget in dynamics.BUDGETS.values():
        grid = dynamics.probe_steps(budget.steps, budget.probes)
        assert grid[0] == 0 and grid[-1] == budget.steps and np.all(np.diff(grid) > 0)
        last = grid >= (1 - dynamics.FINAL_FRACTION) * budget.steps
        assert last.sum() >= dynamics.FINAL_PROBES
        assert set(range(6)) <= set(grid.tolist())  # every step while W^V's pattern forms


def _trajectory(pattern, attention) -> dynamics.Trajectory:
    steps = np.arange(len(pattern))
    return dynamics.Trajectory(steps, np.asarray(pattern, float), np.asarray(pattern, float),
                               np.asarray(attention, float), None, np.zeros((2, 2)), None,
                               len(pattern) - 1)


def test_the_lead_says_which_curve_reaches_half_first():
    early = [0, 0.8, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    late = [0, 0, 0, 0.1, 0.3, 0.6, 0.9, 1, 1, 1, 1]
    assert _trajectory(early, late).lead() == 4  # W^V first: the claim's order
    assert _trajectory(late, early).lead() == -4  # attention first: the claim fails
    assert math.isnan(_trajectory(early, [0] * 11).lead())  # a flat attention never settles


def test_the_registration_repeats_the_experiment_budgets():
    for budget, (steps, batch, points, evaluation, controls, documents) in \
            registration.SCALE.items():
        assert dynamics.BUDGETS[budget] == dynamics.DynamicsBudget(
            documents=documents, batch=batch, steps=steps, probes=points,
            evaluation_documents=evaluation, control_seeds=controls)


def test_the_full_budget_code_path_runs_on_a_shrunk_budget(monkeypatch, tmp_path):
    """The full budget's sizes (T = 10, v = 10) with a few steps: every stage runs, the bridge
    holds at that size, every check and curve of the claim is there and the figures draw."""
    small = dynamics.DynamicsBudget(documents=40, batch=10, steps=12, probes=4,
                                    evaluation_documents=8, control_seeds=1)
    monkeypatch.setitem(dynamics.BUDGETS, "full", small)
    plan = harness.prepare(registry.entry(THEOREM), {}, budget="full", seeds=2)
    assert plan.params["T"] == 10 and plan.params["v"] == 10
    verdict = harness.run(plan, dynamics.TWO_STAGE_DYNAMICS, torch.device("cpu"))
    by_kind = {kind: [c for c in verdict.checks if c.kind == kind]
               for kind in ("obligation", "bridge", "training", "control")}
    assert all(c.passed for c in by_kind["obligation"] + by_kind["bridge"])
    assert len(by_kind["bridge"]) == 3
    assert {c.key for c in by_kind["training"]} == {
        "attention-gap-half-way-step-minus-w-v-pattern-half-way-step",
        "final-attention-gap-in-standard-errors", "final-w-v-block-gap-in-standard-errors"}
    lead = next(c for c in by_kind["training"] if c.key.startswith("attention-gap-half"))
    assert len(lead.per_seed) == 2 and set(lead.details["seeds"]) == {"0", "1"}
    assert len(by_kind["control"]) == 3  # attention first and topic-free, on seed 0 only
    assert all(c.key.endswith("-seed-0") for c in by_kind["control"])
    grid = dynamics.probe_steps(small.steps, small.probes)
    assert len(verdict.curves) == 3 * 3  # three curves per seed and for the control run
    assert all(len(c.steps) == len(c.values) == len(grid) - 1 for c in verdict.curves)
    figures = verdict.figures(tmp_path)
    assert len(figures) == 3 and len(list(tmp_path.glob(f"{THEOREM}-*.png"))) == 3


def test_attention_first_control_holds_the_ordinary_run_s_attention(monkeypatch):
    """The control's attention is held where the seed's ordinary run ended, so its gap is at
    its trained size at every step (half-way step 0) while W^V starts near zero. (Trained on
    from there, the gap went on growing at some sizes and reached half its final value after
    W^V's pattern: the control failed.)"""
    small = dynamics.DynamicsBudget(documents=40, batch=10, steps=30, probes=6,
                                    evaluation_documents=20, control_seeds=1)
    monkeypatch.setitem(dynamics.BUDGETS, "fast", small)
    plan = harness.prepare(registry.entry(THEOREM), {}, seeds=1)
    ctx = harness.stage_context(plan, torch.device("cpu"))
    ordinary = dynamics._joint_run(ctx, 0)
    control = dynamics._joint_run(ctx, 0, attention_first=True)
    assert control.attention_gap[0] == pytest.approx(ordinary.attention_gap[-1], rel=1e-9)
    assert control.attention_gap[0] != pytest.approx(ordinary.attention_gap[0], abs=1e-9)
    assert np.all(control.attention_gap == control.attention_gap[0])
    assert control.half("attention_gap") == 0 and control.lead() < 0
    # W^V starts near zero in both (entries of size INIT_STD)
    assert max(abs(control.value_gap[0]), abs(ordinary.value_gap[0])) < 10 * dynamics.INIT_STD


def test_one_word_per_topic_is_refused_before_any_work():
    """With v = 1 there are no same-topic pairs of different words: both scores would compare
    nothing, so the request is a usage error naming v."""
    from theorems import TheoremError

    with pytest.raises(TheoremError, match="v must be at least 2"):
        harness.prepare(registry.entry(THEOREM), {"v": "1"})
    assert registry.theorem(THEOREM).assumptions(
        registry.theorem(THEOREM).resolve_params({"v": 2})) == []


def test_the_stage_1_obligations_catch_a_wrong_block_optimum():
    """The obligations on a, b are the value theorem's optimality conditions evaluated at the
    closed forms (not a comparison with the root they are computed from): they hold at the
    closed forms and fail when a or b is off by 1e-6."""
    import dataclasses

    theorem = registry.theorem(THEOREM)
    params = theorem.resolve_params({})
    prediction = theorem.predict(params)

    def failing(forms: dict) -> set[str]:
        changed = dataclasses.replace(prediction, closed_forms=forms)
        return {o.name for o in theorem.obligations(params, changed)
                if {"a", "b"} & set(o.uses) and not o.check().holds}

    assert failing(dict(prediction.closed_forms)) == set()
    for name in ("a", "b"):
        wrong = dict(prediction.closed_forms) | {name: prediction.closed_forms[name] + 1e-6}
        names = failing(wrong)
        assert any("stationarity" in n for n in names) and any("rows sum" in n for n in names)

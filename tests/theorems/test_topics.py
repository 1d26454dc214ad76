"""Topic-structure closed forms and obligations (Li, Li, Risteski, 2023)."""

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from theorems import topics
from verify import registry

#: The topic theorems on the synthetic topic model (T topics of v words, tau per document);
#: topics-wikipedia reads real text and has none of these parameters.
TOPIC_IDS = [i for i in registry.ids() if i.startswith("topics-")
             and {"T", "v", "tau", "lam"} <= {p.name for p in registry.theorem(i).parameters}]
#: Claims whose scores compare same-topic pairs of different words: they need v >= 2 (their
#: assumptions refuse v = 1, tests/verify/test_topics_dynamics.py).
PAIRWISE_IDS = {"topics-two-stage-dynamics"}


def test_worked_value_from_the_spec():
    """T=4, v=3, tau=2, lambda=0.01 gives a = 0.31131875, b = -0.10377292 (spec)."""
    theorem = registry.theorem("topics-value-block-structure")
    prediction = theorem.predict(theorem.resolve_params({}))
    assert prediction.float("a") == pytest.approx(0.31131875, abs=5e-9)
    assert prediction.float("b") == pytest.approx(-0.10377292, abs=5e-9)


@settings(max_examples=6)
@given(T=st.integers(2, 4), v=st.integers(1, 3), tau_fraction=st.floats(0, 0.99),
       lam=st.integers(1, 50).map(lambda k: sp.Rational(k, 1000)))
def test_obligations_hold_on_admissible_parameters(T, v, tau_fraction, lam):
    tau = 1 + int(tau_fraction * (T - 1))
    for theorem_id in TOPIC_IDS:
        if v == 1 and theorem_id in PAIRWISE_IDS:
            continue
        theorem = registry.theorem(theorem_id)
        params = theorem.resolve_params({"T": T, "v": v, "tau": tau, "lam": lam})
        threshold = topics.penalty_threshold().subs(
            {topics.T_: T, topics.v_: v, topics.tau_: tau})
        if theorem_id == "topics-embedding-block-structure" and lam >= threshold:
            # the trace penalty makes G = 0 optimal: refused, with the threshold named
            assert any("lambda*" in problem for problem in theorem.assumptions(params))
            continue
        assert theorem.assumptions(params) == []
        assert all(ob.check().holds for ob in theorem.proof(params)), (theorem_id, params)


@pytest.mark.parametrize(("T", "v", "tau"), [(6, 4, 4), (5, 3, 2), (7, 2, 5)])
@pytest.mark.parametrize("theorem_id", ["topics-value-block-structure",
                                        "topics-two-stage-dynamics"])
def test_obligations_on_the_50_digit_optimum_hold_at_larger_sizes(theorem_id, T, v, tau):
    """a + (T-1) b = 0 was an exact comparison of two 50-digit numbers: at T = 6, v = 4,
    tau = 4 their sum left 8e-53 and the obligation failed. It is now within 1e-30, like the
    other obligations on the numeric root."""
    theorem = registry.theorem(theorem_id)
    params = theorem.resolve_params({"T": T, "v": v, "tau": tau})
    failed = [ob.name for ob in theorem.proof(params) if not ob.check().holds]
    assert failed == []


def test_root_is_unique_and_block_entries_are_ordered():
    root = topics.optimal_gap(4, 3, 2, sp.Rational(1, 100))
    gap = topics.stationarity_gap().subs({topics.T_: 4, topics.v_: 3, topics.tau_: 2,
                                          topics.lam_: sp.Rational(1, 100)})
    assert gap.subs(topics.delta, root / 2) > 0 > gap.subs(topics.delta, 2 * root)


def test_squared_loss_control_is_discriminating():
    """Without the penalty, W = I is optimal for the squared loss (zero gradient), and I is
    not of the block form a Blk + b (J - Blk) when v > 1: the obligation is not vacuous."""
    T, v, tau = 3, 2, 1
    assert topics._squared_loss_gradient_at_identity(T, v, tau) == sp.zeros(T * v, T * v)
    a, b = sp.symbols("a b")
    assert not sp.solve(list(topics.block_matrix(T, v, a, b) - sp.eye(T * v)), [a, b], dict=True)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"tau": "4"}, "tau must lie in [1, T)"),
        ({"tau": "0"}, "tau must lie in [1, T)"),
        ({"lam": "0"}, "lambda must be > 0"),
        ({"lam": "-1/10"}, "lambda must be > 0"),
        ({"mask": "1.5"}, "mask must be a probability"),
        ({"keep": "0.7", "random": "0.4"}, "must sum to 1"),
    ],
)
def test_bad_parameters_are_readable_violations(overrides, message):
    theorem = registry.theorem("topics-value-block-structure")
    violations = theorem.assumptions(theorem.resolve_params(overrides))
    assert any(message in v for v in violations), violations


@pytest.mark.parametrize("theorem_id", ["topics-attention-structure",
                                        "topics-two-stage-dynamics", "topics-wikipedia"])
def test_attention_claims_need_kept_words(theorem_id):
    """At keep = 0 (e.g. with random = 1/3, where the attention run ended at a lift ratio of
    0.97) no attention structure is predicted: refused; the value matrix's claim, which does not
    go through kept words, runs."""
    theorem = registry.theorem(theorem_id)
    violations = theorem.assumptions(theorem.resolve_params({"keep": "0", "random": "1/3"}))
    assert len(violations) == 1 and "keep must be > 0" in violations[0]
    assert not theorem.assumptions(theorem.resolve_params({"keep": "1/100"}))
    value = registry.theorem("topics-value-block-structure")
    assert not value.assumptions(value.resolve_params({"keep": "0", "random": "1/3"}))


@pytest.mark.parametrize("theorem_id", ["topics-value-block-structure",
                                        "topics-attention-structure", "topics-wikipedia"])
def test_a_masked_lm_without_selected_positions_is_outside_the_assumptions(theorem_id):
    theorem = registry.entry(theorem_id).theorem
    params = theorem.resolve_params({"mask": "0"})
    assert any("mask must be > 0" in problem for problem in theorem.assumptions(params))
    assert not theorem.assumptions(theorem.resolve_params({"mask": "1/100"}))

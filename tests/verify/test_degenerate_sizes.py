"""The smallest admissible sizes, where a closed form degenerates (L* = 0, one head, one word
per topic): the theorems still pass, and a control that cannot fail there is absent rather
than failing."""

from collections import Counter

import verify


def _kinds(verdict) -> Counter:
    return Counter(check.kind for check in verdict.checks)


def test_one_step_gd_at_d_1_where_the_minimal_loss_is_0():
    verdict = verify.check("ical-one-step-gd", d=1, T=2, device="cpu")
    held_out = next(c for c in verdict.checks if c.key.startswith("held-out-loss"))
    assert verdict.passed and held_out.predicted == 0
    assert 0 < held_out.tolerance.atol < 1e-5  # the zero-loss bound, not 2% of 0


def test_orthogonal_heads_control_is_absent_with_one_head_and_present_with_two():
    one = verify.check("ical-orthogonal-heads", d=1, T=2, device="cpu")
    assert one.passed and "control" not in _kinds(one)
    two = verify.check("ical-orthogonal-heads", d=2, T=2, device="cpu")
    assert two.passed and _kinds(two)["control"] == 1


def test_value_blocks_squared_loss_control_is_absent_with_one_word_per_topic():
    verdict = verify.check("topics-value-block-structure", T=2, v=1, tau=1, lam=1,
                           device="cpu")
    assert verdict.passed
    assert not any(c.key.startswith("squared-loss-no-penalty") for c in verdict.checks)


def test_ffn_max_margin_at_k_3_where_the_one_hot_law_underflows():
    """At K = 3 the one-hot law log(1 + 2 e^(-eta0 t / sqrt 2)) underflows to 0 before training
    stops: the Gaussian-embedding control reads the steps where it is representable."""
    verdict = verify.check("ntp-ffn-max-margin", K=3, L=2, orders="random", device="cpu")
    control = next(c for c in verdict.checks if c.key.startswith("gaussian-embeddings-l0"))
    assert verdict.passed and control.passed
    assert control.measured > control.tolerance.atol and control.measured < float("inf")


def test_default_orders_at_another_k_are_refused_with_a_hint():
    theorem = verify.registry.theorem("ntp-ffn-max-margin")
    problems = theorem.assumptions(theorem.resolve_params({"K": 3, "L": 2}))
    assert any("orders=random" in problem for problem in problems), problems

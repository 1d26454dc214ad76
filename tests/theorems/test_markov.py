"""The Markov closed forms and obligations (Makkuva et al., 2024)."""

import math

import pytest
import sympy as sp
from hypothesis import assume, given
from hypothesis import strategies as st

from theorems import markov
from verify import registry


def _h(t: float) -> float:
    return -t * math.log(t) - (1 - t) * math.log(1 - t)


@pytest.mark.parametrize(("pv", "qv"), [(0.5, 0.8), (0.9, 0.9), (0.2, 0.3)])
def test_entropies_match_the_textbook_formulas(pv, qv):
    point = {markov.p: sp.Rational(str(pv)), markov.q: sp.Rational(str(qv))}
    rate = (qv * _h(pv) + pv * _h(qv)) / (pv + qv)
    assert float(markov.entropy_rate.subs(point)) == pytest.approx(rate, abs=1e-12)
    assert float(markov.unigram_entropy.subs(point)) == pytest.approx(_h(pv / (pv + qv)), abs=1e-12)


def test_spec_reference_values():
    """Reference values printed in the spec (5 decimals)."""
    for (pv, qv), (h_pi, rate) in {
        ("1/2", "4/5"): (0.66631, 0.61901),
        ("9/10", "9/10"): (math.log(2), 0.32508),
        ("1/5", "3/10"): (0.67301, 0.54459),
    }.items():
        point = {markov.p: sp.Rational(pv), markov.q: sp.Rational(qv)}
        assert float(markov.unigram_entropy.subs(point)) == pytest.approx(h_pi, abs=5e-5)
        assert float(markov.entropy_rate.subs(point)) == pytest.approx(rate, abs=5e-6)


def _rational(lo: int, hi: int):
    return st.integers(lo, hi).map(lambda k: sp.Rational(k, 100))


@given(pv=_rational(1, 99), qv=_rational(1, 99), d=st.integers(1, 3))
def test_obligations_hold_on_the_admissible_set(pv, qv, d):
    assume(pv + qv != 1)
    theorem_id = "markov-local-minima" if pv + qv > 1 else "markov-tied-saddle"
    for tid in (theorem_id, "markov-saddle-untied", "markov-global-minima"):
        theorem = registry.theorem(tid)
        params = theorem.resolve_params({"p": pv, "q": qv, "d": d})
        assert theorem.assumptions(params) == []
        assert all(ob.check().holds for ob in theorem.proof(params)), (tid, pv, qv)


def test_definiteness_obligations_fail_outside_the_assumptions():
    """The PSD claim of the local minimum is false at p+q < 1: the checker must say so."""
    local = registry.theorem("markov-local-minima")
    params = local.resolve_params({"p": "1/5", "q": "3/10"})
    psd = [ob for ob in local.proof(params) if ob.relation == "psd"]
    assert psd and not psd[0].check().holds
    saddle = registry.theorem("markov-tied-saddle")
    params = saddle.resolve_params({"p": "1/2", "q": "4/5"})
    indefinite = [ob for ob in saddle.proof(params) if ob.relation == "indefinite"]
    assert indefinite and not indefinite[0].check().holds


@pytest.mark.parametrize(
    ("theorem_id", "overrides", "message"),
    [
        ("markov-local-minima", {"p": "0.2", "q": "0.3"}, "p+q > 1 is required"),
        ("markov-local-minima", {"p": "0.5", "q": "0.5"}, "p+q > 1 is required"),
        ("markov-tied-saddle", {"p": "0.5", "q": "0.8"}, "p+q < 1 is required"),
        ("markov-saddle-untied", {"p": "0.4", "q": "0.6"}, "p+q != 1"),
        ("markov-global-minima", {"p": "1"}, "p must lie in"),
        ("markov-global-minima", {"d": "0"}, "d must be a positive integer"),
    ],
)
def test_assumption_violations_are_readable(theorem_id, overrides, message):
    theorem = registry.theorem(theorem_id)
    violations = theorem.assumptions(theorem.resolve_params(overrides))
    assert any(message in v for v in violations), violations


def test_hessian_spectrum_formula_matches_direct_eigenvalues():
    """The reduced Hessian's eigenvalues, computed by sympy, equal the stated closed forms."""
    point = {markov.p: sp.Rational(9, 10), markov.q: sp.Rational(9, 10)}
    for tied, expected in ((True, {sp.Rational(1, 4): 1, sp.Rational(2, 5): 2}),
                           (False, {sp.Rational(1, 4): 1, sp.Rational(1, 5): 2,
                                    -sp.Rational(1, 5): 2})):
        hessian = markov.hessian_at_unigram_point(2, tied).subs(point)
        assert hessian.eigenvals() == expected

"""Next-token-prediction closed forms, the exact max-margin solver, and the data setting
(Huang, Liang, Yang, 2024; the project's formulation)."""

from itertools import combinations

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from theorems import least_distance, ntp, ntp_orders
from verify import registry

NTP_IDS = [i for i in registry.ids() if i.startswith("ntp-")]


def _defaults(theorem_id="ntp-attention-max-margin", **overrides):
    theorem = registry.theorem(theorem_id)
    return theorem.resolve_params({k: str(v) for k, v in overrides.items()})


def test_every_spec_theorem_is_registered():
    assert set(NTP_IDS) == {"ntp-ffn-max-margin", "ntp-attention-max-margin",
                            "ntp-loss-linear-rate", "ntp-dataset-shift"}


def test_full_chain_gets_evenly_spaced_scores():
    """Spec: a full chain of 6 with the query least gets scores -2.5, -1.5, ..., 2.5."""
    W = ntp.attention_max_margin(ntp.resolve(_defaults()))
    ranks = [0, 1, 2, 3, 4, 5]  # query 0: 5 > 4 > ... > 0, so token x has rank x
    assert [W[x, 0] for x in ranks] == [sp.Rational(2 * r - 5, 2) for r in ranks]


def test_incomparable_tokens_of_the_toy_get_equal_scores():
    """Spec: query 2 is 3 > {1, 4} > 2 > {0, 5}; 1, 4 and 0, 5 are incomparable."""
    W = ntp.attention_max_margin(ntp.resolve(_defaults()))
    assert W[1, 2] == W[4, 2] and W[0, 2] == W[5, 2]
    assert W[3, 2] - W[1, 2] >= 1 and W[1, 2] - W[2, 2] >= 1 and W[2, 2] - W[0, 2] >= 1


@settings(max_examples=10)
@given(K=st.integers(2, 9), shift=st.integers(0, 8))
def test_feedforward_closed_form_norm_and_margins(K, shift):
    collocation = tuple((x + 1 + shift % (K - 1)) % K for x in range(K))
    W = ntp.ffn_max_margin(K, collocation)
    assert sum(w**2 for w in W) == K - 1
    margins = [W[collocation[x], x] - W[v, x] for x in range(K) for v in range(K)
               if v != collocation[x]]
    assert set(margins) == {1}


def _kkt_holds(K, pairs):
    column = least_distance.max_margin_column(K, frozenset(pairs))
    s, duals = column.scores, column.duals
    stationarity = [s[i] - sum(lam * ((g == i) - (x == i)) for (g, x), lam in duals.items())
                    for i in range(K)]
    return (all(s[g] - s[x] >= 1 for g, x in pairs) and all(v >= 0 for v in duals.values())
            and all(v == 0 for v in stationarity)
            and all(lam * (s[g] - s[x] - 1) == 0 for (g, x), lam in duals.items()))


@settings(max_examples=25)
@given(K=st.integers(2, 7), data=st.data())
def test_exact_least_distance_solver_satisfies_kkt(K, data):
    """Random comparison sets of a random ranking (acyclic): the exact solution is optimal."""
    ranking = data.draw(st.permutations(range(K)))
    candidates = [(ranking[i], ranking[j]) for i, j in combinations(range(K), 2)]
    pairs = data.draw(st.sets(st.sampled_from(candidates)))
    assert _kkt_holds(K, pairs)


def test_least_distance_without_constraints_is_zero():
    assert least_distance.max_margin_column(4, frozenset()).scores == (0, 0, 0, 0)


def test_comparison_rule_needs_length_three_for_pairs_away_from_the_query():
    short = ntp.resolve(_defaults(L=2)).comparisons()[0]
    long = ntp.resolve(_defaults(L=3)).comparisons()[0]
    assert short == {(x, 0) for x in range(1, 6)}  # query 0 is least: only {x, 0} sentences
    assert long == {(a, b) for a in range(6) for b in range(a)}


@settings(max_examples=8)
@given(K=st.integers(3, 6), seed=st.integers(0, 1000), length=st.integers(2, 4))
def test_obligations_hold_on_random_orders(K, seed, length):
    params = _defaults(K=K, orders="random", order_seed=seed, L=length)
    for theorem_id in ("ntp-attention-max-margin", "ntp-loss-linear-rate"):
        theorem = registry.theorem(theorem_id)
        assert theorem.assumptions(params) == []
        assert all(ob.check().holds for ob in theorem.proof(params)), (theorem_id, params)


def test_random_orders_are_seeded():
    first = ntp_orders.parse_orders("random", 8, 3)
    assert first == ntp_orders.parse_orders("random", 8, 3)
    assert first != ntp_orders.parse_orders("random", 8, 4)
    toy = ntp_orders.parse_orders(ntp.TOY_ORDERS, 6, 0)
    assert all(len(toy[q]) == 15 for q in (3, 4, 5))  # unlisted queries: total orders


def test_transitivity_holdout_removes_one_comparison_and_keeps_the_chain():
    resolved = ntp.resolve(_defaults("ntp-dataset-shift"))
    q, a, b, c = resolved.holdout
    full = ntp.resolve(_defaults()).comparisons()[q]
    assert full - resolved.comparisons()[q] == {(a, c)}
    assert {(a, b), (b, c)} <= resolved.comparisons()[q] and c != q


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"orders": "0: 1>2>3>1"}, "has a cycle"),
        ({"collocation": "1,2,3,4,5,5"}, "is not a permutation"),
        ({"collocation": "1,2,3"}, "is not a permutation"),
        ({"sentences": "1 4 2"}, "has no unique greatest token under query 2"),
        ({"sentences": "3 3 2"}, "distinct tokens"),
        ({"orders": "0: 1>7"}, "outside the vocabulary"),
        ({"orders": "0: 1>2; 0: 2>3"}, "query 0 is given twice"),
        ({"orders": "0 1>2"}, "should read"),
        ({"eta": "0"}, "eta must be a step size > 0"),
        ({"eta0": "-1/2"}, "eta0 must be a step size > 0"),
        ({"T0": "0"}, "T0 must be at least 1"),
        ({"L": "1"}, "L must be at least 2"),
    ],
)
def test_bad_specifications_are_named(overrides, message):
    theorem = registry.theorem("ntp-attention-max-margin")
    problems = theorem.assumptions(theorem.resolve_params(overrides))
    assert any(message in p for p in problems), problems


@pytest.mark.parametrize(
    ("holdout", "message"),
    [("0: 1>2>3", "is not a chain"), ("0: 2>1>0", "is the query"), ("0: 3>2", "should read")],
)
def test_bad_holdouts_are_named(holdout, message):
    theorem = registry.theorem("ntp-dataset-shift")
    problems = theorem.assumptions(theorem.resolve_params({"holdout": holdout}))
    assert any(message in p for p in problems), problems


def test_explicit_sentences_define_the_comparisons():
    resolved = ntp.resolve(_defaults(sentences="3 4 2; 0 2 1"))
    comparisons = resolved.comparisons()
    assert comparisons[2] == {(3, 4), (3, 2)} and comparisons[1] == {(0, 2), (0, 1)}
    assert resolved.length == 3 and all(not c for q, c in enumerate(comparisons) if q not in (1, 2))


@pytest.mark.parametrize("text", ["2", "garbage", "1: 2>3", "1 2>3>4"])
def test_a_holdout_not_of_the_form_q_a_b_c_is_named_as_such(text):
    theorem = registry.entry("ntp-dataset-shift").theorem
    problems = theorem.assumptions(theorem.resolve_params({"holdout": text}))
    assert any("should read 'q: a>b>c'" in problem for problem in problems), problems

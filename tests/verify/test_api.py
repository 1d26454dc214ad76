"""The Python API: prepare/check/list, exact parameters from Python values, the Verdict's views."""

from fractions import Fraction

import matplotlib
import pytest
import sympy as sp

import verify
from theorems import ParameterError, TheoremError
from verify.records import Relation


def test_list_theorems_gives_rows_for_a_data_frame():
    rows = verify.list_theorems()
    assert [r["id"] for r in rows][:2] == ["markov-global-minima", "markov-local-minima"]
    assert {"id", "kind", "title", "paper", "citation_key", "place"} <= set(rows[0])
    assert rows[0]["paper"] == "Makkuva et al. (2024)"


@pytest.mark.parametrize(("value", "exact"), [
    (0.7, sp.Rational(7, 10)), ("0.7", sp.Rational(7, 10)), (Fraction(7, 10), sp.Rational(7, 10)),
    (sp.Rational(7, 10), sp.Rational(7, 10)), ("7/10", sp.Rational(7, 10)),
    (0.1 + 0.2, sp.Rational("0.30000000000000004")),  # the float's shortest decimal text
])
def test_python_values_become_the_decimal_they_show(value, exact):
    plan = verify.prepare("markov-local-minima", p=value, q="9/10")
    assert plan.params["p"] == exact
    assert plan.params["p"].q <= 10**17  # never the 53-bit binary fraction (2**-54 ...) of a float


@pytest.mark.parametrize(("params", "message"), [
    ({"p": float("nan")}, "not a finite number"), ({"p": True}, "bool"),
    ({"p": 1e-300}, "exponent"), ({"d": 2.5}, "not an integer"), ({"p": [1]}, "give a number"),
])
def test_bad_python_values_are_refused(params, message):
    with pytest.raises(ParameterError, match=message):
        verify.prepare("markov-local-minima", **params)


def test_prepare_refuses_bad_budgets_and_seeds():
    with pytest.raises(TheoremError, match="unknown budget"):
        verify.prepare("markov-local-minima", budget="huge")
    for seeds in (0, 1.5, True):
        with pytest.raises(TheoremError, match="seeds must be"):
            verify.prepare("markov-local-minima", seeds=seeds)
    with pytest.raises(TheoremError, match="did you mean markov-local-minima"):
        verify.prepare("markov-local-minimum")


def test_check_returns_a_verdict_with_its_views(cpu, tmp_path):
    before = matplotlib.get_backend()
    verdict = verify.check("ntp-ffn-max-margin", device=cpu)
    assert verdict.passed and verdict.prediction["W_ov"]["float"]
    records = verdict.to_records()
    assert len(records) == len(verdict.checks)
    assert {r["kind"] for r in records} >= {"obligation", "bridge", "training"}
    html = verdict._repr_html_()
    assert html.count("<tr>") == len(verdict.checks) + 1 and "ntp-ffn-max-margin" in html
    text = str(verdict)
    assert "ntp-ffn-max-margin: PASS" in text and all(c.name[:20] in text for c in verdict.checks)
    figures = verdict.figures(tmp_path / "new" / "dir")
    assert figures and len(list((tmp_path / "new" / "dir").glob("*.png"))) == len(figures)
    assert matplotlib.get_backend() == before


def test_relations_own_their_rules():
    from verify.records import Tolerance

    tol = Tolerance(0.1, "test")
    assert Relation.CLOSE.passes(1.0, 1.05, tol) and not Relation.CLOSE.passes(1.0, 1.2, tol)
    assert Relation.APART.passes(1.0, 1.2, tol) and not Relation.APART.passes(1.0, 1.05, tol)
    assert Relation.AT_MOST.passes(1.0, 0.9, tol) and not Relation.AT_MOST.passes(1.0, 1.01, tol)
    assert Relation.AT_LEAST.passes(1.0, 1.1, tol) and not Relation.AT_LEAST.passes(1.0, 0.9, tol)
    assert not any(r.passes(1.0, float("nan"), tol) for r in
                   (Relation.CLOSE, Relation.APART, Relation.AT_MOST, Relation.AT_LEAST))
    assert Relation.CLOSE.drifted(1.0, 1.2, 1.0, tol) and not Relation.CLOSE.drifted(
        1.0, 1.05, 1.0, tol)
    assert not Relation.AT_MOST.drifted(1.0, 5.0, 1.0, tol)
    assert [r.symbol for r in Relation] == ["≈", "≠", "≤", "≥", ""]

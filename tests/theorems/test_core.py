import pytest
import sympy as sp

from theorems.core import Obligation, Parameter, ParameterError, UnknownTheoremError
from verify import registry

x = sp.Symbol("x", positive=True)


def test_registry_lists_the_four_markov_theorems():
    assert {
        "markov-global-minima", "markov-local-minima", "markov-saddle-untied",
        "markov-tied-saddle",
    } <= set(registry.ids())
    assert registry.theorem("markov-local-minima").id == "markov-local-minima"


def test_unknown_id_suggests_the_closest():
    with pytest.raises(UnknownTheoremError, match="markov-local-minima"):
        registry.theorem("markov-local-minimum")


def test_parameters_parse_exactly():
    param = Parameter("p", "rational", sp.Rational(1, 2), "")
    assert param.parse("0.7") == sp.Rational(7, 10)
    assert param.parse("3/5") == sp.Rational(3, 5)
    with pytest.raises(ParameterError, match="not a number"):
        param.parse("seven")
    with pytest.raises(ParameterError, match="not an integer"):
        Parameter("d", "integer", 4, "").parse("4.5")


def test_resolve_params_rejects_unknown_names():
    theorem = registry.theorem("markov-local-minima")
    assert theorem.resolve_params({"p": "0.9"})["p"] == sp.Rational(9, 10)
    with pytest.raises(ParameterError, match="no parameter 'r'"):
        theorem.resolve_params({"r": "1"})


@pytest.mark.parametrize(
    ("lhs", "relation", "rhs", "holds"),
    [
        (sp.sin(x) ** 2 + sp.cos(x) ** 2, "==", 1, True),
        (x + 1, "==", x, False),
        (sp.log(3) - 1, ">", 0, True),
        (sp.log(2) - 1, ">", 0, False),
        (sp.Integer(0), ">=", 0, True),
        (-x, "<", 0, True),
    ],
)
def test_scalar_obligations_are_decided_exactly(lhs, relation, rhs, holds):
    assert Obligation("t", lhs, relation, {x: sp.Rational(1, 3)}, rhs).check().holds is holds


def test_matrix_obligations():
    point = {x: sp.Rational(1, 2)}
    psd = sp.ImmutableMatrix([[x, 0], [0, 0]])
    saddle = sp.ImmutableMatrix([[0, x], [x, 0]])
    assert Obligation("t", psd, "psd", point).check().holds
    assert not Obligation("t", saddle, "psd", point).check().holds
    assert Obligation("t", saddle, "indefinite", point).check().holds
    assert Obligation("t", saddle, "spectrum", point, ((x, 1), (-x, 1))).check().holds
    assert not Obligation("t", saddle, "spectrum", point, ((x, 2),)).check().holds
    assert Obligation("t", psd, "spectrum", point, ((x, 1),)).check().method == "symbolic"


@pytest.mark.parametrize("theorem_id", registry.ids())
def test_every_registered_theorem_is_admissible_and_proved_at_its_defaults(theorem_id):
    """Every theorem, including ones added later: defaults satisfy the assumptions and every
    obligation holds there."""
    theorem = registry.theorem(theorem_id)
    params = theorem.resolve_params({})
    assert theorem.assumptions(params) == []
    results = [ob.check() for ob in theorem.proof(params)]
    assert results and all(r.holds for r in results), [r for r in results if not r.holds]

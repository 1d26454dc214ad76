"""The order-k chain's closed forms: exact stationary law, entropy rates, kernel parsing."""

import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from theorems.core import ParameterError
from theorems.markov_higher_order import (
    HIGHER_ORDER,
    kernel_values,
    random_kernel,
    stationary_law,
)


def _params(**overrides):
    return HIGHER_ORDER.resolve_params(overrides)


def _numeric_rates(kernel: np.ndarray) -> list[float]:
    """H_1..H_k by brute force over the stationary context law (numpy, independent)."""
    k = int(np.log2(len(kernel)))
    matrix = np.zeros((2**k, 2**k))
    for c, one in enumerate(kernel):
        matrix[c, (2 * c) % 2**k] += 1 - one
        matrix[c, (2 * c) % 2**k + 1] += one
    values, vectors = np.linalg.eig(matrix.T)
    mu = np.real(vectors[:, np.argmin(abs(values - 1))])
    mu /= mu.sum()
    rates = []
    for j in range(1, k + 1):
        total = 0.0
        for last in range(2**j):
            members = [c for c in range(2**k) if c % 2**j == last]
            weight = mu[members].sum()
            one = (mu[members] * kernel[members]).sum() / weight
            total -= weight * (one * math.log(one) + (1 - one) * math.log(1 - one))
        rates.append(total)
    return rates


@settings(max_examples=15, deadline=None)
@given(st.integers(2, 3), st.integers(0, 10_000))
def test_rates_are_the_brute_force_conditional_entropies(k, seed):
    params = _params(k=str(k), kernel_seed=str(seed))
    prediction = HIGHER_ORDER.predict(params)
    kernel = np.array([float(x) for x in kernel_values(params)])
    for j, rate in enumerate(_numeric_rates(kernel), start=1):
        assert math.isclose(prediction.float(f"rate_{j}"), rate, abs_tol=1e-10)


@settings(max_examples=10, deadline=None)
@given(st.integers(2, 3), st.integers(0, 10_000))
def test_every_obligation_holds_for_random_kernels(k, seed):
    params = _params(k=str(k), kernel_seed=str(seed))
    assert HIGHER_ORDER.assumptions(params) == []
    results = [ob.check() for ob in HIGHER_ORDER.proof(params)]
    assert all(r.holds for r in results), [r.value for r in results if not r.holds]


def test_a_wrong_stationary_law_or_rate_order_fails_its_obligation():
    params = _params()
    prediction = HIGHER_ORDER.predict(params)
    forms = dict(prediction.closed_forms)
    forms["rate_1"], forms["rate_2"] = forms["rate_2"], forms["rate_1"]  # swapped: H_1 < H_2
    swapped = type(prediction)(forms, prediction.point, descriptions=prediction.descriptions)
    failing = [ob.name for ob in HIGHER_ORDER.obligations(params, swapped) if not ob.check().holds]
    assert any("H_1 >= H_2" in name for name in failing)


def test_stationary_law_is_exact():
    kernel = tuple(sp.Rational(x, 10) for x in (1, 6, 7, 2))
    mu = stationary_law(kernel)
    assert all(isinstance(x, sp.Rational) for x in mu) and sum(mu) == 1


def test_random_kernels_are_reproducible_and_inside_the_unit_interval():
    assert random_kernel(3, 7) == random_kernel(3, 7) != random_kernel(3, 8)
    assert all(0 < x < 1 for x in random_kernel(4, 0)) and len(random_kernel(4, 0)) == 16


def test_a_given_kernel_is_read_exactly_in_binary_context_order():
    params = _params(kernel="1/10, 0.6, 7/10, 2e-1")
    assert kernel_values(params) == tuple(sp.Rational(x, 10) for x in (1, 6, 7, 2))
    prediction = HIGHER_ORDER.predict(params)
    assert prediction.point[sp.Symbol("theta_10", positive=True)] == sp.Rational(7, 10)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"kernel": "1/2,1/2,1/2"}, "needs 2^k = 4"),
    ({"kernel": "1/2,1/2,1/2,abc"}, "is not a number"),
    ({"kernel": "0,1/2,1/2,1/2"}, "in (0, 1)"),
    ({"kernel": "1/2,1/2,1/2,3/2"}, "in (0, 1)"),
    ({"kernel": "1/2," * 300}, "characters"),
    ({"k": "1"}, "k must lie in"),
    ({"k": "9"}, "k must lie in"),
    ({"kernel_seed": "-1"}, "kernel_seed"),
    ({"kernel": "1/2,1/2,1/2,1e-12"}, "closer than float64"),
    ({"d": "0"}, "d must be at least 1"),
])
def test_bad_kernels_are_named(overrides, message):
    problems = HIGHER_ORDER.assumptions(_params(**overrides))
    assert any(message in problem for problem in problems), problems


def test_a_malformed_entry_raises_a_parameter_error():
    with pytest.raises(ParameterError):
        kernel_values(_params(kernel="1/2,1/2,1/2,1/0"))


def test_the_seed_of_a_given_kernel_is_not_read():
    assert HIGHER_ORDER.assumptions(_params(kernel="1/10,3/5,7/10,1/5", kernel_seed="-1")) == []

"""Binary Markov chains of order k (Makkuva et al., *Attention with Markov*, the higher-order
experiments; empirical, no theorem).

A chain of order :math:`k` has one parameter per context of :math:`k` bits,
:math:`\\theta_c = P(x_{n+1} = 1 \\mid x_{n-k+1..n} = c)`, the context read as a binary number
with the oldest bit first. Its contexts form a first-order chain on :math:`2^k` states with a
stationary law :math:`\\mu`, computed here in exact rational arithmetic. From the kernel follow,
exactly:

* the :math:`j`-th order entropy rates :math:`H_j = H(x_{n+1} \\mid x_{n-j+1..n})` for
  :math:`j = 1..k` (:math:`H_k` is the chain's entropy rate, the loss floor of a predictor that
  sees the last :math:`k` bits; :math:`H_1` the floor of one that sees only :math:`x_n`), and
* the unigram entropy :math:`H(\\pi) = h(\\pi_1)`, :math:`\\pi_1 = P(x_n = 1)`.

Conditioning on more of the past cannot raise the entropy:
:math:`H(\\pi) \\ge H_1 \\ge \\dots \\ge H_k` (an obligation, decided exactly).
"""

from __future__ import annotations

import random
from functools import cache

import sympy as sp

from theorems.core import Obligation, Parameter, ParameterError, Params, Prediction, Theorem
from theorems.markov import binary_entropy

_PAPER = "makkuva2024markov"
#: Orders a request may ask for (the kernel has 2^k entries; the reference code's sweeps use
#: small k). At order k a window of k tokens must fit in the fast budget's N = 8.
MIN_ORDER, MAX_ORDER = 2, 4
#: Denominator of the seeded random kernels: entries uniform on {1/100, ..., 99/100}, the
#: reference code's ``--chain random`` (uniform on (0, 1)) on an exact grid.
RANDOM_DENOMINATOR = 100
#: Longest kernel text accepted (2^MAX_ORDER entries of a few digits each).
MAX_KERNEL_TEXT = 400
#: Kernel entries must keep this distance from 0 and 1: float64 then resolves every
#: conditional probability and its complement (nearer, ``1 - theta`` rounds to 1 and a
#: predictor's logit to infinity).
KERNEL_MARGIN = sp.Rational(1, 10**9)


def context_symbol(context: int, k: int) -> sp.Symbol:
    """:math:`\\theta_c` for the context ``c`` of ``k`` bits (named by its bits)."""
    return sp.Symbol(f"theta_{context:0{k}b}", positive=True)


def random_kernel(k: int, seed: int) -> tuple[sp.Rational, ...]:
    """The seeded random kernel: each of the ``2^k`` entries uniform on
    ``{1, ..., 99}/100`` (Python's Mersenne Twister seeded with ``seed``)."""
    rng = random.Random(seed)
    return tuple(sp.Rational(rng.randint(1, RANDOM_DENOMINATOR - 1), RANDOM_DENOMINATOR)
                 for _ in range(2**k))


def kernel_values(params: Params) -> tuple[sp.Rational, ...]:
    """The kernel the parameters name: ``random`` (seeded by ``kernel_seed``) or ``2^k``
    comma-separated probabilities. Raises :class:`ParameterError` when malformed."""
    k, text = int(params["k"]), str(params["kernel"]).strip()
    if text == "random":
        return random_kernel(k, int(params["kernel_seed"]))
    if len(text) > MAX_KERNEL_TEXT:
        raise ParameterError(f"kernel has more than {MAX_KERNEL_TEXT} characters")
    entry = Parameter("kernel", "rational", sp.Integer(0), "one kernel entry")
    values = tuple(entry.parse(part) for part in text.split(","))
    if len(values) != 2**k:
        raise ParameterError(f"kernel needs 2^k = {2**k} comma-separated probabilities for "
                             f"k = {k}, got {len(values)}")
    return values


def stationary_law(kernel: tuple[sp.Rational, ...]) -> tuple[sp.Rational, ...]:
    """The stationary law of the contexts, exactly (rational linear algebra)."""
    return _stationary_law(tuple(kernel))


@cache
def _stationary_law(kernel: tuple[sp.Rational, ...]) -> tuple[sp.Rational, ...]:
    transitions = _transitions(kernel)
    size = len(kernel)
    system = (transitions.T - sp.eye(size)).col_join(sp.ones(1, size))
    rhs = sp.zeros(size, 1).col_join(sp.Matrix([1]))
    solution, params = system.gauss_jordan_solve(rhs)
    if params.shape[0]:  # not irreducible: the assumptions exclude it
        raise ValueError("the context chain has no unique stationary law")
    return tuple(sp.Rational(x) for x in solution)


def _transitions(kernel: tuple[sp.Expr, ...]) -> sp.Matrix:
    """Context transition matrix ``c -> (2c mod 2^k) + x`` with probability ``P(x | c)``."""
    size = len(kernel)
    matrix = sp.zeros(size, size)
    for c, one in enumerate(kernel):
        matrix[c, (2 * c) % size] += 1 - one
        matrix[c, (2 * c) % size + 1] += one
    return matrix


def _symbols(k: int) -> tuple[sp.Symbol, ...]:
    return tuple(context_symbol(c, k) for c in range(2**k))


def _rate(j: int, k: int, mu: tuple[sp.Rational, ...]) -> sp.Expr:
    """:math:`H_j = \\sum_{c'} \\nu(c')\\, h(P(1 \\mid c'))` over the contexts :math:`c'` of the
    last ``j`` bits, with :math:`\\nu` the marginal of :math:`\\mu` and
    :math:`P(1 \\mid c') = \\sum_{c \\to c'} \\mu_c \\theta_c / \\nu(c')` (in the symbols)."""
    theta = _symbols(k)
    total = sp.Integer(0)
    for last in range(2**j):
        members = [c for c in range(2**k) if c % 2**j == last]
        weight = sum(mu[c] for c in members)
        if weight == 0:
            continue
        one = sum(mu[c] * theta[c] for c in members) / weight
        total += weight * binary_entropy(one)
    return total


def _point(params: Params) -> dict[sp.Symbol, sp.Rational]:
    k = int(params["k"])
    return dict(zip(_symbols(k), kernel_values(params), strict=True))


def _assumptions(params: Params) -> list[str]:
    k = params["k"]
    if not MIN_ORDER <= k <= MAX_ORDER:
        return [f"k must lie in [{MIN_ORDER}, {MAX_ORDER}] (got k = {k}): order 1 is the "
                "first-order theorems' chain, and 2^k kernel entries grow fast"]
    problems = []
    if params["d"] < 1:
        problems.append(f"d must be at least 1 (got d = {params['d']})")
    if str(params["kernel"]).strip() == "random" and params["kernel_seed"] < 0:
        return [*problems, f"kernel_seed must be >= 0 (got {params['kernel_seed']})"]
    try:
        kernel = kernel_values(params)
    except ParameterError as error:
        return [*problems, str(error)]
    outside = [str(x) for x in kernel if not 0 < x < 1]
    if outside:
        problems.append(f"every kernel entry must lie in (0, 1), got {', '.join(outside)}: "
                        "the chain must be irreducible with a unique stationary law")
    elif near := [str(x) for x in kernel if min(x, 1 - x) < KERNEL_MARGIN]:
        problems.append(f"kernel entries {', '.join(near)} lie within {KERNEL_MARGIN} of 0 or "
                        "1, closer than float64 resolves a probability and its complement")
    return problems


def _predict(params: Params) -> Prediction:
    k = int(params["k"])
    kernel = kernel_values(params)
    mu = stationary_law(kernel)
    theta = _symbols(k)
    pi_one = sum(mu[c] * theta[c] for c in range(2**k))  # P(x_{n+1} = 1), stationary
    forms = {
        "stationary_one": pi_one,
        "unigram_loss": binary_entropy(pi_one),
        **{f"rate_{j}": _rate(j, k, mu) for j in range(1, k + 1)},
    }
    descriptions = {
        "stationary_one": "pi1 = P(x_n = 1) under the stationary law mu of the contexts "
                          f"(mu exact: {', '.join(str(x) for x in mu)})",
        "unigram_loss": "H(pi): the loss of the context-free predictor",
        **{f"rate_{j}": f"H_{j} = H(x_{{n+1}} | last {j} bits): the floor of a predictor "
                        f"that sees {j} token{'s' if j > 1 else ''}"
                        + (" (the chain's entropy rate)" if j == k else "")
           for j in range(1, k + 1)},
    }
    return Prediction(closed_forms=forms, point=_point(params), descriptions=descriptions)


def _obligations(params: Params, prediction: Prediction) -> list[Obligation]:
    k = int(params["k"])
    kernel = kernel_values(params)
    mu = sp.ImmutableMatrix([stationary_law(kernel)])
    point = _point(params)
    theta = _symbols(k)
    forms = prediction.closed_forms
    obligations = [
        Obligation("mu is stationary: mu P(theta) = mu (the context chain)",
                   sp.ImmutableMatrix(mu * _transitions(theta)), "==", point, mu),
        Obligation("mu is a probability law: its entries sum to 1", sum(mu), "==", point,
                   sp.Integer(1)),
        Obligation("H(pi) >= H_1 (conditioning on x_n cannot raise the entropy)",
                   forms["unigram_loss"] - forms["rate_1"], ">=", point,
                   uses=("unigram_loss", "rate_1")),
    ]
    obligations += [
        Obligation(f"H_{j} >= H_{j + 1} (one more token of context cannot raise the entropy)",
                   forms[f"rate_{j}"] - forms[f"rate_{j + 1}"], ">=", point,
                   uses=(f"rate_{j}", f"rate_{j + 1}")) for j in range(1, k)]
    return obligations


HIGHER_ORDER = Theorem(
    id="markov-higher-order",
    title="Chains of order k: full attention does not reach the entropy rate within the "
          "budget; a window of the last k tokens gets closer",
    paper=f"{_PAPER}, higher-order experiments (empirical, no proof)",
    statement=(
        r"Shown by experiment in the paper, not proved: on a binary chain of order $k$ the "
        r"paper's transformer trained for its budget with full causal attention, one layer "
        r"or two, does not reach the $k$-th order entropy rate $H_k$, and restricting the "
        r"attention to a window of the last $k$ tokens (the reference code's memory $k - 1$: "
        r"the query at $n$ sees $x_{n-k+1..n}$) helps. Our formulation, at the positions "
        r"$n \ge k$ where the window holds the whole context: every full-attention model ends "
        r"above $H_k$ by more than the loss tolerance, and the one-layer windowed model ends "
        r"below the one-layer full-attention model from the same initialisation by more than "
        r"the tolerance; a window one token shorter cannot beat $H_{k-1} > H_k$ (the control). "
        r"The models are untied: with $a = e$ a chain whose last bit says little about the "
        r"next ($H_1 \approx H(\pi)$) keeps every model at $H(\pi)$, the trap of the "
        r"first-order theorems, whatever its attention. $H_1, \dots, H_k$ and $H(\pi)$ are "
        r"exact closed forms of the kernel."
    ),
    parameters=(
        Parameter("k", "integer", 2, "order of the chain: x_{n+1} depends on the last k bits"),
        Parameter("kernel", "text", "random",
                  "P(x_{n+1} = 1 | context) for the 2^k contexts in binary order (oldest bit "
                  "first), comma-separated, e.g. 1/10,3/5,7/10,1/5; or 'random'"),
        Parameter("kernel_seed", "integer", 0,
                  "seed of the random kernel (entries uniform on {1..99}/100)"),
        Parameter("d", "integer", 8, "embedding dimension of the models"),
    ),
    assumption_text=(rf"${MIN_ORDER} \le k \le {MAX_ORDER}$",
                     r"every kernel entry in $(0, 1)$", "stationary start",
                     "no weight tying (a and e separate)"),
    assumptions=_assumptions,
    predict=_predict,
    obligations=_obligations,
    kind="empirical",
)

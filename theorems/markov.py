"""Transformers on binary first-order Markov chains (Makkuva et al., *Attention with Markov*).

Paper: Makkuva, Bondaschi, Girish, Nagle, Jaggi, Kim, Gastpar, arXiv 2402.04161 (ICLR 2025).
The statements below are the project's formulation, re-derived and
checked numerically; the paper's full text was not available when they were written.

Data: kernel :math:`P = [[1-p, p], [q, 1-q]]`, stationary start :math:`x_1 \\sim \\pi`,
:math:`\\pi = (q, p)/(p+q)`. Model: single-layer transformer with logit
:math:`\\langle a, z_n \\rangle + b` (tied: :math:`a = e`).

Reduced losses
--------------
Where every parameter other than the token embedding ``e``, the head ``a`` and the bias ``b``
is zero (attention output and FFN vanish, positional vectors are zero), the model's logit is
:math:`\\langle a, e\\rangle x_n + b` and its population cross-entropy is exactly

.. math::
    L = \\sum_{x \\in \\{0,1\\}} \\pi_x\\,
        \\mathrm{CE}(P(1 \\mid x),\\; \\langle a,e\\rangle x + b)

(every position sees the stationary law, so the average over positions is one term). These
reduced losses are what the obligations differentiate; the bridge checks that the full torch
model's population loss, gradient and Hessian equal them.
"""

from __future__ import annotations

from functools import cache

import sympy as sp

from theorems.core import (
    Obligation,
    Parameter,
    Params,
    Prediction,
    Theorem,
)

p, q = sp.symbols("p q", positive=True)

pi0 = q / (p + q)
pi1 = p / (p + q)
#: :math:`\kappa = \pi_0 \pi_1 = pq/(p+q)^2`.
kappa = p * q / (p + q) ** 2
#: :math:`P(x_{n+1} = 1 \mid x_n = x)` for x = 0, 1.
NEXT_IS_ONE = {0: p, 1: 1 - q}
STATIONARY = {0: pi0, 1: pi1}


def binary_entropy(t: sp.Expr) -> sp.Expr:
    """:math:`h(t) = -t \\ln t - (1-t) \\ln(1-t)` in nats."""
    return -t * sp.log(t) - (1 - t) * sp.log(1 - t)


#: Entropy rate :math:`H(x_{n+1} \mid x_n) = (q h(p) + p h(q))/(p+q)`; the loss floor.
entropy_rate = (q * binary_entropy(p) + p * binary_entropy(q)) / (p + q)
#: Unigram entropy :math:`H(\pi) = h(p/(p+q))`: the loss of the context-free predictor.
unigram_entropy = binary_entropy(pi1)
#: Bigram slope :math:`c^* = \ln((1-p)(1-q)/(pq))`: logit after a 1 minus logit after a 0.
bigram_slope = sp.log((1 - p) * (1 - q) / (p * q))
#: Bigram bias :math:`\ell_0 = \ln(p/(1-p))`: the kernel's logit after a 0.
bigram_bias = sp.log(p / (1 - p))
#: Unigram bias :math:`\ln(p/q) = \ln(\pi_1/\pi_0)`: the logit of the stationary law.
unigram_bias = sp.log(p / q)
#: :math:`E[(\pi_1 - x_{n+1}) x_n]`, computed from the kernel (not from the closed form).
switching_moment = sum(
    STATIONARY[x] * x * (pi1 - NEXT_IS_ONE[x]) for x in (0, 1)
)


def cross_entropy(prob_one: sp.Expr, logit: sp.Expr) -> sp.Expr:
    """Expected binary cross-entropy of ``sigmoid(logit)`` against Bernoulli(``prob_one``)."""
    return prob_one * sp.log(1 + sp.exp(-logit)) + (1 - prob_one) * sp.log(1 + sp.exp(logit))


def reduced_loss(slope: sp.Expr, bias: sp.Expr) -> sp.Expr:
    """Population loss of the predictor with logit ``slope * x_n + bias`` (module docstring)."""
    return sum(
        STATIONARY[x] * cross_entropy(NEXT_IS_ONE[x], slope * x + bias) for x in (0, 1)
    )


s, b = sp.symbols("s b", real=True)


@cache
def embedding_coordinates(d: int, tied: bool) -> tuple[sp.Symbol, ...]:
    """Reduced coordinates: ``e_1..e_d`` (tied) or ``a_1..a_d, e_1..e_d`` (untied), then ``b``."""
    e = sp.symbols(f"e1:{d + 1}", real=True)
    a = () if tied else sp.symbols(f"a1:{d + 1}", real=True)
    return (*a, *e, b)


def embedding_loss(d: int, tied: bool) -> sp.Expr:
    """Reduced loss in the embedding coordinates: slope ``<a, e>`` (``||e||^2`` when tied)."""
    coords = embedding_coordinates(d, tied)
    e = coords[-1 - d : -1]
    a = e if tied else coords[:d]
    return reduced_loss(sum(ai * ei for ai, ei in zip(a, e, strict=True)), b)


def unigram_point(d: int, tied: bool, bias: sp.Expr = unigram_bias) -> dict[sp.Symbol, sp.Expr]:
    """The canonical member of :math:`\\theta_\\pi`: ``a = e = 0``, ``b = bias``
    (``ln(p/q)``)."""
    coords = embedding_coordinates(d, tied)
    return {c: sp.Integer(0) for c in coords[:-1]} | {b: bias}


@cache
def _reduced_derivatives(d: int, tied: bool) -> tuple[sp.ImmutableMatrix, sp.ImmutableMatrix]:
    """Gradient and Hessian of the reduced loss at ``a = e = 0``, as functions of ``b``."""
    loss, coords = embedding_loss(d, tied), embedding_coordinates(d, tied)
    at = {c: sp.Integer(0) for c in coords[:-1]}
    gradient = sp.ImmutableMatrix([sp.simplify(sp.diff(loss, c).subs(at)) for c in coords])
    hessian = sp.ImmutableMatrix(sp.hessian(loss, coords).subs(at).applyfunc(sp.simplify))
    return gradient, hessian


def _at_bias(matrix: sp.ImmutableMatrix, bias: sp.Expr) -> sp.ImmutableMatrix:
    """``matrix`` at ``b = bias``, factored where the entries became rational functions of
    ``p, q`` (they do for ``b = ln(p/q)``; a wrong bias leaves exponentials, which the
    obligation then decides at its point)."""
    entries = matrix.subs(b, bias)
    return sp.ImmutableMatrix(entries.applyfunc(
        lambda entry: entry if entry.has(sp.exp) else sp.factor(entry)))


@cache
def gradient_at_unigram_point(d: int, tied: bool,
                              bias: sp.Expr = unigram_bias) -> sp.ImmutableMatrix:
    """Gradient of the reduced loss at the canonical unigram point."""
    return _at_bias(_reduced_derivatives(d, tied)[0], bias)


@cache
def hessian_at_unigram_point(d: int, tied: bool,
                             bias: sp.Expr = unigram_bias) -> sp.ImmutableMatrix:
    """Hessian of the reduced loss at the canonical unigram point (symbolic in p, q)."""
    return _at_bias(_reduced_derivatives(d, tied)[1], bias)


def unigram_spectrum(d: int, tied: bool) -> tuple[tuple[sp.Expr, int], ...]:
    """Nonzero Hessian eigenvalues at the unigram point (all others are zero).

    Tied: :math:`\\{\\kappa, 2\\kappa(p+q-1)\\ (\\times d)\\}`; untied:
    :math:`\\{\\kappa, \\pm\\kappa(p+q-1)\\ (\\times d \\text{ each})\\}` (Theorems 2 and 4).
    """
    c = kappa * (p + q - 1)
    if tied:
        return ((kappa, 1), (2 * c, d))
    return ((kappa, 1), (c, d), (-c, d))


def _pq_range(params: Params) -> list[str]:
    problems = [
        f"{name} must lie in (0, 1) (got {name} = {params[name]})"
        for name in ("p", "q")
        if not 0 < params[name] < 1
    ]
    if not params["d"] >= 1:
        problems.append(f"d must be a positive integer (got d = {params['d']})")
    return problems


def _switching(params: Params) -> sp.Rational:
    return params["p"] + params["q"]


def _point(params: Params) -> dict[sp.Symbol, sp.Rational]:
    return {p: sp.Rational(params["p"]), q: sp.Rational(params["q"])}


def _parameters(p_default: str, q_default: str) -> tuple[Parameter, ...]:
    return (
        Parameter("p", "rational", sp.Rational(p_default), "P(x_{n+1}=1 | x_n=0), in (0, 1)"),
        Parameter("q", "rational", sp.Rational(q_default), "P(x_{n+1}=0 | x_n=1), in (0, 1)"),
        Parameter("d", "integer", 4, "embedding dimension of the model"),
    )


_PAPER = "makkuva2024markov"
_DATA = (
    r"binary Markov chain with $P = \begin{pmatrix}1-p & p\\ q & 1-q\end{pmatrix}$, "
    r"$x_1 \sim \pi$"
)


def _sigmoid(logit: sp.Expr) -> sp.Expr:
    return 1 / (1 + sp.exp(-logit))


#: The conditional entropy :math:`\sum_x \pi_x h(P(1 \mid x))`, from the kernel and the
#: stationary law (the definition that the closed form ``entropy_rate`` must equal).
CONDITIONAL_ENTROPY = sum(STATIONARY[x] * binary_entropy(NEXT_IS_ONE[x]) for x in (0, 1))


def _definitions(params: Params, forms: dict[str, sp.Expr]) -> list[Obligation]:
    """The prediction's stationary law, H(pi) and entropy rate against their definitions."""
    point = _point(params)
    return [
        Obligation("pi1 is stationary: (1 - pi1) p = pi1 q",
                   (1 - forms["stationary_one"]) * p - forms["stationary_one"] * q, "==", point,
                   uses=("stationary_one",)),
        Obligation("H(pi) is the entropy of the stationary law", forms["unigram_loss"], "==",
                   point, binary_entropy(pi1), uses=("unigram_loss",)),
        Obligation("the entropy rate is sum_x pi_x h(P(1|x)) (from the kernel)",
                   forms["entropy_rate"], "==", point, CONDITIONAL_ENTROPY,
                   uses=("entropy_rate",)),
    ]


def _unigram_obligations(params: Params, prediction: Prediction,
                         tied: bool) -> list[Obligation]:
    """Obligations shared by the three unigram-point theorems (stationarity, moment, loss),
    built from the prediction's bias, stationary law, H(pi) and spectrum."""
    d, point = params["d"], _point(params)
    forms = dict(prediction.closed_forms)
    bias = forms["unigram_bias"]
    return [
        *_definitions(params, forms),
        Obligation(
            "dL/db = sigmoid(b) - pi1 = 0 at b = ln(p/q)",
            _sigmoid(bias) - forms["stationary_one"],
            "==",
            point,
            uses=("unigram_bias", "stationary_one"),
        ),
        Obligation(
            "gradient of the reduced loss vanishes at the unigram point (uses E[x_{n+1}] = pi1)",
            gradient_at_unigram_point(d, tied, bias),
            "==",
            point,
            sp.zeros(len(embedding_coordinates(d, tied)), 1),
            uses=("unigram_bias",),
        ),
        Obligation(
            "E[(pi1 - x_{n+1}) x_n] = kappa (p+q-1)",
            switching_moment,
            "==",
            point,
            kappa * (p + q - 1),
        ),
        Obligation(
            "loss at the unigram point equals H(pi)",
            reduced_loss(0, bias),
            "==",
            point,
            forms["unigram_loss"],
            uses=("unigram_bias", "unigram_loss"),
        ),
        Obligation(
            "Hessian spectrum at the canonical member",
            hessian_at_unigram_point(d, tied, bias),
            "spectrum",
            point,
            tuple(prediction.spectra["hessian"]),
            uses=("unigram_bias", "spectrum hessian"),
        ),
    ]


def _trained_loss_obligation(params: Params, prediction: Prediction,
                             trapped: bool) -> Obligation:
    """Where training from the paper's init ends: at theta_pi (trapped) or the entropy rate."""
    forms = prediction.closed_forms
    if trapped:
        return Obligation("training stays at theta_pi: trained loss = L(theta_pi)",
                          forms["trained_loss"], "==", _point(params),
                          reduced_loss(0, forms["unigram_bias"]),
                          uses=("trained_loss", "unigram_bias"))
    return Obligation("training escapes: trained loss = the entropy rate (from the kernel)",
                      forms["trained_loss"], "==", _point(params), CONDITIONAL_ENTROPY,
                      uses=("trained_loss",))


def _unigram_prediction(params: Params, tied: bool, trained_loss: sp.Expr) -> Prediction:
    return Prediction(
        closed_forms={
            "unigram_loss": unigram_entropy,
            "entropy_rate": entropy_rate,
            "unigram_bias": unigram_bias,
            "stationary_one": pi1,
            "trained_loss": trained_loss,
        },
        point=_point(params),
        spectra={"hessian": unigram_spectrum(params["d"], tied)},
        descriptions={
            "unigram_loss": "L(theta_pi) = H(pi), the loss of the context-free predictor",
            "entropy_rate": "the loss floor H(x_{n+1} | x_n)",
            "unigram_bias": "b = ln(p/q) at theta_pi",
            "stationary_one": "pi1, what theta_pi predicts after any context",
            "trained_loss": "the loss training from the paper's init reaches",
            "hessian": "Hessian eigenvalues at the canonical member (others zero)",
        },
    )


# --------------------------------------------------------------------------- global minimum


def _global_assumptions(params: Params) -> list[str]:
    return _pq_range(params)


def _global_predict(params: Params) -> Prediction:
    return Prediction(
        closed_forms={
            "trained_loss": entropy_rate,
            "entropy_rate": entropy_rate,
            "unigram_loss": unigram_entropy,
            "bigram_slope": bigram_slope,
            "bigram_bias": bigram_bias,
            "next_after_0": NEXT_IS_ONE[0],
            "next_after_1": NEXT_IS_ONE[1],
        },
        point=_point(params),
        descriptions={
            "trained_loss": "L(theta_*) = entropy rate, the global minimum",
            "entropy_rate": "H(x_{n+1} | x_n) = (q h(p) + p h(q))/(p+q)",
            "unigram_loss": "H(pi), for reference",
            "bigram_slope": "c* = ln((1-p)(1-q)/(pq)): ||e||^2 (1 + w1 w2) at theta_*",
            "bigram_bias": "l0 = ln(p/(1-p)): b at theta_*",
            "next_after_0": "f(theta_*) after x_n = 0: P(1|0) = p",
            "next_after_1": "f(theta_*) after x_n = 1: P(1|1) = 1-q",
        },
    )


def _global_obligations(params: Params, prediction: Prediction) -> list[Obligation]:
    point = _point(params)
    forms = dict(prediction.closed_forms)
    loss = reduced_loss(s, b)
    at_star = {s: forms["bigram_slope"], b: forms["bigram_bias"]}
    gap = forms["unigram_loss"] - forms["entropy_rate"]
    return [
        *_definitions(params, {**forms, "stationary_one": pi1}),
        Obligation(
            "L(theta_*) = entropy rate", loss.subs(at_star), "==", point, forms["trained_loss"],
            uses=("bigram_slope", "bigram_bias", "trained_loss"),
        ),
        Obligation("the global minimum is the entropy rate", forms["trained_loss"], "==", point,
                   forms["entropy_rate"], uses=("trained_loss", "entropy_rate")),
        Obligation(
            "reduced gradient (dL/ds, dL/db) = 0 at theta_*",
            sp.ImmutableMatrix([sp.diff(loss, v) for v in (s, b)]).subs(at_star),
            "==",
            point,
            sp.zeros(2, 1),
            uses=("bigram_slope", "bigram_bias"),
        ),
        Obligation(
            "reduced Hessian in (slope, bias) is PSD at theta_*",
            sp.ImmutableMatrix(sp.hessian(loss, (s, b)).subs(at_star)),
            "psd",
            point,
            uses=("bigram_slope", "bigram_bias"),
        ),
        Obligation("f(theta_*) after x_n = 0 is sigmoid(l0) = P(1|0)",
                   _sigmoid(forms["bigram_bias"]), "==", point, forms["next_after_0"],
                   uses=("bigram_bias", "next_after_0")),
        Obligation("f(theta_*) after x_n = 1 is sigmoid(c* + l0) = P(1|1)",
                   _sigmoid(forms["bigram_slope"] + forms["bigram_bias"]), "==", point,
                   forms["next_after_1"], uses=("bigram_slope", "bigram_bias", "next_after_1")),
        Obligation("the predictions after 0 and 1 are the kernel's",
                   sp.ImmutableMatrix([forms["next_after_0"], forms["next_after_1"]]), "==",
                   point, sp.ImmutableMatrix([NEXT_IS_ONE[0], NEXT_IS_ONE[1]]),
                   uses=("next_after_0", "next_after_1")),
        Obligation("H(pi) - entropy rate >= 0", gap, ">=", point,
                   uses=("unigram_loss", "entropy_rate")),
        Obligation(
            "H(pi) = entropy rate on p + q = 1 (i.i.d. data)",
            gap.subs(q, 1 - p),
            "==",
            {p: point[p]},
            uses=("unigram_loss", "entropy_rate"),
        ),
        Obligation(
            "c* (p+q-1) <= 0: for p+q > 1 the slope is negative, so ||e||^2 alone cannot give it",
            forms["bigram_slope"] * (p + q - 1),
            "<=",
            point,
            uses=("bigram_slope",),
        ),
    ]


GLOBAL_MINIMA = Theorem(
    id="markov-global-minima",
    title="The bigram predictor is a global minimum (weight tying, any p, q)",
    paper=f"{_PAPER}, Theorem 1 (global minimum with weight tying)",
    statement=(
        r"For every $(p,q) \in (0,1)^2$ there is a tied $\theta_*$ with "
        r"$f_{\theta_*}(x_1^n) = P(x_{n+1}=1 \mid x_n)$ and "
        r"$L(\theta_*) = H(x_{n+1} \mid x_n) = \frac{q\,h(p) + p\,h(q)}{p+q}$; "
        r"$\theta_*$ is a global minimum and a stationary point. Explicitly: attention off, "
        r"$p_n = 0$, $W_1 = w_1 u^\top$, $W_2 = w_2 u$ with $u = e/\|e\|$, "
        r"$\|e\|^2(1 + w_1 w_2) = \ln\frac{(1-p)(1-q)}{pq}$, $b = \ln\frac{p}{1-p}$."
    ),
    parameters=_parameters("1/2", "4/5"),
    assumption_text=(r"$0 < p, q < 1$", "weight tying (a = e)", _DATA),
    assumptions=_global_assumptions,
    predict=_global_predict,
    obligations=_global_obligations,
)


# --------------------------------------------------------------------------- local minimum


def _local_assumptions(params: Params) -> list[str]:
    problems = _pq_range(params)
    if not problems and not _switching(params) > 1:
        problems.append(
            f"p+q > 1 is required (the unigram point is a local minimum only then); "
            f"got p+q = {_switching(params)}"
        )
    return problems


def _tied_obligations(params: Params, prediction: Prediction,
                      trapped: bool) -> list[Obligation]:
    """The tied unigram point: a bad local minimum (``trapped``, p+q > 1, PSD Hessian) or a
    saddle (p+q < 1, indefinite Hessian), above the entropy rate either way."""
    point = _point(params)
    forms = prediction.closed_forms
    hessian = hessian_at_unigram_point(params["d"], True, forms["unigram_bias"])
    return [
        *_unigram_obligations(params, prediction, tied=True),
        _trained_loss_obligation(params, prediction, trapped=trapped),
        Obligation("Hessian at theta_pi is PSD (needs p+q >= 1)", hessian, "psd", point,
                   uses=("unigram_bias",)) if trapped else
        Obligation("Hessian at theta_pi is indefinite: e-curvature 2 kappa (p+q-1) < 0",
                   hessian, "indefinite", point, uses=("unigram_bias",)),
        Obligation("H(pi) > entropy rate" + (" (the minimum is bad)" if trapped else ""),
                   forms["unigram_loss"] - forms["entropy_rate"], ">", point,
                   uses=("unigram_loss", "entropy_rate")),
    ]


LOCAL_MINIMA = Theorem(
    id="markov-local-minima",
    title="The unigram predictor is a bad local minimum (weight tying, p+q > 1)",
    paper=f"{_PAPER}, Theorem 2 (bad local minimum)",
    statement=(
        r"If $p+q>1$ and $a = e$, the set $\theta_\pi = \{e = 0,\ b = \ln(p/q)\}$ (all other "
        r"parameters arbitrary) consists of stationary points with $f_{\theta_\pi} = \pi_1$, "
        r"$L(\theta_\pi) = H(\pi) > H(x_{n+1}\mid x_n)$, and they are local minima. At the "
        r"canonical member the Hessian has eigenvalues $\kappa$, $2\kappa(p+q-1)$ "
        r"($\times d$) and $0$, $\kappa = \pi_0\pi_1$."
    ),
    parameters=_parameters("1/2", "4/5"),
    assumption_text=(r"$0 < p, q < 1$, $p + q > 1$", "weight tying (a = e)", _DATA),
    assumptions=_local_assumptions,
    predict=lambda params: _unigram_prediction(params, True, unigram_entropy),
    obligations=lambda params, prediction: _tied_obligations(params, prediction, True),
)


# --------------------------------------------------------------------------- untied saddle


def _untied_assumptions(params: Params) -> list[str]:
    problems = _pq_range(params)
    if not problems and _switching(params) == 1:
        problems.append(
            "p+q != 1 is required (at p+q = 1 the data are i.i.d. and the point is global)"
        )
    return problems


def _untied_obligations(params: Params, prediction: Prediction) -> list[Obligation]:
    d, point = params["d"], _point(params)
    hessian = hessian_at_unigram_point(d, False, prediction.closed_forms["unigram_bias"])
    return [
        *_unigram_obligations(params, prediction, tied=False),
        _trained_loss_obligation(params, prediction, trapped=False),
        Obligation(
            "(a, e) block of the Hessian = kappa (p+q-1) I",
            hessian[:d, d : 2 * d],
            "==",
            point,
            kappa * (p + q - 1) * sp.eye(d),
            uses=("unigram_bias",),
        ),
        Obligation("Hessian at (theta_pi, a = 0) is indefinite (a saddle)", hessian,
                   "indefinite", point, uses=("unigram_bias",)),
    ]


SADDLE_UNTIED = Theorem(
    id="markov-saddle-untied",
    title="Without weight tying the unigram point is a saddle (p+q != 1)",
    paper=f"{_PAPER}, Theorem 4 (saddle point without weight tying)",
    statement=(
        r"Without tying and with $p+q \neq 1$, $(\theta_\pi, a = 0)$ is stationary with loss "
        r"$H(\pi)$ but is a saddle point: the $(a, e)$ block of the Hessian is "
        r"$\begin{pmatrix}0 & cI\\ cI & 0\end{pmatrix}$, $c = \kappa(p+q-1)$, so its "
        r"eigenvalues are $\kappa$, $\pm\kappa|p+q-1|$ ($\times d$ each) and $0$. "
        r"Training from the paper's initialisation escapes to the entropy rate."
    ),
    parameters=_parameters("1/2", "4/5"),
    assumption_text=(r"$0 < p, q < 1$, $p + q \neq 1$", "no weight tying", _DATA),
    assumptions=_untied_assumptions,
    predict=lambda params: _unigram_prediction(params, False, entropy_rate),
    obligations=_untied_obligations,
)


# --------------------------------------------------------------------------- tied saddle


def _tied_saddle_assumptions(params: Params) -> list[str]:
    problems = _pq_range(params)
    if not problems and not _switching(params) < 1:
        problems.append(
            f"p+q < 1 is required (for p+q > 1 the unigram point is a local minimum); "
            f"got p+q = {_switching(params)}"
        )
    return problems


TIED_SADDLE = Theorem(
    id="markov-tied-saddle",
    title="With p+q < 1 the unigram point is a saddle even with weight tying",
    paper=f"{_PAPER}, Theorem 2 (the case p+q < 1)",
    statement=(
        r"If $p+q<1$ and $a = e$, $\theta_\pi$ is stationary with loss $H(\pi)$, but the "
        r"$e$-block curvature $2\kappa(p+q-1) < 0$ makes it a saddle; training from the "
        r"paper's initialisation reaches the entropy rate $H(x_{n+1}\mid x_n)$."
    ),
    parameters=_parameters("1/5", "3/10"),
    assumption_text=(r"$0 < p, q < 1$, $p + q < 1$", "weight tying (a = e)", _DATA),
    assumptions=_tied_saddle_assumptions,
    predict=lambda params: _unigram_prediction(params, True, entropy_rate),
    obligations=lambda params, prediction: _tied_obligations(params, prediction, False),
)


# --------------------------------------------------------------------------- depth (empirical)

#: The most layers a depth request may stack (cost grows linearly; the paper's sweeps use 1..5).
MAX_LAYERS = 6


def _depth_assumptions(params: Params) -> list[str]:
    problems = _local_assumptions(params)
    if not 2 <= params["layers"] <= MAX_LAYERS:
        problems.append(f"layers must lie in [2, {MAX_LAYERS}] (got layers = {params['layers']}): "
                        "one layer is Theorem 2's trap, the control of this claim")
    return problems


def _depth_predict(params: Params) -> Prediction:
    return Prediction(
        closed_forms={
            "trained_loss": entropy_rate,
            "entropy_rate": entropy_rate,
            "unigram_loss": unigram_entropy,
            "unigram_bias": unigram_bias,
            "stationary_one": pi1,
        },
        point=_point(params),
        descriptions={
            "trained_loss": "where the deeper tied model ends: the entropy rate",
            "entropy_rate": "the loss floor H(x_{n+1} | x_n)",
            "unigram_loss": "H(pi), where one layer is trapped (the control)",
            "unigram_bias": "b = ln(p/q) at theta_pi, which the deeper model shares",
            "stationary_one": "pi1, what theta_pi predicts after any context",
        },
    )


def _depth_obligations(params: Params, prediction: Prediction) -> list[Obligation]:
    forms = dict(prediction.closed_forms)
    point = _point(params)
    return [
        *_definitions(params, forms),
        Obligation("dL/db = sigmoid(b) - pi1 = 0 at b = ln(p/q)",
                   _sigmoid(forms["unigram_bias"]) - forms["stationary_one"], "==", point,
                   uses=("unigram_bias", "stationary_one")),
        _trained_loss_obligation(params, prediction, trapped=False),
        Obligation("H(pi) > entropy rate (escaping the trap is a real gain)",
                   forms["unigram_loss"] - forms["entropy_rate"], ">", point,
                   uses=("unigram_loss", "entropy_rate")),
    ]


DEPTH_ESCAPE = Theorem(
    id="markov-depth-escape",
    title="Depth escapes the unigram trap: a deeper tied model reaches the entropy rate",
    paper=f"{_PAPER}, depth experiments (empirical, no proof)",
    statement=(
        r"Shown by experiment in the paper, not proved: with $a = e$ and $p+q > 1$, where the "
        r"single-layer model from the paper's initialisation stays at $H(\pi)$ (Theorem 2), "
        r"a model of two or more layers trained from the same initialisation reaches the "
        r"entropy rate $H(x_{n+1}\mid x_n)$ and predicts with the kernel."
    ),
    parameters=(*(Parameter("d", "integer", 8, "embedding dimension of the model (at d = 4 "
                            "two layers stay trapped within the fast budget)")
                  if param.name == "d" else param for param in _parameters("7/10", "3/5")),
                Parameter("layers", "integer", 2, "attention + FFN layers of the deeper model")),
    assumption_text=(r"$0 < p, q < 1$, $p + q > 1$", "weight tying (a = e)",
                     r"$2 \le$ layers $\le 6$", _DATA),
    assumptions=_depth_assumptions,
    predict=_depth_predict,
    obligations=_depth_obligations,
    kind="empirical",
)

"""The ridge-regression optimum and what gradient descent reaches (sympy only).

Data: a fixed integer design ``X`` (``n x d``) and targets ``y``, built exactly from their indices
(:func:`design`), so every value below is an exact rational. Loss:

.. math::
    L(w) = \\frac{1}{2n}\\|Xw - y\\|^2 + \\frac{\\lambda}{2}\\|w\\|^2 .

For :math:`\\lambda > 0` it is strictly convex with the unique minimiser
:math:`w^* = (X^\\top X + n\\lambda I)^{-1} X^\\top y`, and gradient descent with step
:math:`\\eta < 2/\\beta` (:math:`\\beta` the largest Hessian eigenvalue) converges to it linearly.
"""

from __future__ import annotations

from functools import cache

import sympy as sp

from theorems import Obligation, Parameter, Params, Prediction, Theorem

lam = sp.Symbol("lambda", positive=True)


@cache
def design(n: int, d: int) -> tuple[sp.ImmutableMatrix, sp.ImmutableMatrix]:
    """The exact design ``X`` (``n x d``, entries in {-2, ..., 2}) and targets ``y`` (``n x 1``)."""
    X = sp.ImmutableMatrix(n, d, lambda i, j: (7 * i + 3 * j * j + i * j) % 5 - 2)
    y = sp.ImmutableMatrix(n, 1, lambda i, _: (5 * i + 1) % 7 - 3)
    return X, y


def hessian(n: int, d: int) -> sp.ImmutableMatrix:
    """:math:`\\nabla^2 L = X^\\top X / n + \\lambda I` (constant in ``w``)."""
    X, _ = design(n, d)
    return sp.ImmutableMatrix(X.T * X / n + lam * sp.eye(d))


def optimum(n: int, d: int) -> sp.ImmutableMatrix:
    """:math:`w^*(\\lambda) = (X^\\top X + n\\lambda I)^{-1} X^\\top y`, rational in lambda."""
    X, y = design(n, d)
    return sp.ImmutableMatrix((X.T * X + n * lam * sp.eye(d)).LUsolve(X.T * y)).applyfunc(
        sp.factor)


def loss(w: sp.MatrixBase, n: int, d: int) -> sp.Expr:
    """:math:`L(w)` (module docstring)."""
    X, y = design(n, d)
    residual = X * w - y
    return (residual.T * residual)[0] / (2 * n) + lam / 2 * (w.T * w)[0]


def _sizes(params: Params) -> tuple[int, int]:
    return int(params["n"]), int(params["d"])


def _assumptions(params: Params) -> list[str]:
    problems = []
    if not sp.Rational(params["lam"]) > 0:
        problems.append(f"lambda > 0 is required (got lam = {params['lam']})")
    n, d = _sizes(params)
    if not 1 <= d <= 6:
        problems.append(f"d must lie in 1..6 (got d = {d})")
    if not d <= n <= 40:
        problems.append(f"n must lie in d..40 (got n = {n})")
    return problems


def _predict(params: Params) -> Prediction:
    n, d = _sizes(params)
    w_star = optimum(n, d)
    return Prediction(
        closed_forms={"w_star": w_star, "min_loss": sp.factor(loss(w_star, n, d))},
        point={lam: sp.Rational(params["lam"])},
        descriptions={"w_star": "the unique minimiser (X^T X + n lambda I)^{-1} X^T y",
                      "min_loss": "the loss at the minimiser"},
    )


def _obligations(params: Params, prediction: Prediction) -> list[Obligation]:
    n, d = _sizes(params)
    w_star = prediction.closed_forms["w_star"]
    w = sp.Matrix(sp.symbols(f"w1:{d + 1}"))
    gradient = sp.Matrix([sp.diff(loss(w, n, d), wi) for wi in w]).subs(dict(zip(w, w_star,
                                                                                  strict=True)))
    point = {lam: sp.Rational(params["lam"])}
    return [
        Obligation("gradient of L vanishes at w* (for every lambda)", sp.simplify(gradient),
                   "==", point, sp.zeros(d, 1), uses=("w_star",)),
        Obligation("the minimal loss is L(w*)", prediction.closed_forms["min_loss"], "==", point,
                   loss(w_star, n, d), uses=("min_loss", "w_star")),
        Obligation("Hessian minus lambda I (X^T X / n) is PSD: every eigenvalue >= lambda > 0, "
                   "so L is strictly convex and w* its unique minimiser",
                   sp.ImmutableMatrix(hessian(n, d) - lam * sp.eye(d)), "psd", {}),
        Obligation("the second derivatives of L are X^T X / n + lambda I at every w",
                   sp.ImmutableMatrix(sp.hessian(loss(w, n, d), list(w))), "==", {},
                   hessian(n, d)),
    ]


GD_OPTIMUM = Theorem(
    id="ridge-gd-optimum",
    title="Gradient descent reaches the closed-form ridge-regression optimum",
    paper="hoerl1970ridge, the ridge estimator (a textbook result)",
    statement=(r"For $\lambda > 0$, $L(w) = \frac{1}{2n}\|Xw-y\|^2 + \frac{\lambda}{2}\|w\|^2$ "
               r"has the unique minimiser $w^* = (X^\top X + n\lambda I)^{-1}X^\top y$, and "
               r"gradient descent with step $1/\beta$ converges to it linearly."),
    parameters=(
        Parameter("lam", "rational", sp.Rational(1, 10), "ridge penalty lambda"),
        Parameter("n", "integer", 12, "number of samples (rows of X)"),
        Parameter("d", "integer", 3, "number of features (columns of X)"),
    ),
    assumption_text=(r"$\lambda > 0$", r"$1 \le d \le 6$, $d \le n \le 40$",
                     "the fixed integer design of `design(n, d)`"),
    assumptions=_assumptions,
    predict=_predict,
    obligations=_obligations,
)

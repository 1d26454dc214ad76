"""Next-token prediction converges to max-margin directions (Huang, Liang, Yang, NeurIPS 2024,
arXiv 2409.17335; attention SVM background: Tarzanagh, Li, Thrampoulidis, Oymak, 2023).

The statements are the project's formulation: a one-layer transformer with merged matrices,
orthonormal (one-hot) embeddings and two-stage normalized gradient descent. The partial-order
data (vocabulary, collocation, per-query orders, training sentences, hold-out) and the
comparisons the training sentences contain are in :mod:`theorems.ntp_orders`.

Max-margin problems
-------------------
Stage 1 (feed-forward): ``W_ov* = argmin ||W||_F`` s.t. ``(e_n(x) - e_v)^T W e_x >= 1``; closed
form ``sum_x (e_n(x) - e_bar) e_x^T``. Stage 2 (attention): with one-hot embeddings
``W_kq* = argmin ||W||_F`` s.t. ``W[g, q] - W[x, q] >= 1`` for every comparison splits into one
least-distance problem per query column, solved exactly (rational arithmetic) by the
Lawson-Hanson reduction to non-negative least squares (:mod:`theorems.least_distance`); the
obligations then prove optimality by exact KKT conditions, so the solver is only a way to find
the certificate.
"""

from __future__ import annotations

from itertools import product

import sympy as sp

from theorems.core import Obligation, Parameter, Params, Prediction, Theorem
from theorems.least_distance import max_margin_column
from theorems.ntp_orders import Pair, Setting, SettingError, resolve

K_ = sp.Symbol("K", positive=True, integer=True)
t_, eta0_, T0_ = sp.symbols("t eta_0 T_0", positive=True)
c_ = sp.Symbol("c", nonnegative=True)

#: The worked toy of the project's formulation (K = 6); queries 3, 4, 5 get seeded random
#: total orders.
TOY_ORDERS = "0: 5>4>3>2>1>0; 1: 0>2>4>1>3>5; 2: 3>1>2>0, 3>4>2>5"
#: The feed-forward obligations that build K x K matrices are built at K <= this (the closed
#: form is proved for symbolic K where sympy can; these keep ``verify`` fast at K = 50).
FFN_EXPLICIT_K = 6


# ----------------------------------------------------------------------------- exact max margin


def attention_max_margin(resolved: Setting) -> sp.ImmutableMatrix:
    """``W_kq*`` (rows: key tokens, columns: queries) for one-hot embeddings."""
    columns = [max_margin_column(resolved.K, pairs).scores for pairs in resolved.comparisons()]
    return sp.ImmutableMatrix(resolved.K, resolved.K, lambda x, q: columns[q][x])


def score_maximiser(scores: sp.MatrixBase, sentence: tuple[int, ...]) -> int | None:
    """The token of ``sentence`` with the largest score ``W*[x, q]``, or None on a tie."""
    q = sentence[-1]
    best = max(scores[x, q] for x in sentence)
    winners = [x for x in sentence if scores[x, q] == best]
    return winners[0] if len(winners) == 1 else None


def _kkt_obligations(resolved: Setting, W: sp.MatrixBase, label: str) -> list[Obligation]:
    """Exact KKT conditions of the attention max-margin problem (they prove optimality)."""
    margins, duals, slack = [], [], sp.Integer(0)
    stationarity = sp.Matrix(W)
    for q, pairs in enumerate(resolved.comparisons()):
        column = max_margin_column(resolved.K, pairs)
        for (g, x), lam in column.duals.items():
            margins.append(W[g, q] - W[x, q])
            duals.append(lam)
            slack += lam * (W[g, q] - W[x, q] - 1)
            stationarity[g, q] -= lam
            stationarity[x, q] += lam
    count = len(margins)
    return [
        Obligation(f"{label}: feasibility, every margin W[x*, q] - W[x, q] >= 1 ({count} "
                   "constraints)", sp.Min(*margins) if margins else sp.Integer(1), ">=", {},
                   sp.Integer(1), uses=("W_kq",)),
        Obligation(f"{label}: dual feasibility, every multiplier >= 0",
                   sp.Min(*duals) if duals else sp.Integer(0), ">=", {}),
        Obligation(f"{label}: stationarity, W* = sum lambda (e_x* - e_x) e_q^T",
                   sp.ImmutableMatrix(stationarity), "==", {}, sp.zeros(*W.shape),
                   uses=("W_kq",)),
        Obligation(f"{label}: complementary slackness, sum lambda (margin - 1) = 0", slack,
                   "==", {}, uses=("W_kq",)),
    ]


def _structure_obligations(resolved: Setting, W: sp.MatrixBase) -> list[Obligation]:
    """Chains with the query least get scores ``rank - (K-1)/2``; swap-symmetric tokens tie."""
    obligations = []
    K = resolved.K
    for q, pairs in enumerate(resolved.comparisons()):
        full = {(a, b) for a in range(K) for b in range(K) if a != b and (a, b) not in pairs
                and (b, a) not in pairs}
        if not full and all((x, q) in resolved.greater[q] for x in range(K) if x != q):
            rank = {x: sum((x, y) in resolved.greater[q] for y in range(K)) for x in range(K)}
            expected = sp.ImmutableMatrix([rank[x] - sp.Rational(K - 1, 2) for x in range(K)])
            obligations.append(Obligation(
                f"query {q} (a chain with the query least): scores = rank - (K-1)/2",
                sp.ImmutableMatrix(W[:, q]) - expected, "==", {}, sp.zeros(K, 1),
                uses=("W_kq",)))
        twins = [(a, b) for a in range(K) for b in range(a + 1, K)
                 if _swap(pairs, a, b) == pairs and a != q and b != q]
        if twins and full:
            obligations.append(Obligation(
                f"query {q}: tokens the constraints cannot tell apart get equal scores "
                f"({', '.join(f'{a}~{b}' for a, b in twins)})",
                sp.ImmutableMatrix([W[a, q] - W[b, q] for a, b in twins]), "==", {},
                sp.zeros(len(twins), 1), uses=("W_kq",)))
    return obligations


def _swap(pairs: frozenset[Pair], a: int, b: int) -> frozenset[Pair]:
    swap = {a: b, b: a}
    return frozenset((swap.get(g, g), swap.get(x, x)) for g, x in pairs)


# ----------------------------------------------------------------------------- feed-forward


def ffn_max_margin(K: int, collocation: tuple[int, ...]) -> sp.ImmutableMatrix:
    """``W_ov* = sum_x (e_n(x) - e_bar) e_x^T`` (rows: output tokens, columns: inputs)."""
    return sp.ImmutableMatrix(K, K, lambda v, x: (1 if v == collocation[x] else 0)
                              - sp.Rational(1, K))


def collocation_loss_law() -> sp.Expr:
    """``L0(t) = log(1 + (K-1) exp(-eta0 t / sqrt(K-1)))``: NGD from 0 moves along W_ov*."""
    return sp.log(1 + (K_ - 1) * sp.exp(-eta0_ * t_ / sp.sqrt(K_ - 1)))


def token_losses(W: sp.MatrixBase, collocation: tuple[int, ...]) -> list[sp.Expr]:
    """``-log softmax(W e_x)_n(x)`` for each ``x``, written with logits shifted by the
    target's so that equal exponents collect."""
    K = len(collocation)
    return [sp.log(sum(sp.exp(sp.expand(W[v, x] - W[collocation[x], x])) for v in range(K)))
            for x in range(K)]


def collocation_loss(W: sp.MatrixBase, collocation: tuple[int, ...]) -> sp.Expr:
    """``L0(W) = (1/K) sum_x -log softmax(W e_x)_n(x)``."""
    return sum(token_losses(W, collocation)) / len(collocation)


def _explicit_collocation(resolved: Setting) -> tuple[int, ...]:
    """The collocation the K x K obligations are built with: the theorem's own up to
    :data:`FFN_EXPLICIT_K` tokens, else the shift ``x + 1 mod FFN_EXPLICIT_K``."""
    if resolved.K <= FFN_EXPLICIT_K:
        return resolved.collocation
    return tuple((x + 1) % FFN_EXPLICIT_K for x in range(FFN_EXPLICIT_K))


#: Why the K x K obligations are built at :data:`FFN_EXPLICIT_K` above it, and what covers K.
FFN_SCOPE = (f"with one-hot embeddings the problem splits into one column per input token, and "
             f"relabelling tokens maps every column (any K, any collocation permutation) to the "
             f"same one: target entry 1 - 1/K, all others -1/K; the column obligations prove "
             f"feasibility, KKT, the norm, the loss law and the NGD direction for symbolic K, "
             f"and the margins and KKT of the predicted W_ov* are decided at the requested K; "
             f"the K x K symbolic loss and gradient (K^2 symbols) are built at "
             f"K={FFN_EXPLICIT_K}")


#: ``gamma(c) = e^{-m} / (1 + (K-1) e^{-m})``, ``m = c/sqrt(K-1)``: the collocation loss's
#: gradient at ``c W*/||W*||`` is ``-gamma(c) W*``.
NGD_GAMMA = (sp.exp(-c_ / sp.sqrt(K_ - 1))
             / (1 + (K_ - 1) * sp.exp(-c_ / sp.sqrt(K_ - 1))))


def _ffn_column_obligations(forms: dict[str, sp.Expr]) -> list[Obligation]:
    """The feed-forward claims for symbolic K on one column (all columns are alike up to
    relabelling): target entry ``1 - 1/K``, the others ``-1/K``."""
    target, other = 1 - 1 / K_, -1 / K_
    lam = 1 / K_
    m = c_ / sp.sqrt(K_ - 1)  # the margin of c W*/||W*|| (target minus other entry is 1)
    gamma = NGD_GAMMA
    softmax_target = 1 / (1 + (K_ - 1) * sp.exp(-m))
    return [
        Obligation("column form (symbolic K): the margin of the target over every other "
                   "output is 1", target - other, "==", {}, sp.Integer(1)),
        Obligation("column form: KKT with every multiplier 1/K, target = (K-1) lambda, other "
                   "= -lambda", sp.ImmutableMatrix([target - (K_ - 1) * lam, other + lam]),
                   "==", {}, sp.zeros(2, 1)),
        Obligation("||W_ov*||_F^2 = K (target^2 + (K-1) other^2) = K - 1 (symbolic K)",
                   K_ * (target**2 + (K_ - 1) * other**2), "==", {}, forms["norm2"],
                   uses=("norm2",)),
        Obligation("column form: L0(c W*/||W*||) = log(1 + (K-1) exp(-c/sqrt(K-1))) = L0 at "
                   "t = c/eta0 (symbolic K, c)", sp.log(1 / softmax_target), "==", {},
                   forms["L0"].subs(t_, c_ / eta0_), uses=("L0",)),
        Obligation("column form: grad L0 = (softmax - e_n(x))/K = -gamma(c) W* along W* "
                   "(symbolic K, c): every NGD step from 0 points along W*",
                   sp.ImmutableMatrix([(softmax_target - 1) / K_ + gamma * target,
                                       gamma / K_ + gamma * other]), "==", {}, sp.zeros(2, 1)),
        Obligation("gamma(c) = e^{-m}/(1 + (K-1) e^{-m}) > 0, m = c/sqrt(K-1) (K = k + 2, "
                   "k >= 0)", gamma.subs(K_, sp.Symbol("k", nonnegative=True) + 2), ">", {}),
        Obligation("the loss when stage 1 stops is L0 at t = T0", forms["L0(T0)"], "==", {},
                   forms["L0"].subs(t_, T0_), uses=("L0(T0)", "L0")),
    ]


def _ffn_margin_obligations(resolved: Setting, W: sp.MatrixBase) -> list[Obligation]:
    """Feasibility with every margin 1 and the KKT certificate of the predicted ``W_ov*`` at
    the requested K (exact rationals, cheap at any K)."""
    K, colloc = resolved.K, resolved.collocation
    margins = sp.ImmutableMatrix(K, K, lambda v, x: 0 if v == colloc[x]
                                 else W[colloc[x], x] - W[v, x] - 1)
    kkt = sp.zeros(K, K)
    for x, v in product(range(K), range(K)):
        if v != colloc[x]:
            kkt[colloc[x], x] += sp.Rational(1, K)
            kkt[v, x] -= sp.Rational(1, K)
    return [
        Obligation(f"W_ov* is feasible with every margin equal to 1 (K={K})", margins, "==",
                   {}, sp.zeros(K, K), uses=("W_ov",)),
        Obligation(f"KKT: W_ov* = sum lambda (e_n(x) - e_v) e_x^T with every lambda = 1/K > 0 "
                   f"and every constraint tight (K={K})", sp.ImmutableMatrix(kkt - W), "==",
                   {}, sp.zeros(K, K), uses=("W_ov",)),
    ]


def _ffn_obligations(params: Params, prediction: Prediction) -> list[Obligation]:
    resolved = resolve(params)
    forms = dict(prediction.closed_forms)
    W_pred = forms["W_ov"]
    colloc = _explicit_collocation(resolved)
    K = len(colloc)
    explicit = K == resolved.K
    W = W_pred if explicit else ffn_max_margin(K, colloc)
    built = {} if explicit else {"sizes": {"K": K}, "scope": FFN_SCOPE}
    uses = ("W_ov",) if explicit else ()
    shown = f"K={K}" + ("" if explicit else f", the permutation x+1 mod {K}")
    symbols = sp.Matrix(K, K, lambda v, x: sp.Symbol(f"w_{v}_{x}"))
    loss = collocation_loss(symbols, colloc)
    along = {symbols[v, x]: c_ * W[v, x] / sp.sqrt(K - 1) for v in range(K) for x in range(K)}
    gradient = sp.Matrix(K, K, lambda v, x: sp.diff(loss, symbols[v, x])).subs(along)
    gamma = NGD_GAMMA.subs(K_, K)
    law = forms["L0"].subs({K_: K, t_: c_ / eta0_})
    return [
        *_ffn_margin_obligations(resolved, W_pred),
        *_ffn_column_obligations(forms),
        Obligation(f"L0(c W*/||W*||) = log(1 + (K-1) exp(-c/sqrt(K-1))) for all c >= 0 "
                   f"({shown})", collocation_loss(c_ * W / sp.sqrt(K - 1), colloc), "==", {},
                   law, uses=(*uses, "L0"), **built),
        Obligation(f"grad L0(c W*/||W*||) = -gamma(c) W*: every NGD step from 0 points along "
                   f"W* ({shown})", sp.ImmutableMatrix(gradient + gamma * W), "==", {},
                   sp.zeros(K, K), uses=uses, **built),
    ]


def _stage_point(params: Params) -> dict[sp.Symbol, sp.Expr]:
    return {K_: sp.Integer(resolve(params).K), eta0_: sp.Rational(params["eta0"]),
            T0_: sp.Integer(params["T0"])}


def _ffn_predict(params: Params) -> Prediction:
    resolved = resolve(params)
    return Prediction(
        closed_forms={"W_ov": ffn_max_margin(resolved.K, resolved.collocation),
                      "norm2": K_ - 1, "L0": collocation_loss_law(),
                      "L0(T0)": collocation_loss_law().subs(t_, T0_)},
        point=_stage_point(params),
        descriptions={"W_ov": "max-margin feed-forward matrix W_ov*", "norm2": "||W_ov*||_F^2",
                      "L0": "collocation loss after t NGD steps from 0 (t symbolic)",
                      "L0(T0)": "collocation loss when stage 1 stops"},
    )


# ----------------------------------------------------------------------------- attention


def _attention_predict(params: Params) -> Prediction:
    resolved = resolve(params)
    W = attention_max_margin(resolved)
    norm2 = sum(x**2 for x in W)
    eta = sp.Rational(params["eta"])
    return Prediction(
        closed_forms={"W_kq": W, "norm2": norm2, "W_ov": ffn_max_margin(resolved.K,
                                                                       resolved.collocation),
                      "floor": collocation_loss_law().subs(t_, T0_),
                      "rate": sp.exp(-eta / sp.sqrt(norm2))},
        point=_stage_point(params),
        descriptions={
            "W_kq": "max-margin attention matrix W_kq* (rows: keys, columns: queries)",
            "norm2": "||W_kq*||_F^2", "W_ov": "stage-1 direction W_ov*",
            "floor": "loss floor L_inf with attention fully on x*: every sentence then has the "
                     "collocation loss of x*, L0(T0)",
            "rate": "asymptotic per-step factor of loss - L_inf once the direction has "
                    "converged: exp(-eta / ||W_kq*||) (the smallest margin of W_kq*/||W_kq*|| "
                    "is 1/||W_kq*||)"},
    )


def _attention_prediction_obligations(params: Params, resolved: Setting,
                                      forms: dict[str, sp.Expr]) -> list[Obligation]:
    """The attention theorems' derived closed forms from the predicted matrices: the norm, the
    rate from the smallest margin, the floor from the stage-1 law, and stage 1's W_ov*."""
    W = forms["W_kq"]
    margins = [W[g, q] - W[x, q] for q, pairs in enumerate(resolved.comparisons())
               for g, x in pairs]
    eta = sp.Rational(params["eta"])
    return [
        Obligation("||W_kq*||_F^2 is the sum of the squared entries of W_kq*", forms["norm2"],
                   "==", {}, sum(x**2 for x in W), uses=("norm2", "W_kq")),
        Obligation("rate = exp(-eta * smallest margin of W_kq* / ||W_kq*||)", forms["rate"], "==",
                   {}, sp.exp(-eta * sp.Min(*margins) / sp.sqrt(forms["norm2"])),
                   uses=("rate", "W_kq", "norm2")),
        Obligation("the floor is the stage-1 collocation loss when W_ov is frozen, L0(T0)",
                   forms["floor"], "==", _stage_point(params),
                   collocation_loss_law().subs(t_, T0_), uses=("floor",)),
        *_ffn_margin_obligations(resolved, forms["W_ov"]),
    ]


def _attention_obligations(params: Params, prediction: Prediction) -> list[Obligation]:
    resolved = resolve(params)
    forms = dict(prediction.closed_forms)
    W = forms["W_kq"]
    return (_kkt_obligations(resolved, W, "W_kq*") + _structure_obligations(resolved, W)
            + _attention_prediction_obligations(params, resolved, forms))


def _floor_obligations(params: Params, prediction: Prediction) -> list[Obligation]:
    resolved = resolve(params)
    forms = dict(prediction.closed_forms)
    colloc = _explicit_collocation(resolved)
    K = len(colloc)
    explicit = K == resolved.K
    W_ov = forms["W_ov"] if explicit else ffn_max_margin(K, colloc)
    built = {} if explicit else {"sizes": {"K": K}, "scope": FFN_SCOPE}
    law = forms["floor"].subs(T0_, c_ / eta0_).subs({K_: K})
    per_token = sp.ImmutableMatrix([loss - law for loss in token_losses(
        W_ov * c_ / sp.sqrt(K - 1), colloc)])
    W_kq = forms["W_kq"]
    return [
        Obligation(f"with attention fully on x*, a sentence's loss is the collocation loss of "
                   f"x*, equal for every x at W_ov = c W*/||W*|| (K={K}): the floor is L0(T0)",
                   per_token, "==", {}, sp.zeros(K, 1),
                   uses=("floor", "W_ov") if explicit else ("floor",), **built),
        Obligation("smallest margin of W_kq*/||W_kq*|| is 1/||W_kq*|| > 0 (attention on "
                   "non-optimal tokens decays like exp(-||W_kq|| / ||W_kq*||))",
                   1 / sp.sqrt(forms["norm2"]), ">", {}, uses=("norm2",)),
    ] + _kkt_obligations(resolved, W_kq, "W_kq*") + _attention_prediction_obligations(
        params, resolved, forms)


# ----------------------------------------------------------------------------- dataset shift


def _shift_predict(params: Params) -> Prediction:
    q, a, _, c = resolve(params).holdout
    base = _attention_predict(params)
    W = base.closed_forms["W_kq"]
    return Prediction(
        closed_forms={**base.closed_forms, "gap": W[a, q] - W[c, q]},
        point=base.point,
        descriptions={**base.descriptions,
                      "W_kq": "max-margin attention matrix without the held-out sentences",
                      "gap": f"s_{q}({a}) - s_{q}({c}): the held-out comparison, decided by "
                             "transitivity"},
    )


def _shift_obligations(params: Params, prediction: Prediction) -> list[Obligation]:
    resolved = resolve(params)
    q, a, b, c = resolved.holdout
    forms = dict(prediction.closed_forms)
    W = forms["W_kq"]
    return [
        Obligation(f"training no longer compares {a} and {c} for query {q}",
                   sp.Integer(int((a, c) in resolved.comparisons()[q])), "==", {}),
        Obligation(f"transitivity: s_{q}({a}) - s_{q}({c}) >= 2 in the SVM solution "
                   f"(margins {a}>{b} and {b}>{c} are each >= 1)", forms["gap"], ">=",
                   {}, sp.Integer(2), uses=("gap",)),
        Obligation(f"the gap is s_{q}({a}) - s_{q}({c}) of W_kq*", forms["gap"], "==", {},
                   W[a, q] - W[c, q], uses=("gap", "W_kq")),
    ] + _kkt_obligations(resolved, W, "W_kq* without the held-out sentences") + (
        _attention_prediction_obligations(params, resolved, forms))


# ----------------------------------------------------------------------------- registration


def _problems(params: Params) -> list[str]:
    problems = []
    try:
        resolve(params)
    except SettingError as exc:
        hint = ("; the default orders are the toy's, written for K = 6: give orders for K "
                "tokens or orders=random" if params["orders"] == TOY_ORDERS
                and params["K"] != 6 else "")
        problems.append(f"{exc}{hint}")
    for name in ("eta0", "eta"):
        if not params[name] > 0:
            problems.append(f"{name} must be a step size > 0 (got {name} = {params[name]})")
    if params["T0"] < 1:
        problems.append(f"T0 must be at least 1 stage-1 step (got T0 = {params['T0']})")
    return problems


def _attention_problems(params: Params) -> list[str]:
    """:func:`_problems`, and a setting with something for attention to learn: at least one
    comparison ``x* > x`` in a training sentence (else the attention SVM has no constraint and
    its direction is undefined)."""
    problems = _problems(params)
    if not problems and not any(resolve(params).comparisons()):
        problems.append("the training sentences contain no comparison x* > x (every query's "
                        "sentences are decided by one token), so the attention SVM has no "
                        "constraint; use more tokens K, longer sentences L or other orders")
    return problems


def _parameters(holdout: bool = False) -> tuple[Parameter, ...]:
    parameters = (
        Parameter("K", "integer", 6, "vocabulary size (one-hot embeddings, d = K)"),
        Parameter("collocation", "text", "shift",
                  "collocation permutation n: 'shift' (x+1 mod K) or K tokens '1,2,...,0'; the "
                  "identity '0,1,...' is a valid case (the next token is a copy of x*)"),
        Parameter("orders", "text", TOY_ORDERS,
                  "per-query partial orders 'q: a>b>c, d>e; ...' (unlisted queries: seeded "
                  "random total orders) or 'random' (seeded random weak orders); the query may "
                  "appear in its own order, since it is a token of every sentence it ends"),
        Parameter("order_seed", "integer", 0, "seed of the random orders"),
        Parameter("L", "integer", 3, "longest training sentence"),
        Parameter("sentences", "text", "all",
                  "'all' admissible sentences of length 2..L, or explicit ones '2 0 1; 4 3 1' "
                  "(query last)"),
        Parameter("eta0", "rational", sp.Rational(1, 2), "stage-1 NGD step eta_0 > 0"),
        Parameter("T0", "integer", 20, "stage-1 NGD steps T_0 (W_ov is then frozen)"),
        Parameter("eta", "rational", sp.Rational(1, 2), "stage-2 NGD step eta > 0"),
    )
    if holdout:
        parameters += (Parameter("holdout", "text", "auto",
                                 "transitivity hold-out 'q: a>b>c' (sentences of query q whose "
                                 "greatest token is a and that contain c) or 'auto'"),)
    return parameters


_PAPER = "huang2024ntp"
_ASSUMPTIONS = (
    "orthonormal (one-hot) embeddings, d = K",
    "collocation n is a permutation; every per-query order is a strict partial order (acyclic)",
    "every training sentence has a unique greatest token under its query's order",
    r"normalized GD with steps $\eta_0, \eta > 0$; stage 1 trains $W_{ov}$ alone from 0, "
    r"stage 2 trains $W_{kq}$ alone from 0",
)

FFN_MAX_MARGIN = Theorem(
    id="ntp-ffn-max-margin",
    title="Stage 1: the feed-forward matrix converges in direction to the max-margin W_ov*",
    paper=f"{_PAPER}, feed-forward pre-processing (stage 1)",
    statement=(
        r"Normalized GD on the collocation loss $L_0(W) = \frac1K\sum_x -\log\mathrm{softmax}"
        r"(E^\top W e_x)_{n(x)}$ gives $W(t)/\|W(t)\| \to W_{ov}^*/\|W_{ov}^*\|$, where "
        r"$W_{ov}^* = \arg\min\|W\|_F$ s.t. $(e_{n(x)} - e_v)^\top W e_x \ge 1$; for "
        r"orthonormal embeddings $W_{ov}^* = \sum_x (e_{n(x)} - \bar e) e_x^\top$, "
        r"$\|W_{ov}^*\|_F^2 = K-1$, and from $W(0) = 0$: "
        r"$L_0(t) = \log(1 + (K-1)e^{-\eta_0 t/\sqrt{K-1}})$ (linear convergence)."
    ),
    parameters=_parameters(),
    assumption_text=_ASSUMPTIONS,
    assumptions=_problems,
    predict=_ffn_predict,
    obligations=_ffn_obligations,
)

ATTENTION_MAX_MARGIN = Theorem(
    id="ntp-attention-max-margin",
    title="Stage 2: attention converges in direction to the max-margin W_kq*",
    paper=f"{_PAPER}, attention training (stage 2)",
    statement=(
        r"With $W_{ov}$ frozen after stage 1, normalized GD on $W_{kq}$ from 0 gives "
        r"$W_{kq}(t)/\|W_{kq}(t)\| \to W_{kq}^*/\|W_{kq}^*\|$ with $W_{kq}^* = \arg\min"
        r"\|W\|_F$ s.t. $(e_{x^*(X)} - e_x)^\top W e_{x_L} \ge 1$ for every training "
        r"sentence $X$ and token $x \ne x^*(X)$ of $X$, and the attention on the optimal "
        r"token tends to 1."
    ),
    parameters=_parameters(),
    assumption_text=_ASSUMPTIONS,
    assumptions=_attention_problems,
    predict=_attention_predict,
    obligations=_attention_obligations,
)

LOSS_LINEAR_RATE = Theorem(
    id="ntp-loss-linear-rate",
    title="Stage 2: the loss converges linearly to its floor",
    paper=f"{_PAPER}, linear convergence of the training loss",
    statement=(
        r"The stage-2 loss converges linearly to $L_\infty = \frac1N\sum -\log\mathrm{softmax}"
        r"(E^\top W_{ov} e_{x^*})_y$, which equals $L_0(T_0)$ since $W_{ov}(T_0) = "
        r"\eta_0 T_0 W_{ov}^*/\|W_{ov}^*\|$: $L(t) - L_\infty \le C\rho^t$ with $\rho < 1$."
    ),
    parameters=_parameters(),
    assumption_text=_ASSUMPTIONS,
    assumptions=_attention_problems,
    predict=_attention_predict,
    obligations=_floor_obligations,
)

DATASET_SHIFT = Theorem(
    id="ntp-dataset-shift",
    title="The trained model generalises to longer sentences and to transitive comparisons",
    paper=f"{_PAPER}, generalisation under dataset shift",
    statement=(
        r"On a new sentence whose greatest token exists under the order induced by the "
        r"scores $s_q(x) = e_x^\top W_{kq}^* e_q$ (which contains the transitive closure of "
        r"the training comparisons), the trained model predicts $n(x^*)$; in particular "
        r"$s_q(a) - s_q(c) \ge 2$ when training compares only $a > b$ and $b > c$."
    ),
    parameters=_parameters(holdout=True),
    assumption_text=_ASSUMPTIONS + ("hold-out: a >_q b >_q c with b >=_q q and c != q",),
    assumptions=_attention_problems,
    predict=_shift_predict,
    obligations=_shift_obligations,
)

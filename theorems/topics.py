"""How transformers learn topic structure (Li, Li, Risteski, ICML 2023, arXiv 2303.04245).

The statements below are the project's formulation: the block
structure results were derived for this project and checked numerically; the paper's full text
was not available when they were written.

Data: ``T`` disjoint topics of ``v`` words each (``V = T v`` words, ``topic(w) = w // v``); a
document draws a set ``S`` of ``tau`` topics uniformly, then words uniformly from the topics in
``S``. In the long-document limit the context's word distribution is
``p_S(w) = 1/(tau v)`` if ``topic(w)`` is in ``S`` and 0 otherwise.

Model (stage 1, frozen uniform attention, one-hot embeddings): a masked word's logits are
``W p_S``; the population objective is
``L(W) = E_S E_{w ~ p_S}[-log softmax(W p_S)_w] + lambda ||W||_F^2``.

Reduction
---------
``L`` is strictly convex and invariant under permuting words within topics and permuting
topics, so its minimiser has the block form ``W = a Blk + b (J - Blk)`` (``Blk = I_T (x) J_v``),
with rows summing to zero (``a + (T-1) b = 0``). With ``k = a - b`` and the logit gap
``delta = k / tau`` the objective becomes

``L(delta) = -delta + log(tau v e^delta + (T - tau) v) + lambda v^2 (T-1) tau^2 delta^2``.
"""

from __future__ import annotations

from functools import cache
from itertools import combinations

import mpmath
import sympy as sp

from theorems.core import Obligation, Parameter, Params, Prediction, Theorem

delta = sp.Symbol("delta", real=True)
T_, v_, tau_, lam_ = sp.symbols("T v tau lambda", positive=True)

#: Working precision (decimal digits) of the bracketed root finder for delta*.
ROOT_DIGITS = 50


def reduced_loss() -> sp.Expr:
    """``L(delta)`` of the module docstring (symbolic in T, v, tau, lambda)."""
    return (-delta + sp.log(tau_ * v_ * sp.exp(delta) + (T_ - tau_) * v_)
            + lam_ * v_**2 * (T_ - 1) * tau_**2 * delta**2)


def stationarity_gap() -> sp.Expr:
    """``(T - tau)/(tau e^delta + T - tau) - 2 lambda v^2 (T-1) tau^2 delta`` (= -dL/ddelta)."""
    return ((T_ - tau_) / (tau_ * sp.exp(delta) + T_ - tau_)
            - 2 * lam_ * v_**2 * (T_ - 1) * tau_**2 * delta)


def block_matrix(T: int, v: int, same: sp.Expr, other: sp.Expr,
                 diagonal: sp.Expr | None = None) -> sp.Matrix:
    """``diagonal I + same (Blk - I) + other (J - Blk)`` (``diagonal = same`` by default)."""
    V = T * v
    diagonal = same if diagonal is None else diagonal
    return sp.Matrix(V, V, lambda i, j: diagonal if i == j
                     else (same if i // v == j // v else other))


def context_distribution(T: int, v: int, topics: tuple[int, ...]) -> sp.Matrix:
    """``p_S`` as a column vector."""
    tau = len(topics)
    return sp.Matrix([sp.Rational(1, tau * v) if w // v in topics else 0 for w in range(T * v)])


def population_loss(W: sp.Matrix, T: int, v: int, tau: int, lam: sp.Expr) -> sp.Expr:
    """``E_S E_{w ~ p_S}[-log softmax(W p_S)_w] + lam ||W||_F^2`` by enumerating every S.

    Written as ``-(l_w - l_0) + log sum_u exp(l_u - l_0)`` with ``l_0`` the first logit, so
    equal exponents collect and sympy simplifies exactly.
    """
    subsets = list(combinations(range(T), tau))
    total = sp.Integer(0)
    for S in subsets:
        p = context_distribution(T, v, S)
        logits = W * p
        shifted = [sp.expand(x - logits[0]) for x in logits]
        log_partition = sp.log(sp.Add(*[sp.exp(x) for x in shifted]))
        total += sum(p[w] * (log_partition - shifted[w]) for w in range(T * v) if p[w] != 0)
    return total / len(subsets) + lam * sum(x**2 for x in W)


@cache
def optimal_gap(T: int, v: int, tau: int, lam: sp.Rational) -> sp.Float:
    """The unique root ``delta*`` of the stationarity equation, by bisection on a bracket.

    The gap is positive at 0 and strictly decreasing (the convexity obligation), so doubling
    ``upper`` until the gap is negative gives a bracket ``[0, upper]``; bisection then runs at
    ``ROOT_DIGITS`` digits.
    """
    gap = sp.lambdify(delta, stationarity_gap().subs({T_: T, v_: v, tau_: tau, lam_: lam}),
                      "mpmath")
    with mpmath.workdps(ROOT_DIGITS):
        upper = mpmath.mpf(1)
        while gap(upper) > 0:
            upper *= 2
        root = mpmath.findroot(gap, (mpmath.mpf(0), upper), solver="bisect",
                               tol=mpmath.mpf(10) ** (-2 * ROOT_DIGITS), maxsteps=1000)
        return sp.Float(root, ROOT_DIGITS)


def _block_values(params: Params) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    T, tau = params["T"], params["tau"]
    root = optimal_gap(T, params["v"], tau, params["lam"])
    k = tau * root
    return root, (T - 1) * k / T, -k / T


def _point(params: Params) -> dict[sp.Symbol, sp.Expr]:
    return {T_: sp.Integer(params["T"]), v_: sp.Integer(params["v"]),
            tau_: sp.Integer(params["tau"]), lam_: sp.Rational(params["lam"])}


def _problems(params: Params) -> list[str]:
    problems = []
    T, v, tau, lam = params["T"], params["v"], params["tau"], params["lam"]
    if T < 2:
        problems.append(f"T must be at least 2 topics (got T = {T})")
    if v < 1:
        problems.append(f"v must be at least 1 word per topic (got v = {v})")
    if not 1 <= tau < T:
        problems.append(f"tau must lie in [1, T) (got tau = {tau}, T = {T}): with tau = T every "
                        "document mixes every topic and the context carries no topic")
    if not lam > 0:
        problems.append(f"lambda must be > 0 (got lam = {lam}): without the penalty the "
                        "objective has no minimiser")
    if "mask" in params:
        problems += masking_problems(params)
    return problems


def kept_word_problems(params: Params) -> list[str]:
    """A claim about trained attention needs kept words: its topic signal reaches a word query
    only through positions where the word was kept (query = target)."""
    if params["keep"] > 0:
        return []
    return [f"keep must be > 0 (got keep = {params['keep']}): the attention's topic signal "
            "reaches word queries only through kept words (query = target), so at keep = 0 no "
            "attention structure is predicted"]


def _attention_problems(params: Params) -> list[str]:
    """:func:`_problems`, then :func:`kept_word_problems`."""
    return _problems(params) or kept_word_problems(params)


#: The masked-LM corruption of the sampled experiments (the reference code's BERT scheme).
MASKING_PARAMETERS = (
    Parameter("mask", "rational", sp.Rational(15, 100),
              "masked-LM: probability that a position is selected"),
    Parameter("keep", "rational", sp.Rational(1, 10),
              "masked-LM: probability that a selected token is kept"),
    Parameter("random", "rational", sp.Rational(1, 10),
              "masked-LM: probability that a selected token becomes a random word"),
)


def masking_problems(params: Params) -> list[str]:
    """What is wrong with the :data:`MASKING_PARAMETERS` of ``params``."""
    problems = [f"{name} must be a probability in [0, 1] (got {params[name]})"
                for name in ("mask", "keep", "random") if not 0 <= params[name] <= 1]
    if 0 <= params["mask"] <= 1 and not params["mask"] > 0:
        problems.append("mask must be > 0: the masked-LM loss needs selected positions")
    if params["keep"] + params["random"] > 1:
        problems.append(
            f"keep + random = {params['keep'] + params['random']} > 1: a selected token "
            "becomes [MASK], a random word or itself, and these probabilities must sum to 1"
        )
    return problems


def _parameters(sampled: bool = True) -> tuple[Parameter, ...]:
    sizes = (
        Parameter("T", "integer", 4, "number of topics"),
        Parameter("v", "integer", 3, "words per topic"),
        Parameter("tau", "integer", 2, "topics per document, 1 <= tau < T"),
        Parameter("lam", "rational", sp.Rational(1, 100), "L2 penalty lambda > 0"),
    )
    return sizes + (MASKING_PARAMETERS if sampled else ())


_PAPER = "li2023topics"


# ----------------------------------------------------------------------------- value matrix


#: Sizes up to which the obligations that enumerate V x V matrices are built (they hold for
#: every size; these keep ``verify`` fast at the paper's T = 10, v = 10).
ENUMERATION_T, ENUMERATION_V = 4, 3


#: What covers sizes above the enumeration caps (said in the verdict when they apply).
ENUMERATION_SCOPE = ("the V x V matrices are built at the capped sizes (their symbolic "
                     "characteristic polynomial grows quickly with V = T v); the block structure "
                     "is the same at every size (it is invariant under permuting topics and the "
                     "words of a topic), but the requested size itself is not decided here")


def _enumeration_sizes(params: Params) -> tuple[int, int, int]:
    """``(T, v, tau)`` capped at :data:`ENUMERATION_T`, :data:`ENUMERATION_V`."""
    T, v = min(params["T"], ENUMERATION_T), min(params["v"], ENUMERATION_V)
    return T, v, min(params["tau"], T - 1)


def _built(T: int, v: int, tau: int | None = None) -> dict:
    """The ``sizes``/``scope`` of an obligation built at the enumeration sizes."""
    sizes = {"T": T, "v": v} | ({"tau": tau} if tau is not None else {})
    return {"sizes": sizes, "scope": ENUMERATION_SCOPE}


def _rows_sum_to_zero(where: str, a: sp.Expr, b: sp.Expr, T: int,
                      point: dict[sp.Symbol, sp.Expr]) -> Obligation:
    """``a + (T-1) b = 0`` for the 50-digit closed forms ``a``, ``b`` of the block optimum:
    within 1e-30, since their sum cancels only to their last digits."""
    return Obligation(f"a + (T-1) b = 0{where} (rows sum to zero; |a + (T-1) b| < 1e-30: a "
                      "and b are 50-digit numbers, whose sum cancels only to their last "
                      "digits)", sp.Abs(a + (T - 1) * b), "<", point, sp.Float("1e-30"),
                      uses=("a", "b"))


def _value_obligations(params: Params, prediction: Prediction) -> list[Obligation]:
    T, v, tau = _enumeration_sizes(params)
    lam = sp.Rational(params["lam"])
    point = _point(params)
    small = {T_: T, v_: v, tau_: tau, lam_: lam}
    a, b, c, k = sp.symbols("a b c k", real=True)
    S = tuple(range(tau))
    logits = block_matrix(T, v, a, b, diagonal=c) * context_distribution(T, v, S)
    s = c + (v - 1) * a
    reduction = sp.ImmutableMatrix([
        logits[w] - (s * (1 if w // v in S else 0) + v * b * (tau - (1 if w // v in S else 0)))
        / (tau * v) for w in range(T * v)])
    W_k = block_matrix(T, v, (T - 1) * k / T, -k / T)
    forms = prediction.closed_forms
    root, a_star, b_star = (forms[name].subs(point) for name in ("delta", "a", "b"))
    built = _built(T, v, tau)
    # T = tau + m with m > 0 (tau < T) and tau = 1 + r with r >= 0 (tau >= 1)
    m, r = sp.Symbol("m", positive=True), sp.Symbol("r", nonnegative=True)
    curvature = sp.diff(reduced_loss(), delta, 2).subs(T_, tau_ + m).subs(tau_, 1 + r)
    identity_gradient = _squared_loss_gradient_at_identity(T, v, tau)
    return [
        Obligation("logits of c I + a (Blk - I) + b (J - Blk) depend on s = c + (v-1) a and b "
                   "only", reduction, "==", point, sp.zeros(T * v, 1), **built),
        Obligation("exact population loss at block form (all C(T, tau) sets) = L(delta), "
                   "delta = k/tau", population_loss(W_k, T, v, tau, lam),
                   "==", point, reduced_loss().subs(small).subs(delta, k / tau), **built),
        Obligation("dL/ddelta = 0  <=>  (T-tau)/(tau e^delta + T-tau) = 2 lambda v^2 (T-1) "
                   "tau^2 delta", sp.diff(reduced_loss(), delta) + stationarity_gap(), "==",
                   point),
        Obligation("L is strictly convex in delta (unique root): d2L/ddelta2 > 0 for all delta",
                   sp.factor(curvature), ">", {}),
        Obligation("delta* solves the stationarity equation (|residual| < 1e-30)",
                   sp.Abs(stationarity_gap().subs(point).subs(delta, root)), "<",
                   point, sp.Float("1e-30"), uses=("delta",)),
        Obligation("W^V at k = tau delta*: a = (T-1) k / T, b = -k / T (|residual| < 1e-30: "
                   "delta* is a 50-digit root)",
                   sp.Max(sp.Abs(a_star - ((T_ - 1) * tau_ * root / T_).subs(point)),
                          sp.Abs(b_star + (tau_ * root / T_).subs(point))), "<", point,
                   sp.Float("1e-30"), uses=("a", "b", "delta")),
        _rows_sum_to_zero("", a_star, b_star, params["T"], point),
        Obligation("a > 0 > b: same-topic entries exceed different-topic entries", b_star, "<",
                   point, uses=("b",)),
        Obligation("the minimal loss is L(delta*)", forms["loss"], "==", point,
                   reduced_loss().subs(delta, root), uses=("loss", "delta")),
        Obligation("control: with squared loss and no penalty the gradient at W = I is 0, so "
                   "W = I (not block form) is optimal", identity_gradient, "==", point,
                   sp.zeros(*identity_gradient.shape), **built),
    ]


def _squared_loss_gradient_at_identity(T: int, v: int, tau: int) -> sp.ImmutableMatrix:
    """Gradient of ``E_S E_w ||W p_S - e_w||^2`` at ``W = I``: ``2 E[(p_S - e_w) p_S^T]``."""
    V = T * v
    subsets = list(combinations(range(T), tau))
    gradient = sp.zeros(V, V)
    for S in subsets:
        p = context_distribution(T, v, S)
        for w in range(V):
            if p[w]:
                target = sp.Matrix([1 if u == w else 0 for u in range(V)])
                gradient += 2 * p[w] * (p - target) * p.T
    return sp.ImmutableMatrix(gradient / len(subsets))


def _value_predict(params: Params) -> Prediction:
    root, a_star, b_star = _block_values(params)
    return Prediction(
        closed_forms={"delta": root, "a": a_star, "b": b_star,
                      "loss": reduced_loss().subs(delta, root)},
        point=_point(params),
        descriptions={"delta": "logit gap delta* (root of the stationarity equation)",
                      "a": "same-topic entry of W*", "b": "different-topic entry of W*",
                      "loss": "minimal population objective"},
    )


VALUE_BLOCKS = Theorem(
    id="topics-value-block-structure",
    title="Uniform attention: the trained value matrix is block-structured by topic",
    paper=f"{_PAPER}, stage 1 (value matrix under frozen uniform attention)",
    statement=(
        r"With frozen uniform attention and one-hot embeddings, "
        r"$L(W) = \mathbb E_S\mathbb E_{w\sim p_S}[-\log\mathrm{softmax}(Wp_S)_w] + "
        r"\lambda\|W\|_F^2$ has the unique minimiser $W^* = a\,\mathrm{Blk} + "
        r"b\,(J - \mathrm{Blk})$ with $a + (T-1)b = 0$, $\delta = (a-b)/\tau$ the root of "
        r"$\frac{T-\tau}{\tau e^\delta + T - \tau} = 2\lambda v^2 (T-1)\tau^2\delta$, "
        r"and $a > 0 > b$."
    ),
    parameters=_parameters(),
    assumption_text=(r"$1 \le \tau < T$, $\lambda > 0$", "disjoint uniform topics",
                     "frozen uniform attention, one-hot embeddings, cross-entropy"),
    assumptions=_problems,
    predict=_value_predict,
    obligations=_value_obligations,
)


# ----------------------------------------------------------------------------- embeddings


def penalty_threshold() -> sp.Expr:
    """``lambda* = (T - tau) / (v tau T (T - 1))``, the largest eigenvalue of ``Cov(p_S)``.

    The embedding objective is convex in ``G = E^T E`` (the logits ``G p_S`` are linear in
    ``G``, the cross-entropy convex in the logits, the penalty ``lambda tr G`` linear), and at
    ``G = 0`` its gradient is ``lambda I - Cov(p_S)``: equal logits give the uniform softmax,
    and ``E p_S`` is uniform. So ``G = 0`` (no embedding at all) is the minimiser exactly when
    ``lambda >= lambda*``. ``Cov(p_S)`` is constant within a topic; on a contrast between two
    topics it is ``P(exactly one in S) / (2 v tau^2)`` with
    ``P = 2 tau (T - tau) / (T (T - 1))``."""
    return (T_ - tau_) / (v_ * tau_ * T_ * (T_ - 1))


def context_covariance(T: int, v: int, tau: int) -> sp.Matrix:
    """``Cov(p_S)`` over the equally likely ``tau``-subsets ``S`` of ``T`` topics, exactly."""
    contexts = [context_distribution(T, v, S) for S in combinations(range(T), tau)]
    mean = sum(contexts, sp.zeros(T * v, 1)) / len(contexts)
    second = sum((p * p.T for p in contexts), sp.zeros(T * v, T * v)) / len(contexts)
    return second - mean * mean.T


def _embedding_problems(params: Params) -> list[str]:
    problems = _problems(params)
    if problems:
        return problems
    threshold = penalty_threshold().subs(_point(params))
    if params["lam"] >= threshold:
        problems.append(
            f"lam = {params['lam']} is at or above lambda* = (T - tau)/(v tau T (T - 1)) = "
            f"{threshold} (T = {params['T']}, v = {params['v']}, tau = {params['tau']}): the "
            "trace penalty outweighs every topic direction, so the optimal G is 0 (no "
            f"embedding, no topic structure); choose lam < {threshold}")
    return problems


def _embedding_obligations(params: Params, prediction: Prediction) -> list[Obligation]:
    T, v, tau = _enumeration_sizes(params)
    point = _point(params)
    a, b, c, s = sp.symbols("a b c s", real=True)
    G = block_matrix(T, v, a, b, diagonal=c)
    spectrum = ((c - a, T * (v - 1)), (c + (v - 1) * a - v * b, T - 1),
                (c + (v - 1) * a + (T - 1) * v * b, 1))
    if v == 1:
        spectrum = spectrum[1:]
    c_of_a = s - (v - 1) * a  # fixed s = c + (v-1) a
    threshold = prediction.closed_forms["penalty_threshold"]
    return [
        Obligation("eigenvalues of an invariant G: c-a (x T(v-1)), "
                   "c+(v-1)a-vb (x T-1), c+(v-1)a+(T-1)vb (x 1)", sp.ImmutableMatrix(G),
                   "spectrum", point, spectrum, **_built(T, v)),
        Obligation("at a = c (the binding constraint) the eigenvalue c - a of multiplicity "
                   "T(v-1) vanishes, so rank G <= V - T(v-1) = T = rank_bound",
                   sp.Integer(T * v - T * (v - 1)), "==", point,
                   prediction.closed_forms["rank_bound"].subs({T_: T}), uses=("rank_bound",),
                   **_built(T, v)),
        Obligation("at fixed s = c + (v-1)a, tr G = V c decreases in a: dc/da = -(v-1) <= 0",
                   sp.diff(c_of_a, a), "<=", point),
        Obligation("so the PSD constraint c - a >= 0 binds: a = c = s/v (same-topic words share "
                   "one direction)", (c_of_a - a).subs(a, s / v), "==", point),
        Obligation("the gradient at G = 0 is lambda I - Cov(p_S); Cov(p_S) has eigenvalues "
                   "lambda* (x T-1, topic contrasts) and 0 (x T(v-1)+1)",
                   sp.ImmutableMatrix(context_covariance(T, v, tau)), "spectrum", point,
                   ((threshold.subs({T_: T, v_: v, tau_: tau}), T - 1), (0, T * (v - 1) + 1)),
                   uses=("penalty_threshold",), **_built(T, v, tau)),
        Obligation("lambda < lambda*: G = 0 is not the minimiser, the optimum is the block "
                   "point", lam_, "<", point, threshold, uses=("penalty_threshold",)),
    ]


EMBEDDING_BLOCKS = Theorem(
    id="topics-embedding-block-structure",
    title="Uniform attention: trained tied embeddings are block-structured by topic",
    paper=f"{_PAPER}, stage 1 (embeddings under frozen uniform attention)",
    statement=(
        r"With frozen uniform attention, $W^V = I$ and a tied decoder, the logits are "
        r"$G p_S$ with $G = E^\top E$ and penalty $\lambda\,\mathrm{tr}\,G$. The optimal "
        r"$G$ is block-invariant with equal same-topic entries ($G_{ij} = s/v$: same-topic "
        r"words share one embedding direction), a smaller different-topic entry, and "
        r"$\mathrm{rank}\,G \le T$."
    ),
    parameters=_parameters(sampled=False),
    assumption_text=(r"$1 \le \tau < T$, $d \ge T$",
                     r"$0 < \lambda < \lambda^* = \frac{T-\tau}{v\tau T(T-1)}$ (else the "
                     r"optimal $G$ is 0)",
                     "frozen uniform attention, W^V = I, tied decoder"),
    assumptions=_embedding_problems,
    predict=lambda params: Prediction(
        closed_forms={"rank_bound": T_, "penalty_threshold": penalty_threshold()},
        point=_point(params),
        descriptions={"rank_bound": "rank of the optimal Gram matrix is at most T",
                      "penalty_threshold": "largest penalty lambda* with a non-zero optimum "
                                           "(largest eigenvalue of Cov(p_S))"}),
    obligations=_embedding_obligations,
)


# ----------------------------------------------------------------------------- attention


def _attention_obligations(params: Params, prediction: Prediction) -> list[Obligation]:
    T, v, _ = _enumeration_sizes(params)
    point = _point(params)
    a, b = sp.symbols("a b", real=True)
    V = T * v
    weights = sp.symbols(f"alpha0:{V}", nonnegative=True)  # attention mass on each key word
    logits = block_matrix(T, v, a, b) * sp.Matrix(weights)
    mass = [sum(weights[t * v : (t + 1) * v]) for t in range(T)]
    total = sum(weights)
    a_star, b_star = (prediction.closed_forms[name].subs(point) for name in ("a", "b"))
    _, a_value, b_value = _block_values(params)  # where stage 1 ends (the value theorem)
    return [
        Obligation("with W^V = a Blk + b (J - Blk), logit_w = b sum(alpha) + (a - b) "
                   "m_topic(w): only the attention mass per topic matters",
                   sp.ImmutableMatrix([logits[w] - (b * total + (a - b) * mass[w // v])
                                       for w in range(V)]), "==", point, sp.zeros(V, 1),
                   **_built(T, v)),
        Obligation("W^V is frozen at the stage-1 optimum of the value theorem: a, b are its "
                   "block entries (|difference| < 1e-30, 50-digit root)",
                   sp.Max(sp.Abs(a_star - a_value), sp.Abs(b_star - b_value)), "<", point,
                   sp.Float("1e-30"), uses=("a", "b")),
        Obligation("d logit_w / d m_topic(w) = a - b > 0 at the stage-1 optimum: moving mass to "
                   "the target's topic raises the correct logit", a_star - b_star, ">", point,
                   uses=("a", "b")),
    ]


ATTENTION_TOPICS = Theorem(
    id="topics-attention-structure",
    title="With W^V at its block optimum, trained attention favours same-topic tokens",
    paper=f"{_PAPER}, stage 2 (attention learns topic structure)",
    statement=(
        r"With $W^V$ frozen at the stage-1 block optimum $a\,\mathrm{Blk} + b\,(J - "
        r"\mathrm{Blk})$, $a > b$, training $W^K, W^Q$ on masked-LM data makes the average "
        r"attention between same-topic token pairs exceed that between different-topic pairs "
        r"(content-word queries; [MASK] queries carry no topic and stay uniform). "
        r"Mechanism checked: topic co-occurrence. The numeric check learns $W^V$ in stage 1 "
        r"from the documents (uniform attention), freezes it, trains $W^K, W^Q$, and compares "
        r"attention to same-topic keys of \emph{different} words with attention to "
        r"different-topic keys, excluding the query's own position and every copy of its word "
        r"(attention renormalised over the remaining keys, each word's share relative to its "
        r"share of those keys); the topic labels enter neither stage. The signal reaches "
        r"word queries through kept words (query = target; random replacements oppose it), "
        r"so at keep probability 0 no attention structure is predicted. On topic-free "
        r"documents (words i.i.d. uniform) the gap must vanish."
    ),
    parameters=_parameters(),
    assumption_text=(r"$1 \le \tau < T$, $\lambda > 0$",
                     "W^V frozen at its stage-1 optimum (the closed form a Blk + b (J - Blk) "
                     "for the theory documents; learned from the same documents numerically)",
                     "masked-LM corruption of LDA documents with keep probability > 0",
                     "measured on different words only: attention to the query itself and "
                     "to copies of its word is excluded"),
    assumptions=_attention_problems,
    predict=lambda params: Prediction(
        closed_forms={"a": _block_values(params)[1], "b": _block_values(params)[2],
                      "uniform_ratio": sp.Integer(1)},
        point=_point(params),
        descriptions={"a": "frozen same-topic entry of W^V", "b": "frozen different-topic "
                      "entry", "uniform_ratio": "same/different attention ratio of uniform "
                      "attention (the baseline the trained ratio must exceed)"}),
    obligations=_attention_obligations,
)


# ----------------------------------------------------------------------------- dynamics (empirical)


def _pattern(matrix: sp.Matrix, T: int, v: int) -> sp.Expr:
    """Block pattern of a ``V x V`` matrix: the correlation (cosine of the centred vectors) of
    its off-diagonal entries with the same-topic indicator, exact."""
    pairs = [(i, j) for i in range(T * v) for j in range(T * v) if i != j]
    x = [matrix[i, j] for i, j in pairs]
    y = [sp.Integer(1 if i // v == j // v else 0) for i, j in pairs]
    x_mean, y_mean = sp.Add(*x) / len(x), sp.Add(*y) / len(y)
    x = [xi - x_mean for xi in x]
    y = [yi - y_mean for yi in y]
    return (sp.Add(*(xi * yi for xi, yi in zip(x, y, strict=True)))
            / sp.sqrt(sp.Add(*(xi**2 for xi in x)) * sp.Add(*(yi**2 for yi in y))))


def _dynamics_obligations(params: Params, prediction: Prediction) -> list[Obligation]:
    T, v, _ = _enumeration_sizes(params)
    point = _point(params)
    forms = prediction.closed_forms
    b, k = sp.Symbol("b", real=True), sp.Symbol("k", positive=True)  # a = b + k > b
    a_star, b_star = (forms[name].subs(point) for name in ("a", "b"))
    # the value theorem's optimality conditions, evaluated at the closed forms a, b (not a
    # comparison with the root they are computed from): its logit gap is delta = (a - b)/tau
    gap = (a_star - b_star) / params["tau"]
    # uniform attention 1/N on N keys, m of them not copies of the query's word, n of word k
    N, m, n_same, n_other = sp.symbols("N m n_s n_o", positive=True)

    def uniform_lift(n: sp.Symbol) -> sp.Expr:  # renormalised attention share / key share
        return ((n / N) / (m / N)) / (n / m)

    return [
        Obligation("the block pattern of a Blk + b (J - Blk) is 1 whenever a > b (its centred "
                   "off-diagonal entries are (a - b) times the centred same-topic indicator)",
                   sp.simplify(_pattern(block_matrix(T, v, b + k, b), T, v)), "==", point,
                   forms["optimum_pattern"], uses=("optimum_pattern",), **_built(T, v)),
        Obligation("a, b are the stage-1 optimum of the value theorem: at delta = (a - b)/tau "
                   "the stationarity equation (T-tau)/(tau e^delta + T-tau) = 2 lambda v^2 "
                   "(T-1) tau^2 delta holds (|residual| < 1e-30: a 50-digit root)",
                   sp.Abs(stationarity_gap().subs(point).subs(delta, gap)), "<", point,
                   sp.Float("1e-30"), uses=("a", "b")),
        _rows_sum_to_zero(" at the stage-1 optimum", a_star, b_star, params["T"], point),
        Obligation("a > b at the stage-1 optimum: its block pattern is that of a block matrix "
                   "with a > b", a_star - b_star, ">", point, uses=("a", "b")),
        Obligation("uniform attention: every word's renormalised attention share equals its "
                   "share of the keys, so every lift is 1 and the same-minus-different lift "
                   "gap is uniform_gap", uniform_lift(n_same) - uniform_lift(n_other), "==",
                   point, forms["uniform_gap"], uses=("uniform_gap",)),
    ]


def _dynamics_problems(params: Params) -> list[str]:
    problems = _attention_problems(params)
    if not problems and params["v"] < 2:
        problems.append(f"v must be at least 2 words per topic (got v = {params['v']}): both "
                        "scores compare same-topic pairs of different words, and with one word "
                        "per topic there are none")
    return problems


TWO_STAGE_DYNAMICS = Theorem(
    id="topics-two-stage-dynamics",
    title="Training W^V, W^K, W^Q together: W^V becomes block-structured before attention "
          "learns topics",
    paper=f"{_PAPER}, training dynamics (empirical, no proof)",
    statement=(
        r"Shown by experiment in the paper, not proved: training $W^V, W^K, W^Q$ together "
        r"from a near-zero initialisation on masked-LM LDA documents, the value matrix "
        r"becomes block-structured by topic first, while the attention is still nearly "
        r"uniform, and the attention's same-topic preference grows afterwards (the two-stage "
        r"picture that the stage-1 and stage-2 theorems treat one stage at a time). Our "
        r"formulation: the block pattern of $W^V$ (the correlation of its off-diagonal "
        r"content entries with the same-topic indicator; 1 at every block point "
        r"$a\,\mathrm{Blk} + b\,(J - \mathrm{Blk})$ with $a > b$) reaches half its final "
        r"value at an earlier step than the attention's same-topic minus different-topic "
        r"lift gap (copies of the query's word excluded; 0 for uniform attention) does, in "
        r"every seed (by at least one step), with both final structures significant (5 "
        r"standard errors of the same-minus-different difference of means, the standard "
        r"error computed as if the word pairs were independent samples: pairs that share a "
        r"word are not, so it is a yardstick rather than an exact error). A curve's "
        r"final value is its mean over the last 10\% of the run, and it reaches half at the "
        r"first step from which it stays at or above half its final value. The one-step lead "
        r"is a weak discriminator: the block pattern is scale-free, and under Adam's "
        r"sign-like first steps it reaches half within the first few steps (step 2 in every "
        r"seed at the fast budget, also when $W^K, W^Q$ start trained), so the check mostly "
        r"says that the attention gap does not form within those steps (the measured leads "
        r"are tens of steps at the fast budget). Reported, not "
        r"checked: the size of $W^V$'s block gap (same-topic minus different-topic mean), "
        r"which keeps growing without a penalty after the pattern has formed, has a half-way "
        r"step set by the length of the run: somewhat before the attention gap's at the fast "
        r"budget, after it in a longer run at the reference sizes; read by sizes rather than "
        r"patterns, the two-stage order is not a robust observation."
    ),
    parameters=_parameters(),
    assumption_text=(r"$1 \le \tau < T$, $\lambda > 0$ (they fix the stage-1 block point "
                     r"$a, b$ of the bridge; the training has no penalty), $v \ge 2$",
                     "W^V, W^K, W^Q trained together from N(0, 1e-6) entries, AdamW, "
                     "masked-LM corruption of LDA documents with keep probability > 0"),
    assumptions=_dynamics_problems,
    predict=lambda params: Prediction(
        closed_forms={"a": _block_values(params)[1], "b": _block_values(params)[2],
                      "optimum_pattern": sp.Integer(1), "uniform_gap": sp.Integer(0)},
        point=_point(params),
        descriptions={"a": "same-topic entry of the stage-1 block optimum",
                      "b": "different-topic entry of the stage-1 block optimum",
                      "optimum_pattern": "block pattern of the stage-1 optimum (the value "
                      "the W^V score is measured against: 1 for every block matrix with a > b)",
                      "uniform_gap": "same-minus-different attention lift gap of uniform "
                      "attention (where the attention curve starts)"}),
    obligations=_dynamics_obligations,
    kind="empirical",
)

"""Next-token prediction on partial orders (Huang, Liang and Yang, 2024): the paper's registration.

One record declares the paper: its citation, its setting for the docs page, and each
theorem with the experiment that checks it and the experiment's per-budget defaults.
"""

import math
from pathlib import Path

import sympy as sp

from theorems import ntp
from theorems.core import Prediction
from verify.records import Cost, Paper, TheoremEntry

_FULL = {"full": {"K": "20", "orders": "random", "L": "3"}}
_ONE = {"fast": 1, "full": 5}

#: Enumerating the sentences of up to L tokens and comparing each with the orders: about a
#: microsecond per (sentence, token) pair in Python.
_SENTENCES = Cost("enumerating the training sentences (K^L of them)", ("K", "L"),
                  lambda params, seeds: 1e-6 * math.exp(
                      math.log(max(int(params["K"]), 1)) * (int(params["L"]) + 1)))
#: The exact attention SVM: one rational least-distance problem per query, growing like K^5
#: with random orders (measured on a 2-core CPU: 7.7 s at K = 20, 60 s at K = 30).
_SVM = Cost("the exact attention SVM (rational least-distance problems)", ("K",),
            lambda params, seeds: 7.7 * (float(int(params["K"])) / 20) ** 5)
#: Stage 1's normalized GD on W_ov, T0 steps in each of a theorem's stage-1 runs: measured 8.9 s
#: more for T0 = 20000 than for T0 = 2000 (K = 6, one seed, 2-core CPU), 5e-4 s per step of T0;
#: growing like K^2 (the K x K matrix) above K = 6. (T0 = 10^8 steps once ran unrefused, and
#: 10^30 crashed torch.)
_STAGE_ONE = Cost("stage 1's normalized GD (T0 steps per run)", ("T0",),
                  lambda params, seeds: 5e-4 * int(params["T0"]) * seeds
                  * max(1.0, int(params["K"]) / 6) ** 2)
_FFN_COSTS = {"fast": (_SENTENCES, _STAGE_ONE), "full": (_SENTENCES, _STAGE_ONE)}
_COSTS = {"fast": (_SENTENCES, _SVM, _STAGE_ONE), "full": (_SENTENCES, _SVM, _STAGE_ONE)}

#: Stage 2 stops at ``loss - L_inf < STOP_GAP`` or after the budget's step cap, the larger cap
#: being the full budget's (``verify.experiments.ntp``, which imports torch; a test holds them
#: equal).
_STOP_GAP = 1e-11
_MOST_STAGE_TWO_STEPS = 20_000
#: A request is refused as undecidable only beyond this many times the largest step cap.
_SLACK = 10


def _stage_two_too_slow(prediction: Prediction) -> list[str]:
    """Why stage 2 cannot reach its stopping gap in any budget, from the theorem's own rate:
    ``loss - L_inf`` falls at best by the factor ``rate = exp(-eta m)`` per step (the linear
    convergence; ``m`` the smallest margin of ``W_kq* / ||W_kq*||``), so from a gap of order 1
    it takes about ``ln(1 / STOP_GAP) / (eta m)`` steps: with ``eta = 1e-30`` about 10^32,
    where the run used to end at its step cap and FAIL as if the theorem were wrong. Refused
    beyond :data:`_SLACK` times the largest cap (the gap at 0 and the constant of the linear
    rate are not known in advance; measured rates were slower than ``exp(-eta m)``, never
    faster)."""
    decay = float(-sp.log(prediction.value("rate")))
    needed = math.log(1 / _STOP_GAP) / decay if decay > 0 else math.inf
    if needed <= _SLACK * _MOST_STAGE_TWO_STEPS:
        return []
    return [f"stage 2 would need about {needed:.3g} steps to bring loss - L_inf below "
            f"{_STOP_GAP:g} at the theorem's rate exp(-eta m) = exp(-{decay:.3g}) per step, far "
            f"beyond any budget's {_MOST_STAGE_TWO_STEPS}; use a larger step eta"]


#: Every symbol of the statements, assumptions and closed forms (the paper page's notation).
NOTATION = (
    (r"K", "vocabulary size; one-hot embeddings $e_x$, $d = K$"),
    (r"E", "embedding matrix (columns $e_x$); $\\bar e$ the mean embedding"),
    (r"n(x)", "the collocation: the token that follows token x (a permutation)"),
    (r"X = (x_1, \dots, x_L)", "a sentence; its last token $x_L = q$ is the query"),
    (r"L", "longest training sentence"),
    (r">_q", "the partial order of query q; $x^*(X)$ the greatest token of X under it"),
    (r"W_{ov}, W_{kq}", "feed-forward (output-value) and key-query matrices"),
    (r"W_{ov}^*, W_{kq}^*", "the hard-margin SVM solutions they align with"),
    (r"\eta_0, \eta", "normalized-GD steps of stage 1 and stage 2"),
    (r"T_0", "stage-1 steps ($W_{ov}$ is then frozen)"),
    (r"t", "step of normalized GD"),
    (r"L_0", "the collocation loss of stage 1"),
    (r"L_\infty", "the limit of the stage-2 loss"),
    (r"C, \rho", "constant and rate of the linear convergence $L(t) - L_\\infty \\le C\\rho^t$"),
    (r"s_q(x)", "score $e_x^\\top W_{kq}^* e_q$ of token x for query q"),
    (r"N", "number of training sentences"),
)

PAPER = Paper(
    key="huang2024ntp",
    title="Non-asymptotic Convergence of Training Transformers for Next-token Prediction",
    authors=("Ruiquan Huang",
             "Yingbin Liang",
             "Jing Yang"),
    year=2024,
    arxiv="2409.17335",
    prefix="ntp",
    setting=r"""
{cite:t}`huang2024ntp` analyse a one-layer transformer trained for next-token prediction on
data with a partial-order structure: a collocation permutation $n$ gives the next token of a
single token, and for each query $q$ (the last token) a partial order $>_q$ picks the "greatest"
token $x^*$ of a sentence, whose collocation $n(x^*)$ is the next token. Training in two stages
with normalized gradient descent first aligns the feed-forward matrix $W_{ov}$ with a hard-margin
SVM solution, then aligns the attention matrix $W_{kq}$ with the attention SVM of
{cite:t}`tarzanagh2023svm` and {cite:t}`tarzanagh2023maxmargin`, at a sub-linear rate in
direction and a linear rate for the loss.

**Our formulation.** One-hot (orthonormal) embeddings, merged matrices, float64. The
feed-forward SVM has the closed form $W_{ov}^* = \sum_x (e_{n(x)} - \bar e)\,e_x^\top$. The
attention SVM splits into one least-distance problem per query, which `theorems.ntp` solves
exactly in rational arithmetic (the reduction to non-negative least squares of
{cite:t}`lawson1974nnls`) and proves optimal by exact KKT obligations; the numeric side
cross-checks it with cvxpy {cite:p}`diamond2016cvxpy`. These are the project's formulation of
the paper's results, checked with a float64 re-implementation.
""",
    theorems=(
        TheoremEntry(ntp.FFN_MAX_MARGIN, "verify.experiments.ntp:FFN_MAX_MARGIN",
                     _FULL, _ONE, _FFN_COSTS),
        TheoremEntry(ntp.ATTENTION_MAX_MARGIN, "verify.experiments.ntp:ATTENTION_MAX_MARGIN",
                     _FULL, _ONE, _COSTS, _stage_two_too_slow),
        TheoremEntry(ntp.LOSS_LINEAR_RATE, "verify.experiments.ntp:LOSS_LINEAR_RATE",
                     _FULL, _ONE, _COSTS, _stage_two_too_slow),
        TheoremEntry(ntp.DATASET_SHIFT, "verify.experiments.ntp:DATASET_SHIFT",
                     _FULL, _ONE, _COSTS, _stage_two_too_slow),
    ),
    bibtex=r"""
@inproceedings{huang2024ntp,
  author    = {Huang, Ruiquan and Liang, Yingbin and Yang, Jing},
  title     = {Non-asymptotic Convergence of Training Transformers for Next-token Prediction},
  booktitle = {Advances in Neural Information Processing Systems (NeurIPS)},
  year      = {2024},
  note      = {arXiv:2409.17335}
}
""",
    baselines=Path(__file__).resolve().parent.parent / "baselines",
    notation=NOTATION,
)

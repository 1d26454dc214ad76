"""Attention with Markov (Makkuva et al., 2024): the paper's registration.

One record declares the paper: its citation, its setting for the docs page, and each
theorem with the experiment that checks it and the experiment's per-budget defaults.
"""

from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

from theorems import markov, markov_higher_order
from verify.experiments.markov_resolution import (
    run_steps,
    unresolvable,
    unresolvable_higher_order,
)
from verify.records import Cost, Paper, TheoremEntry

_FULL = {"full": {"d": "8"}}
_SEEDS = {"fast": 1, "full": 5}


def _symbolic(seconds_at_8: float) -> Cost:
    """The exact Hessian obligations: sympy on a (d+1)- or (2d+1)-square matrix of logs grows
    like d^3.5 (measured on a 2-core CPU: untied 8.8 s at d = 8, 71 s at 16, 418 s at 24;
    tied 2.8 s, 12 s, 52 s)."""
    return Cost("the exact Hessian obligations", ("d",),
                lambda params, seeds: seconds_at_8 * (int(params["d"]) / 8) ** 3.5)


#: The bridge's full autograd Hessian of the N = 4 model (about 12 d^2 parameters), float64,
#: with the workspace of forward-over-reverse differentiation (x3).
_BRIDGE_MEMORY = Cost("the bridge's autograd Hessian", ("d",),
                      lambda params, seeds: 3 * 8 * (12 * int(params["d"]) ** 2 + 8) ** 2, "B")


#: Both budgets' AdamW steps per run (``verify.experiments.markov.BUDGETS``, which imports
#: torch; a test holds them equal).
_STEPS = 1000


def _length(params: Mapping[str, Any]) -> float:
    """A run's steps at ``params``' (p, q) relative to the budgets' (runs are longer where the
    bias must travel far: :func:`~verify.experiments.markov_resolution.run_steps`). A refusal
    names d alone: p and q lengthen a run a few times at most, d drives the cost."""
    p, q = (float(Fraction(str(params[name]))) for name in ("p", "q"))
    return run_steps(_STEPS, p, q) / _STEPS


def _training(seconds: float, width: int) -> Cost:
    """Training runs of one theorem (training and control, about three runs): ``seconds`` per
    run at d = ``width`` (measured), growing like d^2 (attention and FFN matrices) and with the
    run's length; the batched seeds of the exact budget cost about a quarter of a run each."""
    return Cost("training (every seed, training and control runs)", ("d",),
                lambda params, seeds: 3 * seconds * (int(params["d"]) / width) ** 2
                * (1 + 0.25 * (seeds - 1)) * _length(params))


def _costs(symbolic_at_8: float) -> dict[str, tuple[Cost, ...]]:
    """Fast: exact loss over 2^8 sequences, 1000 steps, about 3 s per run at d = 4. Full:
    N = 1024 and 16 sequences per step, about 60 s per run at d = 8 on a 2-core CPU."""
    return {"fast": (_symbolic(symbolic_at_8), _BRIDGE_MEMORY, _training(3.0, 4)),
            "full": (_symbolic(symbolic_at_8), _BRIDGE_MEMORY, _training(60.0, 8))}


def _depth_cost(seconds: float) -> Cost:
    """The depth experiment, per seed: the deeper model (about 4.3 s a layer at d = 8 in the
    exact fast budget, measured on a 2-core CPU; deeper models train seed by seed) and the
    one-layer control (2.6 s), growing like d^2. Full: about 60 s a layer at d = 8."""
    return Cost("training (every seed: the deeper model and the one-layer control)",
                ("d", "layers"),
                lambda params, seeds: seeds * seconds * (int(params["layers"]) + 0.6)
                * (int(params["d"]) / 8) ** 2 * _length(params))


def _higher_order_cost(one_layer: float, two_layers: float) -> Cost:
    """The order-k experiment: three one-layer runs (window, full attention, shorter window;
    seeds batched in the exact budget, about a quarter of a run per extra seed) and the
    two-layer full-attention run seed by seed, ``one_layer`` and ``two_layers`` seconds at
    d = 8 on a 2-core CPU, growing like d^2. Fast: measured (5 s and 17 s). Full: 8000 steps
    at N = 1024, from the first-order full budget's 60 s per 1000 steps and layer at d = 8
    (480 s and 960 s; the sampled runs train seed by seed, which the batched-seed factor
    understates)."""
    return Cost("training (every seed: window, full attention with 1 and 2 layers, control)",
                ("d",), lambda params, seeds: (3 * one_layer * (1 + 0.25 * (seeds - 1))
                                               + seeds * two_layers)
                * (int(params["d"]) / 8) ** 2)


#: Every symbol of the statements, assumptions and closed forms (the paper page's notation).
NOTATION = (
    (r"x_n \in \{0, 1\}", "the n-th token of a sequence; $x_1^n$ the first n tokens"),
    (r"N", "sequence length of training"),
    (r"p", r"switching probability $P(x_{n+1} = 1 \mid x_n = 0)$"),
    (r"q", r"switching probability $P(x_{n+1} = 0 \mid x_n = 1)$"),
    (r"P", r"the transition matrix $\begin{pmatrix}1-p & p\\ q & 1-q\end{pmatrix}$"),
    (r"\pi = (\pi_0, \pi_1)", r"the stationary law $(q, p)/(p+q)$; $x_1 \sim \pi$"),
    (r"\kappa", r"$\pi_0 \pi_1$, the curvature scale of the Hessians"),
    (r"h(p)", r"binary entropy $-p\ln p - (1-p)\ln(1-p)$ (nats)"),
    (r"H(\pi)", "entropy of the stationary law: the loss of a model that ignores the context"),
    (r"H(x_{n+1} \mid x_n)", "the entropy rate, the smallest possible loss (first order)"),
    (r"d", "embedding dimension"),
    (r"e", "token embedding vector (the input embedding of token 1 minus that of token 0)"),
    (r"a", "output (logit) vector; weight tying means $a = e$"),
    (r"b", "bias of the output logit"),
    (r"p_n", "positional embedding of position n (not the switching probability p)"),
    (r"W_1, W_2", "the feed-forward matrices; $w_1, w_2$ and the unit vector $u$ are "
     "their values at the global minimum"),
    (r"\theta", "all parameters of the model; $\\theta_\\pi$ the unigram point (e = 0, "
     r"$b = \ln(p/q)$), $\theta_*$ the global minimum"),
    (r"f_\theta(x_1^n)", r"the model's probability that $x_{n+1} = 1$"),
    (r"L(\theta)", "population cross-entropy loss (nats per token)"),
    (r"k", "order of the chain (markov-higher-order): the next bit depends on the last k"),
    (r"\theta_c", r"$P(x_{n+1} = 1 \mid$ the last k bits are the context $c)$, oldest bit "
     "first, e.g. $\\theta_{01}$"),
    (r"H_j", "entropy rate given the last j bits; $H_k$ is the best loss at order k"),
)

PAPER = Paper(
    key="makkuva2024markov",
    title=("Attention with Markov: A Framework for Principled Analysis of Transformers via "
           "Markov Chains"),
    authors=("Ashok Vardhan Makkuva",
             "Marco Bondaschi",
             "Adway Girish",
             "Alliot Nagle",
             "Martin Jaggi",
             "Hyeji Kim",
             "Michael Gastpar"),
    year=2024,
    arxiv="2402.04161",
    prefix="markov",
    setting=r"""
{cite:t}`makkuva2024markov` study a single-layer transformer trained on sequences from a binary
first-order Markov chain with switching probabilities $p = P(1 \mid 0)$ and
$q = P(0 \mid 1)$. The stationary distribution is $\pi = (q, p)/(p+q)$; the best possible loss
is the entropy rate, while a model that ignores the context can only reach the unigram entropy
$H(\pi)$.

The theorems concern the loss landscape: with the input embedding tied to the output layer and
$p + q > 1$ the "unigram point" (predict $\pi_1$ whatever the context) is a bad local minimum;
without tying, or with $p + q < 1$, the same point is a saddle and training escapes to the
entropy rate; the bigram predictor is a global minimum.

**Empirical claims.** The paper also reports, from experiments without a proof, that depth
removes the trap: `markov-depth-escape` trains a tied model of two or more layers (the same
attention + FFN layer stacked on the residual stream) from the same initialisation and checks
that it reaches the entropy rate where the one-layer model, its control, stays at $H(\pi)$.
`markov-higher-order` moves to binary chains of order $k$ (one probability per context of $k$
bits, given or drawn at random from a seed): the paper reports that full attention, one layer
or two, does not reach the $k$-th order entropy rate within its training budget, and that
restricting the attention to the last $k$ tokens gets closer to it.

**Our formulation.** The statements below are the project's formulation of the paper's results
(reduced loss in the coordinates $(e, b)$, canonical parameter points, Hessian spectra). Each
was re-derived and checked by exact enumeration of all binary sequences in float64; the paper's
full text was not available when they were written. The `bridge` checks tie each sympy formula
to the real `nn.Module` (population loss, gradient, full autograd Hessian).
""",
    theorems=(
        TheoremEntry(markov.GLOBAL_MINIMA, "verify.experiments.markov:GLOBAL_MINIMA",
                     _FULL, _SEEDS, _costs(0.1), unresolvable),
        TheoremEntry(markov.LOCAL_MINIMA, "verify.experiments.markov:LOCAL_MINIMA",
                     _FULL, _SEEDS, _costs(2.8), unresolvable),
        TheoremEntry(markov.SADDLE_UNTIED, "verify.experiments.markov:SADDLE_UNTIED",
                     _FULL, _SEEDS, _costs(8.8), unresolvable),
        TheoremEntry(markov.TIED_SADDLE, "verify.experiments.markov:TIED_SADDLE",
                     _FULL, _SEEDS, _costs(2.8), unresolvable),
        TheoremEntry(markov.DEPTH_ESCAPE, "verify.experiments.markov:DEPTH_ESCAPE",
                     {}, {"fast": 2, "full": 5},
                     {"fast": (_depth_cost(4.3),), "full": (_depth_cost(60.0),)},
                     unresolvable),
        TheoremEntry(markov_higher_order.HIGHER_ORDER,
                     "verify.experiments.markov_higher_order:HIGHER_ORDER",
                     {"full": {"d": "16"}}, {"fast": 2, "full": 5},
                     {"fast": (_higher_order_cost(5.0, 17.0),),
                      "full": (_higher_order_cost(480.0, 960.0),)},
                     unresolvable_higher_order),
    ),
    bibtex=r"""
@article{makkuva2024markov,
  author  = {Makkuva, Ashok Vardhan and Bondaschi, Marco and Girish, Adway and Nagle, Alliot
             and Jaggi, Martin and Kim, Hyeji and Gastpar, Michael},
  title   = {Attention with {Markov}: A Framework for Principled Analysis of Transformers via
             {Markov} Chains},
  journal = {arXiv preprint arXiv:2402.04161},
  year    = {2024},
  note    = {ICLR 2025 version: Attention with Markov: A Curious Case of Single-layer
             Transformers}
}
""",
    baselines=Path(__file__).resolve().parent.parent / "baselines",
    notation=NOTATION,
)

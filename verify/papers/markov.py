"""Attention with Markov (Makkuva et al., 2024): the paper's registration.

One record declares the paper: its citation, its setting for the docs page, and each
theorem with the experiment that checks it and the experiment's per-budget defaults.
"""

from pathlib import Path

from theorems import markov
from verify.records import Paper, TheoremEntry

_FULL = {"full": {"d": "8"}}
_SEEDS = {"fast": 1, "full": 5}

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

**Our formulation.** The statements below are the project"s formulation of the paper"s results
(reduced loss in the coordinates $(e, b)$, canonical parameter points, Hessian spectra). Each
was re-derived and checked by exact enumeration of all binary sequences in float64; the paper's
full text was not available when they were written. The `bridge` checks tie each sympy formula
to the real `nn.Module` (population loss, gradient, full autograd Hessian).
""",
    theorems=(
        TheoremEntry(markov.GLOBAL_MINIMA, "verify.experiments.markov:GLOBAL_MINIMA",
                     _FULL, _SEEDS),
        TheoremEntry(markov.LOCAL_MINIMA, "verify.experiments.markov:LOCAL_MINIMA",
                     _FULL, _SEEDS),
        TheoremEntry(markov.SADDLE_UNTIED, "verify.experiments.markov:SADDLE_UNTIED",
                     _FULL, _SEEDS),
        TheoremEntry(markov.TIED_SADDLE, "verify.experiments.markov:TIED_SADDLE",
                     _FULL, _SEEDS),
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
)

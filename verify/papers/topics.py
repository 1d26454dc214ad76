"""Topic structure (Li, Li and Risteski, 2023): the paper's registration.

One record declares the paper: its citation, its setting for the docs page, and each
theorem with the experiment that checks it and the experiment's per-budget defaults.
"""

from pathlib import Path

from theorems import topics
from verify.records import Paper, TheoremEntry

_FULL = {"full": {"T": "10", "v": "10"}}
_ONE = {"fast": 1, "full": 3}

PAPER = Paper(
    key="li2023topics",
    title="How Do Transformers Learn Topic Structure: Towards a Mechanistic Understanding",
    authors=("Yuchen Li",
             "Yuanzhi Li",
             "Andrej Risteski"),
    year=2023,
    arxiv="2303.04245",
    prefix="topics",
    setting=r"""
{cite:t}`li2023topics` train a one-layer transformer with a masked-language-modelling objective
on documents from a topic model: $T$ disjoint topics of $v$ words each; a document picks $\tau$
topics and draws its words uniformly from them. They show that the embeddings and the value
matrix become block-structured by topic, and that attention then favours same-topic tokens.

**Our formulation.** The block-structure statements were derived for this project and checked
numerically (exact population loss over every topic set, L-BFGS to float64 precision); the
paper's full text was not available when they were written. In the long-document limit with
frozen uniform attention the optimal value matrix is $a\,\mathrm{Blk} + b\,(J - \mathrm{Blk})$
with $a + (T-1)b = 0$ and the logit gap $\delta = (a - b)/\tau$ the unique root of a scalar
equation, which `theorems.topics` solves to 50 digits.
""",
    theorems=(
        TheoremEntry(topics.VALUE_BLOCKS, "verify.experiments.topics:VALUE_BLOCKS",
                     _FULL, _ONE),
        TheoremEntry(topics.EMBEDDING_BLOCKS, "verify.experiments.topics:EMBEDDING_BLOCKS",
                     _FULL, _ONE),
        TheoremEntry(topics.ATTENTION_TOPICS, "verify.experiments.topics:ATTENTION_TOPICS",
                     _FULL, _ONE),
    ),
    bibtex=r"""
@inproceedings{li2023topics,
  author    = {Li, Yuchen and Li, Yuanzhi and Risteski, Andrej},
  title     = {How Do Transformers Learn Topic Structure: Towards a Mechanistic Understanding},
  booktitle = {International Conference on Machine Learning (ICML)},
  year      = {2023},
  note      = {arXiv:2303.04245}
}
""",
    baselines=Path(__file__).resolve().parent.parent / "baselines",
)

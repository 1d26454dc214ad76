"""Topic structure on real text (Li, Li, Risteski, ICML 2023, arXiv 2303.04245): an empirical
claim.

The paper supports its topic-structure results on Wikipedia by experiment, not by proof: with
words labelled by an LDA fit of the corpus, a masked-language model's embeddings have a larger
mean inner product, and its attention a larger mean weight, on pairs of words of the same topic
than on pairs of different topics. Here the corpus is the 250-article Wikipedia sample that
ships with gensim, and the model is the one-layer, one-head transformer of the theory (no
residual, no FFN, no layer norm, no positions) trained from scratch on it.

What sympy can say exactly is about the statistic, not about training: the gap between the
same-topic and the different-topic mean has expectation exactly 0 over random relabellings of
the words (any table, any topic sizes), which is what a random relabelling's gap is compared with
(a check of the statistic, not a control: such a relabelling is a draw from that null); and
the theory's documents mix ``tau <= T - 1`` topics, i.e. their topic weights have an
effective number ``exp(entropy) = tau <= T - 1``, the bound the measured LDA mixtures are held
to (the theory's weakest form of "few topics", nearly vacuous: it is reported, not leaned
on).
"""

from __future__ import annotations

import itertools

import sympy as sp

from theorems.core import Obligation, Parameter, Params, Prediction, Theorem
from theorems.topics import MASKING_PARAMETERS, kept_word_problems, masking_problems

T_ = sp.Symbol("T", positive=True)
tau_ = sp.Symbol("tau", positive=True)

#: Words that occur in at least 5 of the 250 articles (and in at most half of them): 5489;
#: a larger vocabulary cannot be asked for.
MAX_WORDS = 5000

#: The relabelling obligation is decided on this example: four words in topics of sizes 2, 1,
#: 1, every ordered pair its own symbol (an arbitrary, non-symmetric table), all 4! orders.
_EXAMPLE_LABELS = (0, 0, 1, 2)


def _relabelled_gap(labels: tuple[int, ...]) -> sp.Expr:
    """Mean over all relabellings (permutations of ``labels``) of the same-minus-different
    gap of a symbolic table ``s_ij`` (``i != j``)."""
    V = len(labels)
    table = {(i, j): sp.Symbol(f"s_{i}{j}") for i in range(V) for j in range(V) if i != j}
    gaps = []
    for order in itertools.permutations(labels):
        same = [table[p] for p in table if order[p[0]] == order[p[1]]]
        other = [table[p] for p in table if order[p[0]] != order[p[1]]]
        gaps.append(sp.Add(*same) / len(same) - sp.Add(*other) / len(other))
    return sp.expand(sp.Add(*gaps) / len(gaps))


def _obligations(params: Params, prediction: Prediction) -> list[Obligation]:
    forms = prediction.closed_forms
    point = {T_: sp.Integer(params["topics"])}
    entropy = -tau_ * (1 / tau_) * sp.log(1 / tau_)  # tau equal weights 1/tau
    return [
        Obligation("random relabellings (topic sizes kept) give a same-minus-different gap of "
                   "expectation null_gap for any table (4 words, topics of sizes 2, 1, 1, all "
                   "4! orders, a symbol per ordered pair)",
                   _relabelled_gap(_EXAMPLE_LABELS), "==", point, forms["null_gap"],
                   uses=("null_gap",)),
        Obligation("a theory document mixes tau topics with equal weights: its effective number "
                   "of topics exp(entropy) is tau, at most max_topics at the largest admissible "
                   "tau = T - 1", sp.exp(entropy).subs(tau_, T_ - 1), "==", point,
                   forms["max_topics"], uses=("max_topics",)),
    ]


def _problems(params: Params) -> list[str]:
    problems = []
    topics, words, d = params["topics"], params["words"], params["d"]
    if topics < 2:
        problems.append(f"topics must be at least 2 (got {topics})")
    if not 2 * topics <= words <= MAX_WORDS:
        problems.append(f"words must lie in [2 topics, {MAX_WORDS}] = [{2 * topics}, "
                        f"{MAX_WORDS}] (got {words}): a topic needs two words for a same-topic "
                        f"pair, and only 5489 words of the sample occur in at least 5 articles")
    if d < 2:
        problems.append(f"d must be at least 2 (got {d})")
    problems += masking_problems(params)
    return problems or kept_word_problems(params)


WIKIPEDIA = Theorem(
    id="topics-wikipedia",
    title="Real text (Wikipedia): same-topic words have closer embeddings and more attention",
    paper="li2023topics, Wikipedia experiments (empirical)",
    statement=(
        r"Shown by experiment in the paper, not proved. On Wikipedia, with every vocabulary "
        r"word labelled by its dominant topic $\arg\max_t p(t\mid w)$ in an LDA fit of the "
        r"corpus, a one-layer masked-language model trained on the articles has (i) a larger "
        r"mean embedding inner product $\langle E_i, E_j\rangle$ over same-topic pairs of "
        r"different words than over different-topic pairs, and (ii) a larger mean attention "
        r"over same-topic pairs than over different-topic pairs. Our check: gensim's "
        r"250-article Wikipedia sample (shipped with gensim, read by its own corpus readers), "
        r"LDA by gensim, the one-layer one-head model of the theory (trained embeddings, tied "
        r"decoder, trained $W^V, W^K, W^Q$) trained from scratch on pieces of the articles. "
        r"Attention is measured as the lift of each key word (its share of the query's "
        r"attention over its share of the keys, copies of the query's word excluded) on "
        r"held-out articles. Each gap must exceed 5 standard errors, the standard error being "
        r"the gap's spread over random relabellings of the words (pairs share words, so they "
        r"are not independent samples). Control: a model trained on the same words shuffled "
        r"across articles (frequencies kept, co-occurrence gone) must keep at most half of "
        r"each gap, judged only where the Wikipedia model's gap itself exceeds 5 standard "
        r"errors (otherwise the control fails). (It need not lose all of it: LDA's largest "
        r"topics collect the frequent words and embeddings encode frequency, so part of the "
        r"embedding gap appears without co-occurrence; measured below.) A check of the "
        r"statistic (not a control: it passes for any model): with the labels permuted at "
        r"random the gap lies within 5 standard errors of its expectation 0 (an obligation). "
        r"The theory's modelling assumptions are measured on the same fit: how many topics an "
        r"article mixes (against the theory's weakest bound $\tau \le T-1$), and how much "
        r"purer than random labels the topics are, beside the value disjoint topics would "
        r"give."
    ),
    parameters=(
        Parameter("words", "integer", 500, "vocabulary size V: the most frequent words that "
                  "occur in at least 5 articles and at most half of them"),
        Parameter("topics", "integer", 10, "number of LDA topics T"),
        Parameter("d", "integer", 32, "embedding dimension d"),
        *MASKING_PARAMETERS,
    ),
    assumption_text=(
        r"$T \ge 2$ LDA topics, $2T \le V \le 5000$ words, $d \ge 2$",
        "masked-LM corruption with keep probability > 0 (the attention's topic signal reaches "
        "word queries through kept words)",
        "gensim's Wikipedia sample (head500.noblanks.cor: 250 articles, stemmed, stop words "
        "removed); gensim is a dependency of the package, so nothing is downloaded",
        "the theory's model: one layer, one head, no residual, FFN, layer norm or positions",
        "what the theory assumes and real text need not satisfy (measured, not assumed): "
        "documents mix few topics (tau < T), topics have disjoint words",
    ),
    assumptions=_problems,
    predict=lambda params: Prediction(
        closed_forms={"null_gap": sp.Integer(0), "max_topics": T_ - 1},
        point={T_: sp.Integer(params["topics"])},
        descriptions={
            "null_gap": "same-minus-different gap expected under random relabellings of the "
                        "words (what a random relabelling's gap is compared with)",
            "max_topics": "largest effective number of topics per document the theory admits "
                          "(tau <= T - 1)"}),
    obligations=_obligations,
    kind="empirical",
)

"""The registration of ``topics-wikipedia`` (real text), part of the topic-structure paper.

Its defaults, seeds and cost model sit here, beside the paper's record (:mod:`verify.papers.
topics`), because they describe an experiment unlike the paper's synthetic ones: a corpus read
through gensim, an LDA fit, and a model whose cost grows with the vocabulary and the context.
"""

from __future__ import annotations

import importlib.util
from typing import NamedTuple

from theorems import topics_wikipedia
from verify.records import Cost, TheoremEntry


class Scale(NamedTuple):
    """The sizes of a budget that its cost depends on (see ``WikipediaBudget``)."""

    steps: int
    batch: int
    length: int
    passes: int
    evaluation: int
    permutations: int
    probe_every: int
    probe_permutations: int
    probe_pieces: int
    control_seeds: int


#: Per budget, the experiment's ``BUDGETS`` (:mod:`verify.experiments.topics_wikipedia`),
#: repeated here because the registration must not import torch (a test holds them equal).
SCALE = {
    "fast": Scale(steps=300, batch=40, length=64, passes=2, evaluation=200, permutations=200,
                  probe_every=50, probe_permutations=50, probe_pieces=50, control_seeds=1),
    "full": Scale(steps=5000, batch=40, length=128, passes=10, evaluation=500,
                  permutations=200, probe_every=250, probe_permutations=50, probe_pieces=250,
                  control_seeds=5),
}

#: Seconds per multiply-add of the float32 training step, modelled as ``6 B N d (2N + V)``
#: multiply-adds (the logits ``B N d V``, the attention ``2 B N^2 d``, forward and
#: backward), on one core of a 2-core CPU: measured 24 ms a step at B = 40, N = 64, d = 32,
#: V = 500.
_STEP_SECONDS = 0.024 / (6 * 40 * 64 * 32 * (2 * 64 + 500))
#: Seconds per multiply-add of the permutation nulls (numpy float64 matrix products, ``2 P T
#: V^2`` multiply-adds for ``P`` relabellings of one table), one core: measured 0.2 s for
#: 200 relabellings at T = 10, V = 500.
_NULL_SECONDS = 0.2 / (2 * 200 * 10 * 500**2)
#: One LDA pass over the 250 articles (gensim, one core): measured about 1.1 s at 500 words
#: and 10 topics; it grows about linearly with the topics and the words kept.
_LDA_PASS_SECONDS = 1.1


def _runs(budget: str, seeds: int) -> int:
    """Training runs of a request: every seed, plus the shuffled-corpus control."""
    return seeds + min(seeds, SCALE[budget].control_seeds)


def _time(budget: str) -> Cost:
    scale = SCALE[budget]

    def estimate(params, seeds: int) -> float:
        V, T, d = int(params["words"]), int(params["topics"]), int(params["d"])
        N = scale.length
        training = scale.steps * _STEP_SECONDS * 6 * scale.batch * N * d * (2 * N + V)
        probes = scale.steps // scale.probe_every + 2
        relabellings = 5 * scale.permutations + 4 * probes * scale.probe_permutations
        nulls = _NULL_SECONDS * 2 * relabellings * T * V**2
        lda = _LDA_PASS_SECONDS * scale.passes * (T / 10) * max(V / 500, 1.0)
        return _runs(budget, seeds) * (training + nulls) + seeds * lda

    return Cost("training the masked LM (every seed and the shuffled control), the "
                "permutation nulls and the LDA fits", ("words", "d", "topics"), estimate)


def _memory(budget: str) -> Cost:
    """Float32 parameters with their gradients and AdamW states (W^V, W^K, W^Q: d x d; E:
    d x (V+2)), the activations of one step (logits, attention, values; about six copies
    through forward and backward), and the attention-lift tables of the evaluation pieces
    (about eight ``pieces x N x V`` float32 temporaries)."""
    scale = SCALE[budget]

    def estimate(params, seeds: int) -> float:
        V, d, N = int(params["words"]), int(params["d"]), scale.length
        weights = 4 * 4 * (3 * d * d + d * (V + 2))
        activations = 6 * 4 * scale.batch * N * (V + N + 3 * d)
        lifts = 8 * 4 * scale.evaluation * N * (V + N)
        return weights + max(activations, lifts)

    return Cost("the model, one training step and the attention lifts", ("words", "d"),
                estimate, "B")


def _needs_gensim(prediction) -> list[str]:
    """The corpus and the LDA fit come from gensim, a dependency of the package; an
    environment without it (an install with ``--no-deps``) cannot run the experiment and is
    told so before any work (the ``unresolvable`` hook covers an environment that cannot run
    it, see :class:`~verify.records.TheoremEntry`)."""
    if importlib.util.find_spec("gensim") is None:
        return ["gensim is not installed (the Wikipedia sample ships inside it): "
                "pip install 'gensim>=4.4'"]
    return []


ENTRY = TheoremEntry(
    topics_wikipedia.WIKIPEDIA, "verify.experiments.topics_wikipedia:WIKIPEDIA",
    defaults={"full": {"words": "2000", "topics": "20", "d": "128"}},
    seeds={"fast": 2, "full": 5},
    costs={budget: (_time(budget), _memory(budget)) for budget in SCALE},
    unresolvable=_needs_gensim,
)

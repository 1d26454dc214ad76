"""The registration of ``topics-two-stage-dynamics`` (empirical), part of the topic-structure
paper.

Its defaults, seeds and cost model sit here, beside the paper's record (:mod:`verify.papers.
topics`): the joint run's cost grows with the documents' length and the vocabulary, not with
the topic sets that the population objectives enumerate.
"""

from __future__ import annotations

from theorems import topics
from verify.records import Cost, TheoremEntry

#: Per budget: steps, documents per step, points of each probe grid, evaluation documents,
#: seeds that run the controls, and training documents. They repeat the experiment's
#: ``BUDGETS`` (:mod:`verify.experiments.topics_dynamics`; a test holds them equal) because
#: the registration must not import torch.
SCALE = {"fast": (160, 20, 20, 80, 1, 400), "full": (5000, 40, 60, 200, 3, 10_000)}
#: Longest training document and evaluation document length (the LDA sampler's defaults and
#: the stage-2 check's evaluation length).
TRAIN_LENGTH, EVALUATION_LENGTH = 150, 100
#: Seconds per (query, key, model dimension) triple of one training step (attention scores,
#: softmax and values, forward and backward) on one core of a 2-core CPU: measured 3.7 s for
#: 200 steps of 20 documents of 150 tokens at d = V + 2 = 14 (about 2.9e-9 s); the
#: evaluations at the probes cost the same per triple (1.1 s for 36 probes of 80 documents
#: of 100 tokens). At the reference sizes (d = 102) a run of 1000 steps of 40 documents with
#: its probes took 156 s, about half the estimate: larger products run faster per triple.
_TRIPLE_SECONDS = 3e-9


def _runs(budget: str, seeds: int) -> int:
    """Joint runs of a request: every seed, and both controls on the first seeds."""
    return seeds + 2 * min(seeds, SCALE[budget][4])


def _time(budget: str) -> Cost:
    steps, batch, points, evaluation, _, _ = SCALE[budget]

    def estimate(params, seeds: int) -> float:
        d = int(params["T"]) * int(params["v"]) + 2
        training = steps * batch * TRAIN_LENGTH**2 * d
        probes = (2 * points + 1) * evaluation * EVALUATION_LENGTH**2 * d
        return _runs(budget, seeds) * (training + probes) * _TRIPLE_SECONDS

    return Cost("training W^V, W^K, W^Q together (every seed and both controls) and the "
                "attention at every probe", ("T", "v"), estimate)


def _memory(budget: str) -> Cost:
    """Float64: the masked documents (three arrays), the attention of one step and of one
    evaluation (about ten copies through forward, backward and the lift statistic), and the
    snapshots of W^V, W^K, W^Q at every probe."""
    _, batch, points, evaluation, _, documents = SCALE[budget]

    def estimate(params, seeds: int) -> float:
        d = int(params["T"]) * int(params["v"]) + 2
        data = 3 * documents * TRAIN_LENGTH
        attention = 10 * (batch * TRAIN_LENGTH**2 + evaluation * EVALUATION_LENGTH**2)
        return 8 * (data + attention + 3 * (2 * points + 1) * d * d)

    return Cost("the documents, one step's attention and the probe snapshots", ("T", "v"),
                estimate, "B")


ENTRY = TheoremEntry(
    topics.TWO_STAGE_DYNAMICS, "verify.experiments.topics_dynamics:TWO_STAGE_DYNAMICS",
    defaults={"full": {"T": "10", "v": "10"}}, seeds={"fast": 3, "full": 5},
    costs={budget: (_memory(budget), _time(budget)) for budget in SCALE},
)

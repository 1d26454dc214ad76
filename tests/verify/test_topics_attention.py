"""The topic-attention check measures topic co-occurrence, not attention to the query's word.

The check must fail on attention that only looks at copies of the query's word, on documents
without topic structure, and pass on attention that favours same-topic words.
"""

import math

import numpy as np
import pytest
import torch

import verify.experiments.topics as topics
from numerics.data.lda import sample_lda_documents
from numerics.models.topic_transformer import TopicTransformer
from verify import harness, registry
from verify.records import Context

THEOREM = "topics-attention-structure"
#: Lifts of uniform or copy-only attention are 1 up to float64 round-off of sums of <= 100
#: terms of order 1 (~1e-14); 1e-12 leaves that margin and nothing else.
ROUNDOFF = 1e-12
#: A budget small enough for a test (~2 x 6 s on two cores); at the fast budget's 400
#: documents and 300 steps the training check passes by more than 12 standard errors
#: (seeds 0-3), so halving both still leaves a real effect far above threshold.
SMALL = topics.TopicsBudget(documents=200, batch=40, steps=150, population_steps=10)


def _context(**params: str) -> Context:
    plan = harness.prepare(registry.entry(THEOREM), params)
    return harness.stage_context(plan, torch.device("cpu"))


def _block_attention_model(T: int, v: int, strength: float) -> TopicTransformer:
    """Scores ``strength`` on same-topic (query, key) words, 0 otherwise: the claimed effect,
    put in by hand."""
    V = T * v
    model = TopicTransformer(V, uniform_attention=False)
    blocks = torch.zeros(V + 2, V + 2, dtype=torch.float64)
    blocks[:V, :V] = torch.tensor(np.kron(np.eye(T), np.ones((v, v))))
    with torch.no_grad():
        model.W_K.copy_(torch.eye(V + 2, dtype=torch.float64))
        model.W_Q.copy_(strength * math.sqrt(V + 2) * blocks)
    return model


def test_topic_free_documents_have_no_co_occurrence():
    """Same-topic position pairs occur at the chance rate 1/T without topic structure, far
    above it in LDA documents (Dirichlet(0.1) concentrates a document on few topics)."""
    T, v = 4, 3
    rates = {}
    for structure in (True, False):
        docs = sample_lda_documents(np.random.default_rng(0), 300, T, v, min_length=50,
                                    max_length=50, topic_structure=structure)
        topic = docs.tokens // v
        rates[structure] = (topic[:, :, None] == topic[:, None, :]).mean()
    chance_error = 5 * math.sqrt((1 / T) * (1 - 1 / T) / (300 * 50))  # 5 sigma, per token
    assert abs(rates[False] - 1 / T) < chance_error * 3  # pairs share tokens: looser by 3
    assert rates[True] > 2 / T


@pytest.mark.parametrize("strength", [1.0, 5.0])
def test_copy_only_attention_fails_the_claim(strength):
    """Attention that only looks at copies of the query's word has lift ratio 1: both claim
    checks fail, although the reference pair-mean statistic is far from 1."""
    ctx = _context()
    model = TopicTransformer.copy_attention_model(12, strength)
    measured = topics._topic_attention(ctx, model, 0)
    assert abs(measured.ratio - 1) < ROUNDOFF
    assert abs(measured.sigmas) < 1e-3
    assert abs(measured.pair_mean_ratio - 1) > 0.1  # why the copies must be renormalised away
    checks = topics._claim_checks(ctx, measured, 0)
    assert len(checks) == 2 and not any(c.passed for c in checks)


def test_same_topic_attention_passes_the_claim():
    """The same statistic resolves a hand-built same-topic preference (the checks can pass)."""
    ctx = _context()
    measured = topics._topic_attention(ctx, _block_attention_model(4, 3, 1.0), 0)
    assert measured.ratio > 2 and measured.sigmas > 10
    assert all(c.passed for c in topics._claim_checks(ctx, measured, 0))
    # the same model on topic-free documents: its preference is still there (the statistic
    # measures the attention, not the documents), so the topic-free control is about training
    free = topics._topic_attention(ctx, _block_attention_model(4, 3, 1.0), 0,
                                   topic_structure=False)
    assert free.ratio > 2


@pytest.fixture
def small_budget(monkeypatch):
    monkeypatch.setitem(topics.BUDGETS, "fast", SMALL)


def test_training_on_topic_free_documents_fails_the_claim(small_budget):
    """Both stages on topic-free documents: no claim check passes, and the control (gap
    within the training significance of 0) passes."""
    ctx = _context()
    failed, measured, value_block, _ = topics._stage_two(ctx, 0, topic_structure=False)
    assert not failed and measured is not None
    assert not all(c.passed for c in topics._claim_checks(ctx, measured, 0))
    assert abs(measured.sigmas) < topics.SAMPLED_SIGMAS
    assert abs(topics._value_gap(value_block, 4, 3)) < 0.5  # stage 1 learned no blocks


def test_training_on_lda_documents_passes_the_claim(small_budget):
    """Both stages on LDA documents at the default masking: the claim checks pass, and the
    learned W^V has same-topic entries above different-topic ones (co-occurrence)."""
    ctx = _context()
    failed, measured, value_block, _ = topics._stage_two(ctx, 0, topic_structure=True)
    assert not failed and measured is not None
    assert all(c.passed for c in topics._claim_checks(ctx, measured, 0))
    assert topics._value_gap(value_block, 4, 3) > 1.0

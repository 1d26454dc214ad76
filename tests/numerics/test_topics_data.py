"""LDA documents, masked-LM corruption and the topic transformer."""

import numpy as np
import pytest
import torch

from numerics.data.lda import context_distributions, mask_for_mlm, sample_lda_documents
from numerics.models.topic_transformer import TopicTransformer


def test_lda_documents_have_the_requested_shape_and_words():
    docs = sample_lda_documents(np.random.default_rng(0), 50, T=4, v=3, min_length=10,
                                max_length=20)
    assert docs.tokens.shape == (50, 20) and docs.lengths.min() >= 10
    content = docs.tokens < 12
    assert (content.sum(1) == docs.lengths).all()
    assert ((docs.tokens == 13) == ~content).all()  # padding id V + 1


def test_small_alpha_gives_few_topics_per_document():
    """Dirichlet(0.1): most of a document's words come from its top topic (a sparse mix)."""
    docs = sample_lda_documents(np.random.default_rng(1), 400, T=10, v=5, alpha=0.1)
    topics = np.where(docs.tokens < 50, docs.tokens // 5, -1)
    top_share = [np.bincount(row[row >= 0], minlength=10).max() / (row >= 0).sum()
                 for row in topics]
    assert np.mean(top_share) > 0.5


def test_masking_rates_and_key_mask():
    rng = np.random.default_rng(2)
    docs = sample_lda_documents(rng, 300, T=4, v=3)
    masked = mask_for_mlm(rng, docs, 12, mask_prob=0.15, keep_prob=0.1, random_prob=0.1)
    selected = masked.labels >= 0
    content = docs.tokens < 12
    rate = selected.sum() / content.sum()
    n = content.sum()
    assert abs(rate - 0.15) < 5 * np.sqrt(0.15 * 0.85 / n)
    assert (masked.keys == (content & ~selected)).all()
    as_mask = (masked.inputs[selected] == 12).mean()
    assert abs(as_mask - 0.8) < 5 * np.sqrt(0.16 / selected.sum())
    assert (masked.labels[selected] == docs.tokens[selected]).all()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"mask_prob": 1.2}, "mask_prob must lie in"),
    ({"keep_prob": 0.6, "random_prob": 0.5}, "keep_prob \\+ random_prob"),
])
def test_masking_rejects_bad_probabilities(kwargs, message):
    docs = sample_lda_documents(np.random.default_rng(3), 2, T=2, v=2)
    with pytest.raises(ValueError, match=message):
        mask_for_mlm(np.random.default_rng(3), docs, 4, **kwargs)


def test_uniform_attention_sees_the_context_mean():
    model = TopicTransformer(6)
    with torch.no_grad():
        model.W_V.copy_(torch.randn(8, 8, generator=torch.Generator().manual_seed(0),
                                    dtype=torch.float64))
    x = torch.tensor([[0, 1, 1, 5]])
    keys = torch.tensor([[True, True, False, True]])
    logits, attention = model(x, keys)
    mean = torch.zeros(8, dtype=torch.float64)
    mean[[0, 1, 5]] = 1 / 3
    assert torch.allclose(attention[0, 0], torch.tensor([1 / 3, 1 / 3, 0, 1 / 3],
                                                        dtype=torch.float64))
    assert torch.allclose(logits[0, 2], (model.W_V @ mean)[:6], atol=1e-14)


def test_context_distributions_are_the_long_document_limit():
    P = context_distributions(4, 3, 2)
    assert P.shape == (6, 12) and np.allclose(P.sum(1), 1)
    assert set(np.round(P[0] * 6, 12)) == {0.0, 1.0}

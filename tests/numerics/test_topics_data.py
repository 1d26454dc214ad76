"""LDA documents, masked-LM corruption and the topic transformer."""

import numpy as np
import pytest
import torch

from numerics.data.lda import (
    context_distributions,
    mask_for_mlm,
    sample_lda_documents,
    topic_blocks,
    topic_of,
)
from numerics.device import generator
from numerics.models.topic_transformer import TopicTransformer
from numerics.population import (
    topic_distributions,
    topic_population_loss,
    topic_population_squared_loss,
)


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


def test_topic_blocks_mark_same_topic_pairs():
    words = np.arange(12)
    blocks = topic_blocks(4, 3)
    assert blocks.dtype == bool and blocks.shape == (12, 12)
    assert np.array_equal(blocks, topic_of(words, 3)[:, None] == topic_of(words, 3)[None, :])


def test_theorem_models_train_only_their_parameters(cpu):
    trained = {
        "value": TopicTransformer.value_model(6, device=cpu),
        "embedding": TopicTransformer.embedding_model(6, device=cpu),
        "attention": TopicTransformer.attention_model(6, 2, 1.0, -1.0, device=cpu),
    }
    names = {key: [n for n, p in model.named_parameters() if p.requires_grad]
             for key, model in trained.items()}
    assert names == {"value": ["W_V"], "embedding": ["E"], "attention": ["W_K", "W_Q"]}
    assert trained["embedding"].d == 6 and trained["embedding"].decoder == "tied"
    assert trained["value"].uniform and not trained["attention"].uniform


def test_value_blocks_are_same_blk_plus_other_off_blocks(cpu):
    model = TopicTransformer.value_model(6, device=cpu)
    model.set_value_blocks(2, 0.75, -0.25)
    W = model.W_V.detach()
    expected = np.where(topic_blocks(2, 3), 0.75, -0.25)
    assert np.array_equal(W[:6, :6].numpy(), expected)
    assert torch.count_nonzero(W[6:]) == 0 and torch.count_nonzero(W[:, 6:]) == 0
    with pytest.raises(ValueError, match="equal topics"):
        model.set_value_blocks(4, 1.0, 0.0)


def test_reset_parameters_draws_only_the_trainable_ones(cpu):
    model = TopicTransformer.attention_model(6, 2, 0.5, 0.1, device=cpu)
    frozen = model.W_V.detach().clone()
    model.reset_parameters(generator(cpu, 3), 0.01)
    gen = generator(cpu, 3)
    for parameter in (model.W_K, model.W_Q):  # in parameter order, one generator
        assert torch.equal(parameter.detach(),
                           0.01 * torch.randn(parameter.shape, generator=gen,
                                              dtype=torch.float64))
    assert torch.equal(model.W_V.detach(), frozen)
    assert torch.equal(model.E.detach(), torch.eye(8, dtype=torch.float64))


def test_topic_population_losses_at_known_points(cpu):
    """Uniform attention reads logits W^V p_S. At W^V = 0 the cross-entropy is log V and the
    squared loss E||e_w||^2 = 1; at W^V = I the squared loss is E_S(1 - ||p_S||^2) =
    1 - 1/(tau v) (p_S is uniform on tau v words)."""
    T, v, tau = 4, 3, 2
    distributions = topic_distributions(T, v, tau, cpu)
    assert torch.equal(distributions, torch.tensor(context_distributions(T, v, tau)))
    model = TopicTransformer.value_model(T * v, device=cpu)
    assert topic_population_squared_loss(model, distributions).item() == pytest.approx(
        1 - 1 / (tau * v), rel=1e-14)
    with torch.no_grad():
        model.W_V.zero_()
    assert topic_population_squared_loss(model, distributions).item() == pytest.approx(
        1.0, rel=1e-14)
    loss = topic_population_loss(model, distributions, 0.3, model.trainable())
    assert loss.item() == pytest.approx(np.log(T * v), rel=1e-14)


@pytest.mark.parametrize("uniform", [False, True])
def test_query_positions_give_the_full_pass_rows_and_the_same_masked_lm_loss(cpu, uniform):
    """Outputs at chosen query positions are the full pass's rows there (every query still
    attends to all usable keys), and the masked-LM objective, which computes only the masked
    positions, equals the cross-entropy of the full pass on them, value and gradient."""
    import torch.nn.functional as F

    from numerics.monte_carlo import MaskedLMBatches

    rng = np.random.default_rng(5)
    masked = mask_for_mlm(rng, sample_lda_documents(rng, 12, T=4, v=3), 12, mask_prob=0.15,
                          keep_prob=0.1, random_prob=0.1)
    inputs, keys, labels = (torch.tensor(x) for x in (masked.inputs, masked.keys, masked.labels))
    model = (TopicTransformer(12, uniform_attention=True) if uniform
             else TopicTransformer.joint_model(12))
    model.reset_parameters(generator(cpu, 0), 0.5)
    full_logits, full_attention = model(inputs[:4], keys[:4])
    positions = torch.tensor([[3, 0, 7], [1, 1, 149], [0, 2, 4], [5, 6, 8]])
    logits, attention = model(inputs[:4], keys[:4], queries=positions)
    expand = positions[..., None]
    assert torch.allclose(logits, full_logits.gather(1, expand.expand(-1, -1, 12)), atol=1e-14)
    assert torch.allclose(attention, full_attention.gather(1, expand.expand(-1, -1, 150)),
                          atol=1e-14)
    batches = MaskedLMBatches(inputs, keys, labels, 6)
    for rows in (slice(0, 6), slice(6, 12)):
        loss, _ = batches.objective(model)
        full, _ = model(inputs[rows], keys[rows])
        chosen = labels[rows] >= 0
        expected = F.cross_entropy(full[chosen], labels[rows][chosen])
        assert abs(loss.item() - expected.item()) <= 1e-13
        trainable = model.trainable()
        if trainable:
            for a, b in zip(torch.autograd.grad(loss, trainable),
                            torch.autograd.grad(expected, trainable), strict=True):
                assert torch.allclose(a, b, rtol=1e-10, atol=1e-14)


def test_a_batch_without_selected_positions_has_no_loss_and_no_gradient(cpu):
    """A small selection probability can leave a batch with nothing to predict: its loss is
    0 with zero gradients (the mean over no positions was 0/0, a NaN that stopped the run)."""
    from numerics.monte_carlo import MaskedLMBatches

    rng = np.random.default_rng(3)
    masked = mask_for_mlm(rng, sample_lda_documents(rng, 8, T=4, v=3), 12, mask_prob=0.0,
                          keep_prob=0.1, random_prob=0.1)
    inputs, keys, labels = (torch.tensor(x) for x in (masked.inputs, masked.keys, masked.labels))
    assert not (labels >= 0).any()
    model = TopicTransformer.joint_model(12)
    model.reset_parameters(generator(cpu, 0), 0.5)
    loss, _ = MaskedLMBatches(inputs, keys, labels, 4).objective(model)
    assert loss.item() == 0.0
    assert all(not g.any() for g in torch.autograd.grad(loss, model.trainable()))

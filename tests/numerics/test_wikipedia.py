"""The Wikipedia sample read through gensim, its LDA fit, and the same-topic statistics."""

import math

import numpy as np
import pytest
import torch

from numerics.data.wikipedia import (
    ARTICLES,
    chunk_articles,
    fit_topics,
    load_wikipedia,
    shuffle_words,
    split_articles,
)
from numerics.models.topic_transformer import TopicTransformer
from numerics.topic_statistics import attention_lift, label_gap, pair_gap


@pytest.fixture(scope="module")
def corpus():
    return load_wikipedia(200)


def test_the_corpus_is_the_250_article_sample_with_the_filtered_vocabulary(corpus):
    assert corpus.lines == ARTICLES == len(corpus.articles) == corpus.counts.shape[0]
    assert corpus.V == 200 == len(set(corpus.words)) == corpus.counts.shape[1]
    assert corpus.tokens_read > sum(len(a) for a in corpus.articles) > 0
    assert all(((a >= 0) & (a < corpus.V)).all() for a in corpus.articles)
    assert (corpus.counts.sum(1) == [len(a) for a in corpus.articles]).all()
    in_articles = (corpus.counts > 0).sum(0)  # filter_extremes: 5 <= articles <= half
    assert in_articles.min() >= 5 and in_articles.max() <= ARTICLES / 2
    # the most frequent words are kept: a larger vocabulary contains this one
    assert set(corpus.words) <= set(load_wikipedia(400).words)


def test_a_vocabulary_beyond_the_filtered_words_is_refused():
    with pytest.raises(ValueError, match="only 5489 words"):
        load_wikipedia(6000)


def test_lda_fit_is_seeded_and_labels_each_word_with_its_dominant_topic(corpus):
    fit = fit_topics(corpus, topics=4, passes=1, seed=3)
    assert fit.topic_words.shape == (4, corpus.V) and fit.T == 4
    assert np.allclose(fit.topic_words.sum(1), 1, atol=1e-5)
    assert np.allclose(fit.article_topics.sum(1), 1) and fit.article_topics.shape == (250, 4)
    assert math.isclose(fit.topic_shares.sum(), 1, abs_tol=1e-6)
    posterior = fit.topic_words * fit.topic_shares[:, None]
    assert (posterior[fit.labels, np.arange(corpus.V)] == posterior.max(0)).all()
    again = fit_topics(corpus, topics=4, passes=1, seed=3)
    assert (again.labels == fit.labels).all()
    assert np.array_equal(again.topic_words, fit.topic_words)


def test_pieces_are_consecutive_words_and_drop_the_short_remainder():
    articles = [np.arange(10), np.arange(100, 103), np.arange(200, 207)]
    pieces = chunk_articles(articles, 3)
    assert pieces.tokens.tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [100, 101, 102],
                                      [200, 201, 202], [203, 204, 205]]
    assert (pieces.lengths == 3).all()
    with pytest.raises(ValueError):
        chunk_articles(articles, 11)


def test_shuffled_words_keep_frequencies_and_lengths_but_not_articles(corpus):
    shuffled = shuffle_words(np.random.default_rng(0), corpus.articles)
    assert [len(a) for a in shuffled] == [len(a) for a in corpus.articles]
    assert np.array_equal(np.sort(np.concatenate(shuffled)),
                          np.sort(np.concatenate(corpus.articles)))
    # which words share an article is gone: the counts per article no longer match
    counts = np.stack([np.bincount(a, minlength=corpus.V) for a in shuffled])
    assert not np.array_equal(counts, corpus.counts)


def test_held_out_articles_are_a_seeded_fraction():
    first = split_articles(np.random.default_rng(1), 250, 0.2)
    assert first.sum() == 50 and first.dtype == bool
    assert np.array_equal(first, split_articles(np.random.default_rng(1), 250, 0.2))
    assert split_articles(np.random.default_rng(1), 3, 0.01).sum() == 1


# ----------------------------------------------------------------------------- statistics


def test_pair_gap_is_the_difference_of_the_pair_means():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 30)
    table = rng.normal(size=(30, 30))
    table[rng.random((30, 30)) < 0.2] = np.nan
    usable = np.isfinite(table) & ~np.eye(30, dtype=bool)
    same = labels[:, None] == labels[None, :]
    expected = table[usable & same].mean() - table[usable & ~same].mean()
    assert math.isclose(pair_gap(table, labels), expected, rel_tol=1e-12)


def test_permutation_error_matches_independent_pairs_and_exceeds_them_when_words_share():
    """On i.i.d. entries the permutation null's spread equals the independent-pairs error.
    When each word carries its own offset (pairs share words, as embeddings share a norm) and
    one topic holds most words (as LDA's labels of real text do), the offsets do not average
    out: the independent-pairs error is far too small, the permutation error is not."""
    rng = np.random.default_rng(1)
    V = 300
    labels = rng.integers(0, 6, V)
    independent = rng.normal(size=(V, V))
    gap = label_gap(independent, labels, np.random.default_rng(2), 300)
    assert 0.75 < gap.standard_error / gap.naive_error < 1.33
    assert abs(gap.null_mean) < 0.3 * gap.standard_error
    unbalanced = np.repeat([0, 1, 2], [240, 30, 30])
    offset = rng.normal(size=V)
    shared = offset[:, None] + offset[None, :] + rng.normal(size=(V, V))
    gap = label_gap(shared, unbalanced, np.random.default_rng(2), 300)
    assert gap.standard_error > 3 * gap.naive_error
    assert abs(gap.null_mean) < 0.3 * gap.standard_error


def test_a_planted_topic_block_is_many_standard_errors_and_a_relabelling_is_not():
    rng = np.random.default_rng(3)
    V = 200
    labels = rng.integers(0, 5, V)
    table = rng.normal(size=(V, V)) + 0.3 * (labels[:, None] == labels[None, :])
    assert label_gap(table, labels, np.random.default_rng(4), 200).sigmas > 10
    relabelled = label_gap(table, rng.permutation(labels), np.random.default_rng(4), 200)
    assert abs(relabelled.sigmas) < 5


def _documents(V: int) -> torch.Tensor:
    return torch.tensor(np.random.default_rng(5).integers(0, V, size=(16, 24)))


def test_uniform_and_copy_only_attention_have_lift_one_everywhere():
    V = 12
    x = _documents(V)
    for model in (TopicTransformer(V), TopicTransformer.copy_attention_model(V, 3.0)):
        lift = attention_lift(model, x, V)
        finite = np.isfinite(lift)
        assert finite.sum() > 0.5 * V * V and not finite[np.eye(V, dtype=bool)].any()
        assert np.allclose(lift[finite], 1.0, atol=1e-12)


def test_attention_on_one_word_lifts_that_word_only():
    """W^K, W^Q that score key word 0 high for every query: the lift of word 0 exceeds 1,
    every other word's falls below 1."""
    V = 12
    model = TopicTransformer(V, uniform_attention=False)
    with torch.no_grad():
        model.W_K.zero_()
        model.W_K[0, 0] = 1.0  # key direction: word 0
        model.W_Q.zero_()
        model.W_Q[0, :V] = 2.0 * math.sqrt(model.d)  # every content query reads it
    lift = attention_lift(model, _documents(V), V)
    assert np.nanmin(lift[1:, 0]) > 1.5
    assert np.nanmax(lift[1:, 1:]) < 1.0  # (queries of word 0 do not see it: copies)

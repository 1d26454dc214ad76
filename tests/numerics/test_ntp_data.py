"""Partial-order sentence generator, the NTP transformer, normalized GD and the cvxpy SVMs."""

from itertools import combinations
from math import comb

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from numerics.data import partial_order
from numerics.data.partial_order import OrderError, PartialOrderTask
from numerics.max_margin import attention_column, feedforward
from numerics.models.ntp_transformer import NTPTransformer
from numerics.train import NormalizedGD, TrainConfig, train


def _random_task(K: int, seed: int, density: float = 0.5) -> PartialOrderTask:
    """Random partial orders: a random ranking per query, each forward pair kept w.p. density."""
    rng = np.random.default_rng(seed)
    relations = np.zeros((K, K, K), dtype=bool)
    for q in range(K):
        ranking = rng.permutation(K)
        for i, j in combinations(range(K), 2):
            relations[q, ranking[i], ranking[j]] = rng.random() < density
    return PartialOrderTask.from_relations(rng.permutation(K), relations)


def _brute_greatest(task: PartialOrderTask, tokens: tuple[int, ...]) -> int:
    q = tokens[-1]
    best = [g for g in tokens if all(g == x or task.greater[q, g, x] for x in tokens)]
    return best[0] if best else -1


def test_closure_of_a_chain_and_cycle_error():
    relations = np.zeros((1, 4, 4), dtype=bool)
    relations[0, 3, 2] = relations[0, 2, 1] = relations[0, 1, 0] = True
    closure = partial_order.transitive_closure(relations)
    assert closure[0].sum() == 6 and closure[0, 3, 0]
    relations[0, 0, 3] = True
    with pytest.raises(OrderError, match="cycle"):
        partial_order.transitive_closure(relations)


@pytest.mark.parametrize(
    ("collocation", "shape", "message"),
    [([1, 1, 0], (3, 3, 3), "not a permutation"), ([1, 2, 0], (3, 3, 2), "shape")],
)
def test_bad_task_specifications(collocation, shape, message):
    with pytest.raises(OrderError, match=message):
        PartialOrderTask.from_relations(np.array(collocation), np.zeros(shape, dtype=bool))


@settings(max_examples=15)
@given(K=st.integers(2, 6), seed=st.integers(0, 10_000), length=st.integers(2, 5))
def test_enumeration_matches_brute_force(K, seed, length):
    task = _random_task(K, seed)
    length = min(length, K)
    every = task.token_sets(length)
    assert len(every) == K * comb(K - 1, length - 1)
    rows = every.rows()
    assert all(r[-1] == q for r, q in zip(rows, every.queries, strict=True))
    assert all(len(set(r)) == length for r in rows)
    assert [_brute_greatest(task, r) for r in rows] == every.greatest.tolist()
    admissible = task.admissible(range(2, length + 1))
    expected = sum(_brute_greatest(task, r) >= 0 for n in range(2, length + 1)
                   for r in task.token_sets(n).rows())
    assert len(admissible) == expected
    assert (admissible.targets == task.collocation[admissible.greatest]).all()


def test_explicit_sentences_need_a_unique_greatest_token():
    task = _random_task(5, 0, density=0.0)  # nothing comparable
    with pytest.raises(OrderError, match="no unique greatest token"):
        task.sentences([(0, 1)])
    with pytest.raises(OrderError, match="distinct"):
        task.sentences([(1, 1)])
    assert task.sentences([(3,)]).greatest.tolist() == [3]


@settings(max_examples=10)
@given(seed=st.integers(0, 10_000))
def test_transitivity_split_and_comparisons(seed):
    task = _random_task(5, seed, density=0.8)
    batch = task.admissible(range(2, 5))
    q, a, c = 0, int(batch.greatest[0]), int(batch.tokens[0, 0])
    kept, held = partial_order.transitivity_split(batch, q, a, c)
    assert len(kept) + len(held) == len(batch)
    assert all(r[-1] == q and c in r and g == a for r, g in zip(held.rows(), held.greatest,
                                                               strict=True))
    assert not any(r[-1] == q and c in r and g == a for r, g in zip(kept.rows(), kept.greatest,
                                                                    strict=True))
    compared = partial_order.comparisons(batch, 5)
    expected = np.zeros_like(compared)
    for row, g in zip(batch.rows(), batch.greatest, strict=True):
        for x in row:
            if x != g:
                expected[row[-1], g, x] = True
    assert (compared == expected).all()


def test_subsample_is_a_seeded_subset():
    batch = _random_task(6, 1, density=1.0).admissible(range(2, 4))
    first = partial_order.subsample(batch, 10, np.random.default_rng(0))
    again = partial_order.subsample(batch, 10, np.random.default_rng(0))
    assert len(first) == 10 and first.rows() == again.rows()
    assert set(first.rows()) <= set(batch.rows())
    assert len(partial_order.subsample(batch, 10**6, np.random.default_rng(0))) == len(batch)


def test_model_matches_the_formula_and_ignores_padding():
    torch.manual_seed(0)
    K = 5
    E = torch.randn(4, K, dtype=torch.float64)
    model = NTPTransformer(E)
    with torch.no_grad():
        model.W_kq.normal_()
        model.W_ov.normal_()
    sentence = [3, 0, 2]
    logits, attention = model(torch.tensor([sentence + [0, 0]]), torch.tensor([3]))
    X = E[:, sentence]  # (d, L)
    phi = torch.softmax(X.T @ model.W_kq @ X[:, -1], dim=0)
    expected = E.T @ (model.W_ov @ X @ phi)
    assert torch.allclose(logits[0], expected, atol=1e-12)
    assert torch.allclose(attention[0, :3], phi, atol=1e-12) and attention[0, 3:].sum() == 0
    single, _ = model(torch.tensor([[4]]), torch.tensor([1]))
    assert torch.allclose(single[0], E.T @ model.W_ov @ E[:, 4], atol=1e-12)


def test_normalized_gd_moves_exactly_lr_along_minus_the_gradient():
    W = torch.nn.Parameter(torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64))
    optimizer = NormalizedGD([W], lr=0.5)
    W.grad = torch.tensor([[3.0, 0.0], [0.0, 4.0]], dtype=torch.float64)
    before = W.detach().clone()
    optimizer.step()
    assert torch.allclose(W.detach() - before, -0.5 * W.grad / 5.0, atol=1e-15)
    W.grad = torch.zeros_like(W)
    after = W.detach().clone()
    optimizer.step()
    assert torch.equal(W.detach(), after)


def test_training_stops_below_a_loss_floor():
    model = NTPTransformer(torch.eye(3, dtype=torch.float64))
    model.train_only("W_ov")
    tokens, lengths, targets = torch.tensor([[0], [1], [2]]), torch.ones(3, dtype=torch.long), \
        torch.tensor([1, 2, 0])
    history = train(model, lambda m: (m.loss(tokens, lengths, targets), {}),
                    TrainConfig(steps=1000, lr=0.5, optimizer="ngd", schedule="constant",
                                weight_decay=0.0, sync_every=1, stop_below=1e-3))
    assert history.losses[-1] <= 1e-3 < history.losses[-2] and len(history.losses) < 1000


def test_feedforward_svm_is_feasible_and_kkt_for_gaussian_embeddings():
    rng = np.random.default_rng(0)
    E = rng.standard_normal((4, 4))
    solved = feedforward(E, np.array([1, 2, 3, 0]))
    assert max(solved.kkt_residuals().values()) < 1e-6
    margins = solved.constraints @ solved.solution.reshape(-1)
    assert margins.min() == pytest.approx(1.0, abs=1e-6) and len(margins) == 4 * 3


def test_attention_column_without_constraints_is_zero():
    solved = attention_column(4, np.zeros((4, 4), dtype=bool))
    assert (solved.solution == 0).all() and max(solved.kkt_residuals().values()) == 0

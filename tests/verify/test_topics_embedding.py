"""The embedding theorem's penalty threshold (Li, Li, Risteski, 2023, stage 1): above
``lambda* = (T - tau) / (v tau T (T - 1))`` the trained Gram matrix collapses to 0, below it
the trained embeddings carry the topic blocks; and such a request is refused."""

import dataclasses

import pytest
import sympy as sp
import torch

import verify.experiments.topics as topics
from theorems import topics as theory
from theorems.core import TheoremError
from verify import harness, registry

THEOREM = "topics-embedding-block-structure"


@pytest.mark.parametrize(("T", "v", "tau"), [(2, 1, 1), (3, 2, 1), (4, 3, 2), (4, 2, 3)])
def test_threshold_is_the_largest_eigenvalue_of_the_context_covariance(T, v, tau):
    covariance = theory.context_covariance(T, v, tau)
    largest = max(covariance.eigenvals())
    threshold = theory.penalty_threshold().subs({theory.T_: T, theory.v_: v, theory.tau_: tau})
    assert sp.simplify(largest - threshold) == 0


def _trained_gram(lam: sp.Rational):
    """The trained content Gram matrix, its same-topic excess and block deviation at T = 4,
    v = 3, tau = 2 (lambda* = 1/36), penalty ``lam`` (the request is validated at the default
    penalty, then the penalty replaced)."""
    plan = harness.prepare(registry.entry(THEOREM), {})
    plan = dataclasses.replace(plan, params={**plan.params, "lam": lam})
    ctx = harness.stage_context(plan, torch.device("cpu"))
    model, _, failed = topics._train_embeddings(ctx, 2, 0, "embeddings")
    assert not failed
    return topics._same_topic_excess(model, 4, 3)


def test_trained_embeddings_collapse_above_the_threshold_and_not_below():
    threshold = sp.Rational(1, 36)
    gram, excess, _ = _trained_gram(threshold * sp.Rational(6, 5))
    assert abs(gram).max() < 1e-6 and abs(excess) < 1e-6
    gram, excess, _ = _trained_gram(threshold * sp.Rational(4, 5))
    assert excess > 1e-3


def test_a_penalty_at_or_above_the_threshold_is_refused_with_its_reason():
    entry = registry.entry(THEOREM)
    for lam in ("1/144", "1/100"):  # lambda* itself: G = 0 is optimal there too
        with pytest.raises(TheoremError, match=r"lambda\* = .* = 1/144"):
            harness.prepare(entry, {"T": "4", "v": "4", "tau": "3", "lam": lam})
    assert harness.prepare(entry, {"T": "4", "v": "4", "tau": "3", "lam": "1/150"})

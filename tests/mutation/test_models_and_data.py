"""Plausible bugs in the models and data generators, injected through the modules' names: each
must make ``verify`` fail on a theorem that depends on the broken part."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import numerics.data.higher_order_markov as higher_order_markov
import numerics.data.partial_order as partial_order
import numerics.models.markov_transformer as markov_transformer
import numerics.models.topic_transformer as topic_transformer
import numerics.population as population
import verify.experiments.ical as ical_experiment
from tests.mutation.mutants import OUTCOMES, Outcome, first_failure
from verify import api


def _functional(**overrides: Callable) -> SimpleNamespace:
    """``torch.nn.functional`` with some functions replaced (what the model module sees)."""
    names = {name: getattr(F, name) for name in dir(F) if not name.startswith("__")}
    return SimpleNamespace(**(names | overrides))


def _attention(**forced) -> Callable:
    def attention(*args, **kwargs):
        return F.scaled_dot_product_attention(*args, **(kwargs | forced))
    return attention


def _no_causal_mask(monkeypatch) -> None:
    monkeypatch.setattr(markov_transformer, "F", _functional(
        scaled_dot_product_attention=_attention(is_causal=False)))


def _unscaled_attention(monkeypatch) -> None:
    monkeypatch.setattr(markov_transformer, "F", _functional(
        scaled_dot_product_attention=_attention(scale=1.0)))


def _window_ignored(monkeypatch) -> None:
    """The one-layer prefix path (what exact training uses) attends to the whole past even when
    the configuration asks for a window."""
    original = markov_transformer.prefix_logits

    class Unwindowed:
        def __init__(self, model) -> None:
            self.model, self.config = model, dataclasses.replace(model.config, memory=None)

        def __getattr__(self, name: str):
            return getattr(self.model, name)

    monkeypatch.setattr(markov_transformer, "prefix_logits",
                        lambda model, x, lengths: original(Unwindowed(model), x, lengths))


def _prefix_logit_one_late(monkeypatch) -> None:
    """The one-layer prefix path (what exact training uses) reads each prefix's logit one
    position late, at the first padding token (the forward pass is untouched)."""
    original = markov_transformer.prefix_logits
    monkeypatch.setattr(markov_transformer, "prefix_logits",
                        lambda model, x, lengths: original(
                            model, x, (lengths + 1).clamp(max=x.shape[-1])))


def _unscaled_topic_attention(monkeypatch) -> None:
    """The topic model's attention scores are not divided by sqrt(d) (``math.sqrt`` as the
    module sees it returns 1)."""
    monkeypatch.setattr(topic_transformer, "math",
                        SimpleNamespace(**(vars(math) | {"sqrt": lambda _: 1.0})))


def _binary_value_shift_dropped(monkeypatch) -> None:
    """The binary-input attention path forgets the key-class shift of the values
    (``dv = W_V e``) in its final ratio: the fused kernel is untouched."""
    original = markov_transformer._ClassRatio.apply
    monkeypatch.setattr(markov_transformer._ClassRatio, "apply",
                        lambda out, c, light_dv, d_value, query_is_one: original(
                            out, c, torch.zeros_like(light_dv), d_value, query_is_one))


def _binary_key_gradients_lost(monkeypatch) -> None:
    """The binary-input path's hand-written backward drops the keys' gradient (the forward,
    and so every logit, is right)."""
    original = markov_transformer._CausalTableProduct.backward

    def backward(ctx, grad):
        queries, keys, *rest = original(ctx, grad)
        return queries, torch.zeros_like(keys), *rest
    monkeypatch.setattr(markov_transformer._CausalTableProduct, "backward",
                        staticmethod(backward))


def _binary_feed_forward_gradient_lost(monkeypatch) -> None:
    """The binary-input path's hand-written backward of the rest of the layer drops the
    feed-forward's first matrix's gradient (``W_1``)."""
    original = markov_transformer._LayerTail.backward

    def backward(ctx, grad):
        u, attended, W_O, W_1, W_2 = original(ctx, grad)
        return u, attended, W_O, torch.zeros_like(W_1), W_2
    monkeypatch.setattr(markov_transformer._LayerTail, "backward", staticmethod(backward))


def _uniform_start(monkeypatch) -> None:
    monkeypatch.setattr(higher_order_markov, "stationary_contexts",
                        lambda kernel: np.full(len(kernel), 1 / len(kernel)))


def _fixed_phases(monkeypatch) -> None:
    original = ical_experiment.sample_rotation_sequences

    def sample(*args, **kwargs):
        return original(*args, **(kwargs | {"random_phase": False}))
    monkeypatch.setattr(ical_experiment, "sample_rotation_sequences", sample)


def _unpaired_frequencies(monkeypatch) -> None:
    """The exact population loss built for unitary W when the data are real rotations."""
    original = ical_experiment.rotation_frequencies

    def frequencies(*args, **kwargs):
        return original(*args[:2], **(kwargs | {"paired": False}))
    monkeypatch.setattr(ical_experiment, "rotation_frequencies", frequencies)


def _topics_by_residue(monkeypatch) -> None:
    original = population.context_distributions

    def mixed(T: int, v: int, tau: int) -> np.ndarray:  # word w's topic taken as w mod T
        order = np.arange(T * v).reshape(T, v).T.reshape(-1)
        return original(T, v, tau)[:, order]
    monkeypatch.setattr(population, "context_distributions", mixed)


def _query_off_by_one(monkeypatch) -> None:
    original = partial_order.PartialOrderTask._label

    def label(self, tokens: np.ndarray, lengths: np.ndarray):
        return original(self, tokens, np.maximum(lengths - 1, 1))  # the query read one early
    monkeypatch.setattr(partial_order.PartialOrderTask, "_label", label)


#: (layer, what is broken, the theorem that must fail, the injection).
MUTANTS = [
    ("models", "Markov transformer without the causal mask", "markov-tied-saddle",
     _no_causal_mask),
    ("models", "Markov attention logits not scaled by 1/sqrt(d)", "markov-tied-saddle",
     _unscaled_attention),
    ("models", "attention window ignored by the one-layer prefix path", "markov-higher-order",
     _window_ignored),
    ("models", "prefix path reads the logit one position late", "markov-tied-saddle",
     _prefix_logit_one_late),
    ("models", "binary-input attention path without the values' key-class shift",
     "markov-local-minima", _binary_value_shift_dropped),
    ("models", "binary-input attention path's backward without the keys' gradient",
     "markov-local-minima", _binary_key_gradients_lost),
    ("models", "binary-input path's backward without the feed-forward's W_1 gradient",
     "markov-local-minima", _binary_feed_forward_gradient_lost),
    ("models", "topic attention scores not scaled by 1/sqrt(d)", "topics-attention-structure",
     _unscaled_topic_attention),
    ("data", "Markov chain started from (1/2, 1/2) instead of pi", "markov-local-minima",
     _uniform_start),
    ("data", "rotation sequences with s_0 = 1 instead of uniform phases", "ical-one-step-gd",
     _fixed_phases),
    ("data", "exact population loss of real rotations built from unitary frequencies",
     "ical-pe-trigonometric", _unpaired_frequencies),
    ("data", "topic of word w taken as w mod T instead of w // v",
     "topics-value-block-structure", _topics_by_residue),
    ("data", "sentence labels read the query one token early", "ntp-attention-max-margin",
     _query_off_by_one),
]

#: Mutants that survive because they cannot change what the theorem claims, with the reason.
EQUIVALENT: dict[str, str] = {}


@pytest.mark.parametrize(("layer", "what", "theorem_id", "inject"), MUTANTS,
                         ids=[m[1] for m in MUTANTS])
def test_plausible_bug_is_caught(monkeypatch, layer: str, what: str, theorem_id: str,
                                 inject: Callable) -> None:
    inject(monkeypatch)
    verdict = api.check(theorem_id, device=torch.device("cpu"))
    if verdict.passed and what in EQUIVALENT:
        outcome = Outcome(layer, theorem_id, what, "equivalent", EQUIVALENT[what])
    else:
        outcome = Outcome(layer, theorem_id, what, "survived" if verdict.passed else "killed",
                          first_failure(list(verdict.checks)) or "every check passed")
    OUTCOMES.append(outcome)
    assert outcome.status != "survived", f"{what}: {theorem_id} still passes"

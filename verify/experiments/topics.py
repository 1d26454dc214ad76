"""Numeric experiments for the topic-structure theorems (Li, Li, Risteski, 2023).

Population checks use the exact long-document objective (every topic set ``S`` enumerated,
float64, :func:`numerics.population.topic_population_loss`); the sampled check trains on LDA
documents with masked-LM corruption, as the reference code does.

Budgets
-------
``fast``: the theorem's sizes (default T = 4, v = 3), 400 sampled documents.
``full``: the reference scale (T = 10, v = 10, 10,000 documents, thousands of steps); the
obligations that enumerate V x V matrices are built at T <= 4, v <= 3 (they say so).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import sympy as sp
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from numerics.data.lda import mask_for_mlm, sample_lda_documents, topic_blocks
from numerics.device import numpy_stream, stream
from numerics.models.topic_transformer import TopicTransformer
from numerics.monte_carlo import MaskedLMBatches
from numerics.population import (
    topic_distributions,
    topic_population_loss,
    topic_population_squared_loss,
)
from numerics.train import History, TrainConfig, train
from theorems.topics import population_loss
from verify.compare import apart, at_least, at_most, close, divergence
from verify.records import Check, Context, Curve, Experiment, Tolerance

#: Bridge: float64 round-off of an exact sum over C(T, tau) sets and V words.
BRIDGE = Tolerance(1e-12, "float64 round-off of the exact population sum")
BRIDGE_GRADIENT = 1e-9
#: Population training: L-BFGS on a strictly convex objective reaches the minimiser to
#: float64 precision; the spec's tolerances leave that margin.
BLOCK_DEVIATION = Tolerance(1e-5, "optimisation error of L-BFGS on a strictly convex objective")
ENTRY_RTOL = 1e-6
#: Embeddings: nonconvex in E (convex in G = E^T E); Adam warm-up then L-BFGS.
GRAM_DEVIATION = 1e-4
RANK_TOLERANCE = 1e-4
#: Sampled data: same-minus-different mean of W^V must exceed this many standard errors
#: (computed from the entries), and clustering its columns must recover the topics.
SAMPLED_SIGMAS = 5.0
ARI_BOUND = 0.9
INIT_STD = 0.01
EMBEDDING_INIT_STD = 0.3


@dataclass(frozen=True)
class TopicsBudget:
    """Sizes of one budget.

    Attributes
    ----------
    documents : int
        Sampled LDA documents (masked once, like the reference code).
    batch : int
        Documents per step.
    steps : int
        AdamW steps on the sampled documents.
    population_steps : int
        Steps of the population optimisers (L-BFGS; Adam warm-up for embeddings).
    """

    documents: int
    batch: int
    steps: int
    population_steps: int


BUDGETS = {
    "fast": TopicsBudget(documents=400, batch=40, steps=300, population_steps=500),
    "full": TopicsBudget(documents=10_000, batch=40, steps=5000, population_steps=2000),
}


def _sizes(ctx: Context) -> tuple[int, int, int, float]:
    p = ctx.plan.params
    return int(p["T"]), int(p["v"]), int(p["tau"]), float(p["lam"])


def _block_fit(M: np.ndarray, T: int, v: int) -> tuple[float, float, float]:
    """Same-topic mean, different-topic mean, and max |M - its block projection|."""
    blocks = topic_blocks(T, v)
    same, other = M[blocks].mean(), M[~blocks].mean()
    return float(same), float(other), float(np.abs(M - np.where(blocks, same, other)).max())


def _population(ctx: Context) -> torch.Tensor:
    T, v, tau, _ = _sizes(ctx)
    return topic_distributions(T, v, tau, ctx.device)


def _masked_documents(ctx: Context, rng: np.random.Generator):
    """The budget's LDA documents with the theorem's masked-LM corruption probabilities."""
    T, v, _, _ = _sizes(ctx)
    p = ctx.plan.params
    documents = sample_lda_documents(rng, BUDGETS[ctx.plan.budget].documents, T, v)
    return mask_for_mlm(rng, documents, T * v, float(p["mask"]), float(p["keep"]),
                        float(p["random"]))


def _train_masked_lm(ctx: Context, model: TopicTransformer, seed: int, label: str) -> History:
    """AdamW (lr 1e-2, no decay, as the reference code) on the seed's masked LDA documents."""
    budget = BUDGETS[ctx.plan.budget]
    masked = _masked_documents(ctx, numpy_stream(seed, "documents"))
    batches = MaskedLMBatches(*(torch.tensor(x, device=ctx.device) for x in
                                (masked.inputs, masked.keys, masked.labels)), budget.batch)
    return train(model, batches.objective,
                 TrainConfig(steps=budget.steps, lr=1e-2, weight_decay=0.0),
                 _progress(ctx, label, budget.steps))


def _progress(ctx: Context, label: str, steps: int):
    return ctx.progress(label, steps) if ctx.progress else None


# ----------------------------------------------------------------------------- value matrix


def _value_bridge(ctx: Context) -> tuple[list[Check], list[Curve]]:
    T, v, _, lam = _sizes(ctx)
    pred = ctx.prediction
    model = TopicTransformer.value_model(T * v, device=ctx.device)
    model.set_value_blocks(T, pred.float("a"), pred.float("b"))
    loss = topic_population_loss(model, _population(ctx), lam, model.trainable())
    loss.backward()
    return [
        close("population-loss-of-the-torch-model-at-w-l-delta",
              "population loss of the torch model at W* = L(delta*)", "bridge",
              pred.float("loss"), loss.item(), BRIDGE),
        at_most("gradient-norm-at-w", "gradient norm at W*", "bridge", BRIDGE_GRADIENT,
                model.W_V.grad.norm().item(),
                "float64 round-off of the exact gradient at the minimiser"),
    ], []


def _train_population(ctx: Context, model: TopicTransformer, label: str, seed: int,
                      squared: bool = False) -> History:
    _, _, _, lam = _sizes(ctx)
    distributions = _population(ctx)
    model.reset_parameters(stream(ctx.device, seed, "init"), 0.1)

    def objective(m: TopicTransformer):
        if squared:  # squared loss against the one-hot target, no penalty (the control)
            return topic_population_squared_loss(m, distributions), {}
        return topic_population_loss(m, distributions, lam, m.trainable()), {}

    steps = BUDGETS[ctx.plan.budget].population_steps
    return train(model, objective, TrainConfig(steps=steps, lr=1.0, optimizer="lbfgs",
                                               schedule="constant", weight_decay=0.0),
                 _progress(ctx, label, steps))


def _value_training(ctx: Context) -> tuple[list[Check], list[Curve]]:
    T, v, _, _ = _sizes(ctx)
    pred = ctx.prediction
    checks, curves = [], []
    for seed in ctx.plan.seeds:
        model = TopicTransformer.value_model(T * v, device=ctx.device)
        history = _train_population(ctx, model, f"population W^V, seed {seed}", seed)
        if failed := divergence(history, f"population-w-v-seed-{seed}",
                                f"population W^V (seed {seed})"):
            checks += failed
            continue
        same, other, deviation = _block_fit(model.W_V.detach()[: T * v, : T * v].cpu().numpy(),
                                            T, v)
        tag = f" (seed {seed})"
        suffix = f"-seed-{seed}"
        entry = Tolerance(0.0, "L-BFGS to float64 precision on a strictly convex objective",
                          rtol=ENTRY_RTOL)
        checks += [
            close("max-w-block-projection-of-w" + suffix, "max |W - block projection of W|" + tag,
                  "training", 0.0, deviation, BLOCK_DEVIATION),
            close("same-topic-entry-a" + suffix, "same-topic entry a" + tag, "training",
                  pred.float("a"), same, entry),
            close("different-topic-entry-b" + suffix, "different-topic entry b" + tag, "training",
                  pred.float("b"), other, entry),
        ]
        curves.append(Curve("value matrix: population objective", f"seed {seed}",
                            history.losses, {"L(delta*)": pred.float("loss")}))
    return checks + _sampled_checks(ctx), curves


def _sampled_checks(ctx: Context) -> list[Check]:
    """LDA documents with masking (reference code's setting, no penalty): topic blocks in W^V."""
    T, v, _, _ = _sizes(ctx)
    V = T * v
    checks = []
    for seed in ctx.plan.seeds:
        model = TopicTransformer.value_model(V, device=ctx.device)
        model.reset_parameters(stream(ctx.device, seed, "init"), INIT_STD)
        history = _train_masked_lm(ctx, model, seed, f"sampled LDA W^V, seed {seed}")
        if failed := divergence(history, f"sampled-w-v-seed-{seed}", f"sampled W^V (seed {seed})"):
            checks += failed
            continue
        W = model.W_V.detach()[:V, :V].cpu().numpy()
        blocks = topic_blocks(T, v)
        same, other = W[blocks], W[~blocks]
        error = math.sqrt(same.var(ddof=1) / same.size + other.var(ddof=1) / other.size)
        found = KMeans(T, n_init=10, random_state=seed).fit_predict(W.T)
        ari = adjusted_rand_score(np.arange(V) // v, found)
        tag = f" (sampled LDA, seed {seed})"
        suffix = f"-sampled-seed-{seed}"
        checks += [
            at_least("same-minus-different-topic-mean-of-w-v" + suffix,
                     "same-topic minus different-topic mean of W^V, in standard errors" + tag,
                     "training", SAMPLED_SIGMAS, float((same.mean() - other.mean()) / error),
                     "standard error of the difference of means over the entries",
                     difference=float(same.mean() - other.mean()), standard_error=error),
            at_least("adjusted-rand-index-of-w-v-columns" + suffix,
                     "adjusted Rand index of k-means on the columns of W^V vs the topics" + tag,
                     "training", ARI_BOUND, float(ari), "topics recovered from W^V"),
        ]
    return checks


def _value_control(ctx: Context) -> tuple[list[Check], list[Curve]]:
    """Squared loss without penalty: W = I is optimal, so training need not give blocks."""
    T, v, _, _ = _sizes(ctx)
    checks = []
    for seed in ctx.plan.seeds:
        model = TopicTransformer.value_model(T * v, device=ctx.device)
        history = _train_population(ctx, model, f"squared loss W^V, seed {seed}", seed,
                                    squared=True)
        _, _, deviation = _block_fit(model.W_V.detach()[: T * v, : T * v].cpu().numpy(), T, v)
        checks += divergence(history, f"squared-loss-seed-{seed}",
                             f"squared loss (seed {seed})") or [
            apart(f"squared-loss-no-penalty-max-w-block-projection-seed-{seed}",
                  f"squared loss, no penalty: max |W - block projection| (seed {seed})",
                  "control", 0.0, deviation, BLOCK_DEVIATION)]
    return checks, []


# ----------------------------------------------------------------------------- embeddings


def _embedding_bridge(ctx: Context) -> tuple[list[Check], list[Curve]]:
    """The torch model with random tied embeddings vs the sympy objective at G = E^T E."""
    T, v, tau, lam = _sizes(ctx)
    model = TopicTransformer.embedding_model(T * v, device=ctx.device)
    model.reset_parameters(stream(ctx.device, 0, "bridge point"), 0.5)
    loss = topic_population_loss(model, _population(ctx), lam, model.trainable()).item()
    E = model.E.detach()[:, : T * v].cpu().numpy()
    gram = sp.Matrix((E.T @ E).tolist())
    # penalty lam ||E||_F^2 = lam tr(G) on the content columns; the special columns add theirs
    specials = float((model.E.detach()[:, T * v :] ** 2).sum())
    predicted = (population_loss(gram, T, v, tau, 0) + sp.Float(lam) * gram.trace()
                 + lam * specials)
    return [close("population-loss-of-the-torch-model-sympy-objective-at-g-e-t-e",
                  "population loss of the torch model = sympy objective at G = E^T E",
                  "bridge", float(predicted), loss, BRIDGE)], []


def _embedding_training(ctx: Context) -> tuple[list[Check], list[Curve]]:
    """Adam warm-up, then L-BFGS polish: the factor E makes the objective nonconvex (it is
    convex in G = E^T E), and L-BFGS from a random start can stall."""
    T, v, _, lam = _sizes(ctx)
    steps = BUDGETS[ctx.plan.budget].population_steps
    distributions = _population(ctx)

    def objective(m: TopicTransformer):
        return topic_population_loss(m, distributions, lam, m.trainable()), {}

    checks, curves = [], []
    for seed in ctx.plan.seeds:
        model = TopicTransformer.embedding_model(T * v, device=ctx.device)
        model.reset_parameters(stream(ctx.device, seed, "init"), EMBEDDING_INIT_STD)
        adam = train(model, objective, TrainConfig(steps=2 * steps, lr=3e-2, weight_decay=0.0),
                     _progress(ctx, f"embeddings (Adam), seed {seed}", 2 * steps))
        polish = train(model, objective, TrainConfig(steps=steps, lr=1.0, optimizer="lbfgs",
                                                     schedule="constant", weight_decay=0.0),
                       _progress(ctx, f"embeddings (L-BFGS), seed {seed}", steps))
        if failed := (divergence(adam, f"embeddings-adam-seed-{seed}",
                                 f"embeddings, Adam (seed {seed})")
                      + divergence(polish, f"embeddings-l-bfgs-seed-{seed}",
                                   f"embeddings, L-BFGS (seed {seed})")):
            checks += failed
            continue
        E = model.E.detach()[:, : T * v]
        gram = (E.T @ E).cpu().numpy()
        same, other, deviation = _block_fit(gram, T, v)
        singular = np.linalg.svd(gram, compute_uv=False)
        tag = f" (seed {seed})"
        suffix = f"-seed-{seed}"
        checks += [
            at_most("gram-matrix-max-g-block-projection-max-g" + suffix,
                    "Gram matrix: max |G - block projection| / max |G|" + tag, "training",
                    GRAM_DEVIATION, deviation / np.abs(gram).max(),
                    "optimisation error (Adam warm-up, L-BFGS polish)"),
            at_least("same-topic-minus-different-topic-mean-inner-product" + suffix,
                     "same-topic minus different-topic mean inner product" + tag, "training",
                     0.0, same - other, "same-topic words share one direction"),
            at_most(f"largest-singular-value-beyond-the-t-th-t-{T}" + suffix,
                    f"largest singular value beyond the T-th (T = {T})" + tag, "training",
                    RANK_TOLERANCE, float(singular[T:].max(initial=0.0)),
                    "rank G <= T (optimisation error)", singular_values=singular.tolist()),
        ]
        curves.append(Curve("embeddings: population objective", f"seed {seed}",
                            np.concatenate((adam.losses, polish.losses)), {}))
    return checks, curves


# ----------------------------------------------------------------------------- attention

#: Attention ratio threshold (spec): same-topic / different-topic mean attention > 1.1 with
#: the difference above 5 standard errors over evaluation documents (uniform attention: 1).
ATTENTION_RATIO = 1.1
ATTENTION_INIT_STD = 1e-3  # W^K = W^Q = 0 is a saddle (zero gradient); start just off it
EVAL_DOCUMENTS, EVAL_LENGTH = 200, 100


def _frozen_value_model(ctx: Context, same: float, other: float, seed: int,
                        init_std: float) -> TopicTransformer:
    """Trainable attention from ``N(0, init_std^2)`` (the seed's generator), ``W^V`` frozen at
    ``same Blk + other (J - Blk)``."""
    T, v, _, _ = _sizes(ctx)
    model = TopicTransformer.attention_model(T * v, T, same, other, device=ctx.device)
    model.reset_parameters(stream(ctx.device, seed, "init"), init_std)
    return model


def _attention_bridge(ctx: Context) -> tuple[list[Check], list[Curve]]:
    """The module's logits equal b sum(alpha) + (a - b) m_topic (the obligation), for random
    attention; and uniform attention has same/different ratio exactly 1."""
    T, v, _, _ = _sizes(ctx)
    pred = ctx.prediction
    a, b = pred.float("a"), pred.float("b")
    model = _frozen_value_model(ctx, a, b, 0, 1.0)
    x = torch.tensor(sample_lda_documents(numpy_stream(0, "bridge documents"), 8, T, v,
                                          min_length=30, max_length=30).tokens,
                     device=ctx.device)
    with torch.no_grad():
        logits, attention = model(x)
        one_hot = F.one_hot(x, T * v).to(attention.dtype)  # (B, N, V)
        mass = (attention @ one_hot).reshape(*attention.shape[:2], T, v).sum(-1)  # per topic
        formula = b + (a - b) * mass.repeat_interleave(v, dim=-1)
        uniform = TopicTransformer(T * v, device=ctx.device)
        same, other = _topic_attention(ctx, uniform, 0)
    return [
        close("module-logits-b-a-b-attention-mass-on-the-word-s-topic",
              "module logits = b + (a - b) * attention mass on the word's topic", "bridge", 0.0,
              (logits - formula).abs().max().item(), BRIDGE),
        close("uniform-attention-same-different-ratio", "uniform attention: same/different ratio",
              "bridge", pred.float("uniform_ratio"), float(same.mean() / other.mean()), BRIDGE),
    ], []


def _attention_training(ctx: Context) -> tuple[list[Check], list[Curve]]:
    return _train_attention(ctx, ctx.prediction.float("a"), ctx.prediction.float("b"),
                            control=False)


def _attention_control(ctx: Context) -> tuple[list[Check], list[Curve]]:
    """W^V frozen with a and b swapped (a - b < 0): moving mass to the target's topic now
    lowers the correct logit, so the same-topic preference must not appear."""
    return _train_attention(ctx, ctx.prediction.float("b"), ctx.prediction.float("a"),
                            control=True)


def _train_attention(ctx: Context, same_entry: float, other_entry: float, control: bool
                     ) -> tuple[list[Check], list[Curve]]:
    pred = ctx.prediction
    checks, curves = [], []
    for seed in ctx.plan.seeds:
        model = _frozen_value_model(ctx, same_entry, other_entry, seed, ATTENTION_INIT_STD)
        history = _train_masked_lm(ctx, model, seed, f"attention W^K, W^Q, seed {seed}")
        if failed := divergence(history, f"attention-seed-{seed}", f"attention (seed {seed})"):
            checks += failed
            continue
        same, other = _topic_attention(ctx, model, seed)
        difference = same - other
        error = float(difference.std(ddof=1) / math.sqrt(len(difference)))
        ratio = float(same.mean() / other.mean())
        tag = f" (seed {seed})"
        suffix = f"-seed-{seed}"
        if control:
            checks.append(at_most("swapped-blocks-a-b-same-different-attention-ratio" + suffix,
                                  "swapped blocks (a < b): same/different attention ratio" + tag,
                                  "control", ATTENTION_RATIO * pred.float("uniform_ratio"),
                                  ratio, "the prediction (ratio > 1.1) must fail when a < b"))
            continue
        checks += [
            at_least("same-different-topic-attention-ratio" + suffix,
                     "mean same-topic / different-topic attention, content-word queries" + tag,
                     "training", ATTENTION_RATIO * pred.float("uniform_ratio"), ratio,
                     f"{ATTENTION_RATIO:g} x the uniform-attention ratio (spec)"),
            at_least("same-minus-different-topic-attention" + suffix,
                     "same-topic minus different-topic attention, in standard errors" + tag,
                     "training", SAMPLED_SIGMAS, float(difference.mean()) / error,
                     "standard error over evaluation documents (the sampling unit)",
                     difference=float(difference.mean()), standard_error=error),
        ]
        curves.append(Curve("attention: masked-LM loss", f"seed {seed}", history.losses, {}))
    return checks, curves


def _topic_attention(ctx: Context, model: TopicTransformer, seed: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Per evaluation document (unmasked, every query a content word): mean attention over
    same-topic pairs of different words, and over different-topic pairs."""
    T, v, _, _ = _sizes(ctx)
    documents = sample_lda_documents(numpy_stream(seed, "evaluation documents"),
                                     EVAL_DOCUMENTS, T, v, min_length=EVAL_LENGTH,
                                     max_length=EVAL_LENGTH)
    x = torch.tensor(documents.tokens, device=ctx.device)
    with torch.no_grad():
        _, attention = model(x)
    topic = x // v
    same_topic = topic[:, :, None] == topic[:, None, :]
    same_word = x[:, :, None] == x[:, None, :]
    pairs = {"same": same_topic & ~same_word, "other": ~same_topic}
    means = {k: (attention * m).sum((1, 2)) / m.sum((1, 2)).clamp_min(1) for k, m in pairs.items()}
    usable = (pairs["same"].sum((1, 2)) > 0) & (pairs["other"].sum((1, 2)) > 0)
    return means["same"][usable].cpu().numpy(), means["other"][usable].cpu().numpy()


VALUE_BLOCKS = Experiment((_value_bridge, _value_training, _value_control))
EMBEDDING_BLOCKS = Experiment((_embedding_bridge, _embedding_training))
ATTENTION_TOPICS = Experiment((_attention_bridge, _attention_training, _attention_control))

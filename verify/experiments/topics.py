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
from numerics.topic_statistics import lift_table
from numerics.train import History, TrainConfig, train
from theorems.topics import population_loss
from verify.compare import apart, at_least, at_most, close, divergence
from verify.records import Check, Context, Curve, Experiment, Plot, Structure, Tolerance

#: What the population curves are: the exact objective (every topic set enumerated), not a batch.
POPULATION_OBJECTIVE = "population objective (nats + penalty, exact)"
#: Bridge: float64 round-off of an exact sum over C(T, tau) sets and V words.
BRIDGE = Tolerance(1e-12, "float64 round-off of the exact population sum")
#: Bridge: the module's attention against the paper's softmax written out, float64, the same
#: weights and documents: round-off of the same products in another order only.
ATTENTION_FORMULA = Tolerance(1e-12, "float64 round-off: the module's attention and the "
                              "paper's formula computed in another order")
#: The embedding threshold bridge: a step along G = eps u u^T, and its tolerance. Richardson's
#: remainder is eps^2 times a third derivative along u u^T that the small ``|u . p_S| <= 1`` keeps
#: below 1, and float64 round-off adds about 1e-16 / eps = 1e-12 (measured: 3e-12 at the
#: defaults); a wrong lambda* moves the slope by its own error (lam - lambda* = -0.018 there).
THRESHOLD_EPS = 1e-4
THRESHOLD_SLOPE = Tolerance(1e-8, "Richardson remainder O(eps^2) and float64 round-off / eps "
                            "of a finite-difference slope (eps = 1e-4)")
BRIDGE_GRADIENT = 1e-9
#: Population training: L-BFGS on a strictly convex objective reaches the minimiser to
#: float64 precision; the spec's tolerances leave that margin.
BLOCK_DEVIATION = Tolerance(1e-5, "optimisation error of L-BFGS on a strictly convex objective")
ENTRY_RTOL = 1e-6
#: Embeddings: nonconvex in E (convex in G = E^T E); Adam warm-up then L-BFGS.
GRAM_DEVIATION = 1e-4
RANK_TOLERANCE = 1e-4
#: Same-topic words share one direction: their mean inner product exceeds the different-topic
#: one by more than the optimisation error of G (entries found to ~1e-5 of ``max |G|``; the
#: excess is O(1) at the defaults, and ~1e-13 when documents carry no topic, tau = T).
SAME_TOPIC_EXCESS = 1e-4
SAME_TOPIC_REASON = "same-topic words share one direction (excess above the optimisation error)"
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


def _masked_documents(ctx: Context, rng: np.random.Generator, topic_structure: bool = True):
    """The budget's LDA documents (topic-free ones when ``topic_structure`` is false, see
    :func:`numerics.data.lda.sample_lda_documents`) with the theorem's masked-LM corruption."""
    T, v, _, _ = _sizes(ctx)
    p = ctx.plan.params
    documents = sample_lda_documents(rng, BUDGETS[ctx.plan.budget].documents, T, v,
                                     topic_structure=topic_structure)
    return mask_for_mlm(rng, documents, T * v, float(p["mask"]), float(p["keep"]),
                        float(p["random"]))


def _train_masked_lm(ctx: Context, model: TopicTransformer, seed: int, label: str,
                     topic_structure: bool = True) -> History:
    """AdamW (lr 1e-2, no decay, as the reference code) on the seed's masked LDA documents."""
    budget = BUDGETS[ctx.plan.budget]
    masked = _masked_documents(ctx, numpy_stream(seed, "documents"), topic_structure)
    batches = MaskedLMBatches(*(torch.tensor(x, device=ctx.device) for x in
                                (masked.inputs, masked.keys, masked.labels)), budget.batch)
    return train(model, batches.objective,
                 TrainConfig(steps=budget.steps, lr=1e-2, weight_decay=0.0),
                 _progress(ctx, label, budget.steps))


def _progress(ctx: Context, label: str, steps: int):
    return ctx.progress(label, steps) if ctx.progress else None


# ----------------------------------------------------------------------------- value matrix


def _value_bridge(ctx: Context) -> tuple[list[Check], list[Plot]]:
    T, v, _, lam = _sizes(ctx)
    pred = ctx.prediction
    model = TopicTransformer.value_model(T * v, device=ctx.device)
    model.set_value_blocks(T, pred.float("a"), pred.float("b"))
    loss = topic_population_loss(model, _population(ctx), lam, model.trainable())
    loss.backward()
    return [
        close("population-loss-of-the-torch-model-at-w-l-delta",
              "population loss of the torch model at W* = L(delta*)", "bridge",
              pred.float("loss"), loss.item(), BRIDGE, uses=("a", "b", "loss")),
        at_most("gradient-norm-at-w", "gradient norm at W*", "bridge", BRIDGE_GRADIENT,
                model.W_V.grad.norm().item(),
                "float64 round-off of the exact gradient at the minimiser", uses=("a", "b")),
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
    return train(model, objective, TrainConfig.lbfgs(steps), _progress(ctx, label, steps))


def _value_training(ctx: Context) -> tuple[list[Check], list[Plot]]:
    T, v, tau, _ = _sizes(ctx)
    pred = ctx.prediction
    checks, curves, trained = [], [], []
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
                  pred.float("a"), same, entry, uses=("a",)),
            close("different-topic-entry-b" + suffix, "different-topic entry b" + tag, "training",
                  pred.float("b"), other, entry, uses=("b",)),
            # a - b = tau delta*: within ENTRY_RTOL |a - b| = ENTRY_RTOL (|a| + |b|) whenever
            # both entry checks pass, so the same relative tolerance applies to delta*
            close("logit-gap-delta" + suffix, "logit gap (same - different entry) / tau = delta*"
                  + tag, "training", pred.float("delta"), (same - other) / tau, entry,
                  uses=("delta",)),
        ]
        trained.append((seed, model.W_V.detach()[: T * v, : T * v].cpu().numpy()))
        curves.append(Curve(
            "value matrix: population objective", f"seed {seed}", history.losses,
            {"L(delta*)": pred.float("loss")}, ylabel=POPULATION_OBJECTIVE,
            caption="The exact population objective (cross-entropy over every topic set, "
                    "plus the penalty) per L-BFGS step, one line per seed. Dashed: the "
                    "theorem's minimum L(delta*) at the block optimum."))
    if trained:
        blocks = topic_blocks(T, v)
        predicted = np.where(blocks, pred.float("a"), pred.float("b"))
        curves.insert(0, Structure(
            "value matrix W^V: trained vs predicted a Blk + b (J - Blk)", predicted,
            tuple(m for _, m in trained), tuple(f"trained, seed {seed}" for seed, _ in trained),
            "entry of W^V",
            f"The value matrix W^V trained on the exact population objective (one panel per "
            f"seed; words ordered by topic, {v} per topic) next to the theorem's unique "
            f"optimum a Blk + b (J - Blk), a = {pred.float('a'):.4g} on the {T} same-topic "
            f"blocks, b = {pred.float('b'):.4g} elsewhere (a + (T-1) b = 0). Same colour "
            "scale in every panel.", predicted_label="predicted: a Blk + b (J - Blk)"))
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


def _value_control(ctx: Context) -> tuple[list[Check], list[Plot]]:
    """Squared loss without penalty: W = I is optimal, so training need not give blocks.
    Absent at v = 1: one word per topic makes I itself the block form (Blk = I), so the
    prediction cannot fail there."""
    T, v, _, _ = _sizes(ctx)
    checks = []
    if v == 1:
        return checks, []
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


def _embedding_bridge(ctx: Context) -> tuple[list[Check], list[Plot]]:
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
                  "bridge", float(predicted), loss, BRIDGE),
            _threshold_bridge(ctx)], []


def _threshold_bridge(ctx: Context) -> Check:
    """The torch objective's slope at G = 0 along ``G = eps u u^T``, ``u`` a unit contrast of
    two topics: ``lam - lambda*`` (the gradient there is ``lam I - Cov(p_S)`` and ``u`` is a
    top eigenvector of ``Cov(p_S)``), from the embeddings ``E = sqrt(eps) u^T`` (one row),
    Richardson-extrapolated from ``eps`` and ``eps / 2``."""
    T, v, _, lam = _sizes(ctx)
    model = TopicTransformer.embedding_model(T * v, device=ctx.device)
    u = torch.zeros(T * v, dtype=model.E.dtype, device=ctx.device)
    u[:v], u[v: 2 * v] = 1.0, -1.0
    u /= u.norm()
    population = _population(ctx)

    def loss(eps: float) -> float:
        with torch.no_grad():
            model.E.zero_()
            model.E[0, : T * v] = math.sqrt(eps) * u
            return topic_population_loss(model, population, lam, model.trainable()).item()

    base = loss(0.0)
    slope = 2 * (loss(THRESHOLD_EPS / 2) - base) / (THRESHOLD_EPS / 2) - (
        loss(THRESHOLD_EPS) - base) / THRESHOLD_EPS
    return close("objective-slope-at-g-0-along-a-topic-contrast-lam-lambda",
                 "slope of the objective at G = 0 along a topic contrast u u^T = lam - lambda*",
                 "bridge", lam - ctx.prediction.float("penalty_threshold"), slope,
                 THRESHOLD_SLOPE, uses=("penalty_threshold",))


def _train_embeddings(ctx: Context, tau: int, seed: int, label: str
                      ) -> tuple[TopicTransformer, np.ndarray, list[Check]]:
    """Adam warm-up, then L-BFGS polish: the factor E makes the objective nonconvex (it is
    convex in G = E^T E), and the warm-up guards the quasi-Newton steps against the random
    start. (It was added when L-BFGS stalled from there; that stall was L-BFGS steps that did
    not search their line, now fixed, and L-BFGS alone then reached the same minimum in 15 of
    15 runs at five sizes, T = 4..8, tau = 1, 2.) Documents mix ``tau`` topics. Returns the
    model, the loss curve of both phases and the divergence checks (empty when both phases
    stayed finite)."""
    T, v, _, lam = _sizes(ctx)
    steps = BUDGETS[ctx.plan.budget].population_steps
    distributions = topic_distributions(T, v, tau, ctx.device)

    def objective(m: TopicTransformer):
        return topic_population_loss(m, distributions, lam, m.trainable()), {}

    model = TopicTransformer.embedding_model(T * v, device=ctx.device)
    model.reset_parameters(stream(ctx.device, seed, "init"), EMBEDDING_INIT_STD)
    adam = train(model, objective, TrainConfig(steps=2 * steps, lr=3e-2, weight_decay=0.0),
                 _progress(ctx, f"{label} (Adam), seed {seed}", 2 * steps))
    polish = train(model, objective, TrainConfig.lbfgs(steps),
                   _progress(ctx, f"{label} (L-BFGS), seed {seed}", steps))
    failed = (divergence(adam, f"{label}-adam-seed-{seed}", f"{label}, Adam (seed {seed})")
              + divergence(polish, f"{label}-l-bfgs-seed-{seed}",
                           f"{label}, L-BFGS (seed {seed})"))
    return model, np.concatenate((adam.losses, polish.losses)), failed


def _same_topic_excess(model: TopicTransformer, T: int, v: int) -> tuple[np.ndarray, float,
                                                                       float]:
    """The content Gram matrix G, its same-topic minus different-topic mean, and its
    deviation from the block family."""
    E = model.E.detach()[:, : T * v]
    gram = (E.T @ E).cpu().numpy()
    same, other, deviation = _block_fit(gram, T, v)
    return gram, same - other, deviation


def _embedding_training(ctx: Context) -> tuple[list[Check], list[Plot]]:
    T, v, tau, _ = _sizes(ctx)
    checks, curves = [], []
    for seed in ctx.plan.seeds:
        model, losses, failed = _train_embeddings(ctx, tau, seed, "embeddings")
        if failed:
            checks += failed
            continue
        gram, excess, deviation = _same_topic_excess(model, T, v)
        singular = np.linalg.svd(gram, compute_uv=False)
        rank_bound = round(ctx.prediction.float("rank_bound"))
        tag = f" (seed {seed})"
        suffix = f"-seed-{seed}"
        checks += [
            at_most("gram-matrix-max-g-block-projection-max-g" + suffix,
                    "Gram matrix: max |G - block projection| / max |G|" + tag, "training",
                    GRAM_DEVIATION, deviation / np.abs(gram).max(),
                    "optimisation error (Adam warm-up, L-BFGS polish)"),
            at_least("same-topic-minus-different-topic-mean-inner-product" + suffix,
                     "same-topic minus different-topic mean inner product" + tag, "training",
                     SAME_TOPIC_EXCESS, excess, SAME_TOPIC_REASON),
            at_most(f"largest-singular-value-beyond-the-t-th-t-{T}" + suffix,
                    f"largest singular value beyond the T-th (T = {T})" + tag, "training",
                    RANK_TOLERANCE, float(singular[rank_bound:].max(initial=0.0)),
                    "rank G <= T (optimisation error)", uses=("rank_bound",),
                    singular_values=singular.tolist()),
            at_most("numerical-rank-of-g" + suffix,
                    f"number of singular values of G above {RANK_TOLERANCE:g}" + tag,
                    "training", rank_bound, float(np.sum(singular > RANK_TOLERANCE)),
                    "rank G <= T; singular values below the optimisation error count as 0",
                    uses=("rank_bound",)),
        ]
        curves.append(Curve("embeddings: population objective", f"seed {seed}", losses, {},
                            ylabel=POPULATION_OBJECTIVE,
                            caption="The exact population objective per step (Adam warm-up, "
                                    "then L-BFGS polish), one line per seed."))
    return checks, curves


def _embedding_control(ctx: Context) -> tuple[list[Check], list[Plot]]:
    """Control: tau = T (every document mixes every topic, just outside tau < T), so the
    context carries no topic; the same-topic excess of the training check must vanish."""
    T, v, _, _ = _sizes(ctx)
    checks, curves = [], []
    for seed in ctx.plan.seeds:
        model, losses, failed = _train_embeddings(ctx, T, seed, "embeddings, tau = T")
        if failed:
            checks += failed
            continue
        _, excess, _ = _same_topic_excess(model, T, v)
        checks.append(at_most(
            f"tau-t-same-topic-minus-different-topic-mean-inner-product-seed-{seed}",
            f"tau = T = {T}: same-topic minus different-topic mean inner product (seed {seed})",
            "control", SAME_TOPIC_EXCESS, excess,
            "without topic structure the excess must not reach the training check's bound"))
        curves.append(Curve("control: embeddings, tau = T", f"seed {seed}", losses, {},
                            ylabel=POPULATION_OBJECTIVE,
                            caption="Control (tau = T, outside the assumptions): the exact "
                                    "population objective per step, one line per seed."))
    return checks, curves


# ----------------------------------------------------------------------------- attention
#
# What the attention check isolates. Stage 1 trains W^V alone (uniform attention, one-hot
# embeddings) on the seed's masked documents; stage 2 freezes W^V at that learned matrix and
# trains W^K, W^Q on the same documents. The topic labels enter neither stage: whatever topic
# structure W^V and the attention acquire comes from the co-occurrence of words in documents.
# (Freezing W^V at the closed form a Blk + b (J - Blk) would hand the model the labels: a kept
# word then gains by attending to its label block even in documents without topics.)
# The statistic excludes the query's own position and every copy of its word: it compares
# attention to same-topic keys of *different* words with attention to different-topic keys,
# each relative to its share of the non-copy keys (the "lift"; uniform attention and attention
# that only looks at copies both give exactly 1). The control repeats both stages on topic-free
# documents (every token's topic drawn independently): there the gap must vanish.

#: Attention ratio threshold (spec): same-topic / different-topic attention lift > 1.1 with the
#: difference above 5 standard errors over evaluation documents (uniform attention: 1).
ATTENTION_RATIO = 1.1
ATTENTION_INIT_STD = 1e-3  # W^K = W^Q = 0 is a saddle (zero gradient); start just off it
EVAL_DOCUMENTS, EVAL_LENGTH = 200, 100
#: Floor on the standard error of the lift difference: float64 round-off of lifts of order 1
#: summed over <= 100 keys is ~1e-14, far below any sampling error (~1e-2 here), so a lift
#: difference that is zero up to round-off (copy-only or uniform attention) reads as 0 sigma,
#: not as round-off divided by round-off.
ROUNDOFF_ERROR = 1e-12
#: Attention strength of the copy-only bridge model (score of a copy minus a non-copy key).
COPY_STRENGTH = 3.0


def _frozen_value_model(ctx: Context, same: float, other: float, seed: int,
                        init_std: float) -> TopicTransformer:
    """Trainable attention from ``N(0, init_std^2)`` (the seed's generator), ``W^V`` frozen at
    ``same Blk + other (J - Blk)``."""
    T, v, _, _ = _sizes(ctx)
    model = TopicTransformer.attention_model(T * v, T, same, other, device=ctx.device)
    model.reset_parameters(stream(ctx.device, seed, "init"), init_std)
    return model


def _attention_bridge(ctx: Context) -> tuple[list[Check], list[Plot]]:
    """The module's attention is the paper's ``softmax(<W^Q x_i, W^K x_j> / sqrt(d))`` written
    out, and its logits equal b sum(alpha) + (a - b) m_topic (the obligation), for random
    attention; uniform attention and attention only on copies of the query's word both have
    same/different lift ratio exactly 1 (the statistic ignores copies)."""
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
        embedded = model.E.T[x]  # (B, N, d): the tokens' embeddings
        written = torch.softmax(torch.einsum("bid,bjd->bij", embedded @ model.W_Q.T,
                                             embedded @ model.W_K.T) / math.sqrt(model.d), -1)
        uniform = _topic_attention(ctx, TopicTransformer(T * v, device=ctx.device), 0)
        copies = _topic_attention(
            ctx, TopicTransformer.copy_attention_model(T * v, COPY_STRENGTH, device=ctx.device), 0)
    return [
        close("module-attention-the-paper-s-softmax-written-out",
              "module attention = softmax(<W^Q x_i, W^K x_j> / sqrt(d)) written out (random "
              "weights), max |difference|", "bridge", 0.0,
              (attention - written).abs().max().item(), ATTENTION_FORMULA),
        close("module-logits-b-a-b-attention-mass-on-the-word-s-topic",
              "module logits = b + (a - b) * attention mass on the word's topic", "bridge", 0.0,
              (logits - formula).abs().max().item(), BRIDGE, uses=("a", "b")),
        close("uniform-attention-same-different-ratio",
              "uniform attention: same/different lift ratio (copies excluded)", "bridge",
              pred.float("uniform_ratio"), uniform.ratio, BRIDGE, uses=("uniform_ratio",)),
        close("copy-only-attention-same-different-ratio",
              "attention only on copies of the query's word: same/different lift ratio",
              "bridge", pred.float("uniform_ratio"), copies.ratio, BRIDGE,
              uses=("uniform_ratio",), pair_mean_ratio=copies.pair_mean_ratio),
    ], []


@dataclass(frozen=True)
class TopicAttention:
    """Same-topic vs different-topic attention on evaluation documents, copies excluded.

    Attributes
    ----------
    lift : numpy.ndarray
        ``(V, V)`` word-pair lifts ``Lambda[q, k]`` (NaN on the diagonal and where word ``k``
        never shares a document with a query ``q``; see :func:`_topic_attention`).
    same, other : numpy.ndarray
        The finite lifts of same-topic pairs of different words, and of different-topic pairs.
    pair_mean_ratio : float
        The reference code's statistic with copies excluded: mean attention over same-topic
        pairs of different words / mean over different-topic pairs (not renormalised; copy
        attention biases it, e.g. to about 0.5 for the copy-only bridge model on LDA
        documents, so it is reported, not checked).
    """

    lift: np.ndarray
    same: np.ndarray
    other: np.ndarray
    pair_mean_ratio: float

    @property
    def ratio(self) -> float:
        """Mean same-topic lift / mean different-topic lift (uniform attention: 1)."""
        return float(self.same.mean() / self.other.mean())

    @property
    def difference(self) -> float:
        """Mean same-topic lift minus mean different-topic lift."""
        return float(self.same.mean() - self.other.mean())

    @property
    def standard_error(self) -> float:
        """Standard error of :attr:`difference` over word pairs (the unit the one-hot model's
        attention is a function of), floored at :data:`ROUNDOFF_ERROR`."""
        spread = math.sqrt(self.same.var(ddof=1) / self.same.size
                           + self.other.var(ddof=1) / self.other.size)
        return max(spread, ROUNDOFF_ERROR)

    @property
    def sigmas(self) -> float:
        """:attr:`difference` in standard errors."""
        return self.difference / self.standard_error


def _topic_attention(ctx: Context, model: TopicTransformer, seed: int,
                     topic_structure: bool = True, documents: int = EVAL_DOCUMENTS
                     ) -> TopicAttention:
    """Attention of a model on the seed's unmasked evaluation documents (every query a content
    word; topic-free documents when ``topic_structure`` is false; ``documents`` of them,
    drawn from the seed's evaluation stream), copies excluded.

    For query ``i`` let ``K_i`` be the keys whose word differs from ``x_i`` (this drops ``i``
    itself and every copy of its word). For a word ``k`` present in ``K_i`` the lift is
    ``(sum_{j in K_i, x_j = k} A_ij / sum_{j in K_i} A_ij) / (n_k / |K_i|)``: the attention
    share of ``k``, renormalised over ``K_i``, over its share of the keys (uniform attention
    and attention only on copies give exactly 1). ``Lambda[q, k]`` is the mean lift over all
    evaluation queries of word ``q`` whose document contains ``k``. The statistic compares
    ``Lambda`` on same-topic pairs of different words with ``Lambda`` on different-topic pairs.
    """
    T, v, _, _ = _sizes(ctx)
    V = T * v
    evaluation = sample_lda_documents(numpy_stream(seed, "evaluation documents"),
                                      documents, T, v, min_length=EVAL_LENGTH,
                                      max_length=EVAL_LENGTH, topic_structure=topic_structure)
    x = torch.tensor(evaluation.tokens, device=ctx.device)
    with torch.no_grad():
        _, attention = model(x)
        table = lift_table(attention, x, V)  # evaluation documents are unpadded
    blocks = topic_blocks(T, v)
    finite = np.isfinite(table) & ~np.eye(V, dtype=bool)
    # reference statistic (pairs of positions, copies excluded, no renormalisation)
    topic = x // v
    same_topic = topic[:, :, None] == topic[:, None, :]
    same_word = x[:, :, None] == x[:, None, :]
    pair_means = [(attention * m).sum() / m.sum().clamp_min(1)
                  for m in (same_topic & ~same_word, ~same_topic)]
    return TopicAttention(table, table[finite & blocks], table[finite & ~blocks],
                          float(pair_means[0] / pair_means[1]))


def _run_key(ctx: Context, stage: str, seed: int, topic_structure: bool, sign: float = 1.0):
    """A run is a deterministic function of this key (seeded init and documents)."""
    params = tuple(sorted((k, str(x)) for k, x in ctx.plan.params.items()))
    return ("topics-attention", stage, params, ctx.plan.budget, seed, topic_structure, sign,
            str(ctx.device))


def _stage_one(ctx: Context, seed: int, topic_structure: bool) -> tuple[History, torch.Tensor]:
    """Stage 1: ``W^V`` alone, uniform attention, on the seed's masked documents (memoised in
    ``ctx.cache``: the training and the swapped control share it)."""
    key = _run_key(ctx, "stage 1", seed, topic_structure)
    if key not in ctx.cache:
        T, v, _, _ = _sizes(ctx)
        model = TopicTransformer.value_model(T * v, device=ctx.device)
        model.reset_parameters(stream(ctx.device, seed, "init"), INIT_STD)
        label = f"stage 1 W^V{'' if topic_structure else ', topic-free'}, seed {seed}"
        history = _train_masked_lm(ctx, model, seed, label, topic_structure)
        ctx.cache[key] = (history, model.W_V.detach().clone())
    return ctx.cache[key]


def _stage_two(ctx: Context, seed: int, topic_structure: bool, sign: float = 1.0
               ) -> tuple[list[Check], TopicAttention | None, np.ndarray, History | None]:
    """Stage 2: ``W^K, W^Q`` from ``N(0, ATTENTION_INIT_STD^2)`` with ``W^V`` frozen at
    ``sign`` times the stage-1 matrix, on the same documents; the evaluation attention, the
    frozen content block of ``W^V``, and the stage-2 history (failed checks if a stage
    diverged)."""
    T, v, _, _ = _sizes(ctx)
    tag = ("" if topic_structure else "-topic-free") + ("" if sign > 0 else "-swapped")
    first, value = _stage_one(ctx, seed, topic_structure)
    if failed := divergence(first, f"stage-1-w-v{tag}-seed-{seed}",
                            f"stage 1 W^V{tag} (seed {seed})"):
        return failed, None, value.cpu().numpy(), None
    key = _run_key(ctx, "stage 2", seed, topic_structure, sign)
    if key not in ctx.cache:
        model = TopicTransformer.attention_model(T * v, T, 0.0, 0.0, device=ctx.device)
        model.set_value_matrix(sign * value)
        model.reset_parameters(stream(ctx.device, seed, "attention init"), ATTENTION_INIT_STD)
        history = _train_masked_lm(ctx, model, seed, f"stage 2 W^K, W^Q{tag}, seed {seed}",
                                   topic_structure)
        ctx.cache[key] = (history, model)
    history, model = ctx.cache[key]
    value_block = (sign * value)[: T * v, : T * v].cpu().numpy()
    if failed := divergence(history, f"attention{tag}-seed-{seed}",
                            f"attention{tag} (seed {seed})"):
        return failed, None, value_block, history
    return [], _topic_attention(ctx, model, seed, topic_structure), value_block, history


def _value_gap(value_block: np.ndarray, T: int, v: int) -> float:
    """Same-topic off-diagonal mean minus different-topic mean of a learned ``W^V`` block."""
    blocks = topic_blocks(T, v) & ~np.eye(T * v, dtype=bool)
    return float(value_block[blocks].mean() - value_block[~topic_blocks(T, v)].mean())


def _attention_details(measured: TopicAttention, value_block: np.ndarray, T: int, v: int
                       ) -> dict[str, float]:
    return {"difference": measured.difference, "standard_error": measured.standard_error,
            "sigmas": measured.sigmas, "pair_mean_ratio": measured.pair_mean_ratio,
            "word_pairs": [int(measured.same.size), int(measured.other.size)],
            "stage_1_value_gap": _value_gap(value_block, T, v)}


def _claim_checks(ctx: Context, measured: TopicAttention, seed: int, **details: object
                  ) -> list[Check]:
    """The training checks of the claim on one measurement: lift ratio above the spec's
    threshold and the lift difference above :data:`SAMPLED_SIGMAS` standard errors."""
    pred = ctx.prediction
    tag, suffix = f" (seed {seed})", f"-seed-{seed}"
    return [
        at_least("same-different-topic-attention-ratio" + suffix,
                 "same-topic (other words) / different-topic attention lift, copies excluded"
                 + tag, "training", ATTENTION_RATIO * pred.float("uniform_ratio"),
                 measured.ratio, f"{ATTENTION_RATIO:g} x the uniform-attention ratio (spec)",
                 uses=("uniform_ratio",), **details),
        at_least("same-minus-different-topic-attention" + suffix,
                 "same-topic minus different-topic attention lift, in standard errors" + tag,
                 "training", SAMPLED_SIGMAS, measured.sigmas,
                 "standard error over word pairs (the unit the one-hot model's attention "
                 "is a function of)", **details),
    ]


def _attention_training(ctx: Context) -> tuple[list[Check], list[Plot]]:
    """Two stages on LDA documents; the same-topic lift (copies excluded) must exceed the
    different-topic lift by the spec's ratio and significance."""
    T, v, _, _ = _sizes(ctx)
    checks, curves = [], []
    for seed in ctx.plan.seeds:
        failed, measured, value_block, history = _stage_two(ctx, seed, True)
        if measured is None:
            checks += failed
            continue
        checks += _claim_checks(ctx, measured, seed,
                                **_attention_details(measured, value_block, T, v))
        curves.append(Curve("attention: masked-LM loss (stage 2)", f"seed {seed}",
                            history.losses, {}, ylabel="batch loss (nats, masked-LM, sampled)",
                            caption="Stage 2 (W^K, W^Q trained, W^V frozen at the stage-1 "
                                    "matrix): the masked-LM loss of each sampled batch, one "
                                    "line per seed."))
    return checks, curves


def _attention_control(ctx: Context) -> tuple[list[Check], list[Plot]]:
    """Two controls. Topic-free documents (no co-occurrence): the gap vanishes, i.e. the lift
    difference is not resolved at the training check's significance, of either sign. Its
    ratio alone is not the claim: with few same-topic word pairs the ratio of the two lifts is
    a noisy quotient (at T = 5, v = 3, tau = 1, 30 pairs: 1.96 with the difference at 1.1
    standard errors), so it is reported beside the significance, not bounded on its own.
    ``W^V`` frozen at minus the stage-1 matrix: moving mass to co-occurring words lowers the
    correct logit, so no same-topic preference."""
    T, v, _, _ = _sizes(ctx)
    pred = ctx.prediction
    bound = ATTENTION_RATIO * pred.float("uniform_ratio")
    checks = []
    for seed in ctx.plan.seeds:
        tag = f" (seed {seed})"
        suffix = f"-seed-{seed}"
        failed, measured, value_block, _ = _stage_two(ctx, seed, False)
        if measured is None:
            checks += failed
        else:
            checks.append(at_most(
                "topic-free-documents-attention-gap-in-standard-errors" + suffix,
                "topic-free documents: |same - different lift|, in standard errors" + tag,
                "control", SAMPLED_SIGMAS, abs(measured.sigmas),
                "the claim (ratio > 1.1 with the gap resolved) must fail without "
                "co-occurrence: the gap is not resolved at the training check's significance",
                margin_standard_errors=SAMPLED_SIGMAS - abs(measured.sigmas),
                ratio=measured.ratio, **_attention_details(measured, value_block, T, v)))
        failed, measured, _, _ = _stage_two(ctx, seed, True, sign=-1.0)
        if measured is None:
            checks += failed
            continue
        checks.append(at_most("swapped-blocks-a-b-same-different-attention-ratio" + suffix,
                              "W^V = -(stage-1 W^V): same/different attention lift ratio" + tag,
                              "control", bound, measured.ratio,
                              "the prediction (ratio > 1.1) must fail when same-topic value "
                              "entries are the smaller ones", uses=("uniform_ratio",),
                              sigmas=measured.sigmas))
    return checks, []


VALUE_BLOCKS = Experiment((_value_bridge, _value_training, _value_control), budgets=BUDGETS)
EMBEDDING_BLOCKS = Experiment((_embedding_bridge, _embedding_training, _embedding_control),
                              budgets=BUDGETS)
ATTENTION_TOPICS = Experiment((_attention_bridge, _attention_training, _attention_control),
                              budgets=BUDGETS)

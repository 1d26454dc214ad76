"""Numeric experiment for chains of order k (Makkuva et al., 2024, higher-order experiments).

Every model is the paper's transformer (:class:`MarkovTransformer`), untied (with weight
tying a chain whose last bit says little keeps every model at H(pi), whatever its attention),
trained from the paper's initialisation with the seed's ``init`` stream, so the models compared
start from the same weights. The measured quantity is the loss at the positions ``n >= k``
(where a window of ``k`` tokens holds the whole context; its floor is the ``k``-th order rate
``H_k``).

Budgets
-------
``fast`` (CI, CPU): ``N = 8``, exact population loss over all ``2^N`` sequences, full-batch
AdamW in float64 for 1000 steps; one-layer seeds train as one batched model.
``full`` (paper scale, for a GPU): ``N = 1024``, 16 fresh sequences per step, 8000 steps, float32
(the reference code's order sweeps), the loss at ``n >= k`` estimated on 512 fresh chains with
its standard error.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import torch

from numerics.device import run_concurrently, stream
from numerics.models.markov_transformer import (
    MarkovEnsemble,
    MarkovTransformer,
    MarkovTransformerConfig,
    reference_logits,
)
from numerics.monte_carlo import Estimate, KernelBatches, estimate_tail_loss
from numerics.population import MarkovPopulation
from numerics.statistics import moving_average
from numerics.train import TrainConfig, train
from theorems import markov_higher_order as theory
from verify.compare import apart, at_least, at_most, close
from verify.experiments.markov import (
    ARCHITECTURE,
    BRIDGE_LOSS,
    FULL_SIGMAS,
    MarkovBudget,
    MarkovRun,
    _nonfinite,
)
from verify.experiments.markov_resolution import FAST_LOSS, SEPARATION_FACTOR
from verify.records import Check, Context, Curve, Experiment, Relation, Tolerance

BUDGETS = {
    "fast": MarkovBudget(N=8, steps=1000, exact=True),
    "full": MarkovBudget(N=1024, steps=8000, exact=False, batch=16, eval_sequences=512,
                         smoothing=50, dtype=torch.float32),
}
#: The bridge enumerates chains of this length (every order up to 4 fits, with room after k).
BRIDGE_LENGTH = 8
#: Bridge: a token outside the window changes no logit (it is masked: round-off at most, the
#: architecture tolerance 1e-12), a token the query sees changes it. With the bridge's weights
#: of standard deviation d^-1/2 (scores of order 1) the smallest change measured was 1.0e-5
#: (relative to the largest logit, over d = 1..32, k = 1..6 and 8 seeds); with standard
#: deviation 1 the scores grew like d and saturated the softmax, so a seen token could change
#: the logit by 1e-10 or exactly 0 (d = 16, k = 5), and at d = 6, k = 3 by 2.3e-4, under the
#: former bound 1e-3. 1e-8 sits 4 decades above the tolerance and 3 below the smallest change.
VISIBLE_CHANGE = 1e-8
#: The two model depths of the paper's full-attention comparison.
FULL_ATTENTION_LAYERS = (1, 2)


def _kernel(ctx: Context) -> np.ndarray:
    return np.array([float(x) for x in theory.kernel_values(ctx.plan.params)])


def _order(ctx: Context) -> int:
    return int(ctx.plan.params["k"])


def _population(ctx: Context, length: int) -> MarkovPopulation:
    key = ("markov-higher-order population", tuple(_kernel(ctx)), length, str(ctx.device))
    if key not in ctx.cache:
        ctx.cache[key] = MarkovPopulation.from_kernel(_kernel(ctx), length, ctx.device,
                                                      torch.float64)
    return ctx.cache[key]


def _model(ctx: Context, layers: int, memory: int | None, seed: int,
           budget: MarkovBudget) -> MarkovTransformer:
    config = MarkovTransformerConfig(int(ctx.plan.params["d"]), budget.N, False,
                                     n_layers=layers, memory=memory)
    model = MarkovTransformer(config, budget.dtype, ctx.device)
    model.reset_parameters(stream(ctx.device, seed, "init"))
    return model


def _exact_objective(population: MarkovPopulation, k: int):
    """The population loss over every position (what is trained) and, as a probe, the loss
    at the positions ``n >= k`` (what is measured)."""
    def objective(model):
        logits = model.last_logits(population.prefixes, population.lengths)
        return population.prefix_loss(logits), {"tail": population.tail_loss(logits.detach(), k)}
    return objective


def _label(layers: int, memory: int | None) -> str:
    window = ("full attention" if memory is None
              else f"window of {memory + 1} token{'s' if memory else ''}")
    return f"{layers} layer{'s' if layers > 1 else ''}, {window}"


def _runs(ctx: Context, layers: int, memory: int | None) -> list[MarkovRun]:
    """One run per seed (memoised in ``ctx.cache``): one batched model for one-layer seeds of
    the exact budget, else seed by seed (sampled budgets: side by side on the CPU's threads,
    :func:`~numerics.device.run_concurrently`)."""
    budget = BUDGETS[ctx.plan.budget]
    k = _order(ctx)
    kernel = _kernel(ctx)  # parsed here, not by sympy in every job's thread

    def key(seed: int) -> tuple:
        return ("markov-higher-order", tuple(kernel), int(ctx.plan.params["d"]),
                ctx.plan.budget, layers, memory, seed, str(ctx.device))

    missing = [seed for seed in ctx.plan.seeds if key(seed) not in ctx.cache]
    label = _label(layers, memory)
    config = TrainConfig(steps=budget.steps)
    if missing and budget.exact:
        population = _population(ctx, budget.N)
        objective = _exact_objective(population, k)
        models = [_model(ctx, layers, memory, seed, budget) for seed in missing]
        batched = layers == 1 and len(models) > 1
        groups = [MarkovEnsemble(models)] if batched else models
        for index, model in enumerate(groups):
            seeds = missing if batched else [missing[index]]
            history = train(model, objective, config,
                            _progress(ctx, f"train {label}, seeds {seeds}", budget.steps))
            with torch.no_grad():
                finals = torch.atleast_1d(objective(model)[1]["tail"])
            for member, seed in enumerate(seeds):
                run = history.member(member) if batched else history
                ctx.cache[key(seed)] = MarkovRun(run, run.probes["tail"], 0.0,
                                                 Estimate(float(finals[member]), 0.0))

    def sampled(seed: int) -> None:
        model = _model(ctx, layers, memory, seed, budget)
        data = stream(ctx.device, seed, "data")
        batches = KernelBatches(kernel, budget.batch, budget.N, data, budget.dtype)
        history = train(model, batches.objective, config,
                        _progress(ctx, f"train {label}, seed {seed}", budget.steps))
        final = estimate_tail_loss(model, kernel, budget.eval_sequences, budget.N, data,
                                   budget.dtype)
        curve, error = moving_average(history.losses, budget.smoothing)
        ctx.cache[key(seed)] = MarkovRun(history, curve, error, final)

    run_concurrently([partial(sampled, seed) for seed in missing if not budget.exact],
                     ctx.device)  # side by side on the CPU's threads
    return [ctx.cache[key(seed)] for seed in ctx.plan.seeds]


def _progress(ctx: Context, label: str, steps: int):
    return ctx.progress(label, steps) if ctx.progress else None


def _tolerance(ctx: Context, runs: list[MarkovRun]) -> Tolerance:
    """Fast: :data:`FAST_LOSS` (optimisation error; the order-2 windowed runs end within 1e-6
    of ``H_2``, inside the first-order measurement it was sized by). Full: ``FULL_SIGMAS``
    standard errors of the worst seed's Monte Carlo estimate of the loss at ``n >= k``."""
    if BUDGETS[ctx.plan.budget].exact:
        return FAST_LOSS
    error = max(run.final.standard_error for run in runs)
    return Tolerance(FULL_SIGMAS * error, f"{FULL_SIGMAS:g} standard errors of the Monte Carlo "
                     "loss at n >= k (per-sequence spread of fresh evaluation chains)")


def _details(ctx: Context, finals: list[float]) -> dict[str, list[float]]:
    """Where each seed ends: 0 at ``H_k``, 1 at ``H_{k-1}`` (the floor of a window one token
    shorter)."""
    k = _order(ctx)
    low, high = (ctx.prediction.float(f"rate_{j}") for j in (k, k - 1))
    return {"position_0_at_H_k_1_at_H_k_minus_1": [(x - low) / (high - low) for x in finals]}


def _gains(windowed: list[MarkovRun], full: list[MarkovRun]) -> list[float]:
    """Per seed, full attention's final loss minus the windowed model's (same init)."""
    return [b.final.mean - a.final.mean for a, b in zip(windowed, full, strict=True)]


def _curves(ctx: Context, title: str, label: str, runs: list[MarkovRun]) -> list[Curve]:
    k = _order(ctx)
    references = {f"H_{j}": ctx.prediction.float(f"rate_{j}") for j in (k, k - 1)}
    references["H(pi)"] = ctx.prediction.float("unigram_loss")
    if k - 1 != 1:
        references["H_1"] = ctx.prediction.float("rate_1")
    if BUDGETS[ctx.plan.budget].exact:
        ylabel = "loss at the positions n >= k (nats, exact)"
    else:  # the sampled curve is the training batch loss; its floor is H_k up to (k-1)/N
        ylabel = "batch loss, every position (nats, moving average)"
    caption = (f"{ylabel[0].upper()}{ylabel[1:]} per training step, one line per seed. "
               f"Black lines: the exact conditional entropy rates H_j of the order-{k} chain "
               "given the last j bits (H_k is the best any model can reach) and H(pi). A model "
               f"that uses the last {k} tokens ends near H_{k}; one that sees only "
               f"{k - 1} cannot go below H_{k - 1}.")
    return [Curve(title, f"{label}, seed {seed}", run.curve, references, ylabel=ylabel,
                  caption=caption)
            for seed, run in zip(ctx.plan.seeds, runs, strict=True)]


# ----------------------------------------------------------------------------- bridge


def _bridge(ctx: Context) -> tuple[list[Check], list[Curve]]:
    """The windowed module is the paper's model with the reference code's mask, and the
    enumerated data has the predicted floors: at the positions ``n >= k`` the best predictor
    from the last ``j`` bits has loss ``H_j`` (every ``j = 1..k``) and the constant ``pi1`` has
    loss ``H(pi)``."""
    k = _order(ctx)
    d = int(ctx.plan.params["d"])
    gen = stream(ctx.device, 0, "architecture bridge")
    x = torch.randint(0, 2, (64, BRIDGE_LENGTH), generator=gen, device=ctx.device)
    cut = 2  # flip the first `cut` tokens: outside the window of every query n >= cut + k - 1
    flipped = torch.cat([1 - x[:, :cut], x[:, cut:]], dim=1)
    oldest = x.clone()  # flip the oldest token inside the window of the last query
    oldest[:, -k] = 1 - oldest[:, -k]
    population = _population(ctx, BRIDGE_LENGTH)
    changes = {}
    for memory in (k - 1, None):
        model = MarkovTransformer(MarkovTransformerConfig(d, BRIDGE_LENGTH, False, memory=memory),
                                  torch.float64, ctx.device)
        model.reset_parameters(gen, std=d**-0.5)  # scores of order 1: no saturation
        with torch.no_grad():
            logits, reference = model(x), reference_logits(model, x)
            scale = reference.abs().max().clamp_min(1.0)
            changes[memory] = float((model(flipped) - logits)[:, cut + k - 1:].abs().max()
                                    / scale)
            if memory is not None:
                equations = float((logits - reference).abs().max() / scale)
                seen = float((model(oldest) - logits)[:, -1].abs().max() / scale)
                prefix = population.prefixes
                direct = model(prefix).gather(-1, (population.lengths - 1)[:, None]).squeeze(-1)
                shortcut = float((model.last_logits(prefix, population.lengths) - direct)
                                 .abs().max() / direct.abs().max().clamp_min(1.0))
    checks = [
        close("windowed-module-logits-paper-s-equations-max-difference",
              f"window of {k} tokens: module logits = the equations with the window mask, "
              "max |difference| / max(1, max |logit|)", "bridge", 0.0, equations, ARCHITECTURE),
        close("windowed-logits-after-flipping-tokens-outside-the-window",
              f"window of {k} tokens: logits at n >= {cut + k} after flipping x_1..x_{cut}, "
              "max |change| / max(1, max |logit|)", "bridge", 0.0, changes[k - 1],
              ARCHITECTURE),
        at_least("windowed-logit-after-flipping-the-oldest-token-in-the-window",
                 f"window of {k} tokens: logit at n = {BRIDGE_LENGTH} after flipping "
                 f"x_{BRIDGE_LENGTH - k + 1}, the oldest token it sees, max |change| / "
                 "max(1, max |logit|)", "bridge", VISIBLE_CHANGE, seen,
                 "weights of standard deviation d^-1/2: a token the query sees moves its "
                 "logit far above round-off (the window is not too short)"),
        close("windowed-prefix-logits-forward-pass",
              f"window of {k} tokens: the prefix path that exact training uses = the forward "
              "pass, max |difference| / max(1, max |logit|)", "bridge", 0.0, shortcut,
              ARCHITECTURE),
        at_least("full-attention-logits-after-flipping-the-same-tokens",
                 f"full attention: logits at n >= {cut + k} after flipping x_1..x_{cut}, "
                 "max |change| / max(1, max |logit|)", "bridge", VISIBLE_CHANGE,
                 changes[None], "weights of standard deviation d^-1/2: a token the query "
                 "sees moves its logit far above round-off (so the window check above is not "
                 "vacuous)"),
    ]
    with torch.no_grad():
        for j in range(1, k + 1):
            checks.append(close(
                f"best-predictor-from-the-last-{j}-bits-loss-at-n-k-h-{j}",
                f"data: loss at n >= k of the best predictor from the last {j} bit"
                f"{'s' if j > 1 else ''} = H_{j}", "bridge", ctx.prediction.float(f"rate_{j}"),
                population.tail_loss(_context_predictor(population, j, k), k).item(),
                BRIDGE_LOSS, uses=(f"rate_{j}",)))
        weights = population.prefix_weights * (population.lengths >= k)
        pi1 = float((weights * population.prefix_next_one).sum() / weights.sum())
        constant = torch.full_like(population.prefix_next_one, math.log(pi1 / (1 - pi1)))
        checks += [
            close("data-p-x-n-1-at-n-k-pi1", "data: P(x_{n+1} = 1) at n >= k = pi1", "bridge",
                  ctx.prediction.float("stationary_one"), pi1, BRIDGE_LOSS,
                  uses=("stationary_one",)),
            close("constant-predictor-pi1-loss-at-n-k-h-pi",
                  "data: loss at n >= k of the constant predictor pi1 = H(pi)", "bridge",
                  ctx.prediction.float("unigram_loss"),
                  population.tail_loss(constant, k).item(), BRIDGE_LOSS,
                  uses=("unigram_loss",)),
        ]
    return checks, []


def _context_predictor(population: MarkovPopulation, j: int, k: int) -> torch.Tensor:
    """Logits of the best predictor from the last ``j`` bits at the positions ``n >= k``:
    ``P(x_{n+1} = 1 | last j bits)`` averaged over the prefixes that end in those bits."""
    rows = torch.arange(len(population.lengths), device=population.lengths.device)
    code = torch.zeros_like(population.lengths)
    for back in range(j):  # the bit `back` places before the last one, weighted 2^back
        position = (population.lengths - 1 - back).clamp_min(0)
        code = code + (population.prefixes[rows, position].long() << back)
    weights = population.prefix_weights * (population.lengths >= k)
    mass = torch.zeros(2**j, dtype=weights.dtype, device=weights.device)
    ones = torch.zeros_like(mass)
    mass.index_add_(0, code, weights)
    ones.index_add_(0, code, weights * population.prefix_next_one)
    probability = ones / mass.clamp_min(torch.finfo(mass.dtype).tiny)
    return torch.logit(probability[code])


# ----------------------------------------------------------------------------- training


def _window_training(ctx: Context) -> tuple[list[Check], list[Curve]]:
    """The claim that the window helps: from the same initialisation, one layer whose attention
    sees the last ``k`` tokens ends below one layer with full attention, at the positions
    ``n >= k``, by more than the loss tolerance for every seed (whether it reaches ``H_k`` is
    reported)."""
    k = _order(ctx)
    window, full = _runs(ctx, 1, k - 1), _runs(ctx, 1, None)
    label = _label(1, k - 1)
    if failed := _nonfinite(window, label) + _nonfinite(full, _label(1, None)):
        return failed, []
    rate = ctx.prediction.float(f"rate_{k}")
    tolerance = _tolerance(ctx, window + full)
    finals = [run.final.mean for run in window]
    gains = _gains(window, full)
    gap = ctx.prediction.float(f"rate_{k - 1}") - rate
    return [
        at_least("window-gain-over-full-attention-at-n-k",
                 f"one layer: full-attention loss minus {label.split(', ')[1]} loss at n >= k "
                 "(same initialisation)", "training", tolerance.atol, min(gains),
                 f"the loss tolerance ({tolerance.reason})", per_seed=gains,
                 uses=(f"rate_{k}",), windowed_final_loss=finals,
                 windowed_reaches_H_k=[Relation.CLOSE.passes(rate, x, tolerance)
                                       for x in finals],
                 standard_errors=[run.final.standard_error for run in window],
                 **_details(ctx, finals)),
        at_least("h-k-1-and-h-k-are-distinguishable", "H_{k-1} and H_k are distinguishable",
                 "guard", SEPARATION_FACTOR * tolerance.atol, gap,
                 f"the gap must exceed {SEPARATION_FACTOR:g} loss tolerances, else the "
                 "training and control checks cannot tell the two floors apart",
                 uses=(f"rate_{k - 1}", f"rate_{k}")),
    ], _curves(ctx, f"order {k}: {label}", label, window)


def _full_attention(ctx: Context) -> tuple[list[Check], list[Curve]]:
    """The paper's observation: with full causal attention, one layer or two, training for
    the budget does not reach ``H_k`` at the positions ``n >= k`` (every seed stays above it
    by more than the loss tolerance)."""
    k = _order(ctx)
    rate = ctx.prediction.float(f"rate_{k}")
    checks, curves = [], []
    for layers in FULL_ATTENTION_LAYERS:
        runs = _runs(ctx, layers, None)
        label = _label(layers, None)
        if failed := _nonfinite(runs, label):
            checks += failed
            continue
        tolerance = _tolerance(ctx, runs)
        finals = [run.final.mean for run in runs]
        nearest = min(finals, key=lambda v: abs(v - rate))
        checks.append(apart(
            f"{layers}-layer-full-attention-loss-at-n-k-stays-above-h-k",
            f"{label}: final loss at n >= k vs H_k (the paper: not reached)", "training",
            rate, nearest, tolerance, per_seed=finals, uses=(f"rate_{k}",),
            **_details(ctx, finals)))
        curves += _curves(ctx, f"order {k}: {label}", label, runs)
    return checks, curves


def _control(ctx: Context) -> tuple[list[Check], list[Curve]]:
    """Control: the training claim's checks read with a window one token shorter (``k - 1``
    tokens), which misses the oldest bit of the context. It cannot beat ``H_{k-1}`` (a guard:
    information, not training), so it must neither reach ``H_k`` nor end below one-layer full
    attention, which can use the whole context (every seed)."""
    k = _order(ctx)
    runs, full = _runs(ctx, 1, k - 2), _runs(ctx, 1, None)
    label = _label(1, k - 2)
    if failed := _nonfinite(runs, label) + _nonfinite(full, _label(1, None)):
        return failed, []
    rate = ctx.prediction.float(f"rate_{k}")
    floor = ctx.prediction.float(f"rate_{k - 1}")
    tolerance = _tolerance(ctx, runs + full)
    finals = [run.final.mean for run in runs]
    gains = _gains(runs, full)
    nearest = min(finals, key=lambda v: abs(v - rate))
    return [
        at_most("shorter-window-gain-over-full-attention-at-n-k",
                f"one layer: full-attention loss minus {label.split(', ')[1]} loss at n >= k "
                "(same initialisation; the claim's check, where it must fail)", "control",
                tolerance.atol, max(gains), f"the loss tolerance ({tolerance.reason})",
                per_seed=gains, uses=(f"rate_{k}",), **_details(ctx, finals)),
        apart("shorter-window-loss-at-n-k-misses-h-k",
              f"{label}: final loss at n >= k vs H_k", "control", rate, nearest, tolerance,
              per_seed=finals, uses=(f"rate_{k}",), **_details(ctx, finals)),
        at_least("shorter-window-loss-at-n-k-at-least-h-k-1",
                 f"{label}: final loss at n >= k >= H_{{k-1}} - tolerance", "guard",
                 floor - tolerance.atol, min(finals),
                 f"H_{k - 1} is the floor of a predictor from the last {k - 1} bits (less "
                 "the loss tolerance)", per_seed=finals, uses=(f"rate_{k - 1}",)),
    ], _curves(ctx, f"control: {label}", label, runs)


HIGHER_ORDER = Experiment((_bridge, _window_training, _full_attention, _control), budgets=BUDGETS)

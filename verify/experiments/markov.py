"""Numeric experiments for the Markov theorems (Makkuva et al., 2024).

Budgets
-------
``fast`` (CI, CPU): ``N = 8``, exact population loss over all ``2^N`` sequences, full-batch
AdamW in float64, deterministic. Its only error is optimisation error.
``full`` (paper scale, for a GPU): ``d = 8``, ``N = 1024``, batch 16 fresh sequences per step,
float32, 5 seeds; losses are Monte Carlo estimates with standard errors computed from the data.

The bridge always uses the exact population loss on a small model (``N = 4``), in float64.
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import sympy as sp
import torch
import torch.nn.functional as F
from torch.func import functional_call, hessian, vmap
from torch.nn.attention import SDPBackend, sdpa_kernel

from numerics.device import run_concurrently, stream
from numerics.models.markov_transformer import (
    MarkovEnsemble,
    MarkovTransformer,
    MarkovTransformerConfig,
    binary_attention,
    reference_logits,
)
from numerics.monte_carlo import Estimate, MarkovBatches, estimate_population_loss
from numerics.population import MarkovPopulation
from numerics.statistics import longest_plateau, moving_average
from numerics.train import History, TrainConfig, train
from verify.compare import apart, at_least, at_most, close, divergence
from verify.experiments.markov_resolution import FAST_LOSS, SEPARATION_FACTOR, run_steps
from verify.records import Check, Context, Curve, Experiment, ProgressFactory, Stage, Tolerance

# ----------------------------------------------------------------------------- tolerances

#: Bridge: exact enumeration in float64 sums 2^N * N terms of size O(1); round-off ~1e-15.
BRIDGE_LOSS = Tolerance(1e-10, "float64 round-off of an exact sum over all 2^N sequences")
#: Bridge: the gradient at a stationary point is zero up to round-off of the same sum.
BRIDGE_GRADIENT_BOUND = 1e-9
#: Bridge: eigenvalues of a float64 Hessian of a few hundred rows (LAPACK, backward stable).
BRIDGE_SPECTRUM = Tolerance(1e-8, "float64 symmetric eigensolver on the autograd Hessian")
#: Bridge: the local-minimum probe allows float64 round-off below H(pi), nothing more.
PROBE_SLACK = 1e-12
PROBE_COUNT = 1000
PROBE_RADII = (1e-3, 5e-2)
#: Bridge model size: small enough for a full autograd Hessian in well under a second.
BRIDGE_N = 4

#: Full budget: 5 standard errors of the Monte Carlo estimate (a 1-in-10^6 false alarm).
FULL_SIGMAS = 5.0
#: The prediction after x_n = 0 (1) must match within this fraction of the distance between the
#: unigram value pi1 and the kernel value p (1-q): a pass then excludes the other predictor by
#: 1/fraction tolerances.
PREDICTION_FRACTION = 0.05
#: On a plateau the trajectory must pass a point whose gradient is two decades below the
#: gradient at initialisation: a stationary region, not a slow slope. (The median is no good
#: measure: AdamW keeps e oscillating around 0 with amplitude ~lr, so it never vanishes.)
PLATEAU_GRADIENT_RATIO = 1e-2
#: The trap must hold the loss for at least this fraction of the run to count as a plateau.
#: Untied runs cross H(pi) in at most one or two steps, so this is a wide margin; AdamW's drift
#: along the flat directions does eventually leave the trap (exit steps are reported).
PLATEAU_FRACTION = 0.2
#: The trap band: the loss is at the trap while within this fraction of the gap
#: H(pi) - entropy rate of H(pi), or within the loss tolerance where that is wider. A trapped
#: run approaches H(pi) slowly (flat directions, and an e-curvature 2 kappa (p+q-1) that is
#: small near p+q = 1 or far from pi = 1/2), so the optimisation error that sizes the loss
#: tolerance (converged runs) is no measure of how close it gets. Measured in the fast budget
#: (d = 4, seed 0) at the 90 points p, q in {0.05, 0.15, ..., 0.95} with ``|p+q-1| > 0.04``: the
#: 45 tied runs at p+q > 1 stay within a tenth of the gap for 376 to 1000 steps in a row
#: (within the loss tolerance 1e-5: 0 to 983, 12 of them under the 200 the trap needs, 10 of
#: those ending 0.97 to 1.01 of the way from the rate to H(pi)); the 135 runs that escape
#: (untied anywhere, tied at p+q < 1) for 0 to 88 steps. Bands at H(pi) and at the entropy
#: rate stay disjoint (a tenth of the gap plus the rate's tolerance is under the gap wherever
#: :func:`~verify.experiments.markov_resolution.unresolvable` lets a request run).
PLATEAU_GAP_FRACTION = 0.1
#: The largest d at which the exact budgets' tied runs at p+q > 1 hold the trap for the
#: plateau check's 20% of the run at every point measured. At d = 4: 376 to 1000 steps over
#: the 45 points of the phase diagram's grid; at d = 5, 6 and 8 some points' runs leave it
#: after 181, 142 and 116 steps (p, q in {0.1, 0.3, ..., 0.9}, seed 0; the untied runs and
#: those at p+q < 1 pass H(pi) in at most 97 steps), a finding the README reports. The
#: controls that need a trapped run train at most this d there.
TRAP_CONTROL_D = 4
#: Global-minimum stability: norm of the perturbation of theta_*.
STABILITY_NOISE = 1e-3


@dataclass(frozen=True)
class MarkovBudget:
    """Experiment sizes of one budget.

    Attributes
    ----------
    N : int
        Sequence length of training.
    steps : int
        AdamW steps.
    exact : bool
        Exact population loss (fast) or fresh sampled batches (full).
    batch : int
        Sequences per step when sampled.
    eval_sequences : int
        Fresh sequences of the final Monte Carlo loss estimate (sampled only).
    smoothing : int
        Moving-average window applied to a sampled loss curve before plateau detection, and
        to the prediction probes where the checks read them.
    dtype : torch.dtype
        Floating-point type of the parameters, data and losses.
    """

    N: int
    steps: int
    exact: bool
    batch: int = 0
    eval_sequences: int = 0
    smoothing: int = 1
    dtype: torch.dtype = torch.float64


BUDGETS = {
    "fast": MarkovBudget(N=8, steps=1000, exact=True),
    "full": MarkovBudget(
        N=1024, steps=1000, exact=False, batch=16, eval_sequences=512, smoothing=50,
        dtype=torch.float32,
    ),
}


# ----------------------------------------------------------------------------- training runs


@dataclass(frozen=True)
class MarkovRun:
    """One training run and the numbers the checks read.

    Attributes
    ----------
    history : History
    curve : numpy.ndarray
        Loss curve used for plateau detection (smoothed when sampled).
    curve_error : float
        Standard error of one point of ``curve`` (0 for the exact loss).
    final : Estimate
        Population loss after training (exact, or Monte Carlo with its standard error).
    """

    history: History
    curve: np.ndarray
    curve_error: float
    final: Estimate


def _run_key(p: float, q: float, d: int, tied: bool, budget: str, seed: int,
             device: torch.device, start: tuple[float, float] | None, layers: int = 1) -> tuple:
    """A run is a deterministic function of this key (seeded init and data), so the cache of
    one invocation can hand it to every stage that asks (controls reuse other theorems' runs)."""
    return ("markov", p, q, d, tied, budget, seed, str(device), start, layers)


def train_markov(
    p: float, q: float, d: int, tied: bool, budget: str, seed: int, device: torch.device,
    cache: MutableMapping, start: tuple[float, float] | None = None,
    progress: ProgressFactory | None = None, layers: int = 1,
) -> MarkovRun:
    """Train the Markov transformer with ``layers`` layers (memoised in ``cache``).

    ``start`` is ``None`` for the paper's init (every weight N(0, 0.02^2), b = 0), or the
    ``(slope, bias)`` of theta_* (Theorem 1, from the symbolic prediction), perturbed by noise
    of norm ``STABILITY_NOISE``.
    """
    key = _run_key(p, q, d, tied, budget, seed, device, start, layers)
    if key not in cache:
        cache[key] = _train_markov(p, q, d, tied, budget, seed, device, start, progress, layers)
    return cache[key]


def train_markov_ensemble(
    p: float, q: float, d: int, tied: bool, budget: str, seeds: tuple[int, ...],
    device: torch.device, cache: MutableMapping, start: tuple[float, float] | None = None,
    progress: ProgressFactory | None = None,
) -> list[MarkovRun]:
    """Train several seeds as one batched model, memoised per seed in ``cache``.

    Each member starts from exactly the initialisation of its sequential run and, in a sampled
    budget, draws its batches and its final evaluation chains from its own ``"data"`` stream,
    as that run does. The ensemble is trained on the sum of the members' losses, which under
    AdamW is each member trained on its own loss
    (:class:`~numerics.models.markov_transformer.MarkovEnsemble`): every member's run is its
    sequential run, to float round-off.
    """
    config = BUDGETS[budget]
    missing = [s for s in seeds if _run_key(p, q, d, tied, budget, s, device, start) not in cache]
    if missing:
        models = [_initial_model(d, tied, budget, seed, device, start) for seed in missing]
        ensemble = MarkovEnsemble(models)
        data_gens = tuple(stream(device, seed, "data") for seed in missing)
        if config.exact:
            population = MarkovPopulation.build(p, q, config.N, device, config.dtype)
            objective = population.objective
        else:
            objective = MarkovBatches(p, q, config.batch, config.N, data_gens,
                                      config.dtype).objective
        label = (f"train p={p:g} q={q:g} {'tied' if tied else 'untied'} seeds "
                 f"{missing[0]}..{missing[-1]} (one batched model)")
        steps = run_steps(config.steps, p, q)
        history = train(ensemble, objective, TrainConfig(steps=steps),
                        progress(label, steps) if progress else None)
        if config.exact:
            with torch.no_grad():
                finals = [Estimate(float(loss), 0.0)
                          for loss in population.objective(ensemble)[0]]
        else:
            finals = [estimate_population_loss(ensemble.member(index), p, q,
                                               config.eval_sequences, config.N, gen,
                                               config.dtype)
                      for index, gen in enumerate(data_gens)]
        for index, seed in enumerate(missing):
            member = history.member(index)
            curve, curve_error = moving_average(member.losses, config.smoothing)
            cache[_run_key(p, q, d, tied, budget, seed, device, start)] = MarkovRun(
                member, curve, curve_error, finals[index])
    return [cache[_run_key(p, q, d, tied, budget, s, device, start)] for s in seeds]


def _initial_model(d: int, tied: bool, budget: str, seed: int, device: torch.device,
                   start: tuple[float, float] | None, layers: int = 1) -> MarkovTransformer:
    """The paper's init (``start=None``) or theta_* plus noise, from the seed's generator."""
    config = BUDGETS[budget]
    model = MarkovTransformer(MarkovTransformerConfig(d, config.N, tied, n_layers=layers),
                              config.dtype, device)
    init_gen = stream(device, seed, "init")
    if start is None:
        model.reset_parameters(init_gen)
    else:
        model.set_bigram_point(*start)
        with torch.no_grad():
            noise = [torch.randn(x.shape, generator=init_gen, device=device, dtype=x.dtype)
                     for x in model.parameters()]
            norm = torch.sqrt(sum((n**2).sum() for n in noise))
            for x, n in zip(model.parameters(), noise, strict=True):
                x.add_(n * STABILITY_NOISE / norm)
    return model


def _train_markov(
    p: float, q: float, d: int, tied: bool, budget: str, seed: int, device: torch.device,
    start: tuple[float, float] | None, progress: ProgressFactory | None, layers: int = 1,
) -> MarkovRun:
    config = BUDGETS[budget]
    model = _initial_model(d, tied, budget, seed, device, start, layers)
    data_gen = stream(device, seed, "data")
    if config.exact:
        population = MarkovPopulation.build(p, q, config.N, device, config.dtype)
        objective = population.objective
    else:
        objective = MarkovBatches(p, q, config.batch, config.N, data_gen, config.dtype).objective
    label = (f"train p={p:g} q={q:g} {'tied' if tied else 'untied'}"
             f"{f' {layers} layers' if layers > 1 else ''} seed {seed}")
    steps = run_steps(config.steps, p, q)
    history = train(model, objective, TrainConfig(steps=steps),
                    progress(label, steps) if progress else None)
    if config.exact:
        with torch.no_grad():
            final = Estimate(float(population.objective(model)[0]), 0.0)
    else:
        final = estimate_population_loss(model, p, q, config.eval_sequences, config.N,
                                         data_gen, config.dtype)
    curve, curve_error = moving_average(history.losses, config.smoothing)
    return MarkovRun(history, curve, curve_error, final)


def train_seeds(
    p: float, q: float, d: int, tied: bool, budget: str, seeds: tuple[int, ...],
    device: torch.device, cache: MutableMapping, start: tuple[float, float] | None = None,
    progress: ProgressFactory | None = None, layers: int = 1,
) -> list[MarkovRun]:
    """One run per seed: one batched model for several seeds of one layer, else one by one
    (side by side on the CPU's threads, :func:`~numerics.device.run_concurrently`).

    Sampled budgets batch their seeds on CUDA only: a CPU step at N = 1024 is compute, one
    attention per member, and ``benchmarks/seed_ensembles.py`` measured 16 batched seeds
    slightly slower than 16 runs one after the other on a 2-core CPU.
    """
    if len(seeds) > 1 and layers == 1 and (BUDGETS[budget].exact or device.type == "cuda"):
        return train_markov_ensemble(p, q, d, tied, budget, seeds, device, cache, start,
                                     progress)
    jobs = [partial(train_markov, p, q, d, tied, budget, seed, device, cache, start, progress,
                    layers) for seed in seeds]
    return run_concurrently(jobs, device)


def _runs(ctx: Context, p: float, q: float, tied: bool,
          start: tuple[float, float] | None = None, layers: int = 1,
          d: int | None = None) -> list[MarkovRun]:
    """The runs of every seed at ``(p, q)``, of the request's ``d`` unless given."""
    return train_seeds(p, q, d or int(ctx.plan.params["d"]), tied, ctx.plan.budget,
                       ctx.plan.seeds, ctx.device, ctx.cache, start, ctx.progress, layers)


def _pq(ctx: Context) -> tuple[float, float]:
    return float(ctx.plan.params["p"]), float(ctx.plan.params["q"])


def _loss_tolerance(ctx: Context, runs: list[MarkovRun]) -> Tolerance:
    """Fast: :data:`FAST_LOSS`. Full: ``FULL_SIGMAS`` standard errors of the worst seed."""
    return _budget_loss_tolerance(ctx.plan.budget, runs)


def _budget_loss_tolerance(budget: str, runs: list[MarkovRun]) -> Tolerance:
    """:func:`_loss_tolerance` of ``budget``'s runs."""
    if BUDGETS[budget].exact:
        return FAST_LOSS
    error = max(max(run.final.standard_error, run.curve_error) for run in runs)
    return Tolerance(FULL_SIGMAS * error, f"{FULL_SIGMAS:g} standard errors of the Monte Carlo "
                     "loss (per-sequence spread of fresh evaluation chains)")


def _trap_band(tolerance: Tolerance, h_pi: float, rate: float) -> float:
    """Half-width of the band around ``h_pi`` where the loss counts as at the trap: the loss
    tolerance, or :data:`PLATEAU_GAP_FRACTION` of the gap to the entropy rate where wider."""
    return max(tolerance.bound(h_pi), PLATEAU_GAP_FRACTION * (h_pi - rate))


def _describe_band(tolerance: Tolerance, h_pi: float, rate: float) -> str:
    band = _trap_band(tolerance, h_pi, rate)
    if band > tolerance.bound(h_pi):
        return (f"band {band:.2g} = {PLATEAU_GAP_FRACTION:g} x (H(pi) - entropy rate), wider than "
                f"the loss tolerance {tolerance.describe()}: a trapped run approaches H(pi) "
                "slowly along flat directions")
    return f"band {tolerance.describe()}: {tolerance.reason}"


def _worst(values: list[float], predicted: float) -> float:
    """The per-seed value farthest from ``predicted`` (what a multi-seed check must bound)."""
    return max(values, key=lambda v: abs(v - predicted) if math.isfinite(v) else math.inf)


def _nonfinite(runs: list[MarkovRun], name: str) -> list[Check]:
    return [check for seed, run in enumerate(runs)
            for check in divergence(run.history, f"{name}-seed-{seed}", f"{name} (seed {seed})")]


def _curves(title: str, label: str, runs: list[MarkovRun], ctx: Context) -> list[Curve]:
    references = {
        "entropy rate": ctx.prediction.float("entropy_rate"),
        "H(pi)": ctx.prediction.float("unigram_loss"),
    }
    config = BUDGETS[ctx.plan.budget]
    if config.exact:
        ylabel = "population loss (nats, exact over all 2^N sequences)"
    else:
        ylabel = f"batch loss (nats, moving average over {config.smoothing} steps)"
    caption = (f"{ylabel[0].upper()}{ylabel[1:]} per training step, one line per seed. "
               "Black lines: the prediction's two levels, the entropy rate (loss of the bigram "
               "predictor, the global minimum) and H(pi) (loss at the unigram point theta_pi). "
               "A run trapped at the unigram point runs flat along H(pi); an escaping run "
               "drops to the entropy rate.")
    return [Curve(title, f"{label}, seed {seed}", run.curve, references, ylabel=ylabel,
                  caption=caption)
            for seed, run in enumerate(runs)]


def _separation(ctx: Context, tolerance: Tolerance) -> Check:
    gap = ctx.prediction.float("unigram_loss") - ctx.prediction.float("entropy_rate")
    return at_least(
        "h-pi-and-entropy-rate-are-distinguishable", "H(pi) and entropy rate are distinguishable",
        "guard", SEPARATION_FACTOR * tolerance.atol, gap,
        f"the gap must exceed {SEPARATION_FACTOR:g} loss tolerances, else a training check "
        "cannot tell the two stationary values apart",
        uses=("unigram_loss", "entropy_rate"),
    )


def _stationary_one(ctx: Context) -> float:
    """pi1 from the prediction where the theorem publishes it (the unigram theorems); the
    global-minimum theorem does not, and there it only sizes a tolerance."""
    if "stationary_one" in ctx.prediction.closed_forms:
        return ctx.prediction.float("stationary_one")
    p, q = _pq(ctx)
    return p / (p + q)


def _prediction_checks(
    runs: list[MarkovRun], ctx: Context, after_0: float, after_1: float, at: list[int],
    uses: tuple[tuple[str, ...], tuple[str, ...]] = ((), ()),
) -> list[Check]:
    """Model predictions after x_n = 0 and x_n = 1 (probes at steps ``at``, one per seed).

    The trap is probed on its plateau at ``at`` (:func:`_probe_step`).
    ``uses`` names the closed forms behind ``after_0`` and ``after_1`` (none where they are the
    kernel's parameters). A probe is read through the same trailing moving average as the loss
    curve (``smoothing`` steps; none in the exact budgets), on a plateau as at
    the last step of a run (the last point of the smoothed loss curve averages the same
    steps): a single minibatch step's probe carries the optimiser's step-to-step oscillation
    around the point it sits at (measured at the full budget in the tied trap: a standard
    deviation of 0.0045 with a period of about 10 steps, single-step reads up to 0.01 from pi1
    where the 50-step average is within 0.0013), which the loss curve is already averaged over.
    """
    p, q = _pq(ctx)
    pi1 = _stationary_one(ctx)
    window = BUDGETS[ctx.plan.budget].smoothing
    checks = []
    for symbol, predicted, names, kernel in (("0", after_0, uses[0], p),
                                             ("1", after_1, uses[1], 1 - q)):
        tolerance = Tolerance(
            PREDICTION_FRACTION * abs(kernel - pi1),
            f"{PREDICTION_FRACTION:g} of the distance between the unigram (pi1) and kernel "
            f"({'p' if symbol == '0' else '1-q'}) predictions",
        )
        values = [float(moving_average(run.history.probes[f"after_{symbol}"], window)[0][step])
                  for run, step in zip(runs, at, strict=True)]
        checks.append(close(f"mean-prediction-after-x-n-{symbol}",
                            f"mean prediction after x_n = {symbol}", "training", predicted,
                            _worst(values, predicted), tolerance, per_seed=values, uses=names,
                            **({"moving_average_steps": window} if window > 1 else {})))
    return checks


# ----------------------------------------------------------------------------- bridge


def _bridge_model(ctx: Context, tied: bool) -> tuple[MarkovTransformer, MarkovPopulation]:
    p, q = _pq(ctx)
    d = int(ctx.plan.params["d"])
    model = MarkovTransformer(MarkovTransformerConfig(d, BRIDGE_N, tied), torch.float64, ctx.device)
    population = MarkovPopulation.build(p, q, BRIDGE_N, ctx.device, torch.float64)
    return model, population


def _flat_loss(model: MarkovTransformer, population: MarkovPopulation):
    """The population loss as a function of one flat parameter vector, and that vector."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [x.shape for _, x in model.named_parameters()]
    sizes = [x.numel() for _, x in model.named_parameters()]
    theta = torch.cat([x.detach().reshape(-1) for x in model.parameters()])

    def loss(vector: torch.Tensor) -> torch.Tensor:
        pieces = torch.split(vector, sizes)
        params = {n: piece.reshape(s) for n, piece, s in zip(names, pieces, shapes, strict=True)}
        return population.loss(functional_call(model, params, (population.sequences,)))

    return loss, theta


#: Bridge: the module against the paper's equations written out, both in float64 on the same
#: random weights and sequences (different summation orders): round-off only, relative to the
#: largest logit (O(1) weights make logits grow with depth; measured ~1e-15 for 1 to 6 layers).
ARCHITECTURE = Tolerance(1e-12, "float64 round-off (relative to the largest logit) between the "
                         "fused attention kernel and the term-by-term equations")


#: Bridge: the prefix path of exact training (and a seed ensemble's) against the forward pass,
#: float64, the same random weights and prefixes: the same function summed in another order
#: (measured ~1e-15), relative to the largest logit.
PREFIX_PATH = Tolerance(1e-12, "float64 round-off (relative to the largest logit) between the "
                        "prefix path of exact training and the forward pass: the same "
                        "function, summed in another order")


#: Bridge: layer 1's binary-input attention path (what sampled budgets train with on the CPU)
#: against the equations and, for the gradients, against the fused kernel; float64 on the same
#: random weights and sequences: round-off of different summation orders only (measured
#: ~1e-15), relative to the largest logit or gradient entry.
BINARY_PATH = Tolerance(1e-12, "float64 round-off (relative to the largest logit or gradient "
                        "entry) between the binary-input attention path and the equations or "
                        "the fused kernel: the same function, summed in another order")


def _architecture_bridge(ctx: Context) -> tuple[list[Check], list[Curve]]:
    """The torch model is the paper's model: its logits equal the written-out equations (causal
    mask, 1/sqrt(d) scale, residual FFN) at random weights, and a logit never depends on later
    tokens (flipping them changes nothing). With the experiment's number of layers.

    The binary-input attention path (``binary_attention``, taken by sampled budgets on the CPU
    from 256 positions on) is checked here too, forced at this small size: its logits against
    the equations, and the gradients of a cross-entropy through its hand-written backward
    against those through the fused kernel."""
    d = int(ctx.plan.params["d"])
    gen = stream(ctx.device, 0, "architecture bridge")
    layers = int(ctx.plan.params.get("layers", 1))
    model = MarkovTransformer(MarkovTransformerConfig(d, BRIDGE_N * 2, True, n_layers=layers),
                              torch.float64, ctx.device)
    model.reset_parameters(gen, std=1.0)  # O(1) weights: every term of the model matters
    x = torch.randint(0, 2, (64, BRIDGE_N * 2), generator=gen, device=ctx.device)
    with torch.no_grad():
        logits = model(x)
        reference = reference_logits(model, x)
        cut = BRIDGE_N
        flipped = torch.cat([x[:, :cut], 1 - x[:, cut:]], dim=1)
        scale = reference.abs().max().clamp_min(1.0)
        leak = (model(flipped)[:, :cut] - logits[:, :cut]).abs().max() / scale
    binary_logits, gradient_difference = _binary_path_bridge(model, x, gen)
    prefix_difference, ensemble_difference = _prefix_path_bridge(model, x, gen)
    return [
        close("module-logits-paper-s-equations-max-difference",
              "module logits = the paper's equations (random weights), max |difference| / "
              "max(1, max |logit|)", "bridge", 0.0,
              float((logits - reference).abs().max() / scale),
              ARCHITECTURE),
        close("logits-before-n-after-flipping-the-tokens-after-n-max-change",
              "causality: logits up to n after flipping the tokens after n, max |change| / "
              "max(1, max |logit|)",
              "bridge", 0.0, float(leak), ARCHITECTURE),
        close("binary-path-logits-paper-s-equations-max-difference",
              "binary-input attention path: logits = the paper's equations (random weights), "
              "max |difference| / max(1, max |logit|)", "bridge", 0.0,
              float((binary_logits - reference).abs().max() / scale), BINARY_PATH),
        close("binary-path-gradients-fused-kernel-max-difference",
              "binary-input attention path: gradients of a cross-entropy = the fused "
              "kernel's (random weights), max |difference| / max |gradient entry|", "bridge",
              0.0, gradient_difference, BINARY_PATH),
        close("prefix-path-logits-forward-pass-max-difference",
              "the prefix path that exact training uses = the forward pass at each prefix's "
              "last position (random weights, zero-padded prefixes), max |difference| / "
              "max(1, max |logit|)", "bridge", 0.0, prefix_difference, PREFIX_PATH),
        *([] if ensemble_difference is None else [close(
            "seed-ensemble-prefix-logits-each-member-alone-max-difference",
            "seed ensemble (how the exact budget trains several seeds): each member's prefix "
            "logits = that model's alone, max |difference| / max(1, max |logit|)", "bridge",
            0.0, ensemble_difference, PREFIX_PATH)]),
    ], []


def _prefix_path_bridge(model: MarkovTransformer, x: torch.Tensor,
                        gen: torch.Generator) -> tuple[float, float | None]:
    """The exact population loss reads one logit per prefix through
    :meth:`~numerics.models.markov_transformer.MarkovTransformer.last_logits` (one layer: the
    attention of the last position only, :func:`~numerics.models.markov_transformer.
    prefix_logits`): against :meth:`forward` at each prefix's last position on the same
    random prefixes, zero-padded as the population pads them (a padding token the path let
    the query see would change the logit); and a batched ensemble of ``model`` and a second
    random model against each alone (one layer only: deeper models train seed by seed, and
    the ensemble's difference is then None). Relative differences."""
    lengths = torch.randint(1, x.shape[1] + 1, (len(x),), generator=gen, device=x.device)
    padded = x * (torch.arange(x.shape[1], device=x.device) < lengths[:, None])
    rows = torch.arange(len(x), device=x.device)
    with torch.no_grad():
        direct = model(x)[rows, lengths - 1]
        scale = direct.abs().max().clamp_min(1.0)
        prefix = float((model.last_logits(padded, lengths) - direct).abs().max() / scale)
        if model.deeper:
            return prefix, None
        other = MarkovTransformer(model.config, model.e.dtype, x.device)
        other.reset_parameters(gen, std=1.0)
        alone = torch.stack([m.last_logits(padded, lengths) for m in (model, other)])
        together = MarkovEnsemble([model, other]).last_logits(padded, lengths)
        ensemble = float((together - alone).abs().max() / alone.abs().max().clamp_min(1.0))
    return prefix, ensemble


def _binary_path_bridge(model: MarkovTransformer, x: torch.Tensor,
                        gen: torch.Generator) -> tuple[torch.Tensor, float]:
    """Logits of ``model`` on ``x`` with layer 1 forced onto the binary-input path, and the
    largest difference between the parameter gradients of a cross-entropy (random targets)
    through that path and through the fused kernel, relative to the largest entry.

    The gradients are those of ``model``'s first layer alone: the path computes layer 1 only,
    and deeper layers (the fused kernel in both) with O(1) weights only amplify round-off (two
    layers: 3e-12 between the fused kernel and the written-out equations themselves).
    Infinite (a failing check) when the path declines these weights (``safe_gamma``) and
    would fall back to the fused kernel unseen."""
    model.attention = "binary"
    with torch.no_grad():
        logits = model(x)
    model.attention = "auto"
    first = MarkovTransformer(replace(model.config, n_layers=1), model.e.dtype, x.device)
    first.load_state_dict({name: value for name, value in model.state_dict().items()
                           if not name.startswith("deeper.")})
    taken = binary_attention(x, first.e, first.pos, first.W_Q, first.W_K, first.W_V,
                             first.config) is not None
    targets = torch.randint(0, 2, x.shape, generator=gen, device=x.device).to(first.e.dtype)
    gradients = {}
    for path in ("fused", "binary"):
        first.attention = path
        F.binary_cross_entropy_with_logits(first(x), targets).backward()
        gradients[path] = [p.grad.clone() for p in first.parameters()]
        first.zero_grad(set_to_none=True)
    largest = max(float(g.abs().max()) for g in gradients["fused"])
    difference = max(float((b - f).abs().max()) for f, b in zip(gradients["fused"],
                                                                 gradients["binary"],
                                                                 strict=True))
    return logits, difference / largest if taken else math.inf


def _global_bridge(ctx: Context) -> tuple[list[Check], list[Curve]]:
    model, population = _bridge_model(ctx, tied=True)
    pred = ctx.prediction
    model.set_bigram_point(pred.float("bigram_slope"), pred.float("bigram_bias"))
    loss, probes = population.objective(model)
    loss.backward()
    gradient = float(torch.sqrt(sum((x.grad**2).sum() for x in model.parameters())))
    theta_star = ("bigram_slope", "bigram_bias")
    return [
        close("population-loss-at-theta-entropy-rate", "population loss at theta_* = entropy rate",
              "bridge", pred.float("entropy_rate"), loss.item(), BRIDGE_LOSS,
              uses=(*theta_star, "entropy_rate")),
        at_most("gradient-norm-at-theta", "gradient norm at theta_*", "bridge",
                BRIDGE_GRADIENT_BOUND, gradient,
                "float64 round-off of the exact gradient at a stationary point", uses=theta_star),
        close("prediction-after-x-n-0-equals-p", "prediction after x_n = 0 equals p", "bridge",
              pred.float("next_after_0"), float(probes["after_0"]), BRIDGE_LOSS,
              uses=(*theta_star, "next_after_0")),
        close("prediction-after-x-n-1-equals-1-q", "prediction after x_n = 1 equals 1-q", "bridge",
              pred.float("next_after_1"), float(probes["after_1"]), BRIDGE_LOSS,
              uses=(*theta_star, "next_after_1")),
    ], []


def _unigram_bridge(ctx: Context, tied: bool) -> tuple[list[Check], list[Curve]]:
    """Loss, gradient and Hessian spectrum of the torch model at theta_pi vs the sympy values."""
    model, population = _bridge_model(ctx, tied)
    pred = ctx.prediction
    h_pi = pred.float("unigram_loss")
    model.set_unigram_point(pred.float("unigram_bias"))
    loss_fn, theta = _flat_loss(model, population)
    theta = theta.requires_grad_(True)
    loss = loss_fn(theta)
    (gradient,) = torch.autograd.grad(loss, theta)
    # forward-over-reverse AD: the math attention kernel (the fused CPU kernel has no forward AD)
    with sdpa_kernel(SDPBackend.MATH):
        full_hessian = hessian(loss_fn)(theta.detach())
    eigenvalues = torch.linalg.eigvalsh(full_hessian).cpu().numpy()
    expected = np.zeros(len(eigenvalues))
    listed = [v for v, m in pred.spectrum_floats("hessian") for _ in range(m)]
    expected[: len(listed)] = listed
    expected.sort()
    spectrum_error = float(np.max(np.abs(np.sort(eigenvalues) - expected)))

    generic, _ = _bridge_model(ctx, tied)
    generic.set_unigram_point(pred.float("unigram_bias"),
                             stream(ctx.device, 0, "generic member"))
    generic_loss = population.objective(generic)[0].item()
    canonical, _ = _bridge_model(ctx, tied)
    canonical.set_unigram_point(pred.float("unigram_bias"))
    with torch.no_grad():
        _, probes = population.objective(canonical)
        # the kernel's own predictor P(1 | x_n) on the enumerated population: its loss is the
        # conditional entropy of the numeric data, the sympy entropy rate
        kernel_loss = population.prefix_loss(torch.logit(population.prefix_next_one)).item()
    pi1 = pred.float("stationary_one")

    theta_pi = ("unigram_bias",)
    spectrum = ("unigram_bias", "spectrum hessian")
    checks = [
        close("population-loss-at-theta-pi-h-pi", "population loss at theta_pi = H(pi)", "bridge",
              h_pi, loss.item(), BRIDGE_LOSS, uses=(*theta_pi, "unigram_loss")),
        close("generic-member-of-theta-pi-loss-h-pi",
              "loss at a generic member of theta_pi (random other weights) = H(pi)", "bridge",
              h_pi, generic_loss, BRIDGE_LOSS, uses=(*theta_pi, "unigram_loss")),
        at_most("gradient-norm-at-theta-pi", "gradient norm at theta_pi", "bridge",
                BRIDGE_GRADIENT_BOUND, float(gradient.norm()),
                "float64 round-off of the exact gradient", uses=theta_pi),
        close(f"hessian-spectrum-{len(eigenvalues)}-parameters-max-eig-predicted",
              f"Hessian spectrum ({len(eigenvalues)} parameters), max |eig - predicted|",
              "bridge", 0.0, spectrum_error, BRIDGE_SPECTRUM, uses=spectrum,
              min_eigenvalue=float(eigenvalues.min()), max_eigenvalue=float(eigenvalues.max())),
        *(close(f"prediction-after-x-n-{symbol}-at-theta-pi-equals-pi1",
                f"prediction after x_n = {symbol} at theta_pi equals pi1", "bridge",
                pi1, float(probes[f"after_{symbol}"]), BRIDGE_LOSS,
                uses=(*theta_pi, "stationary_one"))
          for symbol in ("0", "1")),
        close("kernel-predictor-loss-entropy-rate",
              "loss of the kernel's predictor P(1 | x_n) = entropy rate", "bridge",
              pred.float("entropy_rate"), kernel_loss, BRIDGE_LOSS, uses=("entropy_rate",)),
    ]
    smallest = float(eigenvalues.min())
    predicted_min = min(v for v, _ in pred.spectrum_floats("hessian"))
    checks.append(close("smallest-hessian-eigenvalue", "smallest Hessian eigenvalue", "bridge",
                        min(predicted_min, 0.0), smallest, BRIDGE_SPECTRUM, uses=spectrum))
    return checks + _perturbation_probe(ctx, loss_fn, theta.detach(), h_pi), []


def _perturbation_probe(ctx: Context, loss_fn, theta: torch.Tensor, h_pi: float) -> list[Check]:
    """Local minimum (PSD with zero eigenvalues proves nothing): random perturbations."""
    if ctx.plan.theorem.id != "markov-local-minima":
        return []
    gen = stream(ctx.device, 0, "perturbation probe")
    directions = torch.randn(PROBE_COUNT, theta.numel(), generator=gen, device=ctx.device,
                             dtype=theta.dtype)
    directions /= directions.norm(dim=1, keepdim=True)
    low, high = PROBE_RADII
    radii = low * (high / low) ** torch.rand(PROBE_COUNT, 1, generator=gen, device=ctx.device,
                                             dtype=theta.dtype)
    with sdpa_kernel(SDPBackend.MATH):  # the fused CPU kernel has no vmap batching rule
        losses = vmap(loss_fn)(theta + radii * directions)
    lowest = float((losses - h_pi).min())
    return [at_least(
        f"{PROBE_COUNT}-random-perturbations-norm-{low:g}-{high:g}-min-l-h-pi",
        f"{PROBE_COUNT} random perturbations (norm {low:g}..{high:g}): min L - H(pi)", "bridge",
        -PROBE_SLACK, lowest, "a local minimum: no nearby point is lower, up to float64 round-off",
        uses=("unigram_bias", "unigram_loss"),
    )]


# ----------------------------------------------------------------------------- training


def _plateau_checks(ctx: Context, runs: list[MarkovRun], name: str) -> list[Check]:
    """The tied trap: the loss sits at H(pi) for a long window, clearly above the entropy rate.

    Where the trap holds the loss is the theorem's ``trained_loss`` (= L(theta_pi) = H(pi), an
    obligation); the band is centred there.
    """
    h_pi = ctx.prediction.float("trained_loss")
    rate = ctx.prediction.float("entropy_rate")
    tolerance = _loss_tolerance(ctx, runs)
    steps = len(runs[0].curve)
    band = _trap_band(tolerance, h_pi, rate)
    plateaus = [longest_plateau(run.curve, h_pi, band) for run in runs]
    lengths = [length for _, _, length in plateaus]
    levels = [float(np.mean(run.curve[a:b])) if b > a else float(run.final.mean)
              for run, (a, b, _) in zip(runs, plateaus, strict=True)]
    gradient_ratios = [
        float(np.min(run.history.grad_norms[a:b]) / run.history.grad_norms[0]) if b > a
        else math.inf
        for run, (a, b, _) in zip(runs, plateaus, strict=True)
    ]
    probes = [_probe_step(run, a, b, BUDGETS[ctx.plan.budget].exact)
              for run, (a, b, _) in zip(runs, plateaus, strict=True)]
    pi1 = ctx.prediction.float("stationary_one")
    plateau_details = [{"seed": s, "entry_step": a, "exit_step": b if b < steps else None,
                        "length": n, "mean_loss": lv}
                       for s, ((a, b, n), lv) in enumerate(zip(plateaus, levels, strict=True))]
    checks = [
        at_least(f"{name}-steps-with-loss-within-tolerance-of-h-pi",
                 f"{name}: steps with loss within tolerance of H(pi)", "training",
                 PLATEAU_FRACTION * steps, float(min(lengths)),
                 f"a trap holds the loss for at least {PLATEAU_FRACTION:.0%} of the run "
                 f"({_describe_band(tolerance, h_pi, rate)})",
                 uses=("trained_loss", "entropy_rate"), plateaus=plateau_details, band=band),
        at_least(f"{name}-plateau-loss-minus-entropy-rate",
                 f"{name}: plateau loss minus entropy rate", "training",
                 SEPARATION_FACTOR * tolerance.atol, min(levels) - rate,
                 f"the plateau sits {SEPARATION_FACTOR:g} tolerances above the entropy rate",
                 per_seed=levels, uses=("trained_loss", "entropy_rate")),
        *_prediction_checks(runs, ctx, pi1, pi1, probes,
                            (("stationary_one",), ("stationary_one",))),
        _separation(ctx, tolerance),
    ]
    if BUDGETS[ctx.plan.budget].exact:  # minibatch gradients have a noise floor: exact only
        checks.append(at_most(
            f"{name}-smallest-gradient-norm-on-the-plateau-at-init",
            f"{name}: smallest gradient norm on the plateau / at init", "training",
            PLATEAU_GRADIENT_RATIO, max(gradient_ratios),
            "the plateau holds a near-stationary point, not a slow slope",
            per_seed=gradient_ratios, uses=("trained_loss",)))
    return checks


def _probe_step(run: MarkovRun, entry: int, end: int, exact: bool) -> int:
    """Where the trap's predictions are read: on the plateau ``[entry, end)`` (the last step
    without one). Exact budgets: the plateau's step of smallest gradient norm, the run's
    nearest approach to the stationary trap (not the middle: near p + q = 1 a trapped run is
    still converging there, and at (19/20, 1/10) the prediction after x_n = 1 read at the
    middle was 0.90505 against pi1 = 0.90476, outside its tolerance 2.4e-4; and not the step
    nearest H(pi), which on a run that escapes can be its crossing of H(pi) on the way out).
    Sampled budgets: the middle, away from the entry and exit transients, since minibatch
    gradients have a noise floor."""
    if end <= entry:
        return len(run.curve) - 1
    if not exact:
        return (entry + end) // 2
    return entry + int(np.argmin(run.history.grad_norms[entry:end]))


def _converged_checks(ctx: Context, runs: list[MarkovRun], name: str) -> list[Check]:
    """Training escapes the unigram point and ends at the entropy rate with the kernel's law.

    Where it ends is the theorem's ``trained_loss`` (= the entropy rate, an obligation). The
    kernel's law after x_n = 0 / 1 is ``next_after_0`` / ``next_after_1`` where the theorem
    publishes them (global minimum), else the kernel parameters p and 1-q themselves.
    """
    pred = ctx.prediction
    rate = pred.float("trained_loss")
    tolerance = _loss_tolerance(ctx, runs)
    finals = [run.final.mean for run in runs]
    p, q = _pq(ctx)
    last = [len(run.history.losses) - 1 for run in runs]
    lengths, threshold = _plateau_lengths(ctx, runs, pred.float("unigram_loss"),
                                          pred.float("entropy_rate"))
    if "next_after_0" in pred.closed_forms:
        law = (pred.float("next_after_0"), pred.float("next_after_1"))
        law_uses: tuple[tuple[str, ...], tuple[str, ...]] = (("next_after_0",),
                                                              ("next_after_1",))
    else:
        law, law_uses = (p, 1 - q), ((), ())
    return [
        close(f"{name}-final-population-loss-entropy-rate",
              f"{name}: final population loss = entropy rate", "training", rate,
              _worst(finals, rate), tolerance, per_seed=finals, uses=("trained_loss",),
              standard_errors=[run.final.standard_error for run in runs]),
        at_most(f"{name}-steps-with-loss-within-tolerance-of-h-pi",
                f"{name}: steps with loss within tolerance of H(pi)", "training",
                threshold - 1, float(max(lengths)),
                f"escapes without a trap: fewer than {PLATEAU_FRACTION:.0%} of the steps at "
                f"H(pi) ({_describe_band(tolerance, pred.float('unigram_loss'), rate)})",
                per_seed=lengths, uses=("unigram_loss", "entropy_rate")),
        *_prediction_checks(runs, ctx, *law, last, law_uses),
        _separation(ctx, tolerance),
    ]


def _plateau_lengths(ctx: Context, runs: list[MarkovRun], h_pi: float, rate: float
                     ) -> tuple[list[int], int]:
    """Per seed, the longest run of steps in the trap band of ``h_pi`` (entropy rate ``rate``);
    and the trap threshold."""
    band = _trap_band(_loss_tolerance(ctx, runs), h_pi, rate)
    lengths = [longest_plateau(run.curve, h_pi, band).length for run in runs]
    return lengths, math.ceil(PLATEAU_FRACTION * len(runs[0].curve))


def _control_check(
    ctx: Context, runs: list[MarkovRun], key: str, name: str, h_pi: float, rate: float,
    trap_predicted: bool
) -> Check:
    """Control: the theorem's prediction about the H(pi) plateau must fail for every seed.

    The statistic is the plateau length, not the final loss: at paper scale a trapped run
    eventually leaves the trap, so "where it ends" does not separate a trap from a saddle,
    "how long it sits at H(pi)" does.
    """
    lengths, threshold = _plateau_lengths(ctx, runs, h_pi, rate)
    band = _describe_band(_loss_tolerance(ctx, runs), h_pi, rate)
    if trap_predicted:  # the theorem says trapped; outside its assumptions it must not be
        return at_most(key, name, "control", threshold - 1, float(max(lengths)),
                       f"no trap: fewer than {PLATEAU_FRACTION:.0%} of the steps at H(pi) "
                       f"({band})", per_seed=lengths, uses=("unigram_loss", "entropy_rate"))
    return at_least(key, name, "control", threshold, float(min(lengths)),
                    f"a trap: at least {PLATEAU_FRACTION:.0%} of the steps at H(pi) ({band})",
                    per_seed=lengths, uses=("unigram_loss", "entropy_rate"))


def _largest_deviation(curve: np.ndarray, target: float, window: int) -> float:
    """``max |curve - target|`` over the points of ``curve`` that average a full window of
    ``window`` steps. A loss tolerance is sized for a full window: the first points of a
    trailing moving average average fewer batches (the first one is a single batch,
    ``sqrt(window)`` times noisier), so they are left out (all points when ``window = 1``)."""
    return float(np.max(np.abs(curve[min(window, len(curve)) - 1:] - target)))


def _global_training(ctx: Context) -> tuple[list[Check], list[Curve]]:
    p, q = _pq(ctx)
    rate = ctx.prediction.float("trained_loss")
    theta_star = (ctx.prediction.float("bigram_slope"), ctx.prediction.float("bigram_bias"))
    stable = _runs(ctx, p, q, tied=True, start=theta_star)
    escaped = _runs(ctx, p, q, tied=False)
    tolerance = _loss_tolerance(ctx, stable)
    window = BUDGETS[ctx.plan.budget].smoothing
    deviations = [_largest_deviation(run.curve, rate, window) for run in stable]
    checks = [
        *_nonfinite(stable + escaped, "global minimum"),
        at_most(f"tied-from-theta-noise-{STABILITY_NOISE:g}-max-loss-entropy-rate",
                f"tied, from theta_* + noise {STABILITY_NOISE:g}: max |loss - entropy rate|",
                "training", tolerance.bound(rate), max(deviations), tolerance.reason,
                per_seed=deviations, uses=("bigram_slope", "bigram_bias", "trained_loss"),
                **({"from_step": window} if window > 1 else {})),
        *_converged_checks(ctx, escaped, "untied from the paper's init"),
    ]
    curves = (_curves("global minimum: tied from theta_* + noise", "tied", stable, ctx)
              + _curves("global minimum: untied from the paper's init", "untied", escaped, ctx))
    return checks, curves


def _local_training(ctx: Context) -> tuple[list[Check], list[Curve]]:
    p, q = _pq(ctx)
    runs = _runs(ctx, p, q, tied=True)
    checks = _nonfinite(runs, "tied") or _plateau_checks(ctx, runs, "tied")
    return checks, _curves("local minimum: tied, p+q > 1", "tied", runs, ctx)


def _local_control(ctx: Context) -> tuple[list[Check], list[Curve]]:
    p, q = _pq(ctx)
    untied = _runs(ctx, p, q, tied=False)
    h_pi, rate = ctx.prediction.float("unigram_loss"), ctx.prediction.float("entropy_rate")
    mirrored = _mirrored_prediction(ctx)
    tied_mirror = _runs(ctx, 1 - p, 1 - q, tied=True)
    checks = [
        *_nonfinite(untied + tied_mirror, "control"),
        _control_check(ctx, untied, "untied-steps-at-h-pi",
                       "untied: steps with loss within tolerance of H(pi)", h_pi, rate,
                       trap_predicted=True),
        _control_check(ctx, tied_mirror, "tied-mirrored-steps-at-h-pi",
                       "tied at the mirrored point (1-p, 1-q), where p+q < 1: steps at H(pi)",
                       mirrored.float("unigram_loss"), mirrored.float("entropy_rate"),
                       trap_predicted=True),
    ]
    return checks, _curves("control: untied, same (p, q)", "untied", untied, ctx)


def _mirrored_prediction(ctx: Context):
    """The theorem's closed forms at the mirrored point (1-p, 1-q), where p+q-1 changes sign."""
    params = dict(ctx.plan.params)
    params["p"], params["q"] = 1 - sp.Rational(params["p"]), 1 - sp.Rational(params["q"])
    return ctx.plan.theorem.predict(params)


def _escape_training(tied: bool, title: str) -> Stage:
    """Training check of the saddle theorems: from the paper's init, reach the entropy rate."""
    label = "tied" if tied else "untied"

    def stage(ctx: Context) -> tuple[list[Check], list[Curve]]:
        p, q = _pq(ctx)
        runs = _runs(ctx, p, q, tied=tied)
        checks = _nonfinite(runs, label) or _converged_checks(ctx, runs, label)
        return checks, _curves(title, label, runs, ctx)

    return stage


def _tied_trap_control(ctx: Context) -> tuple[list[Check], list[Curve]]:
    """Control of the saddle theorems and of the global minimum's escape check: tied at
    p+q > 1 (the given point, or its mirror image (1-p, 1-q) when p+q < 1) the model is
    trapped at H(pi) instead of escaping, so "fewer than 20% of the steps at H(pi)" fails.

    The control needs a run that is trapped, and in the exact budgets (N = 8) that holds at
    ``d <= TRAP_CONTROL_D`` only (:data:`TRAP_CONTROL_D`), so there the control trains at
    ``min(d, TRAP_CONTROL_D)``: what it shows, that the escape check fails on a trapped run,
    is about the check (a count of steps near H(pi)), not about the width d that traps it."""
    p, q = _pq(ctx)
    d = int(ctx.plan.params["d"])
    if BUDGETS[ctx.plan.budget].exact:
        d = min(d, TRAP_CONTROL_D)
    if p + q > 1:
        prediction, where = ctx.prediction, "p+q > 1"
    else:
        p, q = 1 - p, 1 - q
        prediction = _mirrored_prediction(ctx)
        where = "at the mirrored point (1-p, 1-q), where p+q > 1"
    h_pi, rate = prediction.float("unigram_loss"), prediction.float("entropy_rate")
    runs = _runs(ctx, p, q, tied=True, d=d)
    at = "" if d == int(ctx.plan.params["d"]) else f" (d = {d})"
    checks = [*_nonfinite(runs, "control"),
              _control_check(ctx, runs, "tied-trap-steps-at-h-pi",
                             f"tied, {where}{at}: steps with loss within tolerance of "
                             "H(pi)", h_pi, rate, trap_predicted=False)]
    return checks, _curves(f"control: tied, {where}{at}", "tied", runs, ctx)


def _depth_bridge(ctx: Context) -> tuple[list[Check], list[Curve]]:
    """The deep model still has the unigram point: with e = 0 (tied) every layer's output is
    read through a = e = 0, so at b = ln(p/q) and any other weights the model predicts pi1, its
    population loss is H(pi) and its gradient vanishes; and the kernel's predictor attains the
    entropy rate."""
    p, q = _pq(ctx)
    pred = ctx.prediction
    config = MarkovTransformerConfig(int(ctx.plan.params["d"]), BRIDGE_N, True,
                                     n_layers=int(ctx.plan.params["layers"]))
    model = MarkovTransformer(config, torch.float64, ctx.device)
    model.set_unigram_point(pred.float("unigram_bias"), stream(ctx.device, 0, "generic member"))
    population = MarkovPopulation.build(p, q, BRIDGE_N, ctx.device, torch.float64)
    loss, probes = population.objective(model)
    loss.backward()  # stationary at any depth: every path to the loss passes a = e = 0 or
    # multiplies E[pi1 - x_{n+1}] = 0 (stationary start), so a wrong law or bias shows here
    gradient = float(torch.sqrt(sum((x.grad**2).sum() for x in model.parameters())))
    with torch.no_grad():
        kernel_loss = population.prefix_loss(torch.logit(population.prefix_next_one)).item()
    theta_pi = ("unigram_bias",)
    return [
        at_most("deep-model-gradient-norm-at-theta-pi",
                f"{config.n_layers} layers at theta_pi (random other weights): gradient norm",
                "bridge", BRIDGE_GRADIENT_BOUND, gradient,
                "float64 round-off of the exact gradient at a stationary point",
                uses=theta_pi),
        close("deep-model-at-theta-pi-random-other-weights-loss-h-pi",
              f"{config.n_layers} layers at theta_pi (random other weights): loss = H(pi)",
              "bridge", pred.float("unigram_loss"), loss.item(), BRIDGE_LOSS,
              uses=(*theta_pi, "unigram_loss")),
        *(close(f"deep-model-at-theta-pi-prediction-after-x-n-{x}-equals-pi1",
                f"{config.n_layers} layers at theta_pi: prediction after x_n = {x} equals pi1",
                "bridge", pred.float("stationary_one"), float(probes[f"after_{x}"]),
                BRIDGE_LOSS, uses=(*theta_pi, "stationary_one")) for x in (0, 1)),
        close("kernel-predictor-loss-entropy-rate",
              "loss of the kernel's predictor P(1 | x_n) = entropy rate", "bridge",
              pred.float("entropy_rate"), kernel_loss, BRIDGE_LOSS, uses=("entropy_rate",)),
    ], []


def _depth_training(ctx: Context) -> tuple[list[Check], list[Curve]]:
    """The depth experiment: the tied ``layers``-layer model from the paper's init ends at the
    entropy rate with the kernel's law, where one layer is trapped (p+q > 1)."""
    p, q = _pq(ctx)
    layers = int(ctx.plan.params["layers"])
    runs = _runs(ctx, p, q, tied=True, layers=layers)
    label = f"tied, {layers} layers"
    if failed := _nonfinite(runs, label):
        return failed, []
    rate = ctx.prediction.float("trained_loss")
    tolerance = _loss_tolerance(ctx, runs)
    finals = [run.final.mean for run in runs]
    last = [len(run.history.losses) - 1 for run in runs]
    checks = [
        close(f"{layers}-layers-final-population-loss-entropy-rate",
              f"{label}: final population loss = entropy rate", "training", rate,
              _worst(finals, rate), tolerance, per_seed=finals, uses=("trained_loss",),
              standard_errors=[run.final.standard_error for run in runs]),
        *_prediction_checks(runs, ctx, p, 1 - q, last),
        _separation(ctx, tolerance),
    ]
    return checks, _curves(f"depth: {label}, p+q > 1", label, runs, ctx)


def _depth_control(ctx: Context) -> tuple[list[Check], list[Curve]]:
    """Control of the depth experiment: one layer, same point, same seeds' init (layer 1 of
    the deeper model starts from the same weights), trapped at H(pi) by Theorem 2, so the
    training check "final loss = entropy rate" must fail there for every seed."""
    p, q = _pq(ctx)
    runs = _runs(ctx, p, q, tied=True)
    if failed := _nonfinite(runs, "one layer"):
        return failed, []
    rate = ctx.prediction.float("trained_loss")
    finals = [run.final.mean for run in runs]
    nearest = min(finals, key=lambda v: abs(v - rate))  # the seed closest to passing
    return [apart("one-layer-final-population-loss-misses-the-entropy-rate",
                  "one layer, same point: final population loss vs the entropy rate",
                  "control", rate, nearest, _loss_tolerance(ctx, runs), per_seed=finals,
                  uses=("trained_loss",))], _curves("control: one layer, same (p, q)",
                                                    "one layer", runs, ctx)


def phase_quantities(params: dict, budget: str, seeds: tuple[int, ...],
                     device: torch.device, cache: MutableMapping) -> dict[str, float]:
    """Where tied and untied training end at ``(p, q)``, for phase diagrams (any p + q).

    The position of the final loss between the entropy rate (0) and H(pi) (1), averaged over
    seeds, and the fraction of steps the loss spends at H(pi). H(pi) and the entropy rate come
    from the symbolic module; at ``p + q = 1`` they coincide and the position is undefined.
    """
    from theorems import markov

    if not all(0 < sp.Rational(params[name]) < 1 for name in ("p", "q")):
        return {}  # no Markov chain to train on: the point stays blank
    point = {markov.p: sp.Rational(params["p"]), markov.q: sp.Rational(params["q"])}
    h_pi = float(markov.unigram_entropy.subs(point))
    rate = float(markov.entropy_rate.subs(point))
    p, q = (float(sp.Rational(params[name])) for name in ("p", "q"))
    d = int(params["d"])
    quantities = {}
    for tied in (True, False):
        label = "tied" if tied else "untied"
        runs = train_seeds(p, q, d, tied, budget, seeds, device, cache)
        final = float(np.mean([run.final.mean for run in runs]))
        quantities[f"{label}: final loss, 0 = entropy rate, 1 = H(pi)"] = (
            (final - rate) / (h_pi - rate) if abs(h_pi - rate) > 1e-12 else math.nan)
        band = _trap_band(_budget_loss_tolerance(budget, runs), h_pi, rate)
        quantities[f"{label}: fraction of steps at H(pi)"] = float(np.mean(
            [longest_plateau(run.curve, h_pi, band).length / len(run.curve) for run in runs]))
    return quantities


def boundary_overlay(ax, x_name: str, y_name: str) -> None:
    """The theorems' boundary ``p + q = 1`` on a (p, q) heatmap."""
    if {x_name, y_name} == {"p", "q"}:
        ax.plot([0, 1], [1, 0], color="red", lw=1.2, ls="--", label="p + q = 1")
        ax.set_xlim(*ax.get_xlim())


_SWEEP = {"phase": phase_quantities, "overlay": boundary_overlay, "budgets": BUDGETS}

GLOBAL_MINIMA = Experiment(
    (_architecture_bridge, _global_bridge, _global_training, _tied_trap_control), **_SWEEP)
LOCAL_MINIMA = Experiment(
    (_architecture_bridge, lambda ctx: _unigram_bridge(ctx, True), _local_training,
     _local_control), **_SWEEP)
SADDLE_UNTIED = Experiment(
    (_architecture_bridge, lambda ctx: _unigram_bridge(ctx, False),
     _escape_training(False, "saddle (untied): escapes to the entropy rate"),
     _tied_trap_control), **_SWEEP)
TIED_SADDLE = Experiment(
    (_architecture_bridge, lambda ctx: _unigram_bridge(ctx, True),
     _escape_training(True, "tied saddle: p+q < 1 escapes"), _tied_trap_control), **_SWEEP)
DEPTH_ESCAPE = Experiment((_architecture_bridge, _depth_bridge, _depth_training,
                           _depth_control), budgets=BUDGETS)

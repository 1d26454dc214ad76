"""One trainer: AdamW with the paper's one-cycle schedule, seeded, with a progress callback.

Per-step values (loss, gradient norm, probes) stay on the device and are read back every
``sync_every`` steps, so a GPU run does no host work per step; a non-finite loss stops the run
at the first step where it appears.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from numerics.device import check_cancelled

Objective = Callable[[nn.Module], tuple[torch.Tensor, dict[str, torch.Tensor]]]
Progress = Callable[[int, int, float], None]


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser and schedule (defaults: Makkuva et al. (2024) reference code).

    Attributes
    ----------
    steps : int
        Number of optimiser steps.
    lr : float
        Peak learning rate of AdamW.
    betas : tuple[float, float]
        AdamW betas.
    weight_decay : float
        Applied to the attention/FFN matrices only (``model.matrices()``).
    optimizer : {"adamw", "sgd", "ngd", "lbfgs"}
        ``sgd`` is plain gradient descent (no momentum): a discretised gradient flow, for
        theorems about what gradient flow conserves. ``ngd`` is normalized gradient descent
        (:class:`NormalizedGD`). ``lbfgs`` (one iteration per step, with a strong Wolfe
        line search of at most :data:`LBFGS_LINE_SEARCH_EVALS` evaluations) is for
        deterministic objectives such as exact population losses.
    schedule : {"onecycle", "constant"}
        ``onecycle``: cosine one-cycle with 2% warm-up (none at exactly 50 steps, where it
        would be one step), start ``lr/100``, end ``lr/100 * 20``
        (the reference code's ``div_factor=100, final_div_factor=0.05``).
    sync_every : int
        Steps between reads of the loss on the host (progress and non-finite check).
    stop_below : float or None
        Stop at the first read loss ``<=`` this value (a loss floor plus a target gap).
    """

    steps: int
    lr: float = 2e-3
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 1e-3
    optimizer: str = "adamw"
    schedule: str = "onecycle"
    sync_every: int = 50
    stop_below: float | None = None

    @classmethod
    def lbfgs(cls, steps: int) -> TrainConfig:
        """``steps`` L-BFGS steps of unit length (the line search scales them), no schedule
        and no weight decay: the set-up for deterministic objectives."""
        return cls(steps=steps, lr=1.0, optimizer="lbfgs", schedule="constant",
                   weight_decay=0.0)


#: Fraction of the one-cycle schedule's steps spent warming up (the reference code's 2%).
WARM_UP = 0.02


class NormalizedGD(torch.optim.Optimizer):
    """Normalized gradient descent ``theta <- theta - lr g / ||g||`` (Huang et al., 2024).

    The norm is taken over all parameters of the optimizer together; a zero gradient leaves
    the parameters where they are.
    """

    def __init__(self, params, lr: float) -> None:
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None) -> None:
        """One normalized step (``closure`` is not used)."""
        grads = [p.grad for group in self.param_groups for p in group["params"]
                 if p.grad is not None]
        norm = _gradient_norm(grads, torch.Size())
        inverse = torch.where(norm > 0, 1 / norm, torch.zeros_like(norm))
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.sub_(group["lr"] * inverse * p.grad)


@dataclass(frozen=True)
class History:
    """What a training run produced.

    Attributes
    ----------
    losses : numpy.ndarray
        ``(steps_run,)`` training loss before each step.
    grad_norms : numpy.ndarray
        ``(steps_run,)`` Euclidean norm of the full gradient at each step.
    probes : dict[str, numpy.ndarray]
        ``(steps_run,)`` per probe returned by the objective.
    final_state : dict[str, torch.Tensor]
        Parameters after the last step (on the CPU).
        For an ensemble, arrays have a trailing member axis ``(steps_run, S)`` and
        ``final_state`` the stacked parameters; :meth:`member` splits one member off.
    wall_seconds : float
        Wall-clock time of the run.
    nonfinite_step : int or None
        First step whose loss was NaN or infinite (the run stopped there), else ``None``.
    """

    losses: np.ndarray
    grad_norms: np.ndarray
    probes: dict[str, np.ndarray]
    final_state: dict[str, torch.Tensor]
    wall_seconds: float
    nonfinite_step: int | None = None

    def then(self, other: History) -> History:
        """This run followed by ``other``, a second phase from where this one ended (an
        L-BFGS polish after Adam): per-step arrays joined, the second phase's end state; probes
        are kept only where both phases recorded them."""
        offset = len(self.losses)
        return History(np.concatenate((self.losses, other.losses)),
                       np.concatenate((self.grad_norms, other.grad_norms)),
                       {k: np.concatenate((v, other.probes[k])) for k, v in self.probes.items()
                        if k in other.probes},
                       other.final_state, self.wall_seconds + other.wall_seconds,
                       self.nonfinite_step if self.nonfinite_step is not None
                       else None if other.nonfinite_step is None
                       else offset + other.nonfinite_step)

    def member(self, index: int) -> History:
        """The history of member ``index`` of an ensemble run."""
        return History(self.losses[:, index], self.grad_norms[:, index],
                       {k: v[:, index] for k, v in self.probes.items()},
                       {k: v[index] for k, v in self.final_state.items()}, self.wall_seconds,
                       self.nonfinite_step)


#: Parameter dtypes of torch's fused AdamW kernel (complex parameters take the per-tensor one).
FUSED_ADAMW_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
#: The first torch release with a fused AdamW kernel for the CPU (CUDA has one since 2.0).
FUSED_ADAMW_CPU_SINCE = (2, 4)
#: Evaluations of the objective the L-BFGS line search may spend in one step (torch's own
#: default for the strong Wolfe search).
LBFGS_LINE_SEARCH_EVALS = 25


def fused_adamw_supported(params: list[torch.Tensor]) -> bool:
    """Whether torch's fused AdamW kernel takes ``params``: real dtypes, on CUDA or (from
    torch 2.4 on) the CPU. Decided before the optimiser is built: torch checks it only at
    the first step."""
    devices = {"cuda"} | ({"cpu"} if torch.__version__ >= FUSED_ADAMW_CPU_SINCE else set())
    return all(p.dtype in FUSED_ADAMW_DTYPES and p.device.type in devices for p in params)


def make_optimizer(
    model: nn.Module, config: TrainConfig
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """AdamW (or plain GD) with decay on ``model.matrices()`` only, and the schedule."""
    decayed = {id(p) for p in model.matrices()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in trainable if id(p) in decayed],
         "weight_decay": config.weight_decay},
        {"params": [p for p in trainable if id(p) not in decayed], "weight_decay": 0.0},
    ]
    groups = [group for group in groups if group["params"]]
    if config.optimizer == "adamw":
        # torch's fused kernel where it can: one pass over each parameter instead of about ten
        # per-parameter operations (50 us instead of 130 us per step for the Markov model's
        # nine parameters on the CPU), the same update to round-off
        optimizer = torch.optim.AdamW(groups, lr=config.lr, betas=config.betas,
                                      fused=fused_adamw_supported(trainable) or None)
    elif config.optimizer == "sgd":
        optimizer = torch.optim.SGD(groups, lr=config.lr)
    elif config.optimizer == "ngd":
        optimizer = NormalizedGD(groups, lr=config.lr)
    elif config.optimizer == "lbfgs":
        # tolerances at float64 round-off: the run's length is set by ``steps``, not by them;
        # the evaluations are counted explicitly: torch 2.13 gives the line search only what
        # is left of ``max_eval``, whose default for one iteration is one evaluation; the
        # line search then never ran, and the first trial step that did not lower the loss
        # left the run stuck at that point for good
        optimizer = torch.optim.LBFGS(trainable, lr=config.lr, max_iter=1,
                                      max_eval=1 + LBFGS_LINE_SEARCH_EVALS, tolerance_grad=0.0,
                                      tolerance_change=0.0, line_search_fn="strong_wolfe")
    else:
        raise ValueError(f"unknown optimizer {config.optimizer!r}")
    if config.schedule == "onecycle":
        # torch divides by the warm-up's length in steps minus one: zero for a one-step
        # warm-up (exactly 50 steps), which is left out
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.lr, total_steps=config.steps,
            pct_start=0.0 if config.steps * WARM_UP == 1 else WARM_UP,
            anneal_strategy="cos", div_factor=100.0, final_div_factor=0.05,
            cycle_momentum=False,
        )
    elif config.schedule == "constant":
        scheduler = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0)
    else:
        raise ValueError(f"unknown schedule {config.schedule!r}")
    return optimizer, scheduler


def _reevaluate(model: nn.Module, objective: Objective,
                optimizer: torch.optim.Optimizer) -> torch.Tensor:
    """The closure L-BFGS calls during its line search."""
    optimizer.zero_grad(set_to_none=True)
    loss, _ = objective(model)
    loss.backward()
    return loss


def _gradient_norm(grads: list[torch.Tensor], shape: torch.Size) -> torch.Tensor:
    """Euclidean norm of the full gradient ``grads``, per member when ``shape`` is ``(S,)``."""
    if not shape:
        return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    squares = [g.reshape(shape[0], -1).pow(2).sum(1) for g in grads]  # (S,) each
    return torch.sqrt(torch.stack(squares).sum(0))


def train(
    model: nn.Module,
    objective: Objective,
    config: TrainConfig,
    progress: Progress | None = None,
) -> History:
    """Train ``model`` on ``objective`` for ``config.steps`` steps.

    An ensemble (a model whose parameters carry a leading member axis, e.g.
    :class:`~numerics.models.markov_transformer.MarkovEnsemble`) returns a loss of shape
    ``(S,)``: the trainer steps on the sum (the members are independent under AdamW or GD),
    and records losses, probes and gradient norms per member, shape ``(steps, S)``.

    Parameters
    ----------
    model : nn.Module
        Must provide ``matrices()`` (the decayed weights).
    objective : Objective
        Called once per step with the model; returns the loss (a scalar, or ``(S,)`` for an
        ensemble) and probes of the same shape.
    config : TrainConfig
        Optimiser and schedule.
    progress : callable, optional
        ``progress(steps_done, steps_total, last_loss)``, called every ``config.sync_every``.

    Raises
    ------
    numerics.device.RunCancelled
        At a sync, when the run is a job of :func:`~numerics.device.run_concurrently` whose
        caller was interrupted or whose other job failed.
    """
    optimizer, scheduler = make_optimizer(model, config)
    params = [p for p in model.parameters() if p.requires_grad]
    device = params[0].device
    losses: torch.Tensor | None = None
    probes: dict[str, torch.Tensor] = {}
    start = time.perf_counter()
    nonfinite_step: int | None = None
    steps_run = 0
    for step in range(config.steps):
        optimizer.zero_grad(set_to_none=True)
        loss, probe_values = objective(model)
        if losses is None:  # (steps,) or (steps, S) for an ensemble
            if loss.ndim and config.optimizer in ("ngd", "lbfgs"):
                raise ValueError(f"{config.optimizer} couples the members of an ensemble; "
                                 "train them one by one")
            losses = torch.empty((config.steps, *loss.shape), dtype=torch.float64,
                                 device=device)
            grad_norms = torch.empty_like(losses)
        loss.sum().backward()
        losses[step] = loss.detach()
        grad_norms[step] = _gradient_norm([p.grad for p in params], loss.shape)
        for name, value in probe_values.items():
            probes.setdefault(name, torch.empty_like(losses))[step] = value.detach()
        if config.optimizer == "lbfgs":
            optimizer.step(lambda: _reevaluate(model, objective, optimizer))
        else:
            optimizer.step()
        scheduler.step()
        steps_run = step + 1
        if steps_run % config.sync_every == 0 or steps_run == config.steps:
            window = losses[steps_run - ((steps_run - 1) % config.sync_every) - 1 : steps_run]
            rows = window.reshape(len(window), -1)  # (window, members)
            finite = torch.isfinite(rows).all(1).cpu().numpy()
            if not finite.all():
                nonfinite_step = steps_run - len(window) + int(np.argmin(finite))
                steps_run = nonfinite_step + 1
                break
            if config.stop_below is not None:
                below = (rows <= config.stop_below).all(1)
                if bool(below.any()):
                    steps_run = steps_run - len(window) + int(torch.argmax(below.int())) + 1
                    break
            if progress is not None:
                progress(steps_run, config.steps, float(rows[-1].max()))
            check_cancelled()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall = time.perf_counter() - start
    return History(
        losses=losses[:steps_run].cpu().numpy(),
        grad_norms=grad_norms[:steps_run].cpu().numpy(),
        probes={k: v[:steps_run].cpu().numpy() for k, v in probes.items()},
        final_state={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        wall_seconds=wall,
        nonfinite_step=nonfinite_step,
    )

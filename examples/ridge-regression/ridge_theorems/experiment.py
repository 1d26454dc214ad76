"""The numeric side: a torch linear model at w* (bridge), trained by gradient descent (training),
and trained without the penalty (control: it must miss w*)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from numerics.train import TrainConfig, train
from ridge_theorems import theorem
from verify.compare import apart, at_most, close, divergence
from verify.records import Check, Context, Curve, Experiment, Tolerance

#: float64 round-off of sums of a few dozen O(1) terms.
BRIDGE = Tolerance(1e-12, "float64 round-off of the loss and gradient at the closed form")
#: Gradient descent with step 1/beta contracts the error by (1 - mu/beta) per step; the run is
#: long enough that this bound is below 1e-10, so what remains is round-off.
TRAINED = Tolerance(1e-8, "linear convergence of GD: (1 - mu/beta)^steps ||w*|| < 1e-10")


@dataclass(frozen=True)
class GDBudget:
    """Sizes of one budget (the docs show them as the training setup).

    Attributes
    ----------
    steps : int
        Full-batch gradient-descent steps of size 1/beta, float64; a training check confirms
        that the contraction bound of the tolerance holds for the requested design.
    """

    steps: int


BUDGETS = {"fast": GDBudget(steps=2000), "full": GDBudget(steps=20000)}


class LinearModel(nn.Module):
    """``x -> <w, x>`` with the weight ``w`` (``(d,)``) as its only parameter."""

    def __init__(self, d: int, dtype: torch.dtype, device: torch.device) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(d, dtype=dtype, device=device))

    def forward(self, X: torch.Tensor) -> torch.Tensor:  # (n, d) -> (n,)
        return X @ self.w

    def matrices(self) -> list[nn.Parameter]:
        """No weight decay from the optimiser: the penalty is part of the objective."""
        return []

    def set_point(self, w: np.ndarray) -> None:
        """Set ``w`` to the theorem's point."""
        with torch.no_grad():
            self.w.copy_(torch.as_tensor(w, dtype=self.w.dtype))


def _data(ctx: Context) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    n, d = int(ctx.plan.params["n"]), int(ctx.plan.params["d"])
    X, y = theorem.design(n, d)
    as_tensor = lambda m: torch.tensor(np.array(m, dtype=float), dtype=torch.float64,  # noqa: E731
                                       device=ctx.device)
    return as_tensor(X), as_tensor(y).reshape(-1), n, d


def _objective(X: torch.Tensor, y: torch.Tensor, lam: float):
    def objective(model: LinearModel):
        residual = model(X) - y
        return 0.5 * (residual**2).mean() + 0.5 * lam * (model.w**2).sum(), {}
    return objective


def _w_star(ctx: Context) -> np.ndarray:
    return np.array(ctx.prediction.value("w_star"), dtype=float).reshape(-1)


def _bridge(ctx: Context) -> tuple[list[Check], list[Curve]]:
    X, y, n, d = _data(ctx)
    lam = float(ctx.plan.params["lam"])
    model = LinearModel(d, torch.float64, ctx.device)
    model.set_point(_w_star(ctx))
    value, _ = _objective(X, y, lam)(model)
    (gradient,) = torch.autograd.grad(value, model.w)
    return [
        close("loss-at-w-star", "torch loss at w* = closed-form minimum", "bridge",
              ctx.prediction.float("min_loss"), float(value.detach()), BRIDGE,
              uses=("w_star", "min_loss")),
        at_most("gradient-at-w-star", "torch gradient norm at w*", "bridge", BRIDGE.atol,
                float(gradient.norm()), BRIDGE.reason, uses=("w_star",)),
    ], []


#: Eigenvalues of ``X^T X / n`` up to this fraction of the largest are its null space (float64
#: round-off of an eigendecomposition of O(1) entries is ~1e-15 of the largest).
RANK_CUTOFF = 1e-10


def _curvature(ctx: Context, lam: float) -> tuple[float, float]:
    """Smallest and largest eigenvalue (mu, beta) of the Hessian ``X^T X / n + lam I`` of the
    loss with penalty ``lam`` on the subspace gradient descent from 0 moves in.

    Every gradient ``X^T (X w - y) / n + lam w`` of a ``w`` in the row space of ``X`` lies in it,
    and so does ``w*``: from ``w = 0`` the error stays there, and contracts by ``1 - mu/beta``
    per step with ``mu`` the smallest eigenvalue there, ``lam`` plus the smallest non-zero
    eigenvalue of ``X^T X / n``. (The design's rank is at most 3; with ``d > 3`` the smallest
    eigenvalue on the whole space would be ``lam`` itself, a bound that at ``lam = 1/1000``
    needed 10^4 times the steps the run took to reach ``w*`` to round-off.)
    """
    X, _, n, _ = _data(ctx)
    eigenvalues = torch.linalg.eigvalsh(X.T @ X / n)
    row_space = eigenvalues[eigenvalues > RANK_CUTOFF * eigenvalues.max()]
    smallest = float(row_space.min()) if len(row_space) else 0.0
    return smallest + lam, float(eigenvalues.max()) + lam


def _train(ctx: Context, lam: float) -> tuple[LinearModel, object]:
    X, y, n, d = _data(ctx)
    _, beta = _curvature(ctx, lam)
    model = LinearModel(d, torch.float64, ctx.device)
    history = train(model, _objective(X, y, lam),
                    TrainConfig(steps=BUDGETS[ctx.plan.budget].steps, lr=1 / beta, optimizer="sgd",
                                schedule="constant"))
    return model, history


def _training(ctx: Context) -> tuple[list[Check], list[Curve]]:
    lam = float(ctx.plan.params["lam"])
    model, history = _train(ctx, lam)
    if failed := divergence(history, "gd", "gradient descent"):
        return failed, []
    error = float(np.abs(model.w.detach().cpu().numpy() - _w_star(ctx)).max())
    min_loss = ctx.prediction.float("min_loss")
    mu, beta = _curvature(ctx, lam)
    steps = BUDGETS[ctx.plan.budget].steps
    # ||w_k - w*||_2 <= (1 - mu/beta)^k ||w*||_2 from w_0 = 0, and max|w_k - w*| <= that
    contraction = (1 - mu / beta) ** steps * float(np.linalg.norm(_w_star(ctx)))
    return [
        at_most("gd-contraction-bound", "GD error bound (1 - mu/beta)^steps ||w*||", "training",
                TRAINED.atol / 100, contraction,
                "the run is long enough that the training tolerance covers round-off only",
                uses=("w_star",)),
        close("gd-reaches-w-star", "GD from 0: max |w - w*|", "training", 0.0, error, TRAINED,
              uses=("w_star",)),
        close("gd-final-loss", "GD from 0: final loss = closed-form minimum", "training",
              min_loss, float(history.losses[-1]), TRAINED, uses=("min_loss",)),
    ], [Curve("gradient descent on the ridge loss", "GD, step 1/beta",
              history.losses - min_loss, {}, "loss minus the minimum", "linear", "log")]


def _control(ctx: Context) -> tuple[list[Check], list[Curve]]:
    """Without the penalty (lambda = 0, outside the assumption lambda > 0) GD converges to the
    least-squares solution, which is not w*(lambda)."""
    model, history = _train(ctx, 0.0)
    error = float(np.abs(model.w.detach().cpu().numpy() - _w_star(ctx)).max())
    return [*divergence(history, "gd-unpenalised", "GD without penalty"),
            apart("unpenalised-misses-w-star", "GD on the loss without penalty: max |w - w*|",
                  "control", 0.0, error, TRAINED, uses=("w_star",))], []


GD_OPTIMUM = Experiment((_bridge, _training, _control), budgets=BUDGETS)

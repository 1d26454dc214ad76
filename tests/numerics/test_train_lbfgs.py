"""The L-BFGS optimiser of numerics.train on deterministic objectives, and a history of two
phases (Adam, then an L-BFGS polish)."""

import numpy as np
import torch
from torch import nn

from numerics.train import History, TrainConfig, train


class _Rosenbrock(nn.Module):
    """Rosenbrock's valley, its minimum 0 at (1, 1), from the classic start (-1.2, 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.x = nn.Parameter(torch.tensor([-1.2, 1.0], dtype=torch.float64))

    def matrices(self) -> list[nn.Parameter]:
        return []


def _rosenbrock(model: _Rosenbrock):
    x, y = model.x
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2, {}


def test_lbfgs_steps_search_their_line_and_reach_the_minimum():
    """Each step is one L-BFGS iteration with a line search: along the curved valley a trial
    step often raises the loss and the search has to shorten it. Torch's default evaluation
    budget for one iteration left no evaluation to the search, so the first such trial
    stopped the run where it was for every later step (the loss then never changed again)."""
    model = _Rosenbrock()
    history = train(model, _rosenbrock, TrainConfig.lbfgs(100))
    # Newton-like convergence: float64 round-off of the minimum, far below the start's 24.2
    assert history.losses[-1] < 1e-20
    assert torch.allclose(model.x.detach(), torch.ones(2, dtype=torch.float64), atol=1e-9)
    # no step raises the loss (the strong Wolfe search only accepts a decrease)
    assert (history.losses[1:] <= history.losses[:-1]).all()


def test_a_history_followed_by_a_second_phase_joins_its_steps():
    first = History(np.array([3.0, 2.0]), np.array([1.0, 0.5]), {"a": np.array([1.0, 2.0])},
                    {"w": torch.zeros(1)}, 1.5)
    second = History(np.array([1.0, float("nan")]), np.array([0.1, 0.2]), {},
                     {"w": torch.ones(1)}, 0.5, nonfinite_step=1)
    joined = first.then(second)
    assert joined.losses.tolist()[:3] == [3.0, 2.0, 1.0] and len(joined.grad_norms) == 4
    assert joined.probes == {} and joined.final_state["w"].item() == 1.0
    assert joined.wall_seconds == 2.0 and joined.nonfinite_step == 3
    assert first.then(first).nonfinite_step is None

"""The one-cycle schedule of numerics.train at every run length, the edge cases included."""

import pytest
import torch
from torch import nn

from numerics.train import TrainConfig, make_optimizer, train


class _Quadratic(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(3, dtype=torch.float64))

    def matrices(self) -> list[nn.Parameter]:
        return [self.w]


def _objective(model: _Quadratic):
    return (model.w ** 2).sum(), {}


@pytest.mark.parametrize("steps", [1, 2, 49, 50, 51, 100, 137])
def test_every_run_length_trains_and_follows_the_one_cycle_shape(steps):
    """50 steps once divided by zero inside torch's OneCycleLR (a one-step warm-up, now left
    out). Any length must train and never exceed the peak; from 10 steps on the run ends at
    the schedule's final lr/5; with a warm-up of more than one step it starts at lr/100 and
    reaches the peak, and without one (50 steps) it starts within 0.1% of the peak."""
    config = TrainConfig(steps=steps, lr=1e-2)
    optimizer, scheduler = make_optimizer(_Quadratic(), config)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert max(rates) <= config.lr * (1 + 1e-12)
    assert min(rates) >= config.lr / 100 * (1 - 1e-12)
    if steps >= 10:
        assert rates[-1] == pytest.approx(config.lr / 5, rel=0.05)
    if steps * 0.02 > 1:
        assert rates[0] == pytest.approx(config.lr / 100)
        assert max(rates) == pytest.approx(config.lr, rel=1e-3)
    if steps == 50:
        assert rates[0] == pytest.approx(config.lr, rel=1e-3)
    history = train(_Quadratic(), _objective, config)
    assert len(history.losses) == steps
    assert history.losses[-1] < history.losses[0] or steps == 1

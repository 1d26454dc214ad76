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


class _Mixed(nn.Module):
    """A decayed matrix and an undecayed vector, in the given dtype."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.W = nn.Parameter(torch.randn(3, 3, generator=gen).to(dtype))
        self.v = nn.Parameter(torch.randn(3, generator=gen).to(dtype))

    def matrices(self) -> list[nn.Parameter]:
        return [self.W]


def _mixed_objective(model: _Mixed):
    return (model.W @ model.v).abs().pow(2).sum() + model.v.abs().sum(), {}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.complex128])
def test_adamw_takes_the_fused_kernel_for_real_parameters_with_the_same_steps(dtype):
    """The trainer's AdamW is torch's fused kernel for real parameters (the per-tensor one for
    complex ones, which it does not support, and on the CPU before torch 2.4) and takes the
    per-tensor AdamW's steps, weight decay groups and schedule included, to round-off: 30
    steps agree to 100 eps of the parameters' size."""
    config = TrainConfig(steps=30, lr=1e-2, weight_decay=0.1)
    optimizer, scheduler = make_optimizer(_Mixed(dtype), config)
    cpu_kernel = torch.__version__ >= (2, 4)  # torch's version compares with a tuple
    assert bool(optimizer.defaults["fused"]) == (not dtype.is_complex and cpu_kernel)
    rates = []
    for _ in range(config.steps):  # the trainer's learning rates (steps without gradients)
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    trained, reference = _Mixed(dtype), _Mixed(dtype)
    train(trained, _mixed_objective, config)
    plain = torch.optim.AdamW(
        [{"params": [reference.W], "weight_decay": config.weight_decay},
         {"params": [reference.v], "weight_decay": 0.0}],
        lr=config.lr, betas=config.betas, foreach=False)
    for rate in rates:
        for group in plain.param_groups:
            group["lr"] = rate
        plain.zero_grad()
        _mixed_objective(reference)[0].backward()
        plain.step()
    eps = torch.finfo(trained.W.real.dtype).eps
    for name in ("W", "v"):
        got, want = getattr(trained, name).detach(), getattr(reference, name).detach()
        assert (got - want).abs().max() <= 100 * eps * want.abs().max(), name

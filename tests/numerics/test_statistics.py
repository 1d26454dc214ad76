"""Statistics of training runs: moving average, plateau, least-squares fit, mean and error."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from numerics.statistics import (
    LinearFit,
    Plateau,
    linear_fit,
    longest_plateau,
    mean_and_error,
    moving_average,
)

# ----------------------------------------------------------------------------- moving average


def test_moving_average_is_the_trailing_mean() -> None:
    values = np.random.default_rng(0).normal(size=200)
    window = 7
    smoothed, _ = moving_average(values, window)
    expected = [values[max(0, i - window + 1) : i + 1].mean() for i in range(len(values))]
    np.testing.assert_allclose(smoothed, expected, rtol=0, atol=1e-13)


def test_window_one_leaves_the_curve_alone() -> None:
    values = np.arange(5.0)
    smoothed, error = moving_average(values, 1)
    assert smoothed is values
    assert error == 0.0


def test_moving_average_error_of_iid_noise_is_sigma_over_sqrt_window() -> None:
    """i.i.d. N(0, sigma^2) noise: the estimate is sigma / sqrt(window).

    The estimate is std(diff) / sqrt(2 window). The n - 1 differences form an MA(1) series with
    lag-one correlation -1/2, so the relative standard error of their sample variance is
    sqrt((2 / n)(1 + 2 (1/2)^2)) = sqrt(3 / n), and of the standard deviation half of it:
    at n = 10^5 about 0.27%. The bound is 5 of those.
    """
    sigma, window, n = 0.3, 50, 100_000
    values = sigma * np.random.default_rng(1).normal(size=n)
    _, error = moving_average(values, window)
    relative = 5 * 0.5 * math.sqrt(3 / n)
    assert error == pytest.approx(sigma / math.sqrt(window), rel=relative)


def test_moving_average_error_ignores_a_linear_drift() -> None:
    """A drift adds a constant to every difference, which the standard deviation removes."""
    noise = np.random.default_rng(2).normal(size=5000)
    drift = 1e-3 * np.arange(5000)
    _, plain = moving_average(noise, 20)
    _, drifting = moving_average(noise + drift, 20)
    assert drifting == pytest.approx(plain, rel=1e-9)


# ----------------------------------------------------------------------------- plateau


def test_plateau_of_a_constructed_curve() -> None:
    """Steps 10..39 at the target (30 steps), a shorter visit at 50..59: the first is found."""
    curve = np.ones(70)
    curve[10:40] = 0.5 + 0.01 * np.sin(np.arange(30))  # inside the band 0.5 +- 0.02
    curve[50:60] = 0.5
    assert longest_plateau(curve, 0.5, 0.02) == Plateau(entry=10, exit=40, length=30)


def test_plateau_lasting_to_the_end_exits_at_the_length() -> None:
    curve = np.concatenate((np.full(5, 2.0), np.zeros(15)))
    assert longest_plateau(curve, 0.0, 0.1) == Plateau(5, 20, 15)


def test_plateau_band_edges_are_inside() -> None:
    curve = np.array([1.0, 1.25, 0.75, 2.0])
    assert longest_plateau(curve, 1.0, 0.25).length == 3


def test_no_plateau_and_ties() -> None:
    assert longest_plateau(np.ones(10), 0.0, 0.1) == Plateau(0, 0, 0)
    two = np.array([0.0, 0.0, 1.0, 0.0, 0.0])  # two runs of length 2: the first counts
    assert longest_plateau(two, 0.0, 0.1) == Plateau(0, 2, 2)


# ----------------------------------------------------------------------------- linear fit


def test_fit_recovers_a_noiseless_line() -> None:
    """Exact data: the slope up to float64 round-off of the least-squares solve, r^2 = 1."""
    x = np.arange(10, 110, dtype=float)
    fit = linear_fit(x, -0.75 * x + 3.0)
    assert isinstance(fit, LinearFit)
    assert fit.slope == pytest.approx(-0.75, rel=1e-12)
    assert fit.r_squared == pytest.approx(1.0, abs=1e-12)


def test_fit_r_squared_is_the_squared_correlation() -> None:
    """For a least-squares line r^2 equals corr(x, y)^2, with or without noise."""
    rng = np.random.default_rng(3)
    x = rng.uniform(size=500)
    for scale in (0.1, 1.0, 10.0):
        y = 2.0 * x + scale * rng.normal(size=500)
        slope, r_squared = linear_fit(x, y)
        assert r_squared == pytest.approx(np.corrcoef(x, y)[0, 1] ** 2, rel=1e-10)
        assert 0.0 <= r_squared <= 1.0
    assert slope == pytest.approx(np.cov(x, y)[0, 1] / np.var(x, ddof=1), rel=1e-10)


# ----------------------------------------------------------------------------- mean and error


def test_mean_and_error_of_known_values() -> None:
    """1, 2, 3, 4: mean 5/2, sample variance 5/3 (n - 1 = 3), error sqrt(5/3) / 2."""
    values = np.array([1.0, 2.0, 3.0, 4.0])
    for data in (values, torch.tensor(values)):
        mean, error = mean_and_error(data)
        assert mean == pytest.approx(2.5, rel=1e-15)
        assert error == pytest.approx(math.sqrt(5 / 3) / 2, rel=1e-15)
        assert isinstance(mean, float) and isinstance(error, float)


def test_mean_and_error_agree_for_numpy_and_torch() -> None:
    values = np.random.default_rng(4).exponential(size=1000)
    numpy_result = mean_and_error(values)
    torch_result = mean_and_error(torch.tensor(values))
    assert numpy_result == pytest.approx(torch_result, rel=1e-12)


def test_standard_error_of_iid_samples_is_sigma_over_sqrt_n() -> None:
    """The sample standard deviation of n = 10^5 normals has relative error 1/sqrt(2n) ~ 0.22%;
    the bound is 5 of those."""
    sigma, n = 2.0, 100_000
    _, error = mean_and_error(sigma * np.random.default_rng(5).normal(size=n))
    assert error == pytest.approx(sigma / math.sqrt(n), rel=5 / math.sqrt(2 * n))

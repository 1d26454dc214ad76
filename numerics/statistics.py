"""Statistics of training runs and Monte Carlo samples (numpy only).

Smoothing a sampled loss curve with the standard error of a smoothed point estimated from the
curve itself, the longest plateau of a curve inside a band, a least-squares line with its
coefficient of determination, the mean of per-sample values with its standard error, and the
sandwich covariance of a function of a minimiser fitted to a finite sample.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    import torch


def moving_average(values: np.ndarray, window: int) -> tuple[np.ndarray, float]:
    """Trailing moving average and the standard error of one averaged point.

    Point ``i`` is the mean of ``values[max(0, i - window + 1) : i + 1]`` (the first
    ``window - 1`` points average what there is). The error is estimated from the data: the
    standard deviation of the step-to-step differences divided by ``sqrt(2)`` is the per-step
    noise (a slow drift cancels in the differences), and the average of ``window``
    independent batches divides it by ``sqrt(window)``.

    Parameters
    ----------
    values : numpy.ndarray
        ``(steps,)`` the curve, e.g. minibatch losses (independent noise from step to step).
    window : int
        Points per average; ``window <= 1`` returns ``values`` unchanged with error 0.

    Returns
    -------
    smoothed : numpy.ndarray
        ``(steps,)`` the trailing averages.
    standard_error : float
        Standard error of one smoothed point (a full window).
    """
    if window <= 1:
        return values, 0.0
    kernel = np.ones(window) / window
    smoothed = np.convolve(values, kernel, mode="full")[: len(values)]
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    smoothed = smoothed * window / counts
    noise = float(np.std(np.diff(values)) / math.sqrt(2))
    return smoothed, noise / math.sqrt(window)


class Plateau(NamedTuple):
    """A run of consecutive steps of a curve.

    Attributes
    ----------
    entry : int
        First step of the run.
    exit : int
        First step after the run (the curve's length when it lasts to the end).
    length : int
        ``exit - entry`` (0 when there is no run: then ``entry = exit = 0``).
    """

    entry: int
    exit: int
    length: int


def longest_plateau(curve: np.ndarray, target: float, band: float) -> Plateau:
    """Longest run of steps with ``|curve - target| <= band``.

    Of several runs of the same length the first counts.

    Parameters
    ----------
    curve : numpy.ndarray
        ``(steps,)`` values, e.g. a loss curve.
    target : float
        Level of the plateau.
    band : float
        Half-width of the band around ``target``.
    """
    inside = np.abs(curve - target) <= band
    best = Plateau(0, 0, 0)
    start = None
    for step, flag in enumerate(np.append(inside, False)):
        if flag and start is None:
            start = step
        elif not flag and start is not None:
            if step - start > best.length:
                best = Plateau(start, step, step - start)
            start = None
    return best


class LinearFit(NamedTuple):
    """A least-squares line ``y ~ slope x + intercept`` and how well it fits.

    Attributes
    ----------
    slope : float
    r_squared : float
        Coefficient of determination ``1 - var(residual) / var(y)`` (1 for a perfect line).
    """

    slope: float
    r_squared: float


def linear_fit(x: np.ndarray, y: np.ndarray) -> LinearFit:
    """Least-squares slope of ``y`` on ``x`` and its coefficient of determination ``r^2``.

    Parameters
    ----------
    x, y : numpy.ndarray
        ``(n,)`` abscissae and values, e.g. steps and log losses (a rate of convergence).
    """
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    return LinearFit(float(slope), float(1 - residual.var() / y.var()))


def mean_and_error(per_sample: np.ndarray | torch.Tensor) -> tuple[float, float]:
    """Mean of independent per-sample values and its standard error ``s / sqrt(n)``.

    ``s`` is the sample standard deviation with Bessel's correction (``n - 1`` degrees of
    freedom), for a numpy array as for a torch tensor (whose ``std`` is computed by torch).

    Parameters
    ----------
    per_sample : numpy.ndarray or torch.Tensor
        ``(n,)`` real values, one per independent sample (``n >= 2``).

    Returns
    -------
    mean : float
    standard_error : float
    """
    n = per_sample.shape[0]
    if isinstance(per_sample, np.ndarray):
        return float(per_sample.mean()), float(per_sample.std(ddof=1)) / math.sqrt(n)
    return per_sample.mean().item(), per_sample.std().item() / math.sqrt(n)


def sandwich_covariance(score_covariance: np.ndarray, hessian: np.ndarray,
                        jacobian: np.ndarray, n: int, rtol: float = 1e-10) -> np.ndarray:
    """Covariance of ``f(theta_n)``, ``theta_n`` the minimiser of the mean of ``n`` independent
    per-sample losses, by the sandwich formula ``J H^+ S H^+ J^T / n`` (Huber, 1967; White,
    1980): ``H`` the Hessian of the mean loss at ``theta_n``, ``S`` the covariance of the
    per-sample gradients there, ``J`` the Jacobian of ``f``. It needs no model of the noise:
    the spread of the gradients is measured on the sample itself.

    The pseudo-inverse drops the null directions of ``H`` (eigenvalues below ``rtol`` times
    the largest): a reparametrisation the loss does not see, such as ``V -> c V, Q -> Q / c``
    for a product ``VQ``, along which ``f`` must be constant (``J`` annihilates them).

    Parameters
    ----------
    score_covariance : numpy.ndarray
        ``S``, ``(p, p)``.
    hessian : numpy.ndarray
        ``H``, ``(p, p)``, symmetric.
    jacobian : numpy.ndarray
        ``J``, ``(k, p)``.
    n : int
        Samples the loss averages.
    rtol : float
        Relative cut-off of the pseudo-inverse.

    Returns
    -------
    numpy.ndarray
        ``(k, k)``.
    """
    inverse = np.linalg.pinv(hessian, rtol, hermitian=True)  # rcond (numpy 1.26), rtol (2.x)
    bread = jacobian @ inverse
    return bread @ score_covariance @ bread.T / n

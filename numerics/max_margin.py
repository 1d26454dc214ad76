"""Max-margin problems of next-token prediction, solved numerically with cvxpy (Clarabel).

These are the hard-margin SVMs of Huang, Liang, Yang (2024) for general embeddings, where no
closed form exists, and the solver cross-check of the exact solutions in ``theorems.ntp``.
cvxpy's default conic solver (Clarabel, an interior-point method) stops at relative gaps of
about 1e-8, so solutions are accurate to about 1e-6 in the entries.
"""

from __future__ import annotations

from dataclasses import dataclass

import cvxpy as cp
import numpy as np


@dataclass(frozen=True)
class QPSolution:
    """A solved least-distance problem ``min ||s||^2`` s.t. ``A s >= 1``.

    Attributes
    ----------
    solution : numpy.ndarray
        The minimiser (a vector, or a ``(d, d)`` matrix for the feed-forward problem).
    constraints : numpy.ndarray
        ``(m, n)`` the rows of ``A`` acting on the flattened solution.
    duals : numpy.ndarray
        ``(m,)`` multipliers in the convention ``s = A^T lambda`` (the problem
        ``min 1/2 ||s||^2``); cvxpy's duals of ``min ||s||^2`` are twice these.
    """

    solution: np.ndarray
    constraints: np.ndarray
    duals: np.ndarray

    def kkt_residuals(self) -> dict[str, float]:
        """Worst violation of each KKT condition (all 0 at an exact optimum)."""
        s = self.solution.reshape(-1)
        margins = self.constraints @ s
        return {
            "feasibility": float(max(0.0, 1.0 - margins.min())) if len(margins) else 0.0,
            "dual feasibility": float(max(0.0, -self.duals.min())) if len(margins) else 0.0,
            "stationarity": float(np.abs(s - self.constraints.T @ self.duals).max()),
            "complementary slackness": float(np.abs(self.duals * (margins - 1)).max())
            if len(margins) else 0.0,
        }


def _least_distance(constraints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = cp.Variable(constraints.shape[1])
    margin = constraints @ s >= 1
    cp.Problem(cp.Minimize(cp.sum_squares(s)), [margin]).solve()
    return np.asarray(s.value), np.asarray(margin.dual_value) / 2


def attention_column(K: int, compared: np.ndarray) -> QPSolution:
    """One query's attention SVM with one-hot embeddings.

    Parameters
    ----------
    K : int
        Vocabulary size.
    compared : numpy.ndarray
        ``(K, K)`` boolean: ``compared[g, x]`` when a training sentence of this query has
        greatest token ``g`` and contains ``x`` (constraint ``s_g - s_x >= 1``).
    """
    pairs = np.argwhere(compared)
    if not len(pairs):
        return QPSolution(np.zeros(K), np.zeros((0, K)), np.zeros(0))
    A = np.zeros((len(pairs), K))
    A[np.arange(len(pairs)), pairs[:, 0]] = 1.0
    A[np.arange(len(pairs)), pairs[:, 1]] = -1.0
    scores, duals = _least_distance(A)
    return QPSolution(scores, A, duals)


def feedforward(embeddings: np.ndarray, collocation: np.ndarray) -> QPSolution:
    """``W_ov* = argmin ||W||_F`` s.t. ``(e_n(x) - e_v)^T W e_x >= 1`` for all ``x, v != n(x)``.

    Parameters
    ----------
    embeddings : numpy.ndarray
        ``(d, K)`` columns ``e_v`` (any, e.g. Gaussian).
    collocation : numpy.ndarray
        ``(K,)`` the permutation ``n``.
    """
    d, K = embeddings.shape
    x, v = np.nonzero(np.arange(K)[None, :] != collocation[:, None])  # x, v != n(x)
    difference = embeddings[:, collocation[x]] - embeddings[:, v]  # (d, m)
    # (e_n - e_v)^T W e_x = <(e_n - e_v) e_x^T, W>: one row per constraint on vec(W) (row-major)
    A = np.einsum("im,jm->mij", difference, embeddings[:, x]).reshape(len(x), d * d)
    solution, duals = _least_distance(A)
    return QPSolution(solution.reshape(d, d), A, duals)

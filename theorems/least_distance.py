"""Exact least-distance programming in rational arithmetic (Lawson and Hanson, 1974, ch. 23).

:func:`max_margin_column` solves ``argmin ||s||`` s.t. ``s_g - s_x >= 1`` for a set of pairs
``(g, x)`` exactly: the least-distance problem is reduced to non-negative least squares, which
the active-set algorithm NNLS solves on sympy ``DomainMatrix`` over the rationals, where it
terminates finitely. The result carries the KKT multipliers, so a caller can prove optimality
by exact KKT conditions instead of trusting the solver.

With one-hot embeddings the attention SVM of next-token prediction (Huang, Liang, Yang,
NeurIPS 2024, arXiv 2409.17335) splits into one such problem per query column; that is how
:mod:`theorems.ntp` uses this module, which knows nothing of theorems.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import sympy as sp
from sympy.polys.domains import QQ
from sympy.polys.matrices import DomainMatrix


def _nnls(E: DomainMatrix, f: DomainMatrix) -> list:
    """Exact non-negative least squares ``min ||E u - f||, u >= 0`` (Lawson and Hanson, 1974,
    Algorithm NNLS of ch. 23), in rational arithmetic, where it terminates finitely."""
    m = E.shape[1]
    rows = list(range(E.shape[0]))
    u = [QQ(0)] * m
    passive: list[int] = []
    Et = E.transpose()
    while True:
        residual = f - E * DomainMatrix([[v] for v in u], (m, 1), QQ)
        w = [row[0] for row in (Et * residual).to_list()]
        free = [j for j in range(m) if j not in passive and w[j] > 0]
        if not free:
            return u
        passive.append(max(free, key=lambda j: w[j]))
        while True:
            E_p = E.extract(rows, passive)
            z = [row[0] for row in (E_p.transpose() * E_p).lu_solve(E_p.transpose() * f)
                 .to_list()]
            if all(v > 0 for v in z):
                u = [QQ(0)] * m
                for j, v in zip(passive, z, strict=True):
                    u[j] = v
                break
            alpha = min(u[j] / (u[j] - v) for j, v in zip(passive, z, strict=True) if v <= 0)
            for j, v in zip(passive, z, strict=True):
                u[j] = u[j] + alpha * (v - u[j])
            passive = [j for j in passive if u[j] > 0]


@dataclass(frozen=True)
class MaxMarginColumn:
    """Exact solution of one query's least-distance problem.

    Attributes
    ----------
    scores : tuple[sympy.Rational, ...]
        ``s_q(x) = W*[x, q]`` for every token.
    duals : dict[tuple[int, int], sympy.Rational]
        KKT multiplier of each constraint ``s_g - s_x >= 1``.
    """

    scores: tuple[sp.Rational, ...]
    duals: dict[tuple[int, int], sp.Rational]


@cache
def max_margin_column(K: int, pairs: frozenset[tuple[int, int]]) -> MaxMarginColumn:
    """``argmin ||s||`` s.t. ``s_g - s_x >= 1`` for ``(g, x)`` in ``pairs``, exactly.

    Least-distance programming via NNLS (Lawson and Hanson, 1974, ch. 23): with
    ``E = [G^T; h^T]`` and ``f = e_{K+1}`` the NNLS solution ``u`` gives
    ``s = G^T u / (1 - h^T u)`` and the KKT multipliers ``u / (1 - h^T u)``.
    """
    if not pairs:
        return MaxMarginColumn(tuple(sp.Integer(0) for _ in range(K)), {})
    order = sorted(pairs)
    columns = []
    for g, x in order:
        column = [QQ(0)] * (K + 1)
        column[g], column[x], column[K] = QQ(1), QQ(-1), QQ(1)
        columns.append(column)
    E = DomainMatrix([list(r) for r in zip(*columns, strict=True)], (K + 1, len(order)), QQ)
    f = DomainMatrix([[QQ(0)]] * K + [[QQ(1)]], (K + 1, 1), QQ)
    u = _nnls(E, f)
    scale = 1 - sum(u, QQ(0))
    scores = [QQ(0)] * K
    for (g, x), v in zip(order, u, strict=True):
        scores[g] += v / scale
        scores[x] -= v / scale
    return MaxMarginColumn(tuple(QQ.to_sympy(s) for s in scores),
                           {p: QQ.to_sympy(v / scale) for p, v in zip(order, u, strict=True)})

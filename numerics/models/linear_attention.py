"""Linear-attention models of Sander et al. (2024): real ``nn.Module`` heads on complex tokens.

Parameters are real tensors; the data are complex (see :mod:`numerics.data.orthogonal`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from numerics.statistics import sandwich_covariance


class LinearAttention(nn.Module):
    """What the linear-attention heads share: real parameters, no weight decay, Gaussian init."""

    def matrices(self) -> list[nn.Parameter]:
        """Weights subject to weight decay (none: the theorems' losses have no penalty)."""
        return []

    def reset_parameters(self, generator: torch.Generator, std: float) -> None:
        """Every parameter i.i.d. ``N(0, std^2)``, drawn in order from one generator."""
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.copy_(std * torch.randn(parameter.shape, generator=generator,
                                                  device=parameter.device, dtype=parameter.dtype))


class BlockLinearAttention(LinearAttention):
    """One linear-attention head (no softmax) on augmented tokens ``e_t = (0, s_t, s_{t-1})``.

    The key-query matrix ``M`` (``3d x 3d``) is restricted to its block (3, 2) ``= Q`` (pairing
    ``s_{t-1}`` of the key with ``s_T`` of the query) and the value matrix to its block
    (1, 2) ``= V`` (reading ``s_t`` into the output block); the prediction of ``s_{T+1}`` is
    the first block of ``sum_{t<=T} (e_t^* M e_T) W_V e_t``, i.e.
    ``V sum_{t=1}^{T} s_t (s_{t-1}^* Q s_T)``.
    """

    def __init__(self, d: int, dtype: torch.dtype = torch.float64,
                 device: torch.device | None = None) -> None:
        super().__init__()
        self.d = d
        self.V = nn.Parameter(torch.zeros(d, d, dtype=dtype, device=device))
        self.Q = nn.Parameter(torch.zeros(d, d, dtype=dtype, device=device))

    def set_scalar_step(self, step: float) -> None:
        """Set ``V = I``, ``Q = step I``: the head is one gradient step of size ``step`` on
        ``L_T(W) = 1/2 sum_t ||s_t - W s_{t-1}||^2`` from ``W_0 = 0`` (Sander et al., 2024,
        augmented-token theorem; the optimum is ``step = eta* = 1 / (T + d - 1)``)."""
        with torch.no_grad():
            self.V.copy_(torch.eye(self.d, dtype=self.V.dtype, device=self.V.device))
            self.Q.copy_(step * torch.eye(self.d, dtype=self.Q.dtype, device=self.Q.device))

    def key_query(self) -> torch.Tensor:
        """The full ``3d x 3d`` key-query matrix with the block structure."""
        d = self.d
        M = torch.zeros(3 * d, 3 * d, dtype=self.Q.dtype, device=self.Q.device)
        M[2 * d :, d : 2 * d] = self.Q
        return M

    def value(self) -> torch.Tensor:
        """The full ``3d x 3d`` value matrix with the block structure."""
        d = self.d
        W = torch.zeros(3 * d, 3 * d, dtype=self.V.dtype, device=self.V.device)
        W[:d, d : 2 * d] = self.V
        return W

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        """Predict ``s_{T+1}`` from ``s_0..s_T``.

        Parameters
        ----------
        s : torch.Tensor
            Complex, ``(B, T+1, d)``.

        Returns
        -------
        torch.Tensor
            Complex, ``(B, d)``.
        """
        previous = torch.cat((torch.zeros_like(s[:, :1]), s[:, :-1]), dim=1)  # s_{t-1}, s_{-1}=0
        tokens = torch.cat((torch.zeros_like(s), s, previous), dim=-1)  # (B, T+1, 3d)
        M, W = self.key_query().to(s.dtype), self.value().to(s.dtype)
        query = tokens[:, -1] @ M.T  # (B, 3d): M e_T
        scores = torch.einsum("btk,bk->bt", tokens.conj(), query)  # e_t^* M e_T
        output = torch.einsum("bt,btk->bk", scores, tokens @ W.T)  # (B, 3d)
        return output[:, : self.d]

    def squared_errors(self, s: torch.Tensor) -> torch.Tensor:
        """Per-sequence squared error ``||s_hat_{T+1} - s_{T+1}||^2`` of the last token.

        The mean over sequences estimates the population loss of the augmented-token theorem
        (Sander et al., 2024).

        Parameters
        ----------
        s : torch.Tensor
            Complex, ``(B, T+2, d)``: the context ``s_0..s_T`` and the target ``s_{T+1}``.

        Returns
        -------
        torch.Tensor
            Real, ``(B,)``.
        """
        T = s.shape[1] - 2
        return (self(s[:, : T + 1]) - s[:, T + 1]).abs().pow(2).sum(-1)

    def sequence_gradients(self, s: torch.Tensor) -> torch.Tensor:
        """Per-sequence gradient of :meth:`squared_errors` in ``(V, Q)``, flattened.

        With ``s_hat_j = sum_{abc} V_{ja} Q_{bc} X_{abc}`` (:meth:`features`) and the error
        ``e = s_hat - s_{T+1}``: ``d/dV_{ja} = 2 Re conj(e_j) sum_{bc} Q_{bc} X_{abc}`` and
        ``d/dQ_{bc} = 2 Re sum_{ja} conj(e_j) V_{ja} X_{abc}``.

        Parameters
        ----------
        s : torch.Tensor
            Complex, ``(B, T+2, d)``: contexts and targets.

        Returns
        -------
        torch.Tensor
            Real, ``(B, 2 d^2)``: the ``V`` entries then the ``Q`` entries, row-major.
        """
        X = self.features(s[:, :-1])
        V, Q = self.V.detach().to(X.dtype), self.Q.detach().to(X.dtype)
        by_query = torch.einsum("bc,nabc->na", Q, X)  # (B, d): sum_bc Q_bc X_abc
        error = (by_query @ V.T - s[:, -1]).conj()  # (B, d): conj(e_j)
        grad_V = 2 * (error[:, :, None] * by_query[:, None, :]).real
        grad_Q = 2 * torch.einsum("nj,ja,nabc->nbc", error, V, X).real
        return torch.cat((grad_V.flatten(1), grad_Q.flatten(1)), 1)

    @staticmethod
    def features(s: torch.Tensor) -> torch.Tensor:
        """``X_{abc} = sum_{t=1}^{T} s_{t,a} conj(s_{t-1,b}) s_{T,c}`` of each context, so that
        the head's output is ``sum_{a,b,c} V_{ja} Q_{bc} X_{abc}`` (the forward pass written as
        a linear map of ``V (x) Q``).

        Parameters
        ----------
        s : torch.Tensor
            ``(B, T+1, d)``: the contexts ``s_0..s_T``.

        Returns
        -------
        torch.Tensor
            ``(B, d, d, d)``, the dtype of ``s``.
        """
        return torch.einsum("bta,btc->bac", s[:, 1:], s[:, :-1].conj())[..., None] \
            * s[:, -1, None, None, :]


@dataclass(frozen=True)
class BlockMoments:
    """Second moments of a fixed set of sequences that give the block head's mean squared error
    ``(1/n) sum_i ||s_hat_{T+1}^{(i)} - s_{T+1}^{(i)}||^2`` for every ``(V, Q)``.

    The output is linear in ``K_j = V_{j.} (x) Q`` (:meth:`BlockLinearAttention.features`), and
    ``V, Q`` are real, so the mean squared error is the quadratic form
    ``sum_j K_j^T G K_j - 2 K_j^T r_j + m`` with ``G = Re mean X X^*``,
    ``r_j = Re mean X conj(y_j)``, ``m = mean ||y||^2``: the same number as the mean over the
    set, up to float64 round-off, at a cost per evaluation that does not grow with ``n``
    (full-batch training on a fixed set, as in the augmented-token experiments of
    Sander et al., 2024).

    Attributes
    ----------
    gram : torch.Tensor
        ``G``, real ``(d^3, d^3)``.
    cross : torch.Tensor
        ``r``, real ``(d, d^3)``.
    target : torch.Tensor
        ``m``, a real scalar.
    """

    gram: torch.Tensor
    cross: torch.Tensor
    target: torch.Tensor

    @classmethod
    def of(cls, s: torch.Tensor) -> BlockMoments:
        """The moments of the sequences ``s`` (``(n, T+2, d)``: contexts and targets)."""
        n, d = s.shape[0], s.shape[-1]
        X = BlockLinearAttention.features(s[:, :-1]).reshape(n, d**3)
        y = s[:, -1]
        return cls((X.T @ X.conj()).real / n, (y.conj().T @ X).real / n,
                   y.abs().pow(2).sum() / n)

    def loss(self, model: BlockLinearAttention) -> torch.Tensor:
        """The mean squared error of ``model`` over the set (differentiable in ``V, Q``)."""
        return self.loss_at(model.V, model.Q)

    def loss_at(self, V: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:
        """The mean squared error of the head with value ``V`` and query-key ``Q`` (``d x d``)."""
        K = (V[:, :, None, None] * Q[None, None]).reshape(len(V), -1)
        return ((K @ self.gram) * K).sum() - 2 * (K * self.cross).sum() + self.target


#: Sequences per chunk of :func:`vq_standard_errors` (``d^3`` complex features each: 128 MiB
#: of them at d = 10).
ERROR_CHUNK = 8192


def vq_standard_errors(model: BlockLinearAttention, s: torch.Tensor,
                       moments: BlockMoments) -> np.ndarray:
    """Standard errors of the entries of ``VQ`` of a head fitted to the ``n`` sequences ``s``
    (the minimiser of their mean squared error, whose moments are ``moments``), by the sandwich
    formula (:func:`~numerics.statistics.sandwich_covariance`): how far the minimiser of
    another draw of ``n`` sequences would lie. The Hessian is that of
    :meth:`BlockMoments.loss` in ``(V, Q)``, the gradients' covariance is accumulated over
    chunks of :data:`ERROR_CHUNK` sequences.

    Returns
    -------
    numpy.ndarray
        ``(d, d)``.
    """
    d, n = model.d, len(s)
    total, products = 0.0, 0.0
    for start in range(0, n, ERROR_CHUNK):
        gradients = model.sequence_gradients(s[start:start + ERROR_CHUNK])
        total = total + gradients.sum(0)
        products = products + gradients.T @ gradients
    mean = total / n
    covariance = (products - n * torch.outer(mean, mean)) / (n - 1)

    def split(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return theta[:d * d].reshape(d, d), theta[d * d:].reshape(d, d)

    theta = torch.cat((model.V.detach().flatten(), model.Q.detach().flatten()))
    hessian = torch.autograd.functional.hessian(lambda t: moments.loss_at(*split(t)), theta)
    jacobian = torch.autograd.functional.jacobian(
        lambda t: (split(t)[0] @ split(t)[1]).flatten(), theta)
    variances = np.diag(sandwich_covariance(covariance.cpu().numpy(), hessian.cpu().numpy(),
                                            jacobian.cpu().numpy(), n))
    return np.sqrt(np.clip(variances, 0.0, None)).reshape(d, d)


class DiagonalLinearAttention(LinearAttention):
    """``H`` heads with diagonal query-key ``diag(a_h)`` and value ``diag(b_h)``, positional
    weights ``P``, query the previous token (Sander et al., non-augmented setting).

    Row ``t`` (context ``s_0..s_t``, ``t = 1..T``) predicts
    ``s_hat_{t+1,j} = sum_{k<=t} P_{t,k} sum_h b_{h,j} (sum_l a_{h,l} conj(s_{t-1,l}) s_{k,l})
    s_{k,j}``. Only ``C = B^T A`` and ``P`` enter the loss.
    """

    def __init__(self, d: int, heads: int, T: int, dtype: torch.dtype = torch.float64,
                 device: torch.device | None = None) -> None:
        super().__init__()
        self.T = T
        kw = {"dtype": dtype, "device": device}
        self.A = nn.Parameter(torch.zeros(heads, d, **kw))
        self.B = nn.Parameter(torch.zeros(heads, d, **kw))
        self.P = nn.Parameter(torch.zeros(T + 1, T + 1, **kw))  # row t: weights on s_0..s_t
        self.register_buffer("causal", torch.ones(T, T + 1, **kw).tril(1))  # rows t = 1..T

    def reset_parameters(self, generator: torch.Generator, std: float,
                         balanced: bool = False) -> None:
        """Every parameter i.i.d. ``N(0, std^2)`` (``A``, ``B``, ``P`` in order, one generator).

        ``balanced`` then sets ``B = A``, so that ``A A^T - B B^T = 0``: the balanced
        initialisation of the orthogonal-heads theorem (Sander et al., 2024).
        """
        super().reset_parameters(generator, std)
        if balanced:
            with torch.no_grad():
                self.B.copy_(self.A)

    def coupling(self) -> torch.Tensor:
        """``C = B^T A`` (``d x d``)."""
        return self.B.T @ self.A

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        """Predictions of ``s_2..s_{T+1}`` from ``s_0..s_T`` (complex ``(B, T+1, d)``).

        Returns
        -------
        torch.Tensor
            Complex ``(B, T, d)``; entry ``t-1`` is the prediction of row ``t``.
        """
        A, B = self.A.to(s.dtype), self.B.to(s.dtype)
        scores = torch.einsum("hl,btl,bkl->bhtk", A, s[:, :-1].conj(), s)  # (B, H, T, T+1)
        weights = scores * (self.P[1:] * self.causal).to(s.dtype)
        return torch.einsum("hj,bhtk,bkj->btj", B, weights, s)

    def squared_errors(self, s: torch.Tensor) -> torch.Tensor:
        """Per-sequence squared error of every row, ``||s_hat_{t+1} - s_{t+1}||^2``.

        The mean over sequences of the last column estimates the per-row population loss
        ``L(C, p)`` of the non-augmented theorems (Sander et al., 2024).

        Parameters
        ----------
        s : torch.Tensor
            Complex, ``(B, T+2, d)``: ``s_0..s_{T+1}``.

        Returns
        -------
        torch.Tensor
            Real, ``(B, T)``; column ``t-1`` is row ``t`` (the prediction of ``s_{t+1}``).
        """
        return (self(s[:, :-1]) - s[:, 2:]).abs().pow(2).sum(-1)


@dataclass(frozen=True)
class DiagonalMoments:
    """The exact population loss of :class:`DiagonalLinearAttention`, row by row.

    Row ``t``'s error in coordinate ``j`` is ``sum_{k<=t, l} P_{t,k} C_{jl} Z_{tklj} - s_{t+1,j}``
    with the monomials ``Z_{tklj} = conj(s_{t-1,l}) s_{k,l} s_{k,j}``. When every token is a
    monomial ``exp(i F[t, j] . theta)`` in independent uniform angles
    (:func:`numerics.data.orthogonal.rotation_frequencies`), ``E[Z_x conj(Z_y)] = [f_x = f_y]``
    (the moment lemma: ``E exp(i f . theta) = [f = 0]``), so the expected squared error is the
    quadratic form ``sum_j K_j^T G_j K_j - 2 K_j^T r_j + d`` in ``K_j = (P_{t,.} C_{j,.})`` with
    0/1 matrices ``G`` and ``r``: exact, with no sampling error, and differentiable in ``A, B, P``
    (the population loss of Sander et al., 2024, non-augmented setting).

    Attributes
    ----------
    gram : torch.Tensor
        ``G``, ``(T, d, (T+1) d, (T+1) d)``.
    cross : torch.Tensor
        ``r``, ``(T, d, (T+1) d)``.
    points : int
        Lattice points per angle at which the lattice mean of the module's squared errors is
        exact (:func:`numerics.data.orthogonal.lattice_rotation_sequences`): one more than the
        largest spread of a frequency component over an error's monomials.
    """

    gram: torch.Tensor
    cross: torch.Tensor
    points: int

    @classmethod
    def of(cls, frequencies: np.ndarray, device: torch.device | None = None) -> DiagonalMoments:
        """The moments for tokens with ``frequencies`` ``(T+2, d, angles)``: ``s_0..s_{T+1}``."""
        T, d = frequencies.shape[0] - 2, frequencies.shape[1]
        F = frequencies
        rows = np.arange(1, T + 1)
        # monomial (t, j, k, l): -F[t-1, l] + F[k, l] + F[k, j]
        features = (-F[rows - 1][:, None, None, :, :] + F[None, None, : T + 1, :, :]
                    + F[: T + 1][None, :, :, None, :].transpose(0, 2, 1, 3, 4))
        features = features.reshape(T, d, (T + 1) * d, F.shape[-1])
        targets = F[rows + 1]  # (T, d, angles)
        gram = (features[:, :, :, None] == features[:, :, None, :]).all(-1)
        cross = (features == targets[:, :, None]).all(-1)
        causal = (np.arange(T + 1)[None, :] <= rows[:, None]).repeat(d, axis=1)  # k <= t
        spread = 0
        for t in range(T):
            support = np.concatenate((features[t][:, causal[t]].reshape(-1, F.shape[-1]),
                                      targets[t]))
            spread = max(spread, int((support.max(0) - support.min(0)).max()))
        kw = {"dtype": torch.float64, "device": device}
        return cls(torch.as_tensor(gram, **kw), torch.as_tensor(cross, **kw), spread + 1)

    def loss(self, model: DiagonalLinearAttention) -> torch.Tensor:
        """The population loss of every row, ``(T,)`` (row ``t`` predicts ``s_{t+1}``)."""
        weights = model.P[1:] * model.causal  # (T, T+1)
        C = model.coupling()
        T, d = weights.shape[0], C.shape[0]
        K = (weights[:, None, :, None] * C[None, :, None, :]).reshape(T, d, -1)
        return (torch.einsum("tjx,tjxy,tjy->t", K, self.gram, K)
                - 2 * (K * self.cross).sum((1, 2)) + d)

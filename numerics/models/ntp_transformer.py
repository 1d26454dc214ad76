"""One-layer transformer with merged matrices for next-token prediction (Huang et al., 2024).

``phi(X) = softmax(X^T W_kq x_L)`` (attention from the last token), ``T(X) = W_ov X phi(X)``,
logits ``z_v = e_v^T T(X)``. Embeddings are fixed columns ``e_v`` of ``E`` ``(d, K)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class NTPTransformer(nn.Module):
    """The model of the spec: ``W_kq`` and ``W_ov`` are ``(d, d)`` parameters, zero at init.

    Parameters
    ----------
    embeddings : torch.Tensor
        ``(d, K)`` fixed embeddings (a buffer); its dtype and device are the model's.
    """

    def __init__(self, embeddings: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("E", embeddings)
        d = embeddings.shape[0]
        self.W_kq = nn.Parameter(torch.zeros(d, d, dtype=embeddings.dtype,
                                             device=embeddings.device))
        self.W_ov = nn.Parameter(torch.zeros_like(self.W_kq))

    def matrices(self) -> list[nn.Parameter]:
        """The weight matrices (the trainer's decay group)."""
        return [self.W_kq, self.W_ov]

    def train_only(self, name: str) -> None:
        """Train ``W_kq`` or ``W_ov`` alone (the two stages); the other is frozen."""
        for param_name, param in self.named_parameters():
            param.requires_grad_(param_name == name)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(N, K)`` and attention ``(N, L)`` of left-aligned padded sentences.

        Parameters
        ----------
        tokens : torch.Tensor
            ``(N, L)`` token ids; the query of row ``i`` is ``tokens[i, lengths[i] - 1]``.
        lengths : torch.Tensor
            ``(N,)`` sentence lengths.
        """
        X = self.E.T[tokens]  # (N, L, d)
        rows = torch.arange(tokens.shape[0], device=tokens.device)
        query = X[rows, lengths - 1]  # (N, d)
        scores = torch.einsum("nld,de,ne->nl", X, self.W_kq, query)  # (N, L)
        valid = torch.arange(tokens.shape[1], device=tokens.device) < lengths[:, None]
        attention = torch.softmax(scores.masked_fill(~valid, float("-inf")), dim=-1)
        output = torch.einsum("de,nle,nl->nd", self.W_ov, X, attention)  # (N, d)
        return output @ self.E, attention  # (N, K), (N, L)

    def loss(self, tokens: torch.Tensor, lengths: torch.Tensor,
             targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of the next tokens."""
        logits, _ = self(tokens, lengths)
        return F.cross_entropy(logits, targets)

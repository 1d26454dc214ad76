"""The one-layer, one-head transformer of Li, Li, Risteski (2023) as a real ``nn.Module``.

No residual, no FFN, no layer norm, no positions. Token ``x_j`` (one-hot over ``V + 2`` ids:
``V`` content words, ``[MASK]``, padding) is embedded as ``E x_j``; attention from query ``i``
over the usable keys ``j`` is ``softmax_j((W^K E x_j)^T (W^Q E x_i) / sqrt(d))``; the output is
``f_i = W^pred W^V E X A_{:, i}`` with logits over the ``V`` content words.

Configurations used by the theorems:

* ``embedding="one_hot"`` (``E = I``, frozen) or ``"trained"`` (``E`` is ``d x (V+2)``);
* ``decoder="identity"`` (``W^pred`` reads the first ``V`` coordinates) or ``"tied"``
  (``W^pred = E_{:, :V}^T``);
* ``uniform_attention=True`` freezes ``W^K = W^Q = 0``: every query sees the mean of its keys.

Which parameters train is set with :meth:`TopicTransformer.train_only`.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class TopicTransformer(nn.Module):
    """See the module docstring."""

    def __init__(
        self, V: int, d: int | None = None, embedding: str = "one_hot",
        decoder: str = "identity", uniform_attention: bool = True,
        dtype: torch.dtype = torch.float64, device: torch.device | None = None,
    ) -> None:
        super().__init__()
        tokens = V + 2
        d = tokens if embedding == "one_hot" else d
        if d is None:
            raise ValueError("trained embeddings need a dimension d")
        if decoder == "identity" and d < V:
            raise ValueError(f"an identity decoder reads V = {V} coordinates, so d >= V")
        kw = {"dtype": dtype, "device": device}
        self.V, self.d = V, d
        self.embedding, self.decoder, self.uniform = embedding, decoder, uniform_attention
        eye = torch.eye(d, tokens, **kw)
        self.E = nn.Parameter(eye.clone(), requires_grad=embedding == "trained")
        self.W_V = nn.Parameter(torch.eye(d, **kw))
        self.W_K = nn.Parameter(torch.zeros(d, d, **kw), requires_grad=not uniform_attention)
        self.W_Q = nn.Parameter(torch.zeros(d, d, **kw), requires_grad=not uniform_attention)

    def train_only(self, *names: str) -> None:
        """Make exactly the named parameters trainable (the theorems freeze the rest)."""
        for name, parameter in self.named_parameters():
            parameter.requires_grad_(name in names)

    def matrices(self) -> list[nn.Parameter]:
        """Weights the trainer's AdamW may decay (none: penalties are explicit in the loss)."""
        return []

    def trainable(self) -> list[nn.Parameter]:
        """The parameters that currently train."""
        return [p for p in self.parameters() if p.requires_grad]

    def readout(self) -> torch.Tensor:
        """``W^pred`` (``V x d``)."""
        if self.decoder == "tied":
            return self.E[:, : self.V].T
        return torch.eye(self.V, self.d, dtype=self.E.dtype, device=self.E.device)

    def forward(self, x: torch.Tensor, keys: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits at every position and the attention matrix.

        Parameters
        ----------
        x : torch.Tensor
            ``(B, N)`` token ids, or ``(B, N, V+2)`` rows of token distributions (a row ``p_S``
            stands for the long-document limit of a context).
        keys : torch.Tensor, optional
            ``(B, N)`` bool, positions usable as keys (default: all).

        Returns
        -------
        logits : torch.Tensor
            ``(B, N, V)``.
        attention : torch.Tensor
            ``(B, N_query, N_key)``, rows sum to 1 over usable keys.
        """
        embedded = (self.E.T[x] if x.dtype == torch.long else x @ self.E.T)  # (B, N, d)
        if keys is None:
            keys = torch.ones(embedded.shape[:2], dtype=torch.bool, device=embedded.device)
        if self.uniform:
            scores = torch.zeros(embedded.shape[0], embedded.shape[1], embedded.shape[1],
                                 dtype=embedded.dtype, device=embedded.device)
        else:
            queries, keys_ = embedded @ self.W_Q.T, embedded @ self.W_K.T
            scores = queries @ keys_.transpose(1, 2) / math.sqrt(self.d)  # (B, Nq, Nk)
        scores = scores.masked_fill(~keys[:, None, :], -math.inf)
        attention = torch.softmax(scores, dim=-1)
        values = embedded @ self.W_V.T  # (B, N, d)
        return attention @ values @ self.readout().T, attention

"""The one-layer, one-head transformer of Li, Li, Risteski (2023) as a real ``nn.Module``.

No residual, no FFN, no layer norm, no positions. Token ``x_j`` (one-hot over ``V + 2`` ids:
``V`` content words, ``[MASK]``, padding) is embedded as ``E x_j``; attention from query ``i``
over the usable keys ``j`` is ``softmax_j((W^K E x_j)^T (W^Q E x_i) / sqrt(d))``; the output is
``f_i = W^pred W^V E X A_{:, i}`` with logits over the ``V`` content words.

Configurations used by the theorems:

* ``embedding="one_hot"`` (``E = I``, frozen) or ``"trained"`` (``E`` is ``d x (V+2)``);
* ``decoder="identity"`` (``W^pred`` reads the first ``V`` coordinates) or ``"tied"``
  (``W^pred = E_{:, :V}^T``);
* ``uniform_attention=True`` freezes ``W^K = W^Q = 0``: every query sees the mean of its keys;
* :meth:`TopicTransformer.copy_attention_model`: attention only on copies of the query's own
  word (a control that has no topic structure at all).

Which parameters train is set with :meth:`TopicTransformer.train_only`; the theorems'
configurations are the classmethods :meth:`~TopicTransformer.value_model`,
:meth:`~TopicTransformer.embedding_model`, :meth:`~TopicTransformer.attention_model` and
:meth:`~TopicTransformer.joint_model`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from numerics.data.lda import topic_blocks


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

    @classmethod
    def value_model(cls, V: int, dtype: torch.dtype = torch.float64,
                    device: torch.device | None = None) -> TopicTransformer:
        """The value-matrix theorem's model: one-hot embedding, identity decoder, uniform
        attention; only ``W^V`` trains (Li, Li, Risteski, 2023)."""
        model = cls(V, dtype=dtype, device=device)
        model.train_only("W_V")
        return model

    @classmethod
    def embedding_model(cls, V: int, dtype: torch.dtype = torch.float64,
                        device: torch.device | None = None) -> TopicTransformer:
        """The embedding theorem's model: trained embeddings of dimension ``d = V``, tied
        decoder ``W^pred = E_{:, :V}^T``, uniform attention; only ``E`` trains (Li, Li,
        Risteski, 2023)."""
        model = cls(V, d=V, embedding="trained", decoder="tied", dtype=dtype, device=device)
        model.train_only("E")
        return model

    @classmethod
    def attention_model(cls, V: int, topics: int, same: float, other: float,
                        dtype: torch.dtype = torch.float64,
                        device: torch.device | None = None) -> TopicTransformer:
        """The attention theorem's model: ``W^K``, ``W^Q`` train, ``W^V`` is frozen at
        ``same Blk + other (J - Blk)`` (:meth:`set_value_blocks`; Li, Li, Risteski, 2023).

        ``W^K = W^Q = 0`` is a saddle (zero gradient): start them with
        :meth:`reset_parameters`.
        """
        model = cls(V, uniform_attention=False, dtype=dtype, device=device)
        model.train_only("W_K", "W_Q")
        model.set_value_blocks(topics, same, other)
        return model

    @classmethod
    def joint_model(cls, V: int, dtype: torch.dtype = torch.float64,
                    device: torch.device | None = None) -> TopicTransformer:
        """The two-stage dynamics claim's model: one-hot embedding, identity decoder, and
        ``W^V``, ``W^K``, ``W^Q`` all training together (Li, Li, Risteski, 2023).

        ``W^V = I``, ``W^K = W^Q = 0`` until :meth:`reset_parameters` draws the (near-zero)
        initialisation; ``W^K = W^Q = 0`` alone is a saddle of the attention.
        """
        model = cls(V, uniform_attention=False, dtype=dtype, device=device)
        model.train_only("W_V", "W_K", "W_Q")
        return model

    @classmethod
    def copy_attention_model(cls, V: int, strength: float, dtype: torch.dtype = torch.float64,
                             device: torch.device | None = None) -> TopicTransformer:
        """Frozen attention that only looks at copies of the query's own word: the score of
        key ``j`` for query ``i`` is ``strength`` if ``x_j = x_i`` and 0 otherwise
        (``W^K = I``, ``W^Q = strength sqrt(d) I``); ``W^V = I``. Renormalised over the keys
        that are not copies, its attention is uniform: it carries no topic structure."""
        model = cls(V, uniform_attention=False, dtype=dtype, device=device)
        with torch.no_grad():
            model.W_K.copy_(torch.eye(model.d, dtype=dtype, device=device))
            model.W_Q.copy_(strength * math.sqrt(model.d)
                            * torch.eye(model.d, dtype=dtype, device=device))
        model.train_only()
        return model

    def set_value_matrix(self, W: torch.Tensor) -> None:
        """Set ``W^V`` to ``W`` (``d x d``), e.g. the value matrix a stage-1 run learned."""
        if W.shape != self.W_V.shape:
            raise ValueError(f"W^V is {tuple(self.W_V.shape)}, got {tuple(W.shape)}")
        with torch.no_grad():
            self.W_V.copy_(W)

    def set_value_blocks(self, topics: int, same: float, other: float) -> None:
        """Set ``W^V`` to ``same`` on same-topic word pairs and ``other`` on different-topic
        pairs of the ``V`` content words (``topics`` topics of ``V / topics`` words), 0 in
        the rows and columns of ``[MASK]`` and padding: the block form of the value-matrix
        theorem's minimiser (Li, Li, Risteski, 2023)."""
        if self.V % topics:
            raise ValueError(f"V = {self.V} words do not split into {topics} equal topics")
        blocks = torch.tensor(topic_blocks(topics, self.V // topics), device=self.W_V.device)
        entries = torch.tensor([other, same], dtype=self.W_V.dtype, device=self.W_V.device)
        with torch.no_grad():
            self.W_V.zero_()
            self.W_V[: self.V, : self.V] = entries[blocks.long()]

    def reset_parameters(self, generator: torch.Generator, std: float) -> None:
        """Every parameter that trains i.i.d. ``N(0, std^2)``, drawn in parameter order from
        one generator; the frozen ones keep their values."""
        with torch.no_grad():
            for parameter in self.trainable():
                parameter.copy_(std * torch.randn(parameter.shape, generator=generator,
                                                  device=parameter.device, dtype=parameter.dtype))

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

    def forward(self, x: torch.Tensor, keys: torch.Tensor | None = None,
                queries: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits at every position (or at the ``queries`` positions) and the attention matrix.

        Parameters
        ----------
        x : torch.Tensor
            ``(B, N)`` token ids, or ``(B, N, V+2)`` rows of token distributions (a row ``p_S``
            stands for the long-document limit of a context).
        keys : torch.Tensor, optional
            ``(B, N)`` bool, positions usable as keys (default: all).
        queries : torch.Tensor, optional
            ``(B, Q)`` positions whose outputs are wanted (default: all ``N``, in order). Every
            query still attends to all usable keys, so each output is the one the full pass
            gives at that position; only the rows nobody reads are not computed (the masked-LM
            loss reads the masked positions only).

        Returns
        -------
        logits : torch.Tensor
            ``(B, N_query, V)``.
        attention : torch.Tensor
            ``(B, N_query, N_key)``, rows sum to 1 over usable keys.
        """
        embedded = (self.E.T[x] if x.dtype == torch.long else x @ self.E.T)  # (B, N, d)
        if keys is None:
            keys = torch.ones(embedded.shape[:2], dtype=torch.bool, device=embedded.device)
        rows = embedded if queries is None else embedded.gather(
            1, queries[..., None].expand(-1, -1, embedded.shape[-1]))  # (B, Nq, d)
        if self.uniform:
            scores = torch.zeros(embedded.shape[0], rows.shape[1], embedded.shape[1],
                                 dtype=embedded.dtype, device=embedded.device)
        else:
            queries_, keys_ = rows @ self.W_Q.T, embedded @ self.W_K.T
            scores = queries_ @ keys_.transpose(1, 2) / math.sqrt(self.d)  # (B, Nq, Nk)
        scores = scores.masked_fill(~keys[:, None, :], -math.inf)
        attention = torch.softmax(scores, dim=-1)
        values = embedded @ self.W_V.T  # (B, N, d)
        return attention @ values @ self.readout().T, attention

"""The transformer of Makkuva et al. (2024), Section 2, as a real ``nn.Module``.

``u_n = x_n e + p_n``; causal softmax attention ``y_n = u_n + W_O sum_i att_{n,i} W_V u_i`` with
``att_{n,.} = softmax(<W_Q u_n, W_K u_i> / sqrt(d))``; FFN ``z_n = y_n + W_2 ReLU(W_1 y_n)``;
logit ``<a, z_n> + b`` with ``a = e`` when tied. No layer norm (the theory model). The theorems
are about one layer; the paper's depth experiment stacks ``n_layers`` such attention + FFN
layers on the residual stream (the same equations applied to ``z`` in place of ``u``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class MarkovTransformerConfig:
    """Sizes of the model.

    Attributes
    ----------
    d : int
        Embedding dimension.
    N : int
        Largest sequence length (number of positional vectors).
    tied : bool
        Weight tying ``a = e``.
    m : int
        Attention width (``W_Q, W_K, W_V`` are ``m x d``); the paper's code uses ``m = d``.
    r : int
        FFN width; the paper's code uses ``r = 4 d``.
    n_layers : int
        Attention + FFN layers (1 in every theorem; more in the depth experiment).
    memory : int or None
        Attention window of the reference code's higher-order experiments: the query at
        position ``n`` sees the keys ``i`` in ``[n - memory, n]``. ``None``: the whole past
        (causal attention, every theorem).
    """

    d: int
    N: int
    tied: bool
    m: int = 0
    r: int = 0
    n_layers: int = 1
    memory: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "m", self.m or self.d)
        object.__setattr__(self, "r", self.r or 4 * self.d)
        if self.memory is not None and self.memory < 0:
            raise ValueError(f"memory must be None or >= 0, got {self.memory}")


#: The attention and FFN matrices of one layer, in registration order.
LAYER_MATRICES = ("W_Q", "W_K", "W_V", "W_O", "W_1", "W_2")


def _add_layer_matrices(module: nn.Module, d: int, m: int, r: int, **kw) -> None:
    """Register one layer's zero matrices on ``module``: ``W_Q, W_K, W_V`` (``m x d``),
    ``W_O`` (``d x m``), ``W_1`` (``r x d``), ``W_2`` (``d x r``)."""
    shapes = ((m, d), (m, d), (m, d), (d, m), (r, d), (d, r))
    for name, shape in zip(LAYER_MATRICES, shapes, strict=True):
        module.register_parameter(name, nn.Parameter(torch.zeros(shape, **kw)))


def _matrices(module: nn.Module) -> list[nn.Parameter]:
    return [getattr(module, name) for name in LAYER_MATRICES]


class DeeperLayer(nn.Module):
    """Layer 2, 3, ... of a deeper model: its attention and FFN matrices (layer 1's are
    attributes of :class:`MarkovTransformer` itself, so one-layer models keep the theorems'
    parameter names)."""

    def __init__(self, d: int, m: int, r: int, **kw) -> None:
        super().__init__()
        _add_layer_matrices(self, d, m, r, **kw)


def hidden_keys(n: int, memory: int | None, device: torch.device) -> torch.Tensor:
    """``(n, n)`` mask of the keys a query may not see: later positions (``i > n``) and,
    with a window, those before ``n - memory``."""
    future = torch.ones(n, n, dtype=torch.bool, device=device).triu(1)
    if memory is None:
        return future
    return future | torch.ones(n, n, dtype=torch.bool, device=device).tril(-(memory + 1))


def _attend(queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
            config: MarkovTransformerConfig) -> torch.Tensor:
    """Fused attention, causal or within the window (a boolean mask only when windowed)."""
    n = queries.shape[-2]
    mask = None if config.memory is None else ~hidden_keys(n, config.memory, queries.device)
    return F.scaled_dot_product_attention(queries, keys, values, attn_mask=mask,
                                          is_causal=mask is None, scale=1 / math.sqrt(config.d))


def _layer(u: torch.Tensor, layer: MarkovTransformer | DeeperLayer,
           config: MarkovTransformerConfig) -> torch.Tensor:
    """One attention + FFN layer on the residual stream ``u`` (``(B, n, d)``)."""
    heads = u.unsqueeze(-3)  # (B, 1, n, d): one head; the 4-D layout takes the fused kernel
    queries, keys, values = heads @ layer.W_Q.T, heads @ layer.W_K.T, heads @ layer.W_V.T
    attended = _attend(queries, keys, values, config).squeeze(-3)  # (B, n, m)
    y = u + attended @ layer.W_O.T  # (B, n, d)
    return y + F.relu(y @ layer.W_1.T) @ layer.W_2.T  # (B, n, d)


class MarkovTransformer(nn.Module):
    """Single head, binary input, sigmoid output (the paper's theory model); one layer unless
    the configuration asks for more."""

    def __init__(
        self,
        config: MarkovTransformerConfig,
        dtype: torch.dtype = torch.float64,
        device: torch.device | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        d, m, r = config.d, config.m, config.r
        kw = {"dtype": dtype, "device": device}
        self.e = nn.Parameter(torch.zeros(d, **kw))  # token vector
        self.pos = nn.Parameter(torch.zeros(config.N, d, **kw))  # positional vectors p_n
        _add_layer_matrices(self, d, m, r, **kw)
        self.a = None if config.tied else nn.Parameter(torch.zeros(d, **kw))
        self.b = nn.Parameter(torch.zeros((), **kw))
        if config.n_layers < 1:
            raise ValueError(f"n_layers must be at least 1, got {config.n_layers}")
        self.deeper = nn.ModuleList(DeeperLayer(d, m, r, **kw)
                                    for _ in range(config.n_layers - 1))

    @property
    def head(self) -> torch.Tensor:
        """The readout vector ``a`` (``e`` itself when tied)."""
        return self.e if self.a is None else self.a

    def matrices(self) -> list[nn.Parameter]:
        """Attention and FFN matrices of every layer (the weights the paper's AdamW decays)."""
        return [W for layer in (self, *self.deeper) for W in _matrices(layer)]

    def reset_parameters(self, generator: torch.Generator, std: float = 0.02) -> None:
        """The paper's initialisation: every weight ``N(0, std^2)``, the bias ``b = 0``."""
        with torch.no_grad():
            for name, param in self.named_parameters():
                if name == "b":
                    param.zero_()
                else:
                    param.copy_(
                        torch.randn(param.shape, generator=generator, device=param.device) * std
                    )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of ``P(x_{n+1} = 1 | x_1..x_n)``.

        Parameters
        ----------
        x : torch.Tensor
            Shape ``(B, n)`` with ``n <= N``, values in {0, 1}.

        Returns
        -------
        torch.Tensor
            Shape ``(B, n)``.
        """
        n = x.shape[-1]
        z = x.unsqueeze(-1).to(self.e.dtype) * self.e + self.pos[:n]  # (B, n, d)
        for layer in (self, *self.deeper):
            z = _layer(z, layer, self.config)
        return z @ self.head + self.b  # (B, n)

    def last_logits(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logit at the last position of each zero-padded prefix, shape ``(P,)``.

        Equal to ``forward(x)[i, lengths[i] - 1]`` (causal attention never reads the
        padding). One layer: computing the attention and feed-forward for that position
        only, see :func:`prefix_logits`; deeper models run :meth:`forward` once per distinct
        padded row (after layer 1 the stream is no longer one of two vectors per position).
        The prefixes of an exact population are rows of ``{0,1}^N`` padded with zeros, i.e.
        full sequences themselves, so that is at most ``2^N`` rows instead of ``2^(N+1)``.

        Parameters
        ----------
        x : torch.Tensor
            ``(P, n)`` binary prefixes, padded after ``lengths``.
        lengths : torch.Tensor
            ``(P,)`` prefix lengths (``>= 1``).
        """
        if self.deeper:
            rows, inverse = torch.unique(x, dim=0, return_inverse=True)
            return self(rows)[inverse, lengths - 1]
        return prefix_logits(self, x, lengths)

    def set_unigram_point(self, bias: float, generator: torch.Generator | None = None) -> None:
        """Set the model to a member of ``theta_pi``: ``e = 0`` (and ``a = 0``), ``b = bias``.

        Every other parameter is 0 (the canonical member) or, given a ``generator``, ``N(0, 1)``
        (a generic member; Theorem 2 says the loss there is still ``H(pi)``).
        """
        with torch.no_grad():
            for name, param in self.named_parameters():
                if name in ("e", "a") or generator is None:
                    param.zero_()
                else:
                    param.copy_(torch.randn(param.shape, generator=generator, device=param.device))
            self.b.fill_(bias)

    def set_bigram_point(self, slope: float, bias: float) -> None:
        """Set the model to ``theta_*`` of Theorem 1 (global minimum).

        Attention off (all attention matrices 0), ``p_n = 0``, ``e = u`` a unit vector, rank-one
        FFN ``W_1 = u^T`` (``w_1 = 1``), ``W_2 = (slope - 1) u``, so that
        ``logit_n = ||e||^2 (1 + w_1 w_2) x_n + b = slope * x_n + bias``. Untied: ``a = e``.
        """
        with torch.no_grad():
            for param in self.parameters():
                param.zero_()
            self.e[0] = 1.0
            self.W_1[0, 0] = 1.0
            self.W_2[0, 0] = slope - 1.0
            if self.a is not None:
                self.a[0] = 1.0
            self.b.fill_(bias)


def reference_logits(model: MarkovTransformer, x: torch.Tensor) -> torch.Tensor:
    """The paper's model written out term by term (no fused kernel), for the bridge that checks
    :meth:`MarkovTransformer.forward` against its definition.

    ``u_n = x_n e + p_n``; causal single-head attention
    ``y_n = u_n + W_O sum_{i <= n} att_{n,i} W_V u_i`` (``n - memory <= i`` with a window) with
    ``att_{n,.} = softmax_i(<W_Q u_n, W_K u_i> / sqrt(d))``; ``z_n = y_n + W_2 ReLU(W_1 y_n)``;
    logit ``<a, z_n> + b`` (Makkuva et al., 2024, Section 2).
    """
    n = x.shape[-1]
    z = x.unsqueeze(-1).to(model.e.dtype) * model.e + model.pos[:n]  # (B, n, d)
    hidden = hidden_keys(n, model.config.memory, x.device)  # i > n, or outside the window
    for layer in (model, *model.deeper):  # layer l reads the stream layer l-1 wrote
        scores = torch.einsum("bnm,bim->bni", z @ layer.W_Q.T, z @ layer.W_K.T)
        scores = scores / math.sqrt(model.config.d)
        weights = torch.softmax(scores.masked_fill(hidden, -math.inf), dim=-1)
        y = z + torch.einsum("bni,bim->bnm", weights, z @ layer.W_V.T) @ layer.W_O.T
        z = y + torch.clamp(y @ layer.W_1.T, min=0) @ layer.W_2.T
    return z @ model.head + model.b


class MarkovEnsemble(nn.Module):
    """``S`` members of one :class:`MarkovTransformer` architecture as one batched model.

    Every parameter is the members' parameters stacked on a leading axis of size ``S``; one
    forward pass computes all members (the members enter the fused attention kernel as its
    batch axis). With an elementwise optimizer (AdamW, GD) training the ensemble on the sum of
    the members' losses is training each member on its own loss, so seed ensembles cost one
    batched run instead of ``S`` sequential ones.

    Parameters
    ----------
    members : list[MarkovTransformer]
        Same configuration, any parameters (e.g. different seeds' initialisations).
    """

    def __init__(self, members: list[MarkovTransformer]) -> None:
        super().__init__()
        self.config = members[0].config
        if any(m.config != self.config for m in members):
            raise ValueError("ensemble members must share one configuration")
        if self.config.n_layers != 1:
            raise ValueError("ensembles batch one-layer models only (train deeper ones apart)")
        self.names = [name for name, _ in members[0].named_parameters()]
        for name in self.names:
            stacked = torch.stack([dict(m.named_parameters())[name].detach() for m in members])
            self.register_parameter(name, nn.Parameter(stacked.clone()))

    def __len__(self) -> int:
        return self.e.shape[0]

    def matrices(self) -> list[nn.Parameter]:
        """The stacked attention and FFN matrices (decayed by AdamW)."""
        return _matrices(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every member, shape ``(S, B, n)`` for inputs ``(B, n)``."""
        n = x.shape[-1]
        u = (x[None, :, :, None].to(self.e.dtype) * self.e[:, None, None, :]
             + self.pos[:, None, :n])  # (S, B, n, d)
        # einsum folds (B, n) into one matrix dimension: S batched matmuls, not S*B tiny ones
        queries, keys, values = (torch.einsum("sbnd,smd->sbnm", u, W)
                                 for W in (self.W_Q, self.W_K, self.W_V))  # (S, B, n, m)
        attended = _attend(queries, keys, values, self.config)
        y = u + torch.einsum("sbnm,sdm->sbnd", attended, self.W_O)  # (S, B, n, d)
        hidden = F.relu(torch.einsum("sbnd,srd->sbnr", y, self.W_1))  # (S, B, n, r)
        z = y + torch.einsum("sbnr,sdr->sbnd", hidden, self.W_2)
        head = self.e if self.config.tied else self.a  # (S, d)
        return torch.einsum("sbnd,sd->sbn", z, head) + self.b[:, None, None]  # (S, B, n)

    def last_logits(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Every member's logit at the last position of each prefix, shape ``(S, P)``."""
        return prefix_logits(self, x, lengths)

    def member(self, index: int) -> MarkovTransformer:
        """Member ``index`` as a stand-alone :class:`MarkovTransformer`."""
        model = MarkovTransformer(self.config, self.e.dtype, self.e.device)
        model.load_state_dict({name: getattr(self, name)[index].detach()
                               for name in self.names})
        return model


def prefix_logits(model: MarkovTransformer | MarkovEnsemble, x: torch.Tensor,
                  lengths: torch.Tensor) -> torch.Tensor:
    """Logit after each binary prefix, for a model or (with a leading member axis) an ensemble.

    With binary inputs ``u_i = x_i e + p_i``, so every key and value is the ``x_i = 0`` row
    plus ``x_i`` times the difference: the attention reduces to matrix products with the
    position tables and elementwise masks by ``x``. No per-prefix gathers (their backward is a
    slow scatter), and the feed-forward runs on one row per prefix.

    Returns ``(P,)``, or ``(S, P)`` for an ensemble.
    """
    n = x.shape[-1]
    dtype = model.e.dtype
    bits = x.to(dtype)  # (P, n)
    last = F.one_hot(lengths - 1, n).to(dtype)  # (P, n): selects the query position
    pos = model.pos[..., :n, :]  # (..., n, d)
    u_last = last @ pos + (last * bits).sum(-1, keepdim=True) * model.e[..., None, :]
    query = u_last @ model.W_Q.transpose(-1, -2)  # (..., P, m)
    keys0, values0 = (pos @ W.transpose(-1, -2) for W in (model.W_K, model.W_V))  # (..., n, m)
    keys1 = keys0 + (model.e[..., None, :] @ model.W_K.transpose(-1, -2))  # x_i = 1 rows
    values1 = values0 + (model.e[..., None, :] @ model.W_V.transpose(-1, -2))
    scores = (query @ keys0.transpose(-1, -2)) * (1 - bits) + (
        query @ keys1.transpose(-1, -2)) * bits  # (..., P, n)
    position = torch.arange(n, device=x.device)
    visible = position < lengths[:, None]
    if model.config.memory is not None:  # the window [n - memory, n] of the query at n
        visible &= position >= lengths[:, None] - 1 - model.config.memory
    attention = torch.softmax((scores / math.sqrt(model.config.d)).masked_fill(
        ~visible, float("-inf")), dim=-1)
    attended = (attention * (1 - bits)) @ values0 + (attention * bits) @ values1  # (..., P, m)
    y = u_last + attended @ model.W_O.transpose(-1, -2)  # (..., P, d)
    z = y + F.relu(y @ model.W_1.transpose(-1, -2)) @ model.W_2.transpose(-1, -2)
    head = model.e if model.config.tied else model.a
    return (z * head[..., None, :]).sum(-1) + model.b[..., None]

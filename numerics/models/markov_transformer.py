"""The transformer of Makkuva et al. (2024), Section 2, as a real ``nn.Module``.

``u_n = x_n e + p_n``; causal softmax attention ``y_n = u_n + W_O sum_i att_{n,i} W_V u_i`` with
``att_{n,.} = softmax(<W_Q u_n, W_K u_i> / sqrt(d))``; FFN ``z_n = y_n + W_2 ReLU(W_1 y_n)``;
logit ``<a, z_n> + b`` with ``a = e`` when tied. No layer norm (the theory model). The theorems
are about one layer; the paper's depth experiment stacks ``n_layers`` such attention + FFN
layers on the residual stream (the same equations applied to ``z`` in place of ``u``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from numerics.products import linear_product


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


#: How :class:`MarkovTransformer` computes layer 1's attention (see
#: :meth:`MarkovTransformer.uses_binary_path`).
ATTENTION_PATHS = ("auto", "fused", "binary")
#: Shortest sequence for which ``attention="auto"`` takes the binary path on the CPU. Forward
#: plus backward of a batch of 16 at d = 8, float32, one thread, measured on a 2-core CPU:
#: fused kernel / binary path 0.83x at n = 128, 1.09x at n = 160, 1.25x at n = 192, 1.69x at
#: n = 256, 2.31x at n = 384; a whole training step at n = 1024 about 4x
#: (``benchmarks/markov_steps.py``).
BINARY_MIN_LENGTH = 192

#: The attention and FFN matrices of one layer, in registration order.
LAYER_MATRICES = ("W_Q", "W_K", "W_V", "W_O", "W_1", "W_2")


def _add_layer_matrices(module: nn.Module, d: int, m: int, r: int, **kw) -> None:
    """Register one layer's zero matrices on ``module``: ``W_Q, W_K, W_V`` (``m x d``),
    ``W_O`` (``d x m``), ``W_1`` (``r x d``), ``W_2`` (``d x r``)."""
    shapes = ((m, d), (m, d), (m, d), (d, m), (r, d), (d, r))
    for name, shape in zip(LAYER_MATRICES, shapes, strict=True):
        module.register_parameter(name, nn.Parameter(torch.zeros(shape, **kw)))


def _binary_path(attention: str, x: torch.Tensor) -> bool:
    """The rule of :meth:`MarkovTransformer.uses_binary_path` for ``attention`` and input ``x``."""
    if attention not in ATTENTION_PATHS:
        raise ValueError(f"attention must be one of {ATTENTION_PATHS}, got {attention!r}")
    return attention == "binary" or (attention == "auto" and x.device.type == "cpu"
                                     and x.shape[-1] >= BINARY_MIN_LENGTH)


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
           config: MarkovTransformerConfig, attended: torch.Tensor | None = None) -> torch.Tensor:
    """One attention + FFN layer on the residual stream ``u`` (``(B, n, d)``); ``attended``
    (``(B, n, m)``, the attention's output before ``W_O``) when :func:`binary_attention`
    computed it (the rest of the layer then takes :class:`_LayerTail`, first order only like
    that attention), else the fused kernel computes it."""
    if attended is not None:
        return _LayerTail.apply(u, attended, layer.W_O, layer.W_1, layer.W_2)
    heads = u.unsqueeze(-3)  # (B, 1, n, d): one head; the 4-D layout takes the fused kernel
    queries, keys, values = heads @ layer.W_Q.T, heads @ layer.W_K.T, heads @ layer.W_V.T
    attended = _attend(queries, keys, values, config).squeeze(-3)  # (B, n, m)
    y = u + attended @ layer.W_O.T  # (B, n, d)
    return y + F.relu(y @ layer.W_1.T) @ layer.W_2.T  # (B, n, d)


#: Rows per block of :func:`binary_attention`: the causal table is computed and multiplied
#: block by block, up to each block's last visible key (rounded up to the grid of
#: :data:`BINARY_KEY_STEP`), so about half of the ``n x n`` products (the hidden upper
#: triangle) is never formed.
BINARY_BLOCK_ROWS = 128

#: A block's keys run from and to multiples of this step, so that the blocks' products take
#: a few fixed shapes (:func:`~numerics.products.linear_product` compiles a kernel per shape).
BINARY_KEY_STEP = 32


def safe_gamma(dtype: torch.dtype) -> float:
    """The largest ``|gamma|`` :func:`binary_attention` accepts: ``exp(-|gamma|)`` stays a
    normal number of ``dtype`` with a factor 1e6 to spare (about 73 in float32, 694 in
    float64), so that no weight loses precision to a denormal."""
    return -math.log(torch.finfo(dtype).tiny) - math.log(1e6)


def binary_attention(x: torch.Tensor, e: torch.Tensor, pos: torch.Tensor, W_Q: torch.Tensor,
                     W_K: torch.Tensor, W_V: torch.Tensor,
                     config: MarkovTransformerConfig) -> torch.Tensor:
    """Layer-1 attention output ``sum_i att_{n,i} W_V u_i`` (before ``W_O``) of binary
    sequences ``x`` (``(B, n)``), without a ``(B, n, n)`` tensor; ``e``, ``pos``, ``W_Q``,
    ``W_K``, ``W_V`` are one model's parameters (:class:`MarkovTransformer`).

    With ``u_i = x_i e + p_i`` every query, key and value at position ``i`` is one of two
    vectors (Makkuva et al., 2024, Section 2): ``k_i = k0_i + x_i dk`` with ``k0 = W_K p``,
    ``dk = W_K e`` (the same for ``q`` and ``v``). For a query of class ``a = x_n`` the score
    of key ``i`` is ``s_a[n, i] + x_i gamma_a[n]`` with ``s_a = <q0_n + a dq, k0_i> / sqrt(d)``
    and ``gamma_a[n] = <q0_n + a dq, dk> / sqrt(d)``: the ``(2, n, n)`` table ``s`` does not
    depend on the batch. Dividing the softmax by ``exp(max(0, gamma))`` gives the key classes
    the weights ``c = exp(-|gamma|)`` and 1; then with ``E = exp(s)`` (each row divided by its
    largest entry, a factor that cancels) and the indicator ``h`` of the heavier key class
    (``x`` where ``gamma >= 0``, else ``1 - x``)

    ``Z = c E 1 + (1 - c) E h`` and ``Z out = c E v' + (1 - c) E (h v0) + s dv E h``

    with ``v' = v0, s = 1`` where ``gamma >= 0`` and ``v' = v0 + dv, s = -c`` elsewhere: every
    term is a product of the table with ``m + 1`` columns shared by the batch or ``m + 1``
    columns per sequence. The weights ``c, 1 - c`` are non-negative, so nothing cancels beyond
    the round-off of the products themselves: the same function as the fused kernel (to float
    round-off) for any parameters, causal or windowed (``config.memory``). A table row is
    scaled by its largest entry over all visible positions, not per sequence as in the fused
    kernel: a sequence's row would underflow only if every key it shows scored ~80 (float32) or ~700
    (float64) below the row's largest score, far outside the scores of training.

    Returns
    -------
    torch.Tensor or None
        ``(B, n, m)``; None when some ``|gamma|`` is so large that ``exp(-|gamma|)`` would
        underflow in this dtype (a row whose visible keys are all of the lighter class would
        be 0/0): the caller then takes the fused kernel.
    """
    n = x.shape[-1]
    bits = x.to(e.dtype)
    pos = pos[:n]
    scale = 1 / math.sqrt(config.d)
    keys0, values0 = pos @ W_K.T, pos @ W_V.T  # (n, m)
    d_query, d_key, d_value = W_Q @ e, W_K @ e, W_V @ e
    ones = torch.ones(n, 1, dtype=bits.dtype, device=x.device)
    column = bits.T  # (n, B): x_i of each sequence
    queries0 = pos @ W_Q.T * scale
    queries = torch.cat([queries0, queries0 + d_query * scale])  # (2n, m): x_n = 0, then 1
    gamma = queries @ d_key  # (2n,)
    if gamma.detach().abs().max() > safe_gamma(gamma.dtype):
        return None
    heavy_one = gamma.detach() >= 0  # in this row the x_i = 1 keys weigh more
    groups = []  # per heavier key class present: its rows, [1, h] and [v', h v0]
    for heavy in (True, False):
        rows = torch.nonzero(heavy_one == heavy).squeeze(-1)
        if len(rows):  # else every row is in the other group (e = 0: gamma = 0 everywhere)
            light = values0 if heavy else values0 + d_value
            h = column if heavy else 1 - column
            # the right side's columns [1, h] (data: no gradient), then [v_light, h v0]
            # (per sequence m columns): (n, 1 + B) and (n, (1 + B) m)
            varying = torch.cat([light, (h[:, :, None] * values0[:, None]).reshape(n, -1)], -1)
            # by position, for the causal blocks
            groups.append((rows[torch.argsort(rows % n, stable=True)],
                           torch.cat([ones, h], -1), varying))
    out = _table_products(queries, keys0, groups, config.memory)  # (2n, (1 + B)(1 + m))
    # exp(-|gamma|) written per group, so that its derivative at gamma = 0 is the group's
    c = torch.exp(torch.where(heavy_one, -gamma, gamma))
    light_dv = torch.where(heavy_one, 1.0, -c).to(bits.dtype)
    return _ClassRatio.apply(out, c, light_dv, d_value, column > 0.5)


def _table_products(queries: torch.Tensor, keys: torch.Tensor,
                    groups: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                    memory: int | None) -> torch.Tensor:
    """``E @ [constant, varying]`` for each group ``(rows, constant, varying)``:
    ``E = exp(queries[rows] keys^T)`` on the keys visible from each row's position
    ``rows % len(keys)`` (``rows`` by ascending position), each row divided by its largest
    entry, in blocks of :data:`BINARY_BLOCK_ROWS` rows of a group, each from its first to its
    last visible key rounded out to multiples of :data:`BINARY_KEY_STEP`
    (:class:`_CausalTableProduct`); the result's row ``r`` is that of query ``r``, its columns
    those of ``constant`` (no gradient) and then of ``varying``.

    A group's last block is filled up with copies of its last row's position and no query
    (index ``len(queries)``, a zero row whose output is dropped and whose gradient is 0), so
    that every block has the same rows and the products' shapes come from a small fixed set
    (:func:`~numerics.products.linear_product` compiles a kernel per shape). A row's scale
    cancels in :func:`binary_attention` (its numerator and normaliser come from the same row),
    so no softmax denominator is formed. Causal blocks mask only the keys from the block's
    first position on: the earlier ones are visible to every row of the block.
    """
    n, step = len(keys), BINARY_KEY_STEP
    blocks, order = [], []
    offset = 0  # the group's first row in the padded order
    for group, (rows, _, _) in enumerate(groups):
        count = len(rows)
        padding = -count % BINARY_BLOCK_ROWS
        order.append(torch.cat([rows, rows.new_full((padding,), len(queries))]))
        positions = torch.cat([rows % n, (rows[-1:] % n).expand(padding)])
        for start in range(0, count + padding, BINARY_BLOCK_ROWS):
            at = positions[start:start + BINARY_BLOCK_ROWS]
            low, high = int(at[0]), int(at[-1])
            first = 0 if memory is None else max(0, low - memory) // step * step
            last = min(n, -(-(high + 1) // step) * step)  # high + 1 rounded up
            masked = low if memory is None else first  # first key that may be hidden
            cols = torch.arange(masked, last, device=rows.device)
            hidden = cols[None, :] > at[:, None]
            if memory is not None:
                hidden |= cols[None, :] < at[:, None] - memory
            blocks.append((group, offset + start, offset + start + len(at), first, masked,
                           hidden))
        offset += count + padding
    return _CausalTableProduct.apply(queries, keys, torch.cat(order), blocks,
                                     *(side for _, *sides in groups for side in sides))


def _first_order_only(backward):
    """Refuse a second derivative (``create_graph=True``) through a hand-written backward:
    :func:`~torch.autograd.function.once_differentiable` leaves it silently wrong when the
    gradient is taken with ``torch.autograd.grad(..., inputs=...)``."""
    @functools.wraps(backward)
    def first_order(ctx, *grads):
        if torch.is_grad_enabled():
            raise RuntimeError("the binary attention path has no second derivative; take "
                               "attention='fused' for Hessians (create_graph=True)")
        return backward(ctx, *grads)
    return first_order


class _CausalTableProduct(torch.autograd.Function):
    """Row blocks ``exp(q k^T - row max, masked) @ [constant, varying]`` with a hand-written
    backward that accumulates the key and right-side gradients in place (autograd through
    the blocks' slices would zero-fill a full-size gradient per block). The rows are taken
    in the groups' order ``order`` (every query row once, and ``len(queries)`` for a padding
    row), so that every block is a contiguous range of them; ``blocks`` holds per block its
    group (the index of its right side), the range ``[start, stop)`` in that order, its first
    key, first maskable key and the mask from that key to the block's last key. ``sides`` are
    each group's ``constant`` (data, given no gradient: the product with it is not
    differentiated) and ``varying``. The large products go to
    :func:`~numerics.products.linear_product`, each in a layout its fast kernels take.

    The row maximum is a constant of the backward, so the backward is exact only for a
    consumer that does not change when a row of the output is scaled, as
    :func:`binary_attention`'s ratios do not (its tests compare it with the fused kernel).
    Used anywhere else, the derivative of the row maximum would be missing."""

    @staticmethod
    def forward(ctx, queries, keys, order, blocks, *sides):
        rhs = [torch.cat(sides[i:i + 2], -1) for i in range(0, len(sides), 2)]
        # index_select copies whole rows: about 4x faster than queries[order]; the padding
        # rows (index len(queries)) are zero queries
        in_order = torch.cat([queries, queries.new_zeros(1, queries.shape[1])]).index_select(
            0, order)
        out = rhs[0].new_empty(len(order), rhs[0].shape[1])  # rows in the padded order
        # the scores in base 2: exp2 runs 3 to 5x faster than exp on the CPU, and does not
        # slow down where the result underflows (exp takes about 15x longer there)
        keys_base2 = keys * math.log2(math.e)
        tables = []
        for group, start, stop, first, masked, hidden in blocks:
            last = masked + hidden.shape[1]
            table = in_order[start:stop] @ keys_base2[first:last].T
            table[:, masked - first:].masked_fill_(hidden, -math.inf)
            tables.append(table.sub_(table.amax(-1, keepdim=True)).exp2_())
            out[start:stop] = linear_product(table, rhs[group][first:last].T)
        ctx.blocks, ctx.constant_columns = blocks, sides[0].shape[1]
        # query r is row inverse[r] of out (the padding rows' index is the largest)
        inverse = torch.argsort(order)[:len(queries)]
        ctx.save_for_backward(in_order, keys, order, inverse, *rhs, *tables)
        return out.index_select(0, inverse)  # a gather of rows: faster than a scatter

    @staticmethod
    @_first_order_only
    @once_differentiable
    def backward(ctx, grad):
        in_order, keys, order, inverse, *saved = ctx.saved_tensors
        rhs, tables = saved[:-len(ctx.blocks)], saved[-len(ctx.blocks):]
        grad = torch.cat([grad, grad.new_zeros(1, grad.shape[1])]).index_select(0, order)
        # the query and key gradients (m <= 16 columns) are formed transposed, m rows by the
        # block's rows or keys: a product with so few output columns is several times
        # slower in the row-major layout (about 8x for the keys' sum of products)
        grad_queries = in_order.new_empty(in_order.shape[1], len(in_order))
        grad_keys = keys.new_zeros(keys.shape[1], len(keys))
        keys_t, queries_t = keys.T.contiguous(), in_order.T
        constant = ctx.constant_columns
        # transposed too: each block's product is formed as (columns, keys)
        grad_varying = [r.new_zeros(r.shape[1] - constant, len(r)) for r in rhs]
        for (group, start, stop, first, masked, hidden), table in zip(ctx.blocks, tables,
                                                                      strict=True):
            last = masked + hidden.shape[1]
            rows_grad = grad[start:stop]
            scores = linear_product(rows_grad, rhs[group][first:last]).mul_(table)  # E * d E
            grad_queries[:, start:stop] = keys_t[:, first:last] @ scores.T
            grad_keys[:, first:last].addmm_(queries_t[:, start:stop], scores)
            grad_varying[group][:, first:last] += linear_product(rows_grad[:, constant:].T,
                                                                 table.T)
        return (grad_queries.T.index_select(0, inverse), grad_keys.T, None, None,
                *(g for varying in grad_varying for g in (None, varying.T)))


class _LayerTail(torch.autograd.Function):
    """The layer after its attention, ``y = u + attended W_O^T`` and
    ``z = y + ReLU(y W_1^T) W_2^T`` on ``B n`` rows, with every product taken in its fastest
    layout: autograd's products for so many rows by ``d, m, r <= 64`` columns (a weight's
    gradient as a sum over the rows, ``(r, B n) @ (B n, d)``) run 3 to 5x slower on the CPU
    than :func:`~numerics.products.linear_product` and the weights' gradients formed as
    ``d x r`` sums of products (``y^T @ grad``, then transposed). First order only, like the
    binary attention before it: a second derivative through the binary path is refused even
    with respect to ``W_O``, ``W_1``, ``W_2`` alone (Hessians take ``attention="fused"``)."""

    @staticmethod
    def forward(ctx, u, attended, W_O, W_1, W_2):
        shape = u.shape
        attended = attended.reshape(-1, attended.shape[-1])
        y = u.reshape(-1, shape[-1]) + linear_product(attended, W_O)  # (rows, d)
        hidden = linear_product(y, W_1).relu_()  # (rows, r)
        ctx.save_for_backward(attended, y, hidden, W_O, W_1, W_2)
        return (y + linear_product(hidden, W_2)).view(shape)

    @staticmethod
    @_first_order_only
    @once_differentiable
    def backward(ctx, grad):
        attended, y, hidden, W_O, W_1, W_2 = ctx.saved_tensors
        shape = grad.shape
        grad_z = grad.reshape(-1, shape[-1])
        # ReLU's own backward (autograd's): about 7x faster than a product with hidden > 0
        grad_hidden = torch.ops.aten.threshold_backward(linear_product(grad_z, W_2.T), hidden,
                                                        0)  # (rows, r)
        grad_y = grad_z + linear_product(grad_hidden, W_1.T)  # (rows, d)
        return (grad_y.view(shape), linear_product(grad_y, W_O.T).view(*shape[:-1], -1),
                (attended.T @ grad_y).T, (y.T @ grad_hidden).T, grad_z.T @ hidden)


class _ClassRatio(torch.autograd.Function):
    """The last step of :func:`binary_attention`: at each position ``i`` each sequence's
    query class ``a = x_i`` picks its row ``a n + i`` of the table products ``out``
    (``(2n, (1 + B)(1 + m))``: the columns ``[1, h]`` of the normalisers, shared then one per
    sequence, and then ``[v', h v0]``, ``m`` columns shared then ``m`` per sequence), and the
    attention output is
    ``(c S_v + (1 - c) O_v + s dv O_1) / (c S_1 + (1 - c) O_1)`` with ``S`` the shared and
    ``O`` the sequence's columns, ``c`` and ``s`` the row's weights (``c`` and ``light_dv``,
    ``(2n,)``), ``dv = W_V e``; ``query_is_one`` is ``x`` transposed, ``(n, B)`` booleans.

    Forward and backward are written out over ``(n, B, m)`` arrays (autograd through the
    selections and ratios takes about twice the passes over them); the backward routes each
    gradient to the row of the sequence's query class, and sums the shared columns' and the
    weights' gradients over the sequences of each class.
    """

    @staticmethod
    def forward(ctx, out, c, light_dv, d_value, query_is_one):
        n, batch = query_is_one.shape
        m = len(d_value)
        norms = out[:, :1 + batch].view(2, n, 1 + batch)  # (class, position, [shared, own])
        values = out[:, 1 + batch:].view(2, n, 1 + batch, m)
        # the class selections as lerp by 0/1 weights of the full shape, exact for finite rows
        # (a + 0 (b - a) and b - (b - a) 0; a non-finite row of either class, only from
        # diverged parameters, makes the output NaN): torch.where, or a weight broadcast along
        # the last axis, runs 3 to 8x slower on the CPU
        one = query_is_one.to(out.dtype)  # (n, B)
        one_m = _spread(one, m)  # (n, B, m)
        own_norm = torch.lerp(norms[0, :, 1:], norms[1, :, 1:], one)  # (n, B)
        own = torch.lerp(values[0, :, 1:], values[1, :, 1:], one_m)  # (n, B, m)
        shared_norm = torch.lerp(norms[0, :, :1], norms[1, :, :1], one)
        shared = torch.lerp(values[0, :, :1], values[1, :, :1], one_m)
        c, light_dv = (torch.lerp(v.view(2, n, 1)[0], v.view(2, n, 1)[1], one)
                       for v in (c, light_dv))  # (n, B)
        c_m = _spread(c, m)
        total_m = _spread(torch.lerp(own_norm, shared_norm, c), m)  # c S_1 + (1 - c) O_1
        weighted = torch.lerp(own, shared, c_m).add_(
            torch.outer((light_dv * own_norm).reshape(-1), d_value).view(n, batch, m))
        ratio = weighted.div_(total_m)  # (n, B, m)
        ctx.save_for_backward(own, shared, own_norm, shared_norm, c, c_m, light_dv, total_m,
                              ratio, d_value, one, one_m)
        # (B, n, m) in row-major order: a transposed layout makes the FFN's products slow
        return ratio.transpose(0, 1).contiguous()

    @staticmethod
    @_first_order_only
    @once_differentiable
    def backward(ctx, grad):
        (own, shared, own_norm, shared_norm, c, c_m, light_dv, total_m, ratio, d_value, one,
         one_m) = ctx.saved_tensors
        n, batch, m = own.shape
        d_weighted = grad.transpose(0, 1) / total_m  # (n, B, m)
        d_total = -(d_weighted * ratio).sum(-1)  # (n, B)
        d_light = d_weighted @ d_value  # (n, B): of light_dv * own_norm
        d_own_norm = (1 - c) * d_total + light_dv * d_light
        # per sequence: the shared columns' gradients (normaliser, values), then those of
        # c and light_dv
        d_c = ((shared - own) * d_weighted).sum(-1) + (shared_norm - own_norm) * d_total
        per_sequence = torch.cat([(c * d_total)[..., None], c_m * d_weighted,
                                  d_c[..., None], (own_norm * d_light)[..., None]],
                                 -1)  # (n, B, m + 3)
        pick = torch.stack([1 - one, one], 1)  # (n, 2, B)
        by_class = (pick @ per_sequence).transpose(0, 1)  # (2, n, m + 3): sums per class
        grad_out = own.new_empty(2 * n, (1 + batch) * (1 + m))
        norms = grad_out[:, :1 + batch].view(2, n, 1 + batch)
        values = grad_out[:, 1 + batch:].view(2, n, 1 + batch, m)
        norms[:, :, 0] = by_class[..., 0]
        values[:, :, 0] = by_class[..., 1:-2]
        # each sequence's own columns: its query class's row gets the gradient, the other 0
        # (x - x 1 = 0 and x - x 0 = x exactly)
        torch.mul(d_own_norm, one, out=norms[1, :, 1:])
        torch.sub(d_own_norm, norms[1, :, 1:], out=norms[0, :, 1:])
        d_own = (1 - c_m).mul_(d_weighted)
        torch.mul(d_own, one_m, out=values[1, :, 1:])
        torch.sub(d_own, values[1, :, 1:], out=values[0, :, 1:])
        grad_d_value = (light_dv * own_norm).reshape(-1) @ d_weighted.reshape(-1, m)
        return (grad_out, by_class[..., -2].reshape(-1), by_class[..., -1].reshape(-1),
                grad_d_value, None)


def _spread(values: torch.Tensor, width: int) -> torch.Tensor:
    """``values`` repeated along a new last axis of ``width``, as a contiguous array: CPU
    element-wise kernels with an operand broadcast along the last axis run about 3x slower."""
    return values[..., None].expand(*values.shape, width).contiguous()


class MarkovTransformer(nn.Module):
    """Single head, binary input, sigmoid output (the paper's theory model); one layer unless
    the configuration asks for more."""

    def __init__(
        self,
        config: MarkovTransformerConfig,
        dtype: torch.dtype = torch.float64,
        device: torch.device | None = None,
        attention: str = "auto",
    ) -> None:
        super().__init__()
        _binary_path(attention, torch.zeros(0))  # validates the name
        self.config = config
        self.attention = attention
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
        first = None  # None: the fused kernel computes it (see binary_attention's return)
        if self.uses_binary_path(x):
            first = binary_attention(x, self.e, self.pos, self.W_Q, self.W_K, self.W_V,
                                     self.config)
        z = _layer(z, self, self.config, first)
        for layer in self.deeper:  # continuous inputs from layer 2 on: the fused kernel
            z = _layer(z, layer, self.config)
        return z @ self.head + self.b  # (B, n)

    def uses_binary_path(self, x: torch.Tensor) -> bool:
        """Whether :meth:`forward` computes layer 1's attention by :func:`binary_attention`.

        ``attention="binary"``: always; ``"fused"``: never; ``"auto"``: on the CPU for
        sequences of at least :data:`BINARY_MIN_LENGTH` positions, where the fused kernel with
        a head of ``m <= 16`` dimensions is the slow part of a step. On CUDA the fused kernel
        is fast and the binary path's data-dependent row split would synchronise every step;
        short sequences (the exact budgets, the bridges' autograd Hessians and ``vmap``, which
        the binary path's hand-written backward does not support) keep the fused kernel.
        """
        return _binary_path(self.attention, x)

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
    attention : {"auto", "fused", "binary"}
        How the attention is computed (:meth:`MarkovTransformer.uses_binary_path`); the binary
        path runs member by member.
    """

    def __init__(self, members: list[MarkovTransformer], attention: str = "auto") -> None:
        super().__init__()
        _binary_path(attention, torch.zeros(0))  # validates the name
        self.attention = attention
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
        """Logits of every member, shape ``(S, B, n)``, for inputs ``(B, n)`` shared by the
        members or ``(S, B, n)``, one batch per member."""
        n = x.shape[-1]
        x = x.expand(len(self), *x.shape[-2:])  # (S, B, n)
        u = (x[..., None].to(self.e.dtype) * self.e[:, None, None, :]
             + self.pos[:, None, :n])  # (S, B, n, d)
        members = ([binary_attention(x[s], self.e[s], self.pos[s], self.W_Q[s], self.W_K[s],
                                     self.W_V[s], self.config) for s in range(len(self))]
                   if _binary_path(self.attention, x) else [None])
        if all(member is not None for member in members):
            attended = torch.stack(members)
        else:  # the fused kernel (short sequences, CUDA, or scores beyond safe_gamma)
            # einsum folds (B, n) into one matrix dimension: S batched matmuls, not S*B tiny
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
        model = MarkovTransformer(self.config, self.e.dtype, self.e.device, self.attention)
        model.load_state_dict({name: getattr(self, name)[index].detach()
                               for name in self.names})
        return model


def prefix_logits(model: MarkovTransformer | MarkovEnsemble, x: torch.Tensor,
                  lengths: torch.Tensor) -> torch.Tensor:
    """Logit after each binary prefix, for a model or (with a leading member axis) an ensemble.

    With binary inputs ``u_i = x_i e + p_i``, so every key and value is the ``x_i = 0`` row
    plus ``x_i`` times the difference: the attention reduces to matrix products with the
    position tables and elementwise masks by ``x``. No per-prefix gathers (their backward is a
    slow scatter), and the feed-forward runs on one column per prefix.

    Returns ``(P,)``, or ``(S, P)`` for an ensemble.
    """
    n = x.shape[-1]
    dtype = model.e.dtype
    # feature-major: every array is (..., features, P), so that the products' long side is the
    # P prefixes; with P rows and 4 to 16 columns a batched product runs about 2x slower
    bits = x.to(dtype).T  # (n, P)
    last = F.one_hot(lengths - 1, n).to(dtype).T  # (n, P): selects the query position
    pos = model.pos[..., :n, :]  # (..., n, d)
    e = model.e[..., :, None]  # (..., d, 1)
    u_last = pos.transpose(-1, -2) @ last + (last * bits).sum(0) * e  # (..., d, P)
    query = (model.W_Q / math.sqrt(model.config.d)) @ u_last  # (..., m, P), scaled
    keys0 = pos @ model.W_K.transpose(-1, -2)  # (..., n, m): the x_i = 0 keys
    d_key = (model.W_K @ e).transpose(-1, -2)  # (..., 1, m): x_i = 1 adds W_K e
    values0 = model.W_V @ pos.transpose(-1, -2)  # (..., m, n)
    d_value = model.W_V @ e  # (..., m, 1)
    scores = keys0 @ query + bits * (d_key @ query)  # (..., n, P)
    position = torch.arange(n, device=x.device)[:, None]
    visible = position < lengths
    if model.config.memory is not None:  # the window [n - memory, n] of the query at n
        visible &= position >= lengths - 1 - model.config.memory
    scores = scores.masked_fill(~visible, float("-inf"))
    # softmax written out over the n <= 16 keys of each column: torch.softmax over so short a
    # dimension is one slow loop per prefix on the CPU; the shift by the (constant) column
    # maximum leaves every derivative unchanged, and the normaliser divides the m values'
    # sums instead of the n weights
    weights = torch.exp(scores - scores.detach().amax(-2, keepdim=True))
    attended = ((values0 @ weights + d_value * (weights * bits).sum(-2, keepdim=True))
                / weights.sum(-2, keepdim=True))
    y = u_last + model.W_O @ attended  # (..., d, P)
    z = y + model.W_2 @ F.relu(model.W_1 @ y)
    head = model.e if model.config.tied else model.a
    return (z * head[..., :, None]).sum(-2) + model.b[..., None]

"""The products of the hand-written forward and backward passes: ``a @ w.T`` to float32
round-off in every layout they are called with, and torch's own product wherever oneDNN does
not apply."""

from __future__ import annotations

import pytest
import torch

from numerics import products
from numerics.products import linear_product


def _matrix(rows: int, cols: int, layout: str, seed: int) -> torch.Tensor:
    """A float32 ``rows x cols`` matrix stored row-major, transposed, or inside a larger one
    (a padded leading dimension), either way round."""
    g = torch.Generator().manual_seed(seed)
    if layout == "row-major":
        return torch.randn(rows, cols, generator=g)
    if layout == "transposed":
        return torch.randn(cols, rows, generator=g).T
    if layout == "padded":
        return torch.randn(rows + 3, cols + 5, generator=g)[1:rows + 1, 2:cols + 2]
    return torch.randn(cols + 5, rows + 3, generator=g)[2:cols + 2, 1:rows + 1].T


LAYOUTS = ("row-major", "transposed", "padded", "padded-transposed")


@pytest.mark.parametrize("a_layout", LAYOUTS)
@pytest.mark.parametrize("w_layout", LAYOUTS)
@pytest.mark.parametrize(("M", "K", "N"), [(128, 300, 153), (1, 7, 1), (33, 1024, 8)])
def test_float32_product_is_a_times_w_transposed_to_round_off(a_layout, w_layout, M, K, N):
    """Against the float64 product: each entry within ``K eps`` of the sum of the absolute
    products (the round-off bound of a float32 sum of ``K`` terms in any order)."""
    a, w = _matrix(M, K, a_layout, 0), _matrix(N, K, w_layout, 1)
    product = linear_product(a, w)
    assert product.shape == (M, N) and product.dtype == torch.float32
    exact = a.double() @ w.double().T
    bound = K * torch.finfo(torch.float32).eps * (a.double().abs() @ w.double().abs().T)
    assert ((product.double() - exact).abs() <= bound).all()


# torch's flags() context warns about an Intel-GPU setting it restores on the way
@pytest.mark.filterwarnings("ignore:TF32 acceleration on top of oneDNN")
def test_float64_and_disabled_onednn_take_torch_s_own_product():
    a, w = _matrix(40, 60, "padded", 2), _matrix(20, 60, "transposed", 3)
    assert torch.equal(linear_product(a.double(), w.double()), a.double() @ w.double().T)
    with torch.backends.mkldnn.flags(enabled=False):
        assert torch.equal(linear_product(a, w), a @ w.T)


def test_onednn_is_found_where_torch_ships_it():
    """The probe of torch's internal op succeeds wherever the op exists (a torch whose op
    changed its signature would otherwise lose the fast kernels with every other test green),
    whatever torch's default dtype."""
    shipped = (torch.backends.mkldnn.is_available()
               and hasattr(torch.ops.mkldnn, "_linear_pointwise"))
    products._onednn_op.cache_clear()
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        assert (products._onednn_op() is not None) == shipped
    finally:
        torch.set_default_dtype(default)
        products._onednn_op.cache_clear()


def test_the_op_gets_a_dense_weight(monkeypatch):
    """A weight with a padded leading dimension reaches oneDNN copied (its fast kernels need
    a dense one; a padded one runs a reference kernel about 2000x slower)."""
    seen = []

    def op(a, w, *args):
        seen.append(w.is_contiguous() or w.T.is_contiguous())
        return a @ w.T
    monkeypatch.setattr(products, "_onednn_op", lambda: op)
    a = _matrix(8, 20, "row-major", 6)
    for layout in LAYOUTS:
        w = _matrix(5, 20, layout, 7)
        assert torch.allclose(linear_product(a, w), a @ w.T, rtol=1e-6, atol=1e-6)
    assert seen == [True] * len(LAYOUTS)


def test_inputs_that_need_a_gradient_keep_torch_s_product():
    a = _matrix(6, 10, "row-major", 8).requires_grad_()
    w = _matrix(4, 10, "transposed", 9)
    linear_product(a, w).sum().backward()
    # d/da of sum(a @ w.T) is every row the column sums of w (float32 sums in any order)
    assert torch.allclose(a.grad, w.sum(0).expand(6, 10), rtol=1e-6, atol=1e-6)

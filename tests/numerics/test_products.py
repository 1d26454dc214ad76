"""The products of the hand-written backward passes: ``a @ w.T`` to float32 round-off in every
layout they are called with, and torch's own product wherever oneDNN does not apply."""

from __future__ import annotations

import pytest
import torch

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


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_takes_torch_s_own_product():
    cuda = torch.device("cuda")
    a, w = _matrix(40, 60, "padded", 4).to(cuda), _matrix(20, 60, "row-major", 5).to(cuda)
    assert torch.equal(linear_product(a, w), a @ w.T)

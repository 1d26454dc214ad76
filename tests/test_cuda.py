"""The GPU path: what differs on CUDA (generators, dtypes, complex tensors, the attention
kernels, memory), pinned against the CPU. Marked ``cuda`` and skipped where CUDA is absent
(our CI has no GPU; run ``python -m pytest -m cuda`` on a GPU machine)."""

import pytest
import torch

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]

CUDA = torch.device("cuda") if torch.cuda.is_available() else None
CPU = torch.device("cpu")


def test_generators_live_on_the_device_and_are_reproducible():
    from numerics.device import stream

    first, second = stream(CUDA, 0, "data"), stream(CUDA, 0, "data")
    assert first.device.type == "cuda"
    draws = [torch.rand(1000, device=CUDA, generator=g) for g in (first, second)]
    assert draws[0].device.type == "cuda" and torch.equal(*draws)
    other = torch.rand(1000, device=CUDA, generator=stream(CUDA, 1, "data"))
    assert not torch.equal(draws[0], other)


def test_sampled_chains_on_cuda_have_the_dtype_asked_and_the_kernel_s_law():
    from numerics.data.markov import sample_markov_chains
    from numerics.device import generator

    p, q = 0.3, 0.6
    x = sample_markov_chains(p, q, 4096, 256, generator(CUDA, 0), torch.float32)
    assert x.device.type == "cuda" and x.dtype == torch.float32
    after_zero = x[:, 1:][x[:, :-1] == 0].mean().item()  # P(1 | 0) = p, about 5e-4 std error
    assert abs(after_zero - p) < 5e-3


@pytest.mark.parametrize("attention", ["fused", "binary"])
def test_markov_logits_on_cuda_equal_the_cpu_s(attention):
    """float64 on both devices: the same function up to round-off, whichever attention path
    (the fused kernel's CUDA backends, or the binary-input tables) computes layer 1."""
    from numerics.device import generator
    from numerics.models.markov_transformer import MarkovTransformer, MarkovTransformerConfig

    config = MarkovTransformerConfig(8, 256, tied=False)
    cpu = MarkovTransformer(config, torch.float64, CPU, attention=attention)
    cpu.reset_parameters(generator(CPU, 0), std=0.3)
    gpu = MarkovTransformer(config, torch.float64, CUDA, attention=attention)
    gpu.load_state_dict(cpu.state_dict())
    x = torch.randint(0, 2, (16, 256), generator=generator(CPU, 1)).to(torch.float64)
    assert torch.allclose(gpu(x.to(CUDA)).cpu(), cpu(x), atol=1e-10, rtol=0)



def test_linear_product_takes_torch_s_own_product_on_cuda():
    """The oneDNN kernels are the CPU's: on CUDA the product is torch's ``a @ w.T`` (with an
    ``a`` whose leading dimension is padded)."""
    from numerics.products import linear_product

    a = torch.randn(43, 65, device=CUDA)[1:41, 2:62]
    w = torch.randn(20, 60, device=CUDA)
    assert torch.equal(linear_product(a, w), a @ w.T)

def test_float32_attention_backends_agree_with_the_math_reference():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from numerics.device import generator
    from numerics.models.markov_transformer import MarkovTransformer, MarkovTransformerConfig

    model = MarkovTransformer(MarkovTransformerConfig(8, 1024, tied=True), torch.float32, CUDA,
                              attention="fused")
    model.reset_parameters(generator(CUDA, 0), std=0.3)
    x = torch.randint(0, 2, (16, 1024), device=CUDA, generator=generator(CUDA, 1)).float()
    default = model(x)
    with sdpa_kernel([SDPBackend.MATH]):
        reference = model(x)
    assert torch.allclose(default, reference, atol=1e-4, rtol=0)


def test_complex_ical_bridge_runs_on_cuda():
    """complex128 tensors on the GPU: the one-step-GD theorem's bridge and training pass."""
    import verify

    verdict = verify.check("ical-one-step-gd", device="cuda")
    assert verdict.passed, str(verdict)


def test_a_full_budget_training_step_fits_in_memory():
    """One paper-scale step (d = 8, N = 1024, batch 16, float32) stays far below a GPU's
    memory: no (B, N, N) score tensor beyond the kernel's own workspace."""
    from numerics.device import generator
    from numerics.models.markov_transformer import MarkovTransformer, MarkovTransformerConfig
    from numerics.monte_carlo import MarkovBatches

    torch.cuda.reset_peak_memory_stats(CUDA)
    model = MarkovTransformer(MarkovTransformerConfig(8, 1024, tied=True), torch.float32, CUDA)
    model.reset_parameters(generator(CUDA, 0))
    batches = MarkovBatches(0.5, 0.8, 16, 1024, generator(CUDA, 1), torch.float32)
    loss, _ = batches.objective(model)
    loss.backward()
    assert torch.cuda.max_memory_allocated(CUDA) < 2**30


def test_verify_on_cuda_matches_the_cpu_verdict():
    """The exact (fast) Markov budget on both devices: same verdict, bridge values equal up
    to float64 round-off of a different summation order."""
    import verify

    on_gpu = verify.check("markov-local-minima", device="cuda")
    on_cpu = verify.check("markov-local-minima", device="cpu")
    assert on_gpu.passed and on_cpu.passed
    bridges = [(a, b) for a, b in zip(on_cpu.checks, on_gpu.checks, strict=True)
               if a.kind == "bridge" and isinstance(a.measured, float)]
    assert bridges
    for a, b in bridges:
        assert a.key == b.key and abs(a.measured - b.measured) <= 1e-9 * max(1, abs(a.measured))

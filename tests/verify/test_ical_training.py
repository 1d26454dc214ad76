"""The unitary heads' zero-loss training at sizes off the defaults."""

import pytest
import torch

from verify import harness, registry
from verify.experiments import ical


@pytest.mark.parametrize(("d", "heads", "T"), [(8, 8, 6), (5, 7, 3)])
def test_unitary_training_reaches_the_zero_loss_minimum_off_the_defaults(d, heads, T):
    """Adam alone leaves seed 0's last-row loss above the spec's 1e-6 at these sizes (its
    schedule ends at lr/5, and the steps keep the loss near the degenerate minimum at about
    that level); with the L-BFGS steps after it the run reaches the minimum, and every
    training check holds: the loss bound and the structure p_T C = I, p_k = 0."""
    plan = harness.prepare(registry.entry("ical-unitary-global-minima"),
                           {"d": str(d), "H": str(heads), "T": str(T)}, seeds=1)
    context = harness.stage_context(plan, torch.device("cpu"))
    checks, _ = ical._unitary_training(context)
    zero_loss = [c for c in checks if c.key.startswith(("last-row-loss", "max-p-"))]
    assert len(zero_loss) == 3
    assert all(c.passed for c in zero_loss), [(c.key, c.measured) for c in zero_loss]
    last_row = next(c for c in zero_loss if c.key.startswith("last-row-loss"))
    assert abs(last_row.measured) < ical.ZERO_LOSS_BOUND / 100  # the minimum, not the bound

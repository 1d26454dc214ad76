"""Cost refusals: a request's time is the sum of its parts, and a size far beyond any budget is
refused even with ``allow_expensive`` (it would hang sympy or crash torch)."""

import pytest

from theorems import TheoremError
from verify import api, harness, registry
from verify.records import COST_LIMITS


def test_a_request_whose_parts_together_exceed_the_limit_is_refused():
    entry = registry.entry("markov-local-minima")
    params = entry.theorem.resolve_params({**entry.budget_defaults("fast"), "d": "30"})
    parts = [cost.estimate(params, 1) for cost in entry.costs["fast"] if cost.unit == "s"]
    limit = COST_LIMITS["fast"]["s"]
    assert all(part <= limit for part in parts) and sum(parts) > limit
    with pytest.raises(TheoremError, match="in all, above the fast budget's limit"):
        api.prepare("markov-local-minima", d="30")
    api.prepare("markov-local-minima", d="30", allow_expensive=True)


@pytest.mark.parametrize(("theorem_id", "params"), [
    ("markov-local-minima", {"d": str(10**20)}),
    ("ntp-ffn-max-margin", {"T0": str(10**30)}),
    ("ntp-loss-linear-rate", {"T0": str(10**10)}),
])
def test_a_size_beyond_the_ceiling_is_refused_even_when_expensive_runs_are_allowed(
        theorem_id, params):
    with pytest.raises(TheoremError, match="even --allow-expensive does not run") as refused:
        api.prepare(theorem_id, allow_expensive=True, **params)
    assert f"{harness.EXPENSIVE_CEILING} x" in str(refused.value)


def test_the_stage_one_steps_of_the_ntp_theorems_are_costed():
    """T0 = 10^8 stage-1 steps ran unrefused (hours), and 10^30 crashed torch."""
    with pytest.raises(TheoremError, match="use a smaller T0") as refused:
        api.prepare("ntp-attention-max-margin", T0=str(10**8))
    assert "--allow-expensive" in str(refused.value)
    api.prepare("ntp-attention-max-margin", T0="2000")

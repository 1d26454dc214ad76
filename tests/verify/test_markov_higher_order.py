"""The order-k experiment: refused where it cannot decide, and its sampled budget's path."""

import json

import pytest
import torch

from verify import api
from verify.cli import main
from verify.harness import AssumptionError


def test_a_kernel_whose_oldest_bit_does_not_matter_is_refused_before_any_work():
    """P(1 | x_{n-1}, x_n) = P(1 | x_n): H_1 = H_2, so neither the window nor its control can
    be told apart from the other."""
    with pytest.raises(AssumptionError, match="cannot decide"):
        api.prepare("markov-higher-order", kernel="1/5,4/5,1/5,4/5")


def test_the_default_kernel_is_resolvable_and_reproducible():
    first, again = (api.prepare("markov-higher-order") for _ in range(2))
    one, two = (plan.theorem.predict(plan.params) for plan in (first, again))
    assert one.as_floats() == two.as_floats()
    assert one.float("rate_1") - one.float("rate_2") > 1e-2


def test_full_budget_path_runs_on_sampled_batches(capsys, tmp_path, monkeypatch):
    """The paper-scale code path (fresh order-k batches, Monte Carlo loss at n >= k), shrunk to
    seconds: only the mechanics are asserted (the run is far too short to converge)."""
    from verify.experiments import markov, markov_higher_order

    small = markov.MarkovBudget(N=16, steps=30, exact=False, batch=8, eval_sequences=64,
                                smoothing=5, dtype=torch.float32)
    monkeypatch.setitem(markov_higher_order.BUDGETS, "full", small)
    code = main(["--theorem", "markov-higher-order", "--budget", "full", "--seeds", "2",
                 "--param", "d=4", "--json", str(tmp_path / "r.json")])
    capsys.readouterr()
    (entry,) = json.loads((tmp_path / "r.json").read_text())["theorems"]
    assert code in (0, 1) and entry["budget"] == "full"
    window = next(c for c in entry["checks"]
                  if c["key"] == "window-gain-over-full-attention-at-n-k")
    assert len(window["details"]["standard_errors"]) == 2
    assert all(e > 0 for e in window["details"]["standard_errors"])
    assert "standard errors" in window["tolerance"]["reason"]
    assert window["details"]["seeds_passing"].endswith("/2")

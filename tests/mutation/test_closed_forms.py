"""Every closed form of every registered theorem: a wrong value must fail a check naming it."""

from __future__ import annotations

import pytest
import torch

from tests.mutation.mutants import OUTCOMES, Outcome, TheoremRun, closed_form_mutants
from verify import registry


@pytest.mark.parametrize("theorem_id", registry.ids())
def test_wrong_closed_forms_are_caught(theorem_id: str) -> None:
    run = TheoremRun(theorem_id, torch.device("cpu"))
    outcomes = []
    for mutant, equivalent in closed_form_mutants(run.prediction):
        if equivalent:
            outcome = Outcome("closed forms", theorem_id, f"{mutant.name}: {mutant.how}",
                              "equivalent", equivalent)
        else:
            outcome = run.judge(mutant)
        outcomes.append(outcome)
    OUTCOMES.extend(outcomes)
    survivors = [f"{o.mutant} ({o.by})" for o in outcomes if o.status == "survived"]
    assert not survivors, f"{theorem_id}: wrong closed forms pass: {survivors}"

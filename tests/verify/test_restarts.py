"""Restarts of a training with spurious minima: the schedule, and the trigonometric-PE training
that uses it (Sander et al., 2024, orthogonal case)."""

import torch

from verify import harness, registry
from verify.experiments import ical
from verify.experiments.restarts import PE_MAX_RUNS, restart_schedule, seed_runs
from verify.records import Tolerance


def _schedule(seeds, losses, max_runs):
    """Run the schedule; each run's loss is ``losses[(seed, restart)]``, 1 (never reaches) for a
    run not listed; a run reaches when its loss is 0."""
    finished = []
    for run in restart_schedule(seeds, finished, lambda loss: loss == 0, max_runs):
        finished.append(losses.get(run, 1.0))
    return finished


def test_no_restart_when_a_seed_reaches():
    finished = []
    runs = []
    for run in restart_schedule((0, 1, 2), finished, lambda loss: loss == 0, 32):
        runs.append(run)
        finished.append(0.0 if run == (1, 0) else 1.0)
    assert runs == [(0, 0), (1, 0), (2, 0)]  # every seed runs, nothing more


def test_restarts_round_robin_until_one_reaches():
    finished, runs = [], []
    for run in restart_schedule((3, 5), finished, lambda loss: loss == 0, 32):
        runs.append(run)
        finished.append(0.0 if run == (5, 2) else 1.0)
    assert runs == [(3, 0), (5, 0), (3, 1), (5, 1), (3, 2), (5, 2)]


def test_restarts_stop_at_the_cap():
    assert len(_schedule((0, 1, 2), {}, 7)) == 7
    assert len(_schedule((0, 1, 2), {}, 2)) == 3  # the seeds always run


class _History:
    def __init__(self, diverged: bool) -> None:
        self.nonfinite_step = 3 if diverged else None


def _seed_runs(outcomes: dict[int, str], max_runs: int):
    """One seed's runs where restart k ``reaches``, ``misses`` or ``diverges`` as listed
    (misses when not listed); returns what seed_runs returns and the restarts trained."""
    trained = []

    def run(restart: int):
        trained.append(restart)
        outcome = outcomes.get(restart, "misses")
        return f"model {restart}", _History(outcome == "diverges"), {
            "reached": outcome == "reaches"}
    return seed_runs(4, run, lambda record: record["reached"], max_runs), trained


def test_seed_runs_stop_at_the_first_that_reaches():
    (model, history, restart, records), trained = _seed_runs({2: "reaches"}, 5)
    assert trained == [0, 1, 2] and (model, restart) == ("model 2", 2)
    assert records == [{"restart": k, "reached": k == 2} for k in range(3)]
    assert history.nonfinite_step is None


def test_seed_runs_stop_at_the_cap_or_at_a_divergence():
    (model, _, restart, records), trained = _seed_runs({}, 3)
    assert trained == [0, 1, 2] and restart == 2 and len(records) == 3
    (model, history, restart, records), trained = _seed_runs({1: "diverges"}, 5)
    assert trained == [0, 1] and (model, restart) == ("model 1", 1)
    assert history.nonfinite_step is not None and records == [{"restart": 0, "reached": False}]


def _pe_training(monkeypatch, max_runs: int):
    monkeypatch.setattr(ical, "PE_MAX_RUNS", max_runs)
    entry = registry.entry("ical-pe-trigonometric")
    plan = harness.prepare(entry, {"d": "6", "H": "3", "T": "6"}, seeds=1)
    context = harness.stage_context(plan, torch.device("cpu"))
    checks, _ = registry.experiment("ical-pe-trigonometric").stages[1](context)
    return {check.key: check for check in checks}


def test_pe_restarts_find_the_global_minimum_that_seed_0_misses(monkeypatch):
    """At d = 6, H = 3 seed 0's run ends in a spurious minimum (last-row loss about 0.9): the
    best-run check fails without restarts, and passes with them, on a restart whose structure
    is the theorem's (C = c blockdiag(J_2), p_(T-1) / p_T = -1/2)."""
    alone = _pe_training(monkeypatch, 1)["best-seed-last-row-loss"]
    assert not alone.passed and alone.measured > 0.1 and alone.details["restarts"] == 0
    checks = _pe_training(monkeypatch, PE_MAX_RUNS)
    best = checks["best-seed-last-row-loss"]
    assert all(check.passed for check in checks.values()), checks
    runs = best.details["runs"]
    assert best.details["restarts"] == len(runs) - 1 >= 1
    assert [run["restart"] for run in runs] == list(range(len(runs)))  # one seed, in turn
    assert runs[-1]["loss"] == best.measured <= 1e-5  # stops at the first that reaches
    assert all(run["loss"] > 1e-5 for run in runs[:-1])
    assert runs[0]["loss"] == alone.measured  # restart 0 is the seed's own run


def _pe_floor(monkeypatch, max_runs: int, **sizes: str):
    monkeypatch.setattr(ical, "PE_MAX_RUNS", max_runs)
    entry = registry.entry("ical-pe-trigonometric")
    plan = harness.prepare(entry, sizes, seeds=3)
    context = harness.stage_context(plan, torch.device("cpu"))
    checks, _ = registry.experiment("ical-pe-trigonometric").stages[1](context)
    [check] = checks
    return check


def test_pe_rank_floor_reads_the_lowest_run(monkeypatch):
    """d = 6, H = 2 < d/2: the minimum is the floor d - 2H = 2; seed 2's run stops in a
    spurious minimum above it, the lowest run is at the floor (two-sided: a run below it
    would fail the check too)."""
    check = _pe_floor(monkeypatch, PE_MAX_RUNS, d="6", H="2", T="5")
    losses = [run["loss"] for run in check.details["runs"]]
    assert check.passed and check.predicted == 2 and check.measured == min(losses)
    assert max(losses) > 2 + 0.1  # a spurious minimum among the seeds' runs
    assert check.details["restarts"] == 0


def test_pe_rank_floor_fails_when_no_run_reaches_it(monkeypatch):
    """Without restarts and with a floor tolerance below the runs' optimisation error, no run
    counts as at the floor: the check fails."""
    monkeypatch.setattr(ical, "FLOOR_OPTIMISATION",
                        Tolerance(1e-14, ical.FLOOR_OPTIMISATION.reason))
    check = _pe_floor(monkeypatch, 3, d="6", H="2", T="5")
    assert not check.passed and check.details["restarts"] == 0
